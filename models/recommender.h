// The contract every rzoo model follows (after RecBole's: loss / score / score-all, and an input
// type that tells the trainer which batches to build).
//
//   closed-form models (InputType::None) implement fit(train) once;
//   gradient models implement loss(batch) for the batches of their input type;
//   every model implements score(users, items) -> [B] and score_all(users) -> [B, n_items].
//
// Models are torch::nn::Modules: parameters and buffers hold all fitted state, so save/load of
// the module is a checkpoint and export (a later issue) sees everything.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "datasets/batch.h"

namespace rzoo {

class Config;
struct Csr;
struct Dataset;
struct Split;

// What a model contributes to its TorchScript export (trainers/export.h): its fitted tensors,
// which become attributes `self.<name>` of the exported module, and TorchScript source for
//   def _score(self, users: Tensor, items: Tensor) -> Tensor     # [B] from index tensors [B]
//   def _score_all(self, users: Tensor) -> Tensor               # [B] -> [B, n_items]
// computing exactly what score() and score_all() compute. The exporter wraps them with input
// checks, id maps, seen-item masking and recommend().
//
// Models that rank from a history of items (the sequential family) also set history_len L > 0
// and define
//   def _score_seq(self, seq: Tensor) -> Tensor                 # [B, L] -> [B, n_items]
// over left-padded windows (padding index n_items), computing what score_history() computes;
// the exporter then adds recommend_history(items, k) for histories outside the training data.
//
// Models that fold in a new user's history (folds_in(); fold_in = true) define instead
//   def _score_fold_in(self, items: Tensor) -> Tensor           # [n] distinct items -> [n_items]
// computing what score_fold_in() computes; the exporter adds recommend_history() on top of it.
//
// Models that explain (explain_kind() not empty) also define
//   def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]
// computing what explain() computes; the exporter adds explain(user, item, n) and
// explain_history(items, item, n) on top of it. explain_features names the features of kind
// "features".
struct ScriptExport {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::string code;
  int64_t history_len = 0;
  bool fold_in = false;
  std::string explain_kind;
  std::vector<std::string> explain_features;
};

// Which of a user's interactions a model that reads the user's history when it scores (the
// sequential family) may condition on. The evaluator sets it around each evaluation so that no
// target leaks into the input: the validation targets are ranked from the training history, the
// test targets from training + validation (in time order), never the test items themselves.
// Outside an evaluation a model is in scope All: every known interaction of the data, the history
// its TorchScript export serves from.
enum class HistoryScope {
  Train,       // split.train_rows
  TrainValid,  // split.train_rows + valid_rows, merged in time order
  All,         // train + valid + test rows in time order (the default)
};
const char* to_string(HistoryScope s);

// A parameter's grad for a fused_loss_backward to add into, zero-filled when the optimizer left
// none (LibTorch 2's zero_grad sets grads to undefined).
at::Tensor& dense_grad(at::Tensor& w);

// Sizes and configuration a model is built from.
struct ModelContext {
  int64_t n_users = 0;
  int64_t n_items = 0;
  const Config* config = nullptr;  // the resolved run config; models read `model.*`
  // The data and split the model is trained on, for models that need more than the binary
  // training matrix given to fit(): ratings (data->rating at split->train_rows), item side
  // features (data->item_info). Null in some unit tests: such models then refuse with a message.
  const Dataset* data = nullptr;
  const Split* split = nullptr;
};

// The run an update starts from (train.init_from: rzoo update's parent), for fit_update().
struct ParentFit {
  int64_t n_users = 0, n_items = 0;                  // the parent's: this run's first ones
  const Csr* train = nullptr;                        // its training pairs, in this run's shape
  const std::vector<int64_t>* train_rows = nullptr;  // their interaction rows (indices into the Dataset)
  // Its fitted parameters and buffers by name (CPU), as best.pt holds them; undefined when absent.
  std::function<at::Tensor(const std::string&)> tensor;
};

// What fit_update() did: `updated` false = nothing changed, refit in full; `note` says why, or
// how the update went (for the log).
struct UpdateResult {
  bool updated = false;
  std::string note;
};

class RecommenderImpl : public torch::nn::Module {
 public:
  RecommenderImpl(std::string name, const ModelContext& ctx);

  virtual InputType input_type() const = 0;
  // Closed-form training on the binary user x item training matrix.
  virtual void fit(const Csr& train);
  // Closed-form models: the fit on `train` computed from the parent run's fit and the pairs that
  // changed since, where that gives the same model as fit(train) (up to float rounding, which the
  // model checks) at less cost; train holds every pair of parent.train. Returns updated = false,
  // leaving the model as it was, where it cannot (the trainer then calls fit(train)).
  virtual UpdateResult fit_update(const ParentFit& parent, const Csr& train);
  // Called once by the trainer before the first epoch of a fresh (not resumed) gradient run,
  // on the training device: e.g. initialisation from pre-trained runs (NeuMF).
  virtual void before_training() {}
  // Mean loss of one batch (a scalar with a graph to the parameters).
  virtual at::Tensor loss(const Batch& batch);
  // users [B], items [B] (int64) -> scores [B] (float). Higher = more relevant.
  virtual at::Tensor score(const at::Tensor& users, const at::Tensor& items) = 0;
  // users [B] -> scores [B, n_items] over every item. Returns a fresh tensor (never a view of
  // a parameter or buffer): the evaluator masks it in place.
  virtual at::Tensor score_all(const at::Tensor& users) = 0;
  // Scores of labelled rows (eval.protocol labeled) with their context tokens context [B, C]
  // (long; undefined when the data declares no context field). Models without context fields
  // ignore it: the default is score(users, items).
  virtual at::Tensor score_labeled(const at::Tensor& users, const at::Tensor& items, const at::Tensor& context) {
    (void)context;
    return score(users, items);
  }
  // True when score() on (user, item) pairs costs less than those pairs' share of score_all
  // (a network evaluated per pair: NCF-MLP, NeuMF). Sampled evaluation protocols (100 candidates
  // out of thousands of items) then score the candidate pairs instead of whole rows.
  virtual bool pair_scoring_cheaper() const { return false; }
  // True when the model scores an item from its side features alone, so an item without training
  // interactions gets an informative score (content). The hybrid's cold-start blend relies on it.
  virtual bool scores_cold_items() const { return false; }
  // Plain SGD with one sample per step (train.optimizer sgd, train.batch_size 1, no momentum or
  // weight decay, on the CPU), which through autograd would cost a graph per sample. A model that
  // can apply those steps natively returns true from has_per_sample_sgd(); the trainer then hands
  // it the samples in chunks, and per_sample_sgd() applies the steps of the batch's rows in
  // order, exactly as batch_size-1 steps of loss() + SGD would (up to float rounding), returning
  // the sum of the rows' losses (each computed before its own step).
  virtual bool has_per_sample_sgd() const { return false; }
  virtual double per_sample_sgd(const Batch& batch, double lr);
  // loss(batch) and its backward in one native pass, for models whose loss costs a few flops per
  // row, where autograd's per-operation overhead would dominate a step: returns the loss (a
  // scalar tensor) after adding d loss / d parameter to each parameter's grad (as
  // loss(batch).backward() would, up to float rounding), or an undefined tensor where it cannot
  // (another device or dtype, sparse gradients): the trainer then takes the autograd path.
  virtual at::Tensor fused_loss_backward(const Batch&) { return {}; }
  // Selects the history score() and score_all() read (see HistoryScope); the evaluator calls it
  // before scoring the valid or test targets and restores All after. Models whose scores do not
  // depend on a user's later interactions (everything fitted on the training part only) ignore it.
  virtual void set_history_scope(HistoryScope) {}
  // Models that rank from a sequence of items (the sequential family) return its length L > 0 and
  // score any history, known user or not: seq [B, L] item indices, the most recent last,
  // left-padded with n_items -> [B, n_items]. Serving (export's recommend_history, rzoo recommend
  // --history) uses it for new users and sessions. The default (0 / refusal) is every model that
  // ranks from a user index only.
  virtual int64_t history_len() const { return 0; }
  virtual at::Tensor score_history(const at::Tensor& seq);
  // Fold-in: the scores a user would get whose training interactions were `items` ([n] distinct
  // item indices, order ignored) -> [n_items], for a user who is not in the training data (a new
  // user; with a known user's own training items it gives, for the closed-form models, that
  // user's trained scores). Each model says how in its header. Serving uses it like
  // score_history (export's recommend_history, rzoo recommend --history). The default refuses
  // naming the model.
  virtual bool folds_in() const { return false; }
  virtual at::Tensor score_fold_in(const at::Tensor& items);
  // Warm start (train.init_from, rzoo update): users from `first` on are new to the model their
  // rows came from. A model that folds in by a user vector sets each new user's vector to its
  // fold-in from the user's training items in `train` (the prior fitted to the users before
  // `first`) and returns how many it set; the default keeps the rows' own initialisation (0).
  virtual int64_t init_user_rows(const Csr& train, int64_t first) { (void)train, (void)first; return 0; }
  // Warm start of a parameter whose rows are not one table of users or items grown at its end
  // (the feature models' shared table: the id, history and feature fields' rows one after
  // another): the runs (checkpoint row, this model's row, count) that carry the rows of the
  // parameter `name` of a checkpoint trained on old_users users and old_items items. Empty: the
  // default rule (warm_start in trainers/trainer.h).
  virtual std::vector<std::array<int64_t, 3>> warm_start_rows(const std::string& name, int64_t old_users,
                                                              int64_t old_items) const {
    (void)name, (void)old_users, (void)old_items;
    return {};
  }
  // Explanations (rzoo recommend --explain; the export's explain and explain_history): the
  // evidence behind `item`'s score for a user whose items are `items` ([n] distinct item indices,
  // the history a fold-in would be given; for the sequential models (history_len() > 0) the
  // history in time order, the most recent last, of which the last history_len() count):
  // evidence indices [m] (int64) and their weights [m] (float64), in any order; larger weights
  // speak more for the item. explain_kind() says what the indices index: "items" (history
  // items; a sequential model may list an item once per position it holds), "users" (UserKNN's
  // neighbours), "features" (explain_features(): e.g. "genres:Drama"), or "" when the model does
  // not explain (explain() then refuses by name). Each model says in its header what the weights
  // are; for ItemKNN, UserKNN, EASE, iALS and content they add up to the history's fold-in score
  // of the item.
  virtual std::string explain_kind() const { return ""; }
  virtual std::vector<std::string> explain_features() const { return {}; }
  virtual std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item);
  // Facts about the built model for the run's log, one line each (the feature models: their
  // field layout, which the run also keeps as fields.txt). Default: none.
  virtual std::vector<std::string> describe() const { return {}; }
  // TorchScript export (see ScriptExport). Every registered model implements it; the default
  // refuses with the model's name.
  virtual ScriptExport script_export() const;

  int64_t n_users() const { return n_users_; }
  int64_t n_items() const { return n_items_; }

 protected:
  int64_t n_users_, n_items_;
};
TORCH_MODULE(Recommender);

}  // namespace rzoo
