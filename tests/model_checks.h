// Round trips every model test shares: a checkpoint loaded into a freshly built model, and a
// TorchScript export loaded back by torch::jit::load. Used by the registry-wide contract test
// and by per-model tests that cover option combinations the contract's defaults do not.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <memory>
#include <string>

namespace torch::optim {
class Optimizer;
}

namespace rzoo {
class BatchSource;
class Config;
class RecommenderImpl;
struct Batch;
struct Dataset;
struct Split;
}  // namespace rzoo

namespace rzoo::test {

// One epoch of `batcher` (started with seed 1 and `epoch`): REQUIREs a finite scalar loss for
// every batch, calls `check` (if set) on each batch, and with `opt` takes an optimizer step per
// batch (without, the pass runs under NoGradGuard). Returns the mean loss per row; `rows` gets
// the number of rows seen.
double epoch_loss(rzoo::RecommenderImpl& model, rzoo::BatchSource& batcher, torch::optim::Optimizer* opt, uint64_t epoch,
                  const std::function<void(const rzoo::Batch&)>& check = {}, int64_t* rows = nullptr);

// Saves `model` to dir/m.pt, loads it into make_fresh() and checks score_all(users) is equal.
void check_checkpoint_roundtrip(rzoo::RecommenderImpl& model, const std::function<std::shared_ptr<rzoo::RecommenderImpl>()>& make_fresh,
                                const at::Tensor& users, const std::string& dir);

// Exports `model` to dir/model.pt, loads it with torch::jit::load and checks that `score` on 64
// random (user, item) pairs and `_score_all(users)` equal the in-memory model's to 1e-5.
// Returns the loaded module for further checks.
torch::jit::Module check_export_roundtrip(rzoo::RecommenderImpl& model, const rzoo::Config& cfg, const rzoo::Dataset& data,
                                          const rzoo::Split& split, const at::Tensor& users, const std::string& dir);

}  // namespace rzoo::test
