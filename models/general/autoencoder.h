// User-history networks: each user is their multi-hot training vector over the items, and a
// network maps it to a score for every item.
//
//   mlp      The "MLP recommender": a feed-forward network from the user's training vector
//            (optionally with user side features) to one logit per item, trained with binary
//            cross-entropy against that same vector (a denoising autoencoder with a sigmoid /
//            Bernoulli output; Wu, DuBois, Zheng & Ester, "Collaborative Denoising Auto-Encoders
//            for Top-N Recommender Systems", WSDM 2016, without the user embedding).
//   multvae  Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for Collaborative
//            Filtering", WWW 2018: Mult-VAE^PR, a VAE with a multinomial likelihood and KL
//            annealing.
//   multdae  The same paper's Mult-DAE: a denoising autoencoder with a multinomial likelihood.
//
// All three have InputType::Users: a batch is users [B] (every user with a training interaction
// once per epoch) and the model reads their histories from its own buffers
//   train_indptr [U + 1] int64, train_items [nnz] int64
// (user u's training items are train_items[train_indptr[u] .. train_indptr[u + 1]), ascending),
// filled from ModelContext::split->train at construction, so a model needs its split (it
// refuses without one) and a checkpoint holds everything scoring needs. The [B, I] input is
// built on the model's device with tensor ops (history()).
//
// score_all(users) runs the network on the users' training histories in eval mode (no dropout;
// the VAE takes z = mu), whatever the module's mode, and returns fresh [B, I] logits;
// score(users, items) computes score_all for the distinct users and gathers, so the two agree
// exactly.
//
// Initialisation (all three, as the Mult-VAE authors' code): weights Xavier/Glorot uniform,
// biases N(0, 0.001^2) (their code draws a truncated normal with stddev 0.001, which differs
// only beyond 2 sigma).
//
// TorchScript export: the buffers and every layer's weight and bias (cloned to the CPU), and
// _score / _score_all with the layers unrolled.
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

// The shared part: the training histories, the [B, I] multi-hot input, score / score_all and
// the TorchScript helpers.
class AutoencoderBaseImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  // Fills the history buffers from ctx.split->train; refuses (naming `name`) without a split.
  AutoencoderBaseImpl(const std::string& name, const ModelContext& ctx);

  InputType input_type() const override { return InputType::Users; }
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B], [B] -> [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B] -> [B, I]

  // users [B] int64 -> [B, I] float on the model's device: 1 at each user's training items.
  at::Tensor history(const at::Tensor& users) const;
  // The network's logits [B, I] for users [B]; `training` = dropout on (and, for the VAE,
  // z sampled), independent of the module's mode.
  virtual at::Tensor logits(const at::Tensor& users, bool training) = 0;
  // The evaluation-mode logits [B, I] of multi-hot inputs [B, I]: what logits() computes from a
  // user's history. Fold-in is this network pass on the new history's multi-hot vector (for a
  // known user's own training items, exactly its trained scores).
  virtual at::Tensor logits_of(const at::Tensor& x) = 0;
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]

  at::Tensor train_indptr;  // [U + 1] int64
  at::Tensor train_items;   // [nnz] int64

 protected:
  // A registered Linear(in, out) with the initialisation above.
  torch::nn::Linear add_layer(const std::string& name, int64_t in, int64_t out);
  // Adds <name>_weight, <name>_bias of `layer` (CPU clones) to e.tensors.
  static void export_layer(ScriptExport& e, const std::string& name, const torch::nn::Linear& layer);
  // TorchScript `torch.addmm(self.<name>_bias, <x>, self.<name>_weight.t())`: the layer applied to x.
  static std::string layer_code(const std::string& name, const std::string& x);
  // _history(users) -> [B, I] and _score(users, items) (over _score_all, which `score_all_code`
  // defines); N_ITEMS substituted.
  std::string script_code(const std::string& score_all_code) const;
};

// The activations of model.activation.
const std::vector<std::string>& autoencoder_activations();  // sigmoid, relu, tanh

// ---------------------------------------------------------------------------------------------
// mlp
//
//   x = the multi-hot training vector [B, I]; in training, dropout(x, input_dropout) (scaled
//       by 1 / (1 - p)). The network's target is x itself: without the input dropout it can
//       learn the identity on its own target and score every unseen item alike; dropping
//       inputs makes it predict a user's items from their other items, which is what makes the
//       seed's MLP sound as a recommender.
//   h0 = [x, s_u]  [B, I + F]   s_u = the user's side features (F = 0 without user_features):
//       token features multi-hot over their vocabulary, float features standardised over the
//       users that have a value (mean 0, std 1), missing (NaN) -> 0
//   h_{l+1} = act(W_l h_l + b_l)  [B, hidden[l]]
//   logits = W_out h_L + b_out  [B, I]  (the network's sigmoid outputs are sigmoid(logits);
//       scores are the logits, which rank the same)
//   loss = mean over users of sum over items of BCE(sigmoid(logits), x)
struct MLPRecOptions {
  static MLPRecOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(std::vector<int64_t>, hidden) = {256};        // hidden layer sizes, at least one, each >= 1
  TORCH_ARG(std::string, activation) = "sigmoid";         // sigmoid | relu | tanh
  TORCH_ARG(double, input_dropout) = 0.5;                 // in [0, 1): dropout on the history in training
  TORCH_ARG(std::vector<std::string>, user_features) = {};  // names in ctx.data->user_info
};

class MLPRecImpl : public AutoencoderBaseImpl {
 public:
  explicit MLPRecImpl(const ModelContext& ctx);
  MLPRecImpl(const ModelContext& ctx, MLPRecOptions options);

  at::Tensor loss(const Batch& batch) override;  // dropout when is_training()
  at::Tensor logits(const at::Tensor& users, bool training) override;  // [B] -> [B, I]
  // Fold-in needs the user's side features when the network reads them: refused then.
  at::Tensor logits_of(const at::Tensor& x) override;
  bool folds_in() const override { return user_side.size(1) == 0; }
  // The network's input [B, I + F] (history with dropout when training, then side features).
  at::Tensor input(const at::Tensor& users, const at::Tensor& history, bool training) const;
  // users [B] and their history [B, I] -> logits [B, I].
  at::Tensor network(const at::Tensor& users, const at::Tensor& history, bool training);
  ScriptExport script_export() const override;

  int64_t input_width() const { return n_items_ + user_side.size(1); }

  MLPRecOptions options;
  std::vector<torch::nn::Linear> hidden;  // hidden0 .. : [I + F -> hidden[0]], ...
  torch::nn::Linear out{nullptr};         // [hidden.back() -> I]
  at::Tensor user_side;                   // [U, F] float buffer (F = 0 without user_features)
  std::vector<std::string> side_columns;  // [F] "feature:token" or "feature" (float)
};
TORCH_MODULE(MLPRec);

// ---------------------------------------------------------------------------------------------
// multdae: dims d = [I, hidden..., latent, reversed(hidden)..., I] (default [I, 600, 200, 600, I])
//   h0 = dropout(x / |x|_2)  [B, I]  (dropout only in training)
//   h_{l+1} = tanh(W_l h_l + b_l) for every layer but the last, logits = W h + b  [B, I]
//   loss = -mean over users of sum_i log_softmax(logits)_i x_i  (multinomial log-likelihood)
// L2 regularisation comes from train.weight_decay.
struct MultDAEOptions {
  static MultDAEOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(std::vector<int64_t>, hidden) = {600};        // sizes between the input and the code
  TORCH_ARG(int64_t, latent) = 200;                       // code size
  TORCH_ARG(double, dropout) = 0.5;                       // in [0, 1): input dropout in training
};

class MultDAEImpl : public AutoencoderBaseImpl {
 public:
  explicit MultDAEImpl(const ModelContext& ctx);
  MultDAEImpl(const ModelContext& ctx, MultDAEOptions options);

  at::Tensor loss(const Batch& batch) override;  // dropout when is_training()
  at::Tensor logits(const at::Tensor& users, bool training) override;  // [B] -> [B, I]
  at::Tensor logits_of(const at::Tensor& x) override { return network(x, false); }
  at::Tensor network(const at::Tensor& history, bool training);        // [B, I] -> [B, I]
  ScriptExport script_export() const override;

  MultDAEOptions options;
  std::vector<torch::nn::Linear> layers;  // layer0 .. : the dims above
};
TORCH_MODULE(MultDAE);

// ---------------------------------------------------------------------------------------------
// multvae: encoder q = [I, hidden..., 2 latent], decoder p = [latent, reversed(hidden)..., I]
//   h = dropout(x / |x|_2); encoder layers with tanh between; its output [B, 2D] splits into
//   mu = [:, :D], logvar = [:, D:]; z = mu + eps * exp(logvar / 2), eps ~ N(0, 1), in training,
//   z = mu otherwise; decoder layers with tanh between, logits [B, I].
//   loss = -mean_u sum_i log_softmax(logits)_ui x_ui + beta * KL,
//   KL = mean_u -0.5 sum_d (1 + logvar - mu^2 - exp(logvar))
//   beta = min(anneal_cap, step / total_anneal_steps) (anneal_cap when total_anneal_steps = 0),
//   step = the number of training-mode loss() calls before this one (the authors' update_count:
//   the first update has beta 0). step is the buffer anneal_step, so a checkpoint (and
//   `rzoo train --resume`) continues the schedule exactly; loss() advances it only when the
//   module is in training mode.
struct MultVAEOptions {
  static MultVAEOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(std::vector<int64_t>, hidden) = {600};        // sizes between the input and the code
  TORCH_ARG(int64_t, latent) = 200;                       // D: size of z
  TORCH_ARG(double, dropout) = 0.5;                       // in [0, 1): input dropout in training
  TORCH_ARG(double, anneal_cap) = 0.2;                    // >= 0: the largest beta
  TORCH_ARG(int64_t, total_anneal_steps) = 200000;        // >= 0: steps for beta to reach 1 (0: beta = cap)
};

class MultVAEImpl : public AutoencoderBaseImpl {
 public:
  explicit MultVAEImpl(const ModelContext& ctx);
  MultVAEImpl(const ModelContext& ctx, MultVAEOptions options);

  struct Encoded {
    at::Tensor mu, logvar;  // [B, D] each
  };
  Encoded encode(const at::Tensor& history, bool training);  // [B, I] multi-hot -> [B, D] x 2
  at::Tensor decode(const at::Tensor& z);                    // [B, D] -> logits [B, I]
  at::Tensor logits_of(const at::Tensor& x) override { return decode(encode(x, false).mu); }

  at::Tensor loss(const Batch& batch) override;  // dropout, sampling and step++ when is_training()
  at::Tensor logits(const at::Tensor& users, bool training) override;  // [B] -> [B, I]
  ScriptExport script_export() const override;

  at::Tensor beta_tensor() const;  // [] float on the model's device: the beta of the next loss()
  double beta() const { return beta_tensor().item<double>(); }
  int64_t step() const;  // anneal_step's value

  MultVAEOptions options;
  std::vector<torch::nn::Linear> encoder;  // enc0 .. : [I -> hidden[0]], ..., [. -> 2 D]
  std::vector<torch::nn::Linear> decoder;  // dec0 .. : [D -> hidden.back()], ..., [. -> I]
  at::Tensor anneal_step;                  // [] int64 buffer
};
TORCH_MODULE(MultVAE);

}  // namespace rzoo
