// A small trainer set-up shared by the trainer tests: BPR on the synthetic dataset, split, and a
// Trainer writing into a given folder. Include after helpers.h.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "datasets/dataset.h"
#include "models/registry.h"
#include "trainers/experiment.h"
#include "trainers/trainer.h"

namespace rzoo::test {

struct TrainerFixture {
  Config cfg;
  PreparedData data;
  Logger log{true};
  explicit TrainerFixture(const std::vector<std::string>& sets)
      : cfg(synthetic_config("bpr", sets)), data{load_dataset(cfg), {}} {
    data.split = split_dataset(data.data, cfg);
  }
  // A fresh model, initialised from the config's seed.
  Recommender model() {
    torch::manual_seed(static_cast<uint64_t>(cfg.get_int("seed")));
    return make_model("bpr", ModelContext{data.data.n_users(), data.data.n_items(), &cfg});
  }
  std::unique_ptr<Trainer> trainer(Recommender& m, const std::string& dir) {
    m = model();
    return std::make_unique<Trainer>(m, data.split, TrainOptions::from_config(cfg), EvalOptions::from_config(cfg),
                                     torch::kCPU, dir, log);
  }
};

}  // namespace rzoo::test
