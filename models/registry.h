// The model factory over the explicit list in models/registry.def.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

struct ModelInfo {
  std::string name, description, paper;
};

// Every built-in model, sorted by name.
const std::vector<ModelInfo>& registered_models();
// Builds `name`; an unknown name fails with the sorted known names.
Recommender make_model(const std::string& name, const ModelContext& ctx);

}  // namespace rzoo
