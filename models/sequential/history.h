// Shared parts of the sequential family: each user's time-ordered history as the model sees it
// at scoring time (per HistoryScope), and the next-item losses (`model.loss`).
//
// Item index n_items is the padding index throughout (datasets/sampler.h): a history window is
// [L] item indices, the most recent last, left-padded with n_items.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/recommender.h"
#include "models/side_fields.h"

namespace rzoo {

// Every user's most recent `max_len` items in the three history scopes, as [n_users, L] int64
// tables on the CPU. Built from ctx.data and ctx.split: split.train_rows / valid_rows / test_rows
// are interaction indices ordered by user, then time; the scopes merge them by timestamp (stable:
// ties keep train before valid before test; without timestamps, file order within each part and
// the parts in that order, which is time order for the leave_last and temporal splits).
// Refuses a split whose order is not time (random, kfold), naming dataset.split.method, and a
// context without data or split.
class UserHistories {
 public:
  UserHistories() = default;
  UserHistories(const ModelContext& ctx, int64_t max_len, const std::string& model);

  // [n_users, L] table of a scope.
  const at::Tensor& table(HistoryScope scope) const;
  // users [B] (any device) -> [B, L] windows of `scope`, on `device`.
  at::Tensor windows(const at::Tensor& users, HistoryScope scope, const c10::Device& device) const;
  int64_t max_len() const { return max_len_; }

 private:
  int64_t max_len_ = 0;
  at::Tensor train_, train_valid_, all_;
};

// The common part of the models that score from each user's most recent items (GRU4Rec, Caser,
// SASRec, BERT4Rec, Markov): the history windows per scope, the scope the evaluator selects, and
// explanations over a history's items. The model's constructor sets hist_ from its checked
// options (the window length is one of them), before it counts or builds anything from the data.
class WindowRecommenderImpl : public RecommenderImpl {
 public:
  void set_history_scope(HistoryScope scope) override { scope_ = scope; }
  HistoryScope history_scope() const { return scope_; }
  std::string explain_kind() const override { return "items"; }
  // The [B, W] windows score() and score_all() read for `users` in the current scope, on the
  // device of the model's parameters (the CPU for a model without any, e.g. Markov).
  at::Tensor history(const at::Tensor& users) const;

 protected:
  using RecommenderImpl::RecommenderImpl;
  UserHistories hist_;
  HistoryScope scope_ = HistoryScope::All;
};

// The sequence models proper: trained on the users' training sequences (Split::train_seq).
class SequenceRecommenderImpl : public WindowRecommenderImpl {
 public:
  static constexpr bool kSequenceInput = true;  // models/registry.h: model_reads_sequences
  InputType input_type() const override { return InputType::Sequence; }
  // With model.fields: an item without training interactions is ranked by its fields, and the
  // run's log and fields.txt list them.
  bool scores_cold_items() const override { return side && side->layout.item.n_fields() > 0; }
  std::vector<std::string> describe() const override { return side ? side->describe() : std::vector<std::string>{}; }

  // model.fields (item_side_fields in models/side_fields.h): the item field embeddings added to
  // the item table, registered by the model; null without fields.
  SideFields side{nullptr};

 protected:
  using WindowRecommenderImpl::WindowRecommenderImpl;
};

// True when a split made by `method` (Split::method, e.g. "leave last 1 (valid 1) by time")
// keeps each user's parts in time order: leave_last, temporal, and given splits whose validation
// part came with the data or was cut from the end (valid: last).
bool split_is_time_ordered(const std::string& method);

// The last `L` columns of a batch's [B, Lb] sequence tensor (a batch window wider than the
// model's; batches narrower than L are used as they are).
at::Tensor last_columns(const at::Tensor& x, int64_t L);
// explain(): the last (at most) L items of a history [n] in time order, as int64 on `device`;
// an empty history is an error naming the model.
at::Tensor explain_window(const at::Tensor& items, int64_t L, const c10::Device& device, const char* model);

// Occlusion evidence, for the sequence models without attention weights to show (GRU4Rec,
// Caser): the weight of window position p is score(item | window) - score(item | the window
// without position p), both from m.score_history (Zeiler & Fergus's occlusion, ECCV 2014, over
// the items of a history). One batch of n + 1 windows. Returns (the window [n], weights [n]
// float64), on the CPU.
std::pair<at::Tensor, at::Tensor> explain_by_occlusion(RecommenderImpl& m, const at::Tensor& items, int64_t item,
                                                       const c10::Device& device);
// The same in the export's TorchScript, over its _score_seq; window length L and padding index
// pad (n_items) are written in as constants (a hybrid's export prefixes every self.* of a part).
std::string explain_occlusion_script(int64_t L, int64_t pad);

// Inference over windows of mixed lengths, in groups of similar length: the rows of a
// left-padded seq [B, W] (int64) whose items span n columns (from the first one to the end;
// 0 < n) go to the group of width min(W, the power of two >= n), each group cut to its last
// `width` columns, and per_row(group [b, width]) -> [b, D] is called once per group; rows without
// items stay at width W. Returns [B, D] in seq's row order (per_row's result itself where every
// row has width W).
// Why: a batch of users is scored by one encoder call over its widest window, so on data with
// short histories (S3-Rec's Beauty: 8.9 items on average, max_len 50) most of the GRU steps and
// attention positions of evaluation ran over padding. Exact for encoders whose output at a
// window's last real item does not depend on the amount of left padding (GRU4Rec, SASRec,
// BERT4Rec: they run on right-padded rows with positions counted from the first real item).
at::Tensor by_history_length(const at::Tensor& seq, int64_t pad,
                             const std::function<at::Tensor(const at::Tensor&)>& per_row);

// Left padding <-> right padding. The batches and histories are left-padded (the most recent
// item in the last column); the encoders run on right-padded rows, where a causal model's real
// positions never see a padding position, so no query row is ever fully masked and the outputs
// do not depend on the amount of padding.
//   seq [B, L] left-padded with `pad` -> [B, L] index with seq.gather(1, index) right-padded;
//   shift(seq, pad) = the number of padding columns per row [B].
at::Tensor padding_shift(const at::Tensor& seq, int64_t pad);                 // [B]
at::Tensor left_to_right(const at::Tensor& seq, const at::Tensor& shift);       // [B, L] -> [B, L]
at::Tensor right_to_left(const at::Tensor& out, const at::Tensor& shift);       // [B, L, D] -> [B, L, D]

// Next-item loss of a sequence batch from the encoder's output.
//   h [B, L, D]: the representation after each position (position j sees items <= j);
//   item_weight [n_items + 1, D]: the item table (padding row last), shared with the input;
//   batch.items [B] (augment prefix: the next item after the window, read from h[:, -1]) or
//   [B, L] (augment none: the next item after every position, n_items where none).
// The targets' rows of h and the targets then go to item_loss().
at::Tensor next_item_loss(const at::Tensor& h, const Batch& batch, const at::Tensor& item_weight, int64_t n_items,
                          const std::string& kind, int64_t negatives);

// The loss of N targets from their representations (`model.loss`, mean over targets):
//   hs [N, D], tgt [N] item indices, item_weight [>= n_items, D] (rows past n_items unused),
//   bias [n_items] or undefined, neg [N] one sampled negative per target or undefined;
// kind "ce": full softmax cross-entropy over all n_items items;
// kind "sampled": softmax over the target and `negatives` items drawn uniformly for the whole
//   batch (shared, as in Jean et al., ACL 2015; a negative equal to a row's target is masked);
// kind "bce": -log sigmoid(s_pos) - log(1 - sigmoid(s_neg)) with one negative per target (the
//   batch's `neg` when given, else drawn uniformly): SASRec's loss.
at::Tensor item_loss(const at::Tensor& hs, const at::Tensor& tgt, const at::Tensor& neg, const at::Tensor& item_weight,
                     const at::Tensor& bias, int64_t n_items, const std::string& kind, int64_t negatives);

// The losses `model.loss` accepts.
const std::vector<std::string>& sequence_losses();
// The options check shared by the sequential models (options built in code, no config to point
// at): `loss` one of sequence_losses(), `neg_samples` >= 1; errors name the model and the key.
void check_sequence_loss(const std::string& model, const std::string& loss, int64_t neg_samples);

// Adds to an export one tensor per name: the k-th tensor of every layer (per_layer[l][k]), copied
// to the CPU and stacked into [layers, ...], so that one TorchScript loop runs the layers
// (the transformer models' blocks).
void add_stacked_layers(ScriptExport& e, const std::vector<std::string>& names,
                        const std::vector<std::vector<at::Tensor>>& per_layer);

}  // namespace rzoo
