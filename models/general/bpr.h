// BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.
// Rendle, Freudenthaler, Gantner & Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
// Implicit Feedback", UAI 2009.
//
// score(u, i) = <p_u, q_i>; loss = -mean log sigmoid(score(u, i+) - score(u, i-)) over
// (user, positive, sampled negative) triples. L2 regularisation comes from the optimizer's
// weight_decay (train.weight_decay).
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/embedding.h>

#include "models/recommender.h"

namespace rzoo {

struct BPROptions {
  static BPROptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(int64_t, embedding_size) = 64;  // factors per user and item
  TORCH_ARG(double, init_std) = 0.05;       // std of the normal initialisation
};

class BPRImpl : public RecommenderImpl {
 public:
  explicit BPRImpl(const ModelContext& ctx);
  BPRImpl(const ModelContext& ctx, BPROptions options);

  InputType input_type() const override { return InputType::Pairwise; }
  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  ScriptExport script_export() const override;

  BPROptions options;
  torch::nn::Embedding user_emb{nullptr};  // [U, D]
  torch::nn::Embedding item_emb{nullptr};  // [I, D]
};
TORCH_MODULE(BPR);

}  // namespace rzoo
