// Feature-based (context-aware) models over user and item fields (datasets/fields.h):
//   fm        Rendle, "Factorization Machines", ICDM 2010 (the O(kn) form of the pairwise term);
//             with model.pairwise false it is logistic regression on the fields (LR).
//   widedeep  Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016.
//   deepfm    Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
//             Prediction", IJCAI 2017.
//   dcnv2     Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
//             Web-scale Learning to Rank Systems", WWW 2021 (full-rank cross layers, stacked or
//             parallel with the deep tower).
//
// Every field (user_id, item_id and each `dataset.fields` entry) has a D-vector and a scalar
// weight per row of one shared table (`table` [R, D], `linear` [R]); an entity's field vector is
// its slots' weighted sum (token: one row; token sequence: the mean of its tokens' rows; float:
// the value's row times the standardised value). For a (user, item) pair with field vectors
// v_1..v_F (the user's fields, then the item's) and first-order terms w:
//   fm       b + sum_f w_f + 1/2 (|sum_f v_f|^2 - sum_f |v_f|^2)         (pairwise false: no 2nd)
//   widedeep b + sum_f w_f + MLP([v_1; ...; v_F])
//   deepfm   fm + MLP([v_1; ...; v_F])        (the FM and the deep part share the table)
//   dcnv2    x_0 = [v_1; ...; v_F], x_{l+1} = x_0 * (W_l x_l + c_l) + x_l (l < cross_layers);
//            stacked: head(MLP(x_L)); parallel: head([x_L; MLP(x_0)])
// Context fields (context:hour, context:weekday, context:gap; labelled rows only) are further
// fields of the pair, from the row's own context tokens in training and in score_labeled; where
// the context is unknown (score, score_all, the export) they are zero vectors.
// Training (model.loss): pointwise binary cross-entropy with logits on (user, item, label) rows,
// the data's own labels (dataset.label_threshold) or sampled negatives (bce); BPR on a positive and
// a sampled negative (bpr); or a softmax over items for each positive pair's user, all items (ce)
// or the positive and neg_samples uniform items shared by the batch (sampled; a drawn item that is
// the row's own is masked), with the context unknown. Scores are logits. score_all ranks all
// items for a user: the item fields are gathered once per call, the user fields once per user;
// fm uses the factorised form ([B, D] x [D, I]), the networks are run over the (user, item) grid
// in chunks of users within chunk_bytes (in training too, where the grid's activations are kept
// for the backward: ce with a network costs B x I network evaluations per batch; use sampled).
// Wide & Deep's and DeepFM's first hidden layer is taken from its user and item halves, once per
// user and once per item, where no dropout applies (grid_logits).
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <string>
#include <vector>

#include "datasets/fields.h"
#include "models/recommender.h"

namespace rzoo {

// The options of the four models; each model's YAML holds the keys it reads.
struct FeatureModelOptions {
  static FeatureModelOptions from_config(const Config* cfg);  // reads the model.* keys present
  TORCH_ARG(int64_t, embedding_size) = 16;  // D of every field
  TORCH_ARG(double, init_std) = 0.01;       // std of the table's normal initialisation
  TORCH_ARG(bool, use_ids) = true;          // user_id and item_id are fields
  TORCH_ARG(bool, pairwise) = true;         // fm: the pairwise term (false = LR)
  TORCH_ARG(std::vector<int64_t>, mlp) = std::vector<int64_t>{64, 64};  // hidden widths of the deep tower
  TORCH_ARG(double, dropout) = 0.0;         // dropout on each hidden layer's input (training only)
  TORCH_ARG(int64_t, cross_layers) = 2;     // dcnv2
  TORCH_ARG(std::string, structure) = "stacked";  // dcnv2: "stacked" | "parallel"
  TORCH_ARG(double, l2) = 0.0;              // loss += l2 * mean over the batch of |rows used|^2
  TORCH_ARG(double, id_dropout) = 0.0;      // share of training pairs whose item id is dropped (weight 0)
  TORCH_ARG(std::string, loss) = "bce";     // "bce" (pointwise) | "bpr" (pairwise: positive above a sampled negative)
                                            // | "ce" (softmax over all items) | "sampled" (over neg_samples items)
  TORCH_ARG(int64_t, neg_samples) = 256;    // loss sampled: uniform negatives per batch, shared by its rows
};

class FeatureModelImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  // bce: pointwise (the data's labelled rows, or positives and sampled negatives); bpr: pairwise
  // (a positive and a sampled negative of the same user; labels, if any, are not read); ce and
  // sampled read the positives of pairwise batches (their negatives are not read).
  InputType input_type() const override { return options.loss() == "bce" ? InputType::Pointwise : InputType::Pairwise; }
  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B] logits
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I] logits
  // Labelled rows with their context tokens [B, C] (dataset.fields context:*).
  at::Tensor score_labeled(const at::Tensor& users, const at::Tensor& items, const at::Tensor& context) override;
  bool pair_scoring_cheaper() const override { return has_deep(); }
  // An item's fields give it an informative score without training interactions (its id then
  // has weight 0).
  bool scores_cold_items() const override { return layout_.item.n_fields() > (options.use_ids() ? 1 : 0); }
  ScriptExport script_export() const override;
  // table and linear: each field's rows in turn; user_id grows by the new users, item_id and
  // user:history by the new items, the other fields keep their rows.
  std::vector<std::array<int64_t, 3>> warm_start_rows(const std::string& name, int64_t old_users,
                                                      int64_t old_items) const override;
  // "field: <name> <kind> ..." per field, user side then item side (the schema).
  std::vector<std::string> describe() const override;

  const FieldLayout& layout() const { return layout_; }
  // user:history in training: pair k's own item (items[k]) leaves user k's history slots (rows
  // rows_u [B, Su], weights w_u [B, Su]) and the others are rescaled to average the rest (FISM's
  // "exclude the target item"), so the model never learns from an item predicting itself. A user
  // whose history is that one item gets a zero history vector. Without user:history: w_u.
  at::Tensor history_without_target(const at::Tensor& rows_u, const at::Tensor& w_u, const at::Tensor& items) const;
  FeatureModelOptions options;
  at::Tensor table, linear, bias;                  // [R, D], [R], [1]
  at::Tensor u_index, u_weight, u_field;           // [U, Su] long, [U, Su], [Su] long (each slot's field)
  at::Tensor i_index, i_weight, i_field;           // [I, Si] long, [I, Si], [Si] long
  at::Tensor pair_field;                           // [Su + Si + C]: u_field, i_field + Fu, Fu + Fi + c
  at::Tensor ctx_first;                            // [C] long: each context field's first table row
  std::vector<torch::nn::Linear> mlp;              // deep tower: hidden layers (ReLU, dropout)
  torch::nn::Linear mlp_out{nullptr};              // its output layer (widedeep, deepfm; dcnv2: head)
  std::vector<torch::nn::Linear> cross;            // dcnv2's cross layers [F*D -> F*D]
  int64_t chunk_bytes = int64_t{64} << 20;         // score_all's grid temporaries per user chunk

 protected:
  FeatureModelImpl(std::string name, const ModelContext& ctx, FeatureModelOptions opts, bool fm, bool deep, bool dcn);
  bool has_deep() const { return !mlp.empty() || !cross.empty(); }
  // Slots -> fields: rows [B, S] of the table with weights [B, S], field [S] each slot's field
  // (numbered 0..F-1 in order) -> field vectors [B, F, D] and the first-order sum [B].
  std::pair<at::Tensor, at::Tensor> bag(const at::Tensor& rows, const at::Tensor& w, const at::Tensor& field,
                                        int64_t n_fields) const;
  // One side's fields for entities `idx`.
  std::pair<at::Tensor, at::Tensor> side(const at::Tensor& index, const at::Tensor& weight, const at::Tensor& field,
                                         int64_t n_fields, const at::Tensor& idx) const;
  // The fields of pairs (users[k], items[k]) with their context tokens [B, C] (undefined: unknown,
  // the context fields are zero): [B, Fu + Fi + C, D] (user fields, item fields, context), [B].
  // id_dropout > 0 drops that share of the pairs' item ids (training).
  // exclude_own: training pairs (history_without_target).
  std::pair<at::Tensor, at::Tensor> pair_fields(const at::Tensor& users, const at::Tensor& items,
                                                const at::Tensor& context = {}, double id_dropout = 0.0,
                                                bool exclude_own = false) const;
  // Logits of pairs from their fields x [P, F, D] and first-order sums lin [P] -> [P].
  at::Tensor logits(const at::Tensor& x, const at::Tensor& lin);
  // Logits of every (user, item) of a grid from the users' fields uf [B, Fu, D], ul [B] and the
  // items' itf [K, Fi, D], il [K] -> [B, K] (context unknown): fm in its factorised form, the
  // networks over the grid in chunks of users within chunk_bytes.
  at::Tensor grid_logits(const at::Tensor& uf, const at::Tensor& ul, const at::Tensor& itf, const at::Tensor& il);
  bool fm_, deep_, dcn_;
  FieldLayout layout_;
  int64_t hist_field_ = -1;  // the user side's index of user:history (u_field's value on its slots), -1 none
  int64_t hist_row0_ = -1;   // the table row of item 0 in user:history
};

class FMImpl : public FeatureModelImpl {
 public:
  explicit FMImpl(const ModelContext& ctx);
};
TORCH_MODULE(FM);

class WideDeepImpl : public FeatureModelImpl {
 public:
  explicit WideDeepImpl(const ModelContext& ctx);
};
TORCH_MODULE(WideDeep);

class DeepFMImpl : public FeatureModelImpl {
 public:
  explicit DeepFMImpl(const ModelContext& ctx);
};
TORCH_MODULE(DeepFM);

class DCNv2Impl : public FeatureModelImpl {
 public:
  explicit DCNv2Impl(const ModelContext& ctx);
};
TORCH_MODULE(DCNv2);

}  // namespace rzoo
