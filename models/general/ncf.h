// Neural Collaborative Filtering and its dot-product baseline.
// He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative Filtering", WWW 2017: GMF, MLP (here
// `ncfmlp`) and their fusion NeuMF, optionally initialised from pre-trained GMF and MLP runs.
// Rendle, Krichene, Zhang & Anderson, "Neural Collaborative Filtering vs. Matrix Factorization
// Revisited", RecSys 2020: the dot-product MF (`mf`) that matches or beats them.
//
// All four are pointwise: batches of (user, item, label 0/1), each training positive followed by
// train.neg_per_pos sampled negatives; loss = binary cross-entropy with logits, mean over the
// batch. score() and score_all() return the logit (pre-sigmoid: monotone, so the rankings are
// the papers').
//
// Submodule names (parameter names in checkpoints; NeuMF's pre-training copies by these names):
//   gmf_user_emb, gmf_item_emb    GMF part: embeddings [U, D], [I, D]            (gmf, neumf)
//   mlp_user_emb, mlp_item_emb    MLP part: embeddings [U, layers[0]/2], [I, ...] (ncfmlp, neumf)
//   mlp_0 ... mlp_{L-2}           MLP tower: Linear(layers[j], layers[j+1]) + ReLU (ncfmlp, neumf)
//   predict                       Linear(D + layers.back(), 1) on the concatenation [GMF; MLP]
//                                 (D = 0 for ncfmlp, no MLP width for gmf)
//   mf: user_emb, item_emb [U, D], [I, D]; user_bias [U], item_bias [I], global_bias [1].
//
// Fold-in (a new user's history, folds_in): the new user's embeddings are the MAP estimate under
// the expected pointwise loss with the item side and the network fixed, and a Gaussian prior
// fitted to the trained user vectors (fold_in_linear.h). gmf and mf are linear in the user's
// vector (Newton; mf fits the user bias with it); ncfmlp and neumf pass it through ReLU layers
// (generalised Gauss-Newton with the scores' Jacobian, from the prior mean: a local optimum of a
// non-convex objective, deterministic).
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "models/recommender.h"
#include "models/side_fields.h"

namespace rzoo {

struct GMFOptions {
  static GMFOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(int64_t, embedding_size) = 8;  // D: predictive factors (the original code's --num_factors)
  TORCH_ARG(double, init_std) = 0.01;      // std of the embeddings' normal initialisation
};

struct NCFMLPOptions {
  static NCFMLPOptions from_config(const Config* cfg);
  // layers[0]: width of the concatenated user and item embeddings (half each, so even);
  // layers[1..]: the hidden layers' widths (the original code's --layers). [n] alone: no hidden
  // layer, the predict layer reads the concatenation (the paper's "MLP-0").
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>{64, 32, 16, 8};
  TORCH_ARG(double, init_std) = 0.01;
};

struct NeuMFOptions {
  static NeuMFOptions from_config(const Config* cfg);
  TORCH_ARG(int64_t, embedding_size) = 8;  // D of the GMF part
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>{64, 32, 16, 8};  // MLP part
  TORCH_ARG(double, init_std) = 0.01;
  // Run folders of a trained `gmf` and `ncfmlp` (their best.pt): both set, or both "" (train
  // from scratch). Read by before_training().
  TORCH_ARG(std::string, pretrain_gmf) = "";
  TORCH_ARG(std::string, pretrain_mlp) = "";
  // Weight of the GMF part in the fused predict layer (pre-training only), in [0, 1].
  TORCH_ARG(double, alpha) = 0.5;
};

struct DotMFOptions {
  static DotMFOptions from_config(const Config* cfg);
  TORCH_ARG(int64_t, embedding_size) = 64;
  TORCH_ARG(double, init_std) = 0.1;  // std of the embeddings' normal initialisation; biases start at 0
  // lambda: loss += l2 * mean over the batch of (|p_u|^2 + |q_i|^2), the rows the batch uses.
  TORCH_ARG(double, l2) = 0.0025;
  // loss += bias_l2 * mean over the batch of (b_u^2 + b_i^2); Rendle et al. regularise the biases
  // like the embeddings (their lambda applies to both). The global bias is not regularised.
  TORCH_ARG(double, bias_l2) = 0.0;
  // Add dataset.fields' user and item field embeddings (and field biases) to the id embeddings
  // and biases (models/side_fields.h); training then goes through autograd.
  TORCH_ARG(bool, fields) = false;
};

// The shared NCF architecture: an optional GMF part, an optional MLP part, the predict layer on
// their concatenation. GMF, NCF-MLP and NeuMF differ only in which parts they have and in their
// options; NeuMF adds pre-training.
class NCFBaseImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  InputType input_type() const override { return InputType::Pointwise; }
  at::Tensor loss(const Batch& batch) override;
  // loss() and its backward natively, the first MLP layer split (ncf_fused.cpp).
  at::Tensor fused_loss_backward(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B] logits
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I] logits
  ScriptExport script_export() const override;
  // With hidden MLP layers, a (user, item) pair costs a pass through the tower: scoring only a
  // sampled protocol's candidates beats scoring every item.
  bool pair_scoring_cheaper() const override { return !mlp.empty(); }
  // Fold-in by Gauss-Newton (GMF overrides it with the linear solve).
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // New users start from their Gauss-Newton fold-in (GMF: its linear one), [gmf part; mlp part].
  int64_t init_user_rows(const Csr& train, int64_t first) override;
  // The scores of every item for a user vector u = [p_gmf; p_mlp] (float64) and their Jacobian
  // d s / d u: s [I], J [I, D_u].
  std::pair<at::Tensor, at::Tensor> fold_in_scores(const at::Tensor& u, bool jacobian = true) const {
    return fold_in_scores(u, jacobian, fold_in_weights());
  }
  // What fold_in_scores reads, in float64 on the CPU, made once per fold-in: the predict layer,
  // the item embeddings, the MLP layers, and the item half of the first MLP layer (W_i q_i + b_1,
  // [I, h_1]), which does not depend on u.
  struct FoldInWeights {
    at::Tensor head, bias, gmf_items, mlp_items, item_part;
    std::vector<at::Tensor> w, b;
  };
  FoldInWeights fold_in_weights() const;
  std::pair<at::Tensor, at::Tensor> fold_in_scores(const at::Tensor& u, bool jacobian, const FoldInWeights& fw) const;

  torch::nn::Embedding gmf_user_emb{nullptr}, gmf_item_emb{nullptr};  // [U, D], [I, D]; null without GMF part
  torch::nn::Embedding mlp_user_emb{nullptr}, mlp_item_emb{nullptr};  // [U, layers[0]/2], [I, layers[0]/2]
  std::vector<torch::nn::Linear> mlp;  // mlp[j]: layers[j] -> layers[j+1], each followed by ReLU
  torch::nn::Linear predict{nullptr};  // [D + layers.back()] -> 1 (bias: yes)
  // Memory budget of one user chunk of score_all's [b, I, h] MLP temporaries (at least one user
  // per chunk). Not a config key: tests shrink it to exercise the chunking.
  int64_t chunk_bytes = int64_t{16} << 20;

 protected:
  // gmf_size 0: no GMF part; layers empty: no MLP part. Sizes are validated by the subclasses.
  NCFBaseImpl(std::string name, const ModelContext& ctx, int64_t gmf_size, std::vector<int64_t> layers, double init_std);

  int64_t gmf_size_;
  std::vector<int64_t> layers_;
  double neg_per_pos_ = 1.0;  // the run's train.neg_per_pos: fold-in's expected loss
  // fused_loss_backward's scratch: a user's / item's slot among a batch's distinct ones, -1 between calls.
  std::vector<int32_t> user_slot_, item_slot_;

 private:
  at::Tensor mlp_score_all(const at::Tensor& users, const at::Tensor& head);  // [B, I]
  int64_t users_per_chunk() const;
};

// GMF: logit = h^T (p_u (.) q_i) + b, (.) the element-wise product.
class GMFImpl : public NCFBaseImpl {
 public:
  explicit GMFImpl(const ModelContext& ctx);
  GMFImpl(const ModelContext& ctx, GMFOptions options);
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  int64_t init_user_rows(const Csr& train, int64_t first) override;
  // Explanation: the history items closest to the item, by cosine of their item embeddings.
  std::string explain_kind() const override { return "items"; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;
  GMFOptions options;
};
TORCH_MODULE(GMF);

// NCF's MLP: logit = h^T a_L(... a_1([p_u; q_i])) + b, a_j = ReLU(W_j x + b_j).
class NCFMLPImpl : public NCFBaseImpl {
 public:
  explicit NCFMLPImpl(const ModelContext& ctx);
  NCFMLPImpl(const ModelContext& ctx, NCFMLPOptions options);
  NCFMLPOptions options;
};
TORCH_MODULE(NCFMLP);

// NeuMF: logit = h^T [p^G_u (.) q^G_i; MLP(p^M_u, q^M_i)] + b, with separate embeddings per part.
class NeuMFImpl : public NCFBaseImpl {
 public:
  explicit NeuMFImpl(const ModelContext& ctx);
  NeuMFImpl(const ModelContext& ctx, NeuMFOptions options);
  // With model.pretrain set: loads PRETRAIN.gmf/best.pt and PRETRAIN.mlp/best.pt, copies their
  // embeddings and MLP layers, and sets predict to W = [alpha h_gmf, (1 - alpha) h_mlp],
  // b = alpha b_gmf + (1 - alpha) b_mlp. Errors name model.pretrain.gmf / .mlp and the folder.
  void before_training() override;
  NeuMFOptions options;
};
TORCH_MODULE(NeuMF);

// Rendle et al.'s dot-product MF: logit = <p_u, q_i> + b_u + b_i + b.
class DotMFImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  explicit DotMFImpl(const ModelContext& ctx);
  DotMFImpl(const ModelContext& ctx, DotMFOptions options);

  InputType input_type() const override { return InputType::Pointwise; }
  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  ScriptExport script_export() const override;
  // Rendle et al. train this model with SGD one sample at a time for hundreds of epochs: done
  // natively (a few flops per sample), which autograd cannot do at any useful speed.
  bool has_per_sample_sgd() const override { return !side; }
  double per_sample_sgd(const Batch& batch, double lr) override;
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  int64_t init_user_rows(const Csr& train, int64_t first) override;
  // Explanation: the history items closest to the item, by cosine of their item embeddings.
  std::string explain_kind() const override { return "items"; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  bool scores_cold_items() const override { return side && side->layout.item.n_fields() > 0; }
  std::vector<std::string> describe() const override { return side ? side->describe() : std::vector<std::string>{}; }
  // (p_u [B, D], b_u [B]) and (q_i, b_i) as scored: the id rows, plus the fields with
  // model.fields; without arguments, of every user / item.
  std::pair<at::Tensor, at::Tensor> user_vectors(const at::Tensor& users);
  std::pair<at::Tensor, at::Tensor> item_vectors(const at::Tensor& items);
  std::pair<at::Tensor, at::Tensor> user_vectors() const;
  std::pair<at::Tensor, at::Tensor> item_vectors() const;

  DotMFOptions options;
  torch::nn::Embedding user_emb{nullptr};  // [U, D]
  torch::nn::Embedding item_emb{nullptr};  // [I, D]
  at::Tensor user_bias;                    // [U]
  at::Tensor item_bias;                    // [I]
  at::Tensor global_bias;                  // [1]
  SideFields side{nullptr};                // model.fields: the field embeddings (with biases)

 private:
  double neg_per_pos_ = 1.0;  // the run's train.neg_per_pos: fold-in's expected loss
  // fused_loss_backward's scratch: a user's / item's slot among a batch's distinct ones, -1 between calls.
  std::vector<int32_t> user_slot_, item_slot_;
};
TORCH_MODULE(DotMF);

}  // namespace rzoo
