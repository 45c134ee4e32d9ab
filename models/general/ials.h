// iALS: matrix factorisation for implicit feedback by alternating least squares.
// Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008;
// the loss, regularisation and defaults follow Rendle, Krichene, Zhang & Koren, "Revisiting the
// Performance of iALS on Item Recommendation Benchmarks", RecSys 2022.
//
// score(u, i) = <w_u, h_i>. With S the observed (user, item) pairs, the loss is
//   L(W, H) = sum_{(u,i) in S} c (1 - <w_u, h_i>)^2           observed, confidence c = 1 + alpha
//           + alpha0 sum_{all u, i} <w_u, h_i>^2               every pair pulled towards 0
//           + sum_u lambda_u |w_u|^2 + sum_i lambda_i |h_i|^2
// with frequency-scaled regularisation lambda_u = lambda (n_u + alpha0 I)^nu and
// lambda_i = lambda (n_i + alpha0 U)^nu (n_u, n_i: training interactions; nu = 0 gives a plain
// lambda). alpha = 0 is exactly Rendle et al.'s loss. L is a convex quadratic in W for fixed
// H (and vice versa), so each half-step solves it exactly and L never increases.
//
// Fitted in closed form (InputType::None): `epochs` times, all users then all items. Each
// half-step either solves every row's normal equations exactly (Cholesky) or takes a few
// conjugate-gradient steps from the row's previous factors (CG; each step lowers L_u, so L still
// never increases).
#pragma once
#include <torch/arg.h>

#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

struct IALSOptions {
  static IALSOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(int64_t, factors) = 64;             // d: latent factors per user and item
  TORCH_ARG(double, alpha) = 0.0;               // observed confidence c = 1 + alpha (>= 0)
  TORCH_ARG(double, unobserved_weight) = 0.3;   // alpha0 (>= 0): weight of the all-pairs term
  TORCH_ARG(double, l2) = 0.003;                // lambda (> 0)
  TORCH_ARG(double, nu) = 1.0;                  // frequency scaling exponent of lambda (>= 0)
  TORCH_ARG(int64_t, epochs) = 15;              // alternations (users, then items)
  TORCH_ARG(double, init_std) = 0.1;            // factors start N(0, (init_std / sqrt(d))^2)
  // "cg": cg_steps conjugate-gradient steps per row, warm-started from the row's previous
  // factors (Takacs, Pilaszy & Tikk, RecSys 2011); "cholesky": the exact solve.
  TORCH_ARG(std::string, solver) = "cg";
  TORCH_ARG(int64_t, cg_steps) = 3;             // >= 1
};

class IALSImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  explicit IALSImpl(const ModelContext& ctx);
  IALSImpl(const ModelContext& ctx, IALSOptions options);

  InputType input_type() const override { return InputType::None; }
  // Initialises the factors from the global torch generator, then runs `epochs` alternations
  // (recording the loss after each in loss_history when record_loss is set).
  void fit(const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // Fold-in: the exact user half-step (solve(), Cholesky) for one row holding the history's
  // items, against the trained item factors, then <w, h_i> for every item. Training ends with
  // an item half-step, so a known user's fold-in is the user solve that training would take
  // next: close to, not equal to, its trained factors.
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // Explanation (Hu, Koren & Volinsky 2008, section 5): the fold-in vector is w = A^-1 c sum_j h_j
  // over the history, so item i's score <h_i, w> = sum_j c h_i^T A^-1 h_j: history item j
  // contributes c h_i^T A^-1 h_j (A the history's user matrix, as in score_fold_in).
  std::string explain_kind() const override { return "items"; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  // One half-step: the exact minimiser of L over the factors of the rows of `m` (users: the
  // training matrix; items: its transpose) with `fixed` [m.n_cols, d], the other side's
  // factors, held fixed. Returns [m.n_rows, d] on fixed's device.
  at::Tensor solve(const Csr& m, const at::Tensor& fixed) const;
  // The CG half-step: options.cg_steps steps per row from `start` [m.n_rows, d]. `batched`
  // forces the tensor version that other devices use (the CPU otherwise runs the row loop).
  at::Tensor solve_cg(const Csr& m, const at::Tensor& fixed, const at::Tensor& start, bool batched = false) const;
  // L(user_factors, item_factors) on `train`, evaluated directly (double precision).
  double loss(const Csr& train) const;

  IALSOptions options;
  at::Tensor user_factors;  // [U, d] float: W
  at::Tensor item_factors;  // [I, d] float: H
  // L after each epoch of the last fit(), when record_loss is set (off by default: evaluating L
  // costs a pass over the observed pairs and two d x d Gramians in double per epoch, ~10% of
  // an epoch, and nothing else reads it).
  bool record_loss = false;
  std::vector<double> loss_history;
};
TORCH_MODULE(IALS);

}  // namespace rzoo
