// Fold-in for the factor models whose score is linear in the user's vector (bpr, mf, gmf):
// s = X u + c over all items, X [I, D] the trained item side (held fixed), c [I] an item offset.
//
// The new user's vector u is the MAP estimate under
//   - the model's own training loss for this user with the item side fixed, in expectation over
//     the negative sampler (each history item is a positive once per epoch, with neg_per_pos
//     negatives drawn uniformly from the n_N items outside the history):
//       pointwise (BCE, mf and gmf): sum_{i in h} softplus(-s_i) + (neg n_h / n_N) sum_{j not in h} softplus(s_j)
//       pairwise (BPR):              (neg / n_N) sum_{i in h} sum_{j not in h} softplus(-(s_i - s_j))
//   - a Gaussian prior fitted to the trained users' vectors (per-dimension mean and variance),
//     which stands in for the training's regularisation (weight decay, l2, early stopping) and
//     keeps u finite when the history separates from the other items.
// Both terms are convex in u, so the minimiser is unique: Newton's method from the prior mean,
// halving a step until the objective falls, stops when a step no longer moves u (at most 30
// steps). It is deterministic, in float64, and the exported TorchScript runs the same steps
// (fold_in_linear_script), so C++ and the export agree to rounding.
//
// Not the trained vector of a known user: training stopped early and regularised differently;
// the ranking agrees closely (tests/test_fold_in.cpp states the tolerance).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>

namespace rzoo {

struct Csr;

struct LinearFoldIn {
  bool pairwise = false;     // BPR's pairwise loss; else pointwise BCE
  double neg_per_pos = 1.0;  // train.neg_per_pos of the run
  at::Tensor prior_mean;     // [D] float64
  at::Tensor prior_prec;     // [D] float64: 1 / variance of the trained users' vectors
  // BPR's pairwise terms are [history, other items] matrices, taken in slices of history rows of
  // at most this many entries (16 MB per float64 temporary by default): memory stays bounded for
  // long histories. Tests shrink it.
  int64_t pair_budget = int64_t{1} << 21;
};

// The prior of LinearFoldIn from the trained user vectors [U, D] (any float type): their mean and
// 1 / variance per dimension (a variance below 1e-8 counts as 1e-8; one user: variance 1).
void fit_fold_in_prior(LinearFoldIn& f, const at::Tensor& user_vectors);

// The MAP vector u [D] (float64) for the history `items` ([n] item indices; repeats ignored),
// given x [I, D] and c [I] (undefined: 0).
at::Tensor fold_in_linear(const LinearFoldIn& f, const at::Tensor& x, const at::Tensor& c, const at::Tensor& items);

// Models whose score is not linear in u (ncfmlp, neumf: u passes through ReLU layers): the same
// MAP objective, minimised by generalised Gauss-Newton. `scores(u, jacobian)` returns the scores
// s [I] and, when `jacobian`, their Jacobian J [I, D] at u (float64; else undefined); each step is
// the Newton step of the objective with the scores linearised at u (exact gradient, Gauss-Newton
// Hessian), halved until the objective falls. It stops when a step no longer moves u or no
// longer lowers the objective by more than 1e-9 of it (on a ReLU kink Gauss-Newton can zigzag
// with ever smaller gains), after at most 30 steps. Deterministic; fold_in_gauss_newton_script()
// is the TorchScript of the same steps.
using FoldInScores = std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor& u, bool jacobian)>;
at::Tensor fold_in_gauss_newton(const LinearFoldIn& f, const FoldInScores& scores, const at::Tensor& items);
// The objective at u for scores(u) (for tests).
at::Tensor fold_in_objective_at(const LinearFoldIn& f, const FoldInScores& scores, const at::Tensor& items, const at::Tensor& u);

// The objective fold_in_linear minimises, at u (for tests): a float64 scalar.
at::Tensor fold_in_linear_objective(const LinearFoldIn& f, const at::Tensor& x, const at::Tensor& c,
                                    const at::Tensor& items, const at::Tensor& u);

// Explanation for the factor models (bpr, mf, gmf): the history items closest to `item` in the
// item-factor space, by cosine of their rows of x [I, D]: (items, cosines) as float64.
std::pair<at::Tensor, at::Tensor> explain_by_item_cosine(const at::Tensor& x, const at::Tensor& items, int64_t item);
// Its TorchScript: def _explain_cosine(self, x: Tensor, items: Tensor, item: int) -> Tuple[Tensor, Tensor]
extern const char* const kExplainCosineScript;

// TorchScript for the export:
//   def _fold_in_vector(self, x: Tensor, c: Tensor, items: Tensor) -> Tensor   # -> u [D] float64
// reading the tensors fold_prior_mean and fold_prior_prec (add them with fold_in_tensors).
std::string fold_in_linear_script(const LinearFoldIn& f);
// TorchScript of fold_in_gauss_newton (after fold_in_linear_script, whose helpers it uses):
//   def _fold_in_gn(self, items: Tensor) -> Tensor                              # -> u [D] float64
// calling the model's def _fold_in_sj(self, u: Tensor, jac: bool) -> Tuple[Tensor, Tensor]
// (s [I], and J [I, D] when jac, else an empty tensor)
std::string fold_in_gauss_newton_script();

// Warm start (RecommenderImpl::init_user_rows): calls set(u, items) for every user u from `first`
// on with training items in `train` ([n] int64 indices), and returns how many it called.
int64_t for_new_users(const Csr& train, int64_t first, int64_t n_users,
                      const std::function<void(int64_t, const at::Tensor&)>& set);

}  // namespace rzoo
