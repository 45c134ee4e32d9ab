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
// Whether `name` updates a parent run's closed-form fit (overrides RecommenderImpl::fit_update),
// so that an update needs the parent's training pairs (Split::parent_train).
bool model_updates_fit(const std::string& name);
// Whether `name` trains on the users' training sequences (Split::train_seq; input_type() is
// InputType::Sequence), known without building the model: its class declares
// `static constexpr bool kSequenceInput = true`. False for an unknown name.
bool model_reads_sequences(const std::string& name);
// Whether `name` reads Split::train_rows (the training interactions' indices into the Dataset:
// their ratings, times, order), known without building the model. True unless its class (or a
// base) declares `static constexpr bool kReadsTrainRows = false`, and for an unknown name; a run
// of a model that does not releases them (an int64 per training interaction).
bool model_reads_train_rows(const std::string& name);

}  // namespace rzoo
