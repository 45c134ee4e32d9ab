// BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.
// Rendle, Freudenthaler, Gantner & Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
// Implicit Feedback", UAI 2009.
//
// score(u, i) = <p_u, q_i>; loss = mean over (user, positive, sampled negative) triples of
//   -log sigmoid(score(u, i+) - score(u, i-)) + l2 (|p_u|^2 + |q_i+|^2 + |q_i-|^2)
// (BPR-Opt's regularisation on the rows a triple touches; model.l2, default 0). Regularisation
// can also come from the optimizer's weight_decay (train.weight_decay), which decays every row.
//
// With train.optimizer sgd and train.batch_size 1 the trainer takes the native per-sample path
// (per_sample_sgd): tight C++ over the triples, as implicit and LightFM train BPR. With one
// thread it equals batch_size-1 autograd steps; with more, and factors beyond ~8 MB, the threads
// step disjoint ranges of each chunk of triples at once without locks (Hogwild, Recht et al.,
// NIPS 2011): rows two threads touch at once may lose an update, which SGD tolerates, and the
// result then depends on the scheduling. Smaller models run on one thread (exact), as two
// threads writing the same cache lines were slower.
//
// Fold-in (folds_in): the MAP user vector under BPR's expected loss for the history with the item
// factors fixed and a Gaussian prior fitted to the trained user vectors (fold_in_linear.h).
//
// model.fields: true adds the user and item fields of dataset.fields to the id embeddings
// (models/side_fields.h): p_u = known(u) P[u] + fields(u), q_i = known(i) Q[i] + fields(i), a cold
// item scored from its features. Training then goes through autograd (no per-sample path); the
// export holds the resulting p and q.
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/embedding.h>

#include "models/general/fold_in_linear.h"
#include "models/recommender.h"
#include "models/side_fields.h"

namespace rzoo {

struct BPROptions {
  static BPROptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(int64_t, embedding_size) = 64;  // factors per user and item
  TORCH_ARG(double, init_std) = 0.05;       // std of the normal initialisation
  TORCH_ARG(double, l2) = 0.0;              // lambda on the rows each triple touches (>= 0)
  TORCH_ARG(bool, fields) = false;          // add dataset.fields' user/item field embeddings
};

class BPRImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  explicit BPRImpl(const ModelContext& ctx);
  BPRImpl(const ModelContext& ctx, BPROptions options);

  InputType input_type() const override { return InputType::Pairwise; }
  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  ScriptExport script_export() const override;
  bool has_per_sample_sgd() const override { return !side; }
  double per_sample_sgd(const Batch& batch, double lr) override;
  // The loss and its gradient natively (CPU float, dense gradients, no side fields): a BPR step
  // is a few flops per triple.
  at::Tensor fused_loss_backward(const Batch& batch) override;
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  int64_t init_user_rows(const Csr& train, int64_t first) override;
  // Explanation: the history items closest to the item, by cosine of their item factors.
  std::string explain_kind() const override { return "items"; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override {
    return explain_by_item_cosine(item_vectors().detach(), items, item);
  }
  bool scores_cold_items() const override { return side && side->layout.item.n_fields() > 0; }
  std::vector<std::string> describe() const override { return side ? side->describe() : std::vector<std::string>{}; }
  // p_u and q_i as scored: the id embeddings, plus the fields with model.fields. [B, D] / all rows.
  at::Tensor user_vectors(const at::Tensor& users);
  at::Tensor item_vectors(const at::Tensor& items);
  at::Tensor user_vectors() const;
  at::Tensor item_vectors() const;

  BPROptions options;
  torch::nn::Embedding user_emb{nullptr};  // [U, D]
  torch::nn::Embedding item_emb{nullptr};  // [I, D]
  SideFields side{nullptr};                // model.fields: the field embeddings

 private:
  double neg_per_pos_ = 1.0;  // the run's train.neg_per_pos: fold-in's expected loss
};
TORCH_MODULE(BPR);

}  // namespace rzoo
