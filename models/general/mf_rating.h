// Rating-prediction latent-factor models, trained by per-rating stochastic gradient descent on the
// squared error of the observed ratings (inside fit(); closed form from the trainer's view):
//
//   Biased MF: Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender
//   Systems", IEEE Computer 2009 (eq. 5 and the SGD rule of its "learning algorithms" section).
//     r_hat(u, i) = mu + b_u + b_i + <p_u, q_i>
//
//   SVD++: Koren, "Factorization Meets the Neighborhood: a Multifaceted Collaborative Filtering
//   Model", KDD 2008 (section 4, eq. 15 and its SGD rule).
//     r_hat(u, i) = mu + b_u + b_i + <q_i, p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j>
//   with N(u) the user's implicit feedback: the items of u in the training matrix.
//
// mu is the mean training rating (fixed, as in Surprise's SVD / SVDpp); the defaults are
// Surprise's. Predictions are optionally clipped to the training rating range (Surprise clips to
// the rating scale). Ratings come from ModelContext::data / split (the binary matrix given to
// fit() carries none), so both models refuse to fit without them.
#pragma once
#include <torch/arg.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

struct BiasedMFOptions {
  static BiasedMFOptions from_config(const Config* cfg);  // reads model.* and `seed` (defaults when cfg is null)
  TORCH_ARG(int64_t, factors) = 100;                  // latent factors per user and item
  TORCH_ARG(int64_t, epochs) = 20;                    // SGD passes over the training ratings
  TORCH_ARG(double, lr) = 0.005;                      // step size of the factors
  TORCH_ARG(double, reg) = 0.02;                      // L2 weight of the factors
  TORCH_ARG(std::optional<double>, lr_bias) = std::nullopt;   // step size of the biases; none = lr
  TORCH_ARG(std::optional<double>, reg_bias) = std::nullopt;  // L2 weight of the biases; none = reg
  TORCH_ARG(double, lr_decay) = 1.0;                  // step sizes *= lr_decay after each epoch
  TORCH_ARG(double, init_mean) = 0.0;                 // normal initialisation of the factors
  TORCH_ARG(double, init_std) = 0.1;
  TORCH_ARG(bool, clip) = true;                       // clip predictions to the training rating range
  TORCH_ARG(uint64_t, seed) = 0;                      // initialisation and visiting order (global `seed`)
};

struct SVDppOptions {
  static SVDppOptions from_config(const Config* cfg);  // reads model.* and `seed` (defaults when cfg is null)
  TORCH_ARG(int64_t, factors) = 20;
  TORCH_ARG(int64_t, epochs) = 20;
  TORCH_ARG(double, lr) = 0.007;
  TORCH_ARG(double, reg) = 0.02;
  TORCH_ARG(std::optional<double>, lr_bias) = std::nullopt;   // none = lr
  TORCH_ARG(std::optional<double>, reg_bias) = std::nullopt;  // none = reg
  TORCH_ARG(std::optional<double>, lr_implicit) = std::nullopt;   // step size of y_j; none = lr
  TORCH_ARG(std::optional<double>, reg_implicit) = std::nullopt;  // L2 weight of y_j; none = reg
  TORCH_ARG(double, lr_decay) = 1.0;
  TORCH_ARG(double, init_mean) = 0.0;                 // normal initialisation of p, q and y
  TORCH_ARG(double, init_std) = 0.1;
  TORCH_ARG(bool, clip) = true;
  // Visiting order of an epoch: "user" = users in random order, each user's ratings consecutively
  // in random order (as Surprise visits them), which lets the y_j updates of a user's ratings be
  // applied at once, exactly (O(|N(u)| f) per user); "rating" = all ratings in random order, the
  // y_j of N(u) updated at every rating (O(|N(u)| f) per rating). Both are Koren's per-rating SGD.
  TORCH_ARG(std::string, order) = "user";
  TORCH_ARG(uint64_t, seed) = 0;
};

// The state and scoring shared by both models: every fitted tensor is a buffer of a shape fixed
// at construction, so saving the module is the checkpoint.
class RatingMFImpl : public RecommenderImpl {
 public:
  InputType input_type() const override { return InputType::None; }
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B] predicted ratings
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I] predicted ratings
  ScriptExport script_export() const override;

  at::Tensor global_mean;   // [1]     mu, the mean training rating
  at::Tensor user_bias;     // [U]     b_u
  at::Tensor item_bias;     // [I]     b_i
  at::Tensor user_factors;  // [U, f]  p_u (zero for users without training ratings)
  at::Tensor item_factors;  // [I, f]  q_i (zero for items without training ratings)
  at::Tensor rating_min;    // [1]     predictions are clipped to [rating_min, rating_max]:
  at::Tensor rating_max;    // [1]     the training range with clip, else -inf / +inf
  // Training RMSE of each epoch: over the errors SGD saw during the epoch (each before its step).
  std::vector<double> train_rmse;

 protected:
  RatingMFImpl(std::string name, const ModelContext& ctx, int64_t factors);
  // p_u (+ z_u for SVD++) for scoring: [B, f].
  virtual at::Tensor user_vectors(const at::Tensor& users) const;

  const Dataset* data_;
  const Split* split_;
};

class BiasedMFImpl : public RatingMFImpl {
 public:
  explicit BiasedMFImpl(const ModelContext& ctx);
  BiasedMFImpl(const ModelContext& ctx, BiasedMFOptions options);

  void fit(const Csr& train) override;

  BiasedMFOptions options;
};
TORCH_MODULE(BiasedMF);

class SVDppImpl : public RatingMFImpl {
 public:
  explicit SVDppImpl(const ModelContext& ctx);
  SVDppImpl(const ModelContext& ctx, SVDppOptions options);

  void fit(const Csr& train) override;
  ScriptExport script_export() const override;
  // Fold-in from SVD++'s own implicit part: a new user has no trained p_u or b_u (both 0, their
  // value before training), so its prediction is mu + b_i + <q_i, z(h)>, z(h) = |h|^-1/2 sum of
  // the history's y_j, clamped to the rating range. For a known user with p_u = b_u = 0 it is
  // exactly its prediction.
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // user_implicit[u] = |N(u)|^-1/2 sum_{j in N(u)} implicit_factors[j], N(u) = train's row u
  // (zero when empty). fit() ends with it; public so tests can set y by hand.
  void update_user_implicit(const Csr& train);

  SVDppOptions options;
  at::Tensor implicit_factors;  // [I, f]  y_j
  at::Tensor user_implicit;     // [U, f]  z_u, precomputed so that scoring is one matmul

 protected:
  at::Tensor user_vectors(const at::Tensor& users) const override;  // p_u + z_u
};
TORCH_MODULE(SVDpp);

}  // namespace rzoo
