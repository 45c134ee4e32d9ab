// MAP fold-in for the linear-in-u factor models; see fold_in_linear.h. The C++ below and the
// TorchScript of fold_in_linear_script() take the same steps in the same order.
#include "models/general/fold_in_linear.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "datasets/dataset.h"
#include <vector>

#include "core/error.h"

namespace rzoo {

namespace {

constexpr int kMaxNewtonSteps = 30;
constexpr int kMaxHalvings = 30;
// History rows per slice of the pairwise terms (LinearFoldIn::pair_budget).
int64_t pair_rows(const LinearFoldIn& f, int64_t n_n) {
  return std::max<int64_t>(1, std::max<int64_t>(1, f.pair_budget) / std::max<int64_t>(1, n_n));
}

// log(1 + exp(s)), stably.
at::Tensor stable_softplus(const at::Tensor& s) { return s.clamp_min(0.0).add(torch::log1p(torch::exp(-s.abs()))); }

struct Problem {
  at::Tensor x, c, y;  // [I, D], [I], [I] (1 on the history), float64
  at::Tensor hist, rest;  // indices of the history's items and of the others
};

Problem make_problem(const at::Tensor& x_in, const at::Tensor& c_in, const at::Tensor& items) {
  TORCH_CHECK(x_in.dim() == 2, "fold-in: item side must be [I, D], got ", x_in.sizes());
  TORCH_CHECK(items.dim() == 1, "fold-in: needs items [n], got ", items.sizes());
  Problem p;
  p.x = x_in.detach().to(torch::kCPU, torch::kDouble);
  const int64_t n = p.x.size(0);
  p.c = c_in.defined() ? c_in.detach().to(torch::kCPU, torch::kDouble).reshape({n}) : torch::zeros({n}, torch::kDouble);
  const auto idx = items.to(torch::kCPU, torch::kLong);
  if (idx.numel() > 0) {
    const auto [lo, hi] = torch::aminmax(idx);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < n, "fold-in: item index out of range [0, ", n, ")");
  }
  p.y = torch::zeros({n}, torch::kDouble).index_fill_(0, idx, 1.0);
  const auto h = p.y > 0.5;
  p.hist = torch::nonzero(h).reshape({-1});
  p.rest = torch::nonzero(h.logical_not()).reshape({-1});
  return p;
}

// The objective at u whose scores are s [I].
at::Tensor objective_s(const LinearFoldIn& f, const Problem& p, const at::Tensor& s, const at::Tensor& u) {
  const auto prior = f.prior_prec.mul((u - f.prior_mean).square()).sum().mul(0.5);
  const int64_t n_h = p.hist.numel(), n_n = p.rest.numel();
  if (f.pairwise) {
    if (n_h == 0 || n_n == 0) return prior;
    const auto sh = s.index_select(0, p.hist), sn = s.index_select(0, p.rest).unsqueeze(0);
    auto total = torch::zeros({}, s.options());
    for (int64_t b = 0, step = pair_rows(f, n_n); b < n_h; b += step) {
      const auto d = sh.slice(0, b, std::min(n_h, b + step)).unsqueeze(1) - sn;  // [rows, n_N]
      total += stable_softplus(-d).sum();
    }
    return total.mul(f.neg_per_pos / static_cast<double>(n_n)) + prior;
  }
  const double wn = n_n > 0 ? f.neg_per_pos * static_cast<double>(n_h) / static_cast<double>(n_n) : 0.0;
  return (p.y * stable_softplus(-s)).sum() + ((1.0 - p.y) * stable_softplus(s)).sum().mul(wn) + prior;
}

at::Tensor objective(const LinearFoldIn& f, const Problem& p, const at::Tensor& u) {
  return objective_s(f, p, torch::mv(p.x, u) + p.c, u);
}

// The objective's gradient and Hessian at u.
std::pair<at::Tensor, at::Tensor> newton_terms(const LinearFoldIn& f, const Problem& p, const at::Tensor& u) {
  const auto s = torch::mv(p.x, u) + p.c;
  auto grad = f.prior_prec * (u - f.prior_mean);
  auto hess = torch::diag(f.prior_prec);
  const int64_t n_h = p.hist.numel(), n_n = p.rest.numel();
  if (f.pairwise) {
    if (n_h == 0 || n_n == 0) return {grad, hess};
    const double wp = f.neg_per_pos / static_cast<double>(n_n);
    const auto xh = p.x.index_select(0, p.hist), xn = p.x.index_select(0, p.rest);  // [n_h, D], [n_N, D]
    const auto sh = s.index_select(0, p.hist), sn = s.index_select(0, p.rest).unsqueeze(0);
    // Per slice of history rows: a = -d loss / d d, b = d2 loss / d d2 ([rows, n_N]); their row
    // sums per history item, column sums per other item, and the cross term x_h^T b x_N.
    std::vector<at::Tensor> a_rows, b_rows;
    auto a_cols = torch::zeros({n_n}, s.options()), b_cols = torch::zeros({n_n}, s.options());
    auto cross = torch::zeros({p.x.size(1), p.x.size(1)}, s.options());  // [D, D]
    for (int64_t r = 0, step = pair_rows(f, n_n); r < n_h; r += step) {
      const int64_t e = std::min(n_h, r + step);
      const auto d = sh.slice(0, r, e).unsqueeze(1) - sn;
      const auto a = torch::sigmoid(-d).mul_(wp);
      const auto b = torch::sigmoid(d).mul_(torch::sigmoid(-d)).mul_(wp);
      a_rows.push_back(a.sum(1));
      b_rows.push_back(b.sum(1));
      a_cols += a.sum(0);
      b_cols += b.sum(0);
      cross += torch::mm(xh.slice(0, r, e).t(), torch::mm(b, xn));
    }
    const auto a_h = torch::cat(a_rows), b_h = torch::cat(b_rows);
    grad = grad - torch::mv(xh.t(), a_h) + torch::mv(xn.t(), a_cols);
    hess = hess + torch::mm(xh.t(), xh * b_h.unsqueeze(1)) + torch::mm(xn.t(), xn * b_cols.unsqueeze(1)) - cross -
           cross.t();
    return {grad, hess};
  }
  const double wn = n_n > 0 ? f.neg_per_pos * static_cast<double>(n_h) / static_cast<double>(n_n) : 0.0;
  const auto w = p.y + (1.0 - p.y) * wn;  // each item's weight in the expected loss
  const auto sig = torch::sigmoid(s);
  grad = grad + torch::mv(p.x.t(), w * sig - p.y);
  hess = hess + torch::mm(p.x.t(), p.x * (w * sig * (1.0 - sig)).unsqueeze(1));
  return {grad, hess};
}

}  // namespace

void fit_fold_in_prior(LinearFoldIn& f, const at::Tensor& user_vectors) {
  torch::NoGradGuard no_grad;
  const auto v = user_vectors.detach().to(torch::kCPU, torch::kDouble);
  TORCH_CHECK(v.dim() == 2 && v.size(0) > 0, "fold-in: needs trained user vectors [U, D], got ", v.sizes());
  f.prior_mean = v.mean(0);
  f.prior_prec = v.size(0) > 1 ? v.var(0, /*unbiased=*/false).clamp_min(1e-8).reciprocal()
                               : torch::ones({v.size(1)}, torch::kDouble);
}

at::Tensor fold_in_linear_objective(const LinearFoldIn& f, const at::Tensor& x, const at::Tensor& c,
                                    const at::Tensor& items, const at::Tensor& u) {
  return objective(f, make_problem(x, c, items), u.to(torch::kDouble));
}

namespace {

// Newton's method with step halving from the prior mean, shared by the linear and the Gauss-Newton
// fold-in: `scores(u, jacobian)` gives s and J at u (for a linear model always x u + c and x).
// Stops when no halving lowers the objective, when a step no longer moves u, or (stop_on_gain) when
// a step gains at most 1e-9 of the objective.
at::Tensor newton_with_halving(const LinearFoldIn& f, const FoldInScores& scores, const at::Tensor& items, bool stop_on_gain) {
  auto u = f.prior_mean.clone();
  auto [s, J] = scores(u, true);
  TORCH_CHECK(J.dim() == 2 && J.size(1) == u.numel(), "fold-in: the Jacobian is ", J.sizes(), " for ", u.numel(), " dimensions");
  Problem p = make_problem(J, s - torch::mv(J, u), items);
  double fu = objective_s(f, p, s, u).item<double>();
  for (int step = 0; step < kMaxNewtonSteps; ++step) {
    p.x = J;
    p.c = s - torch::mv(J, u);  // the scores linearised at u (exact for a linear model)
    const auto [grad, hess] = newton_terms(f, p, u);
    const auto delta = torch::linalg_solve(hess, grad.unsqueeze(1)).squeeze(1);
    double t = 1.0;
    bool fell = false;
    at::Tensor next, s_next;
    double f_next = fu;
    for (int k = 0; k < kMaxHalvings; ++k) {
      next = u - delta * t;
      s_next = scores(next, false).first;
      f_next = objective_s(f, p, s_next, next).item<double>();
      if (f_next <= fu) {
        fell = true;
        break;
      }
      t *= 0.5;
    }
    if (!fell) break;
    const double moved = (delta * t).abs().max().item<double>();
    const double gain = fu - f_next;
    u = next;
    fu = f_next;
    if (moved <= 1e-10 * (1.0 + u.abs().max().item<double>())) break;
    if (stop_on_gain && gain <= 1e-9 * (1.0 + std::abs(fu))) break;
    std::tie(s, J) = scores(u, true);
  }
  return u;
}

}  // namespace

at::Tensor fold_in_linear(const LinearFoldIn& f, const at::Tensor& x_in, const at::Tensor& c_in, const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(f.prior_mean.defined() && f.prior_mean.numel() == x_in.size(1),
              "fold-in: the prior has ", f.prior_mean.defined() ? f.prior_mean.numel() : 0, " dimensions, the items ", x_in.size(1));
  const Problem base = make_problem(x_in, c_in, items);  // x, c in float64 on the CPU
  const auto x = base.x, c = base.c;
  return newton_with_halving(
      f, [&](const at::Tensor& u, bool) { return std::make_pair(torch::mv(x, u) + c, x); }, items, false);
}

at::Tensor fold_in_objective_at(const LinearFoldIn& f, const FoldInScores& scores, const at::Tensor& items, const at::Tensor& u) {
  torch::NoGradGuard no_grad;
  const auto [s, J] = scores(u.to(torch::kDouble), true);
  const Problem p = make_problem(J, s - torch::mv(J, u.to(torch::kDouble)), items);
  return objective_s(f, p, s, u.to(torch::kDouble));
}

at::Tensor fold_in_gauss_newton(const LinearFoldIn& f, const FoldInScores& scores, const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  return newton_with_halving(f, scores, items, true);
}

std::pair<at::Tensor, at::Tensor> explain_by_item_cosine(const at::Tensor& x_in, const at::Tensor& items, int64_t item) {
  torch::NoGradGuard no_grad;
  const auto x = x_in.detach().to(torch::kCPU, torch::kDouble);
  const auto idx = items.to(torch::kCPU, torch::kLong);
  const auto q = x[item];
  const auto f = x.index_select(0, idx);  // [n, D]
  const auto cos = torch::mv(f, q) / (f.norm(2, 1) * q.norm()).clamp_min(1e-12);
  return {idx, cos};
}

std::string fold_in_gauss_newton_script() {
  return fmt::format(R"PY(
def _fold_in_gn(self, items: Tensor) -> Tensor:
    u = self.fold_prior_mean.clone()
    s, jac = self._fold_in_sj(u, True)
    y = torch.zeros([s.size(0)], dtype=s.dtype).index_fill_(0, items, 1.0)
    h = y > 0.5
    hist = torch.nonzero(h).reshape([-1])
    rest = torch.nonzero(torch.logical_not(h)).reshape([-1])
    fu = float(self._fold_in_objective_s(s, y, hist, rest, u))
    for step in range({steps}):
        c = s - torch.mv(jac, u)
        grad, hess = self._fold_in_newton(jac, c, y, hist, rest, u)
        delta = torch.linalg_solve(hess, grad.unsqueeze(1)).squeeze(1)
        t = 1.0
        fell = False
        nxt = u
        f_next = fu
        for k in range({halvings}):
            nxt = u - delta * t
            s_next, unused = self._fold_in_sj(nxt, False)
            f_next = float(self._fold_in_objective_s(s_next, y, hist, rest, nxt))
            if f_next <= fu:
                fell = True
                break
            t = t * 0.5
        if not fell:
            break
        moved = float((delta * t).abs().max())
        gain = fu - f_next
        u = nxt
        fu = f_next
        if moved <= 1e-10 * (1.0 + float(u.abs().max())) or gain <= 1e-9 * (1.0 + abs(fu)):
            break
        s, jac = self._fold_in_sj(u, True)
    return u
)PY",
                     fmt::arg("steps", kMaxNewtonSteps), fmt::arg("halvings", kMaxHalvings));
}

const char* const kExplainCosineScript = R"PY(
def _explain_cosine(self, x_in: Tensor, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    x = x_in.double()
    q = x[item]
    f = x.index_select(0, items)
    return items, torch.mv(f, q) / (f.norm(2, 1) * q.norm()).clamp_min(1e-12)
)PY";

std::string fold_in_linear_script(const LinearFoldIn& f) {
  // The same steps as fold_in_linear() above, with this model's constants as literals.
  std::string code = R"PY(
def _fold_in_softplus(self, s: Tensor) -> Tensor:
    return torch.clamp(s, min=0.0) + torch.log1p(torch.exp(-torch.abs(s)))

def _fold_in_objective(self, x: Tensor, c: Tensor, y: Tensor, hist: Tensor, rest: Tensor, u: Tensor) -> Tensor:
    return self._fold_in_objective_s(torch.mv(x, u) + c, y, hist, rest, u)

def _fold_in_objective_s(self, s: Tensor, y: Tensor, hist: Tensor, rest: Tensor, u: Tensor) -> Tensor:
    prior = (self.fold_prior_prec * (u - self.fold_prior_mean) ** 2).sum() * 0.5
    n_h = hist.size(0)
    n_n = rest.size(0)
)PY";
  if (f.pairwise)
    code += fmt::format(R"PY(    if n_h == 0 or n_n == 0:
        return prior
    sh = s.index_select(0, hist)
    sn = s.index_select(0, rest).unsqueeze(0)
    total = torch.zeros([], dtype=s.dtype)
    step = max(1, max(1, {budget}) // max(1, n_n))
    for b in range(0, n_h, step):
        d = sh[b:min(n_h, b + step)].unsqueeze(1) - sn
        total = total + self._fold_in_softplus(-d).sum()
    return total * ({neg:.17g} / float(n_n)) + prior
)PY",
                        fmt::arg("neg", f.neg_per_pos), fmt::arg("budget", f.pair_budget));
  else
    code += fmt::format(R"PY(    wn = 0.0
    if n_n > 0:
        wn = {neg:.17g} * float(n_h) / float(n_n)
    return (y * self._fold_in_softplus(-s)).sum() + ((1.0 - y) * self._fold_in_softplus(s)).sum() * wn + prior
)PY",
                        fmt::arg("neg", f.neg_per_pos));
  code += R"PY(
def _fold_in_newton(self, x: Tensor, c: Tensor, y: Tensor, hist: Tensor, rest: Tensor, u: Tensor) -> Tuple[Tensor, Tensor]:
    s = torch.mv(x, u) + c
    grad = self.fold_prior_prec * (u - self.fold_prior_mean)
    hess = torch.diag(self.fold_prior_prec)
    n_h = hist.size(0)
    n_n = rest.size(0)
)PY";
  if (f.pairwise)
    code += fmt::format(R"PY(    if n_h == 0 or n_n == 0:
        return grad, hess
    wp = {neg:.17g} / float(n_n)
    xh = x.index_select(0, hist)
    xn = x.index_select(0, rest)
    sh = s.index_select(0, hist)
    sn = s.index_select(0, rest).unsqueeze(0)
    a_rows: List[Tensor] = []
    b_rows: List[Tensor] = []
    a_cols = torch.zeros([n_n], dtype=s.dtype)
    b_cols = torch.zeros([n_n], dtype=s.dtype)
    cross = torch.zeros([x.size(1), x.size(1)], dtype=s.dtype)
    step = max(1, max(1, {budget}) // max(1, n_n))
    for r in range(0, n_h, step):
        e = min(n_h, r + step)
        d = sh[r:e].unsqueeze(1) - sn
        a = torch.sigmoid(-d) * wp
        b = torch.sigmoid(d) * torch.sigmoid(-d) * wp
        a_rows.append(a.sum(1))
        b_rows.append(b.sum(1))
        a_cols = a_cols + a.sum(0)
        b_cols = b_cols + b.sum(0)
        cross = cross + torch.mm(xh[r:e].t(), torch.mm(b, xn))
    a_h = torch.cat(a_rows)
    b_h = torch.cat(b_rows)
    grad = grad - torch.mv(xh.t(), a_h) + torch.mv(xn.t(), a_cols)
    hess = hess + torch.mm(xh.t(), xh * b_h.unsqueeze(1)) + torch.mm(xn.t(), xn * b_cols.unsqueeze(1)) - cross - cross.t()
    return grad, hess
)PY",
                        fmt::arg("neg", f.neg_per_pos), fmt::arg("budget", f.pair_budget));
  else
    code += fmt::format(R"PY(    wn = 0.0
    if n_n > 0:
        wn = {neg:.17g} * float(n_h) / float(n_n)
    w = y + (1.0 - y) * wn
    sig = torch.sigmoid(s)
    grad = grad + torch.mv(x.t(), w * sig - y)
    hess = hess + torch.mm(x.t(), x * (w * sig * (1.0 - sig)).unsqueeze(1))
    return grad, hess
)PY",
                        fmt::arg("neg", f.neg_per_pos));
  code += fmt::format(R"PY(
def _fold_in_vector(self, x_in: Tensor, c_in: Tensor, items: Tensor) -> Tensor:
    x = x_in.double()
    c = c_in.double()
    y = torch.zeros([x.size(0)], dtype=x.dtype).index_fill_(0, items, 1.0)
    h = y > 0.5
    hist = torch.nonzero(h).reshape([-1])
    rest = torch.nonzero(torch.logical_not(h)).reshape([-1])
    u = self.fold_prior_mean.clone()
    fu = float(self._fold_in_objective(x, c, y, hist, rest, u))
    for step in range({steps}):
        grad, hess = self._fold_in_newton(x, c, y, hist, rest, u)
        delta = torch.linalg_solve(hess, grad.unsqueeze(1)).squeeze(1)
        t = 1.0
        fell = False
        nxt = u
        f_next = fu
        for k in range({halvings}):
            nxt = u - delta * t
            f_next = float(self._fold_in_objective(x, c, y, hist, rest, nxt))
            if f_next <= fu:
                fell = True
                break
            t = t * 0.5
        if not fell:
            break
        moved = float((delta * t).abs().max())
        u = nxt
        fu = f_next
        if moved <= 1e-10 * (1.0 + float(u.abs().max())):
            break
    return u
)PY",
                      fmt::arg("steps", kMaxNewtonSteps), fmt::arg("halvings", kMaxHalvings));
  return code;
}

int64_t for_new_users(const Csr& train, int64_t first, int64_t n_users,
                      const std::function<void(int64_t, const at::Tensor&)>& set) {
  int64_t n = 0;
  for (int64_t u = std::max<int64_t>(first, 0); u < n_users; ++u) {
    if (train.row_size(u) == 0) continue;
    set(u, torch::tensor(std::vector<int64_t>(train.row_begin(u), train.row_end(u)), torch::kLong));
    ++n;
  }
  return n;
}

}  // namespace rzoo
