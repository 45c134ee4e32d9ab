// Round trips every model test shares: a checkpoint loaded into a freshly built model, and a
// TorchScript export loaded back by torch::jit::load. Used by the registry-wide contract test
// and by per-model tests that cover option combinations the contract's defaults do not.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "models/recommender.h"

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

// A hand-made dataset for per-model maths tests: users "u0".., items "i0"..; every interaction
// (with its rating, when `ratings` is given) is a training one; valid and test are empty.
struct TinyExample {
  rzoo::Dataset d;
  rzoo::Split s;
  rzoo::ModelContext ctx(const rzoo::Config* cfg = nullptr) const {
    return rzoo::ModelContext{d.n_users(), d.n_items(), cfg, &d, &s};
  }
};
TinyExample make_tiny_example(const std::vector<int64_t>& users, const std::vector<int64_t>& items, int64_t n_users,
                              int64_t n_items, std::vector<float> ratings = {});

// The next-item chain for the sequence-aware models: 60 users x 30 items, user u's items u, u+1,
// ..., u+11 (mod 30) in time (file) order, so the next item always follows from the last one.
TinyExample next_item_chain();

// Trains `name` (built from `cfg`, seed 1, on next_item_chain() split by `cfg`'s dataset.split)
// with Adam at `lr` for `epochs` epochs of the sequence batcher (max_len 8; batch 8 rows without
// prefix augmentation, 64 with it, since augmentation multiplies the rows) and returns the mean
// loss per row of one epoch before and after, each under torch seed 2 (the cloze masks and drawn
// negatives the same in both).
struct LossChange {
  double before, after;
};
LossChange sequence_loss_change(const std::string& name, const rzoo::Config& cfg, bool prefix, double lr, uint64_t epochs);

// The sequence models' ce and bce losses by hand, in double, from `score(i)`, the score of item i
// at one position: -log softmax of the target over the n_items real items (loss "ce", never the
// padding row) or -log sigmoid(target) - log(1 - sigmoid(neg)) (loss "bce").
double hand_item_term(const std::string& loss, const std::function<double(int64_t)>& score, int64_t n_items, int64_t target,
                      int64_t neg);
// Their mean over the positions of `items` [R, L] whose target is not `pad`, each scored by
// score(r, j, i) against neg_items[r][j]; `positions` gets how many there were.
double hand_sequence_loss(const std::string& loss, const std::function<double(int64_t, int64_t, int64_t)>& score,
                          const at::Tensor& items, const at::Tensor& neg_items, int64_t pad, int64_t n_items,
                          int64_t* positions = nullptr);

// 2 users x 4 items with ratings u0: i0 5; u1: i1 4, i2 2, and one genre feature: item 0 {a},
// 1 {a, b}, 2 {b, c}, 3 {c} (item 3: nobody's). For the content and hybrid maths tests.
rzoo::Dataset tiny_genre_dataset();

// n_users x n_items in two taste groups (user u likes items of its parity with probability 0.35,
// the others 0.05), seeded: structure for fold-in and explanation tests.
rzoo::Csr grouped_csr(int64_t n_users, int64_t n_items, uint32_t seed);

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

// Serving a history (models with history_len() > 0): the user `user`'s window of all known
// interactions (the export's `hist` buffer) as raw item ids, the most recent last.
// recommend_history(items, k) of the loaded module must equal the in-memory model's
// score_history on that window with the window's items masked, top k (scores at 1e-5), and an
// unknown id must be an error naming it (skipped with skip_unknown). Returns the case for
// check_python_client.
struct HistoryCase {
  std::vector<std::string> items, rec_items;
  std::vector<double> rec_scores;
  // Models that explain: the evidence for rec_items[0] after `items` (names, weights), top 3.
  std::vector<std::string> evidence;
  std::vector<double> evidence_weights;
};
// Sequential models: the user's window; models that fold in (folds_in()): the user's items of
// `data`, as a new user's history. recommend_history of the export must give the C++ model's
// ranking (score_history / score_fold_in), unknown ids must be named or skipped. Models that
// explain: the export's explain_history and explain (the user's known items are the same
// history) must give the C++ model's evidence for the first recommended item, top 3.
HistoryCase check_history_serving(rzoo::RecommenderImpl& model, torch::jit::Module& jm, const rzoo::Dataset& data,
                                  int64_t user, int64_t k);

// The real Python client: Debian's /usr/bin/python3 (torch 1.13; RZOO_TEST_PYTHON picks another)
// loads dir/model.pt and must reproduce the loaded module's `score` on 64 random pairs,
// `recommend(users, k)` and `recommend_raw` for the dataset's fourth user
// (scripts/check_export.py), and with `history` recommend_history on its items. WARNs and returns
// when that python has no torch.
void check_python_client(torch::jit::Module& jm, const rzoo::Dataset& data, const at::Tensor& users, int64_t k,
                         const std::string& dir, const HistoryCase* history = nullptr);

}  // namespace rzoo::test
