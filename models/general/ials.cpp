// iALS: Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008;
// loss and defaults after Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of iALS on
// Item Recommendation Benchmarks", RecSys 2022.
//
// The half-step for the users (the items' is the same with the roles swapped). For fixed H, L
// separates over users; user u's part is
//   L_u(w) = sum_{i in I_u} c (1 - <w, h_i>)^2 + alpha0 sum_{i=1..I} <w, h_i>^2 + lambda_u |w|^2.
// Setting its gradient to zero,
//   -2 c sum_{i in I_u} (1 - <w, h_i>) h_i + 2 alpha0 sum_i <w, h_i> h_i + 2 lambda_u w = 0,
// gives the normal equations A_u w_u = b_u with
//   A_u = alpha0 G + c H_{I_u}^T H_{I_u} + lambda_u I_d,   G = H^T H (the Gramian, once per step),
//   b_u = c sum_{i in I_u} h_i.
// (The observed pairs also sit in the all-pairs term. Hu et al. weight the unobserved pairs
// only, sum_S c (1 - s)^2 + sum_{not S} s^2; with alpha0 = 1 that is, up to a constant, our
// loss with observed weight c - 1 and target c / (c - 1) in place of c and 1.)
// A_u is symmetric positive definite (lambda_u > 0), so each w_u is the unique minimiser and L
// never increases. The unobserved term of L itself is alpha0 sum((W^T W) * (H^T H)).
//
// Batched: users are sorted by history length and cut into batches of similar length; a batch's
// histories are padded with an index of a zero factor row, gathered to F [B, L, d], and
//   A = c F^T F + alpha0 G + diag(lambda) [B, d, d] (bmm),  b = c F^T 1 [B, d],
// solved with a batched Cholesky factorisation, in float like Rendle et al.'s reference code (a
// double solve costs more than forming A); the loss stays monotone up to float rounding.
#include "models/general/ials.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/config.h"
#include "core/distributed.h"
#include "core/simd.h"
#include "datasets/dataset.h"

namespace rzoo {

IALSOptions IALSOptions::from_config(const Config* cfg) {
  IALSOptions o;
  if (!cfg) return o;
  o.factors(cfg->get_int("model.factors", 1, 1 << 14));
  o.alpha(cfg->get_double("model.alpha", 0.0));
  o.unobserved_weight(cfg->get_double("model.unobserved_weight", 0.0));
  o.l2(cfg->get_double("model.l2"));
  if (!(o.l2() > 0.0)) cfg->bad("model.l2", fmt::format("must be > 0, got {}", o.l2()));
  o.nu(cfg->get_double("model.nu", 0.0, 10.0));
  o.epochs(cfg->get_int("model.epochs", 1, 100000));
  o.init_std(cfg->get_double("model.init_std", 0.0, 100.0));
  // All-zero factors are a fixed point of ALS (H = 0 gives W = 0 gives H = 0).
  if (!(o.init_std() > 0.0)) cfg->bad("model.init_std", fmt::format("must be > 0, got {}", o.init_std()));
  if (cfg->has("model.solver")) {
    o.solver(cfg->get_string("model.solver"));
    if (o.solver() != "cg" && o.solver() != "cholesky")
      cfg->bad("model.solver", fmt::format("must be \"cg\" or \"cholesky\", got \"{}\"", o.solver()));
  }
  if (cfg->has("model.cg_steps")) o.cg_steps(cfg->get_int("model.cg_steps", 1, 1000));
  return o;
}

namespace {

// The transpose of a 0/1 CSR matrix (each row's columns come out sorted: rows are visited in order).
Csr transpose(const Csr& m) {
  Csr t;
  t.n_rows = m.n_cols;
  t.n_cols = m.n_rows;
  t.indptr.assign(static_cast<size_t>(m.n_cols) + 1, 0);
  for (int64_t c : m.indices) ++t.indptr[static_cast<size_t>(c) + 1];
  for (int64_t c = 0; c < m.n_cols; ++c) t.indptr[c + 1] += t.indptr[c];
  t.indices.resize(m.indices.size());
  std::vector<int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (int64_t r = 0; r < m.n_rows; ++r)
    for (const Csr::Index* p = m.row_begin(r); p != m.row_end(r); ++p) t.indices[next[*p]++] = static_cast<Csr::Index>(r);
  return t;
}

// lambda_r = lambda (n_r + alpha0 * n_cols)^nu. It is 0 only for an empty row when alpha0 = 0
// and nu > 0: nothing in L then depends on that row's factors, 0 is a minimiser, and lambda
// keeps A positive definite so the solve returns it.
double row_reg(const IALSOptions& o, int64_t n_r, int64_t n_cols) {
  const double reg = o.l2() * std::pow(static_cast<double>(n_r) + o.unobserved_weight() * static_cast<double>(n_cols), o.nu());
  return reg > 0.0 ? reg : o.l2();
}

// lambda_r of every row of `m` [n_rows] double, on the CPU.
at::Tensor row_regs(const Csr& m, const IALSOptions& o) {
  auto reg = torch::empty({m.n_rows}, torch::kDouble);
  double* rg = reg.data_ptr<double>();
  for (int64_t r = 0; r < m.n_rows; ++r) rg[r] = row_reg(o, m.row_size(r), m.n_cols);
  return reg;
}

struct SolveBatch {
  at::Tensor rows;  // [B] long
  at::Tensor cols;  // [B, L] long: each row's columns, padded with n_cols (a zero factor row)
  at::Tensor reg;   // [B] float: lambda_r
};

struct Plan {
  int64_t n_rows = 0, n_cols = 0;
  std::vector<SolveBatch> batches;
  at::Tensor reg;  // [n_rows] double: lambda_r of every row (for the loss)
};

// A batch's F [B, L, d] and A [B, d, d] stay within budget(device) floats each, whatever d. On the
// CPU 2 MB each: measured 2026-12-06 (W3, the Cholesky solver, NCF ML-1M, 64 factors, 1 thread,
// 2 runs each), peak RSS / wall time per 15-iteration run at 2^18 ... 2^23 floats: 225 MB / 35 s,
// 237 / 30-33, 247 / 31-38, 285 / 34-36, 443 MB / 41 s (the old 32 MB): smaller batches stay in
// cache and cost nothing in speed at 128 rows of [64, 64]. A GPU wants large batches (one kernel
// launch each), so it keeps 32 MB.
constexpr int64_t kMaxRows = 4096;
int64_t batch_budget(const c10::Device& device) { return int64_t{1} << (device.is_cpu() ? 19 : 23); }

Plan make_plan(const Csr& m, const IALSOptions& o, const c10::Device& device) {
  const int64_t d = o.factors(), budget = batch_budget(device);
  const int64_t max_entries = std::max<int64_t>(budget / d, 1);
  const int64_t max_rows = std::clamp<int64_t>(budget / (d * d), 1, kMaxRows);
  Plan plan;
  plan.n_rows = m.n_rows;
  plan.n_cols = m.n_cols;
  const auto reg = row_regs(m, o);
  const double* rg = reg.data_ptr<double>();

  // Longest rows first, so a batch is padded to the length of its first row.
  std::vector<int64_t> order(static_cast<size_t>(m.n_rows));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return m.row_size(a) > m.row_size(b); });
  for (int64_t start = 0; start < m.n_rows;) {
    const int64_t len = std::max<int64_t>(m.row_size(order[start]), 1);
    const int64_t n = std::min({max_rows, std::max<int64_t>(max_entries / len, 1), m.n_rows - start});
    auto rows = torch::empty({n}, torch::kLong);
    auto cols = torch::full({n, len}, m.n_cols, torch::kLong);
    auto breg = torch::empty({n}, torch::kFloat);
    int64_t* rp = rows.data_ptr<int64_t>();
    int64_t* cp = cols.data_ptr<int64_t>();
    float* bp = breg.data_ptr<float>();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t r = order[start + k];
      rp[k] = r;
      bp[k] = static_cast<float>(rg[r]);
      std::copy(m.row_begin(r), m.row_end(r), cp + k * len);
    }
    plan.batches.push_back({rows.to(device), cols.to(device), breg.to(device)});
    start += n;
  }
  plan.reg = reg.to(device);
  return plan;
}

// Solves A x = b for SPD A [B, d, d], b [B, d] by Cholesky. LibTorch's CPU kernels factor a
// batch one matrix after another on one thread, so the CPU splits the batch across threads.
at::Tensor cholesky_solve_batched(const at::Tensor& a, const at::Tensor& b) {
  auto solve = [](const at::Tensor& as, const at::Tensor& bs) {
    auto [l, info] = torch::linalg_cholesky_ex(as);
    TORCH_CHECK(info.max().item<int64_t>() == 0, "ials: a normal-equation matrix is not positive definite "
                "(numerically); raise model.l2");
    return torch::cholesky_solve(bs.unsqueeze(2), l).squeeze(2);
  };
  if (!a.device().is_cpu()) return solve(a, b);
  auto x = torch::empty_like(b);
  at::parallel_for(0, a.size(0), 1, [&](int64_t begin, int64_t end) {
    x.slice(0, begin, end).copy_(solve(a.slice(0, begin, end), b.slice(0, begin, end)));
  });
  return x;
}

// The half-step over the rows of `plan` given the other side's factors `fixed` [n_cols, d].
// Adds the observed part of L at the new factors, sum c (1 - <x_r, f_j>)^2, to *observed when
// given (nearly free here: F is already gathered).
at::Tensor half_step(const Plan& plan, const at::Tensor& fixed, const IALSOptions& o, double* observed,
                     Distributed* dist = nullptr) {
  const int64_t d = fixed.size(1);
  const double c = 1.0 + o.alpha();
  const auto padded = torch::cat({fixed, torch::zeros({1, d}, fixed.options())});  // [n_cols + 1, d]
  const auto base = torch::matmul(fixed.t(), fixed).mul_(o.unobserved_weight());  // alpha0 G, [d, d]
  auto out = torch::zeros({plan.n_rows, d}, fixed.options());
  auto obs = torch::zeros({}, fixed.options().dtype(torch::kDouble));
  // Distributed: batch k is rank k % world's; each batch's observed loss kept apart, so that the
  // sum runs in batch order as in one process.
  std::vector<double> batch_obs(dist && observed ? plan.batches.size() : 0, 0.0);
  for (size_t k = 0; k < plan.batches.size(); ++k) {
    const SolveBatch& b = plan.batches[k];
    if (dist && static_cast<int>(k % static_cast<size_t>(dist->world())) != dist->rank()) continue;
    const int64_t n = b.cols.size(0), len = b.cols.size(1);
    const auto f = padded.index_select(0, b.cols.reshape({-1})).view({n, len, d});  // [B, L, d]
    auto a = base.expand({n, d, d}).clone();                                          // [B, d, d]
    a.diagonal(0, 1, 2).add_(b.reg.unsqueeze(1));
    a.baddbmm_(f.transpose(1, 2), f, 1.0, c);  // + c F^T F
    const auto x = cholesky_solve_batched(a, f.sum(1).mul_(c));  // [B, d]
    out.index_copy_(0, b.rows, x);
    if (observed) {
      const auto pred = torch::bmm(f, x.unsqueeze(2)).squeeze(2);  // [B, L]; 0 on padding
      const auto real = b.cols.lt(plan.n_cols);                    // padding is not in S
      const auto batch = (1.0 - pred).square_().mul_(real).sum(torch::kDouble);
      if (dist)
        batch_obs[k] = batch.item<double>();
      else
        obs += batch;
    }
  }
  if (dist) {
    // Every row belongs to one batch: the rows other ranks solved are 0 here.
    std::vector<at::Tensor> ts{out};
    if (observed) ts.push_back(torch::from_blob(batch_obs.data(), {static_cast<int64_t>(batch_obs.size())}, torch::kDouble));
    dist->allreduce_sum(ts, "ials: the exchange of a half-step's rows");
    if (observed)
      for (double v : batch_obs) obs += v;
  }
  if (observed) *observed += c * obs.item<double>();
  return out;
}

// The CG half-step on the CPU: for each row r (in parallel; a row's result does not depend on
// the thread count), cg_steps steps of conjugate gradient on A_r x = b_r from x = start_r, with
//   A_r p = alpha0 G p + lambda_r p + c sum_{j in row r} f_j <f_j, p>,   b_r = c sum_j f_j,
// applied without forming A_r: O(d^2 + n_r d) per step instead of the O(n_r d^2 + d^3) of
// forming and factoring A_r. Scratch is per thread; nothing is allocated per row. Every step
// minimises the quadratic L_r over a larger Krylov space containing the previous iterate, so
// L_r, hence L, never increases.
namespace cg {

RZOO_ALWAYS_INLINE float dot(const float* a, const float* b, int64_t d) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

// Asks for one row of the fixed side (64-byte lines) ahead of its use.
RZOO_ALWAYS_INLINE void prefetch_row(const float* f, int64_t d) {
  for (int64_t k = 0; k < d; k += 16) __builtin_prefetch(f + k);
}

RZOO_ALWAYS_INLINE void axpy(float alpha, const float* x, float* y, int64_t d) {
#pragma omp simd
  for (int64_t k = 0; k < d; ++k) y[k] += alpha * x[k];
}

// out = alpha0 G v + lambda v (g holds alpha0 G: symmetric, so row k is column k). Summed as
// rows of G scaled by v_k, four at a time: no horizontal sums (a dot product per output ends in
// one), and out is read and written once per four rows of G.
RZOO_ALWAYS_INLINE void gram(const float* __restrict g, float lambda, const float* __restrict v,
                             float* __restrict out, int64_t d) {
#pragma omp simd
  for (int64_t m = 0; m < d; ++m) out[m] = lambda * v[m];
  int64_t k = 0;
  for (; k + 4 <= d; k += 4) {
    const float *g0 = g + k * d, *g1 = g0 + d, *g2 = g1 + d, *g3 = g2 + d;
    const float v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];
#pragma omp simd
    for (int64_t m = 0; m < d; ++m) out[m] += v0 * g0[m] + v1 * g1[m] + v2 * g2[m] + v3 * g3[m];
  }
  for (; k < d; ++k) axpy(v[k], g + k * d, out, d);
}

// out += sum_{j in [cb, ce)} coef(<f_j, v>) f_j. Four rows of F at a time: their four dot products
// are independent (one row at a time waits on each dot's latency), and out's read-modify-write
// happens once per four rows instead of once per row (that chain bounded the one-row loop).
template <class Coef>
RZOO_ALWAYS_INLINE void add_rows(const float* F, const Csr::Index* cb, const Csr::Index* ce, const float* __restrict v,
                                 Coef coef, float* __restrict out, int64_t d) {
  const Csr::Index* j = cb;
  for (; ce - j >= 4; j += 4) {
    const float *__restrict f0 = F + j[0] * d, *__restrict f1 = F + j[1] * d, *__restrict f2 = F + j[2] * d,
                *__restrict f3 = F + j[3] * d;
    // The rows of the fixed side are gathered in column order, i.e. at random: ask for the next
    // block's rows while this one is used.
    if (ce - j >= 8)
      for (int q = 4; q < 8; ++q) prefetch_row(F + j[q] * d, d);
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < d; ++k) {
      const float vk = v[k];
      s0 += f0[k] * vk;
      s1 += f1[k] * vk;
      s2 += f2[k] * vk;
      s3 += f3[k] * vk;
    }
    const float a0 = coef(s0), a1 = coef(s1), a2 = coef(s2), a3 = coef(s3);
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) out[k] += a0 * f0[k] + a1 * f1[k] + a2 * f2[k] + a3 * f3[k];
  }
  for (; j != ce; ++j) {
    const float* f = F + *j * d;
    axpy(coef(dot(f, v, d)), f, out, d);
  }
}

// out = alpha0 G p + lambda p + c sum_j f_j <f_j, p>: A_r p without forming A_r.
RZOO_ALWAYS_INLINE void apply(const float* g, const float* fixed, const Csr::Index* cb, const Csr::Index* ce, float lambda, float c,
                  const float* p, float* out, int64_t d) {
  gram(g, lambda, p, out, d);
  add_rows(fixed, cb, ce, p, [c](float a) { return c * a; }, out, d);
}

}  // namespace cg

// The rows [begin, end) of a CG half-step (see above); one function for the SIMD clones.
struct CgRows {
  const Csr* m;
  const float* fixed;  // [n_cols, d]
  const float* g;      // alpha0 G, [d, d]
  const double* lam;   // [n_rows]
  float* x;            // [n_rows, d]: the start, overwritten with the result
  double* obs;         // [n_rows] or null: each row's sum of (1 - <f_j, x>)^2
  int64_t d, steps;
  float c;
};

RZOO_SIMD_CLONES void cg_rows(const CgRows& a, int64_t begin, int64_t end) {
  const int64_t d = a.d;
  const float* F = a.fixed;
  std::vector<float> scratch(static_cast<size_t>(3 * d));
  float *r = scratch.data(), *p = r + d, *ap = p + d;
  for (int64_t row = begin; row < end; ++row) {
    float* x = a.x + row * d;
    const Csr::Index* cb = a.m->row_begin(row), *ce = a.m->row_end(row);
    const float l = static_cast<float>(a.lam[row]);
    if (cb == ce) {  // b = 0: the minimiser is exactly 0 (CG from a warm start would only approach it)
      std::fill(x, x + d, 0.f);
      if (a.obs) a.obs[row] = 0.0;
      continue;
    }
    // r = b - A x = sum_j c (1 - <f_j, x>) f_j - (alpha0 G + lambda) x
    cg::gram(a.g, l, x, r, d);
    for (int64_t k = 0; k < d; ++k) r[k] = -r[k];
    const float c = a.c;
    cg::add_rows(F, cb, ce, x, [c](float s) { return c * (1.f - s); }, r, d);
    std::copy(r, r + d, p);
    float rs = cg::dot(r, r, d);
    for (int64_t it = 0; it < a.steps && rs > 1e-20f; ++it) {
      cg::apply(a.g, F, cb, ce, l, a.c, p, ap, d);
      const float pap = cg::dot(p, ap, d);
      if (!(pap > 0.f)) break;  // p = 0 numerically: converged
      const float step = rs / pap;
      cg::axpy(step, p, x, d);
      cg::axpy(-step, ap, r, d);
      const float rs_new = cg::dot(r, r, d);
      const float beta = rs_new / rs;
      for (int64_t k = 0; k < d; ++k) p[k] = r[k] + beta * p[k];
      rs = rs_new;
    }
    if (a.obs) {
      double s = 0.0;
      for (const Csr::Index* j = cb; j != ce; ++j) {
        const double e = 1.0 - cg::dot(F + *j * d, x, d);
        s += e * e;
      }
      a.obs[row] = s;
    }
  }
}

// Distributed fits (core/distributed.h; `dist` non-null only in fit()): each rank solves its
// block of the rows; the blocks are then summed over ranks from zero-filled copies, which is
// exact (x + 0 = x), so every rank holds the single-process factors and loss bit for bit.
void share_rows(Distributed* dist, at::Tensor& out, int64_t lo, int64_t hi, std::vector<double>* obs,
                const char* what) {
  const int64_t n = out.size(0);
  if (lo > 0) out.narrow(0, 0, lo).zero_();
  if (hi < n) out.narrow(0, hi, n - hi).zero_();
  std::vector<at::Tensor> ts{out};
  if (obs) ts.push_back(torch::from_blob(obs->data(), {static_cast<int64_t>(obs->size())}, torch::kDouble));
  dist->allreduce_sum(ts, what);
}

at::Tensor cg_half_step_cpu(const Csr& m, const at::Tensor& reg, const at::Tensor& fixed, const at::Tensor& start,
                            const IALSOptions& o, double* observed, Distributed* dist = nullptr) {
  const int64_t d = fixed.size(1), n = m.n_rows;
  const auto f_t = fixed.contiguous();
  const auto g_t = torch::matmul(f_t.t(), f_t).mul_(o.unobserved_weight()).contiguous();  // alpha0 G, [d, d]
  auto out = start.to(torch::kFloat).contiguous().clone();                                // [n, d]
  const auto reg_c = reg.to(torch::kDouble).contiguous();
  std::vector<double> obs(observed ? static_cast<size_t>(n) : 0, 0.0);
  const CgRows args{&m,
                    f_t.data_ptr<float>(),
                    g_t.data_ptr<float>(),
                    reg_c.data_ptr<double>(),
                    out.data_ptr<float>(),
                    observed ? obs.data() : nullptr,
                    d,
                    o.cg_steps(),
                    static_cast<float>(1.0 + o.alpha())};
  const auto [lo, hi] = dist ? rank_block(n, dist->rank(), dist->world()) : std::pair<int64_t, int64_t>{0, n};
  at::parallel_for(lo, hi, 32, [&](int64_t begin, int64_t end) { cg_rows(args, begin, end); });
  if (dist) share_rows(dist, out, lo, hi, observed ? &obs : nullptr, "ials: the exchange of a half-step's rows");
  if (observed) {
    double s = 0.0;
    for (double v : obs) s += v;  // in row order: the same sum for any thread count
    *observed += (1.0 + o.alpha()) * s;
  }
  return out;
}

// The same CG on other devices (CUDA), batched over the rows of `plan` with tensors.
at::Tensor cg_half_step_batched(const Plan& plan, const at::Tensor& fixed, const at::Tensor& start,
                                const IALSOptions& o, double* observed) {
  const int64_t d = fixed.size(1);
  const double c = 1.0 + o.alpha();
  const auto padded = torch::cat({fixed, torch::zeros({1, d}, fixed.options())});  // [n_cols + 1, d]
  const auto g = torch::matmul(fixed.t(), fixed).mul_(o.unobserved_weight());       // alpha0 G, [d, d]
  auto out = start.clone();
  auto obs = torch::zeros({}, fixed.options().dtype(torch::kDouble));
  for (const SolveBatch& b : plan.batches) {
    const int64_t n = b.cols.size(0), len = b.cols.size(1);
    const auto f = padded.index_select(0, b.cols.reshape({-1})).view({n, len, d});  // [B, L, d]
    const auto lam = b.reg.unsqueeze(1);                                              // [B, 1]
    auto apply = [&](const at::Tensor& v) {                                           // A v, [B, d]
      return torch::matmul(v, g) + lam * v + c * torch::bmm(f.transpose(1, 2), torch::bmm(f, v.unsqueeze(2))).squeeze(2);
    };
    // A row without entries has b = 0 and the exact minimiser 0 (as in the CPU path).
    auto x = out.index_select(0, b.rows) * b.cols.lt(plan.n_cols).any(1, true);
    auto r = f.sum(1).mul_(c) - apply(x);
    auto p = r.clone();
    auto rs = (r * r).sum(1, true);  // [B, 1]
    for (int64_t it = 0; it < o.cg_steps(); ++it) {
      const auto ap = apply(p);
      const auto pap = (p * ap).sum(1, true);
      const auto step = torch::where(pap > 0, rs / pap.clamp_min(1e-30), torch::zeros_like(rs));
      x = x + step * p;
      r = r - step * ap;
      const auto rs_new = (r * r).sum(1, true);
      p = r + torch::where(rs > 0, rs_new / rs.clamp_min(1e-30), torch::zeros_like(rs)) * p;
      rs = rs_new;
    }
    out.index_copy_(0, b.rows, x);
    if (observed) {
      const auto pred = torch::bmm(f, x.unsqueeze(2)).squeeze(2);  // [B, L]; 0 on padding
      obs += (1.0 - pred).square_().mul_(b.cols.lt(plan.n_cols)).sum(torch::kDouble);
    }
  }
  if (observed) *observed += c * obs.item<double>();
  return out;
}

// alpha0 sum_{u,i} <w_u, h_i>^2 + sum_u lambda_u |w_u|^2 + sum_i lambda_i |h_i|^2, in double.
double unobserved_and_reg(const at::Tensor& w, const at::Tensor& h, const at::Tensor& user_reg,
                          const at::Tensor& item_reg, const IALSOptions& o) {
  const auto wd = w.to(torch::kDouble), hd = h.to(torch::kDouble);
  const auto unobserved = (torch::matmul(wd.t(), wd) * torch::matmul(hd.t(), hd)).sum() * o.unobserved_weight();
  const auto reg = (wd.square().sum(1) * user_reg).sum() + (hd.square().sum(1) * item_reg).sum();
  return (unobserved + reg).item<double>();
}

}  // namespace

IALSImpl::IALSImpl(const ModelContext& ctx) : IALSImpl(ctx, IALSOptions::from_config(ctx.config)) {}

IALSImpl::IALSImpl(const ModelContext& ctx, IALSOptions opts)
    : RecommenderImpl("ials", ctx),
      options(opts),
      user_factors(register_buffer("user_factors", torch::zeros({ctx.n_users, std::max<int64_t>(opts.factors(), 1)}))),
      item_factors(register_buffer("item_factors", torch::zeros({ctx.n_items, std::max<int64_t>(opts.factors(), 1)}))) {
  TORCH_CHECK(options.factors() >= 1, "ials: model.factors must be >= 1, got ", options.factors());
  TORCH_CHECK(options.l2() > 0.0, "ials: model.l2 must be > 0, got ", options.l2());
  TORCH_CHECK(options.alpha() >= 0.0, "ials: model.alpha must be >= 0, got ", options.alpha());
  TORCH_CHECK(options.unobserved_weight() >= 0.0, "ials: model.unobserved_weight must be >= 0, got ",
              options.unobserved_weight());
  TORCH_CHECK(options.nu() >= 0.0, "ials: model.nu must be >= 0, got ", options.nu());
  TORCH_CHECK(options.epochs() >= 1, "ials: model.epochs must be >= 1, got ", options.epochs());
  TORCH_CHECK(options.init_std() > 0.0, "ials: model.init_std must be > 0, got ", options.init_std());
}

at::Tensor IALSImpl::solve(const Csr& m, const at::Tensor& fixed) const {
  TORCH_CHECK(fixed.dim() == 2 && fixed.size(0) == m.n_cols && fixed.size(1) == options.factors(), "ials: solve needs [",
              m.n_cols, ", ", options.factors(), "] fixed factors, got ", fixed.sizes());
  torch::NoGradGuard no_grad;
  return half_step(make_plan(m, options, fixed.device()), fixed, options, nullptr);
}

at::Tensor IALSImpl::solve_cg(const Csr& m, const at::Tensor& fixed, const at::Tensor& start, bool batched) const {
  TORCH_CHECK(fixed.dim() == 2 && fixed.size(0) == m.n_cols && fixed.size(1) == options.factors(), "ials: solve_cg needs [",
              m.n_cols, ", ", options.factors(), "] fixed factors, got ", fixed.sizes());
  TORCH_CHECK(start.dim() == 2 && start.size(0) == m.n_rows && start.size(1) == options.factors(),
              "ials: solve_cg needs a [", m.n_rows, ", ", options.factors(), "] start, got ", start.sizes());
  torch::NoGradGuard no_grad;
  if (batched || !fixed.device().is_cpu())
    return cg_half_step_batched(make_plan(m, options, fixed.device()), fixed, start.to(fixed.device()), options, nullptr);
  return cg_half_step_cpu(m, row_regs(m, options), fixed, start, options, nullptr);
}

double IALSImpl::loss(const Csr& train) const {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "ials: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  torch::NoGradGuard no_grad;
  const auto w = user_factors.to(torch::kCPU, torch::kDouble), h = item_factors.to(torch::kCPU, torch::kDouble);
  auto user_reg = torch::empty({n_users_}, torch::kDouble), item_reg = torch::zeros({n_items_}, torch::kDouble);
  std::vector<int64_t> rows;
  rows.reserve(train.indices.size());
  for (int64_t u = 0; u < n_users_; ++u) {
    user_reg.data_ptr<double>()[u] = row_reg(options, train.row_size(u), n_items_);
    rows.insert(rows.end(), train.row_size(u), u);
  }
  std::vector<int64_t> item_counts(static_cast<size_t>(n_items_), 0);
  for (int64_t i : train.indices) ++item_counts[i];
  for (int64_t i = 0; i < n_items_; ++i) item_reg.data_ptr<double>()[i] = row_reg(options, item_counts[i], n_users_);
  const auto all_rows = torch::tensor(rows, torch::kLong), all_cols = torch::tensor(train.indices, torch::kLong);
  double observed = 0.0;
  constexpr int64_t kChunk = 1 << 16;  // pairs per step: [chunk, d] doubles at a time
  for (int64_t s = 0; s < train.nnz(); s += kChunk) {
    const int64_t e = std::min(s + kChunk, train.nnz());
    const auto pred = (w.index_select(0, all_rows.slice(0, s, e)) * h.index_select(0, all_cols.slice(0, s, e))).sum(1);
    observed += (1.0 - pred).square().sum().item<double>();
  }
  observed *= 1.0 + options.alpha();
  return observed + unobserved_and_reg(w, h, user_reg, item_reg, options);
}

void IALSImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "ials: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  torch::NoGradGuard no_grad;
  const auto device = item_factors.device();
  const Csr train_t = transpose(train);
  const bool cg = options.solver() == "cg", native = cg && device.is_cpu();
  // The CPU's CG needs no padded batches: it walks the CSR rows directly.
  const Plan users = native ? Plan{} : make_plan(train, options, device);
  const Plan items = native ? Plan{} : make_plan(train_t, options, device);
  const at::Tensor user_reg = native ? row_regs(train, options) : users.reg,
                   item_reg = native ? row_regs(train_t, options) : items.reg;
  const int64_t d = options.factors();
  // Drawn on the CPU from the global generator, so a seed gives the same start on any device.
  // Only H needs a start: the first half-step solves W from it (CG: from W = 0).
  auto h = (torch::randn({n_items_, d}) * (options.init_std() / std::sqrt(static_cast<double>(d)))).to(device);
  at::Tensor w = torch::zeros({n_users_, d}, h.options());
  // Distributed (core/distributed.h): the rows of each half-step split across the ranks.
  Distributed* dist = Distributed::get();
  loss_history.clear();
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    double observed = 0.0;
    double* obs = record_loss ? &observed : nullptr;
    if (native) {
      w = cg_half_step_cpu(train, user_reg, h, w, options, nullptr, dist);
      h = cg_half_step_cpu(train_t, item_reg, w, h, options, obs, dist);
    } else if (cg) {  // CUDA: every rank solves every row (a GPU solves them faster than they travel)
      w = cg_half_step_batched(users, h, w, options, nullptr);
      h = cg_half_step_batched(items, w, h, options, obs);
    } else {
      w = half_step(users, h, options, nullptr, dist);
      h = half_step(items, w, options, obs, dist);
    }
    if (record_loss) loss_history.push_back(observed + unobserved_and_reg(w, h, user_reg, item_reg, options));
  }
  user_factors.copy_(w);
  item_factors.copy_(h);
}

at::Tensor IALSImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto dev = user_factors.device();
  return (user_factors.index_select(0, users.to(dev)) * item_factors.index_select(0, items.to(dev))).sum(1);
}

at::Tensor IALSImpl::score_all(const at::Tensor& users) {
  return torch::matmul(user_factors.index_select(0, users.to(user_factors.device())), item_factors.t());  // [B, d] x [d, I]
}

at::Tensor IALSImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  const auto idx = items.to(torch::kCPU, torch::kLong).contiguous();
  TORCH_CHECK(idx.dim() == 1, "ials: score_fold_in needs items [n]");
  Csr row;
  row.n_rows = 1;
  row.n_cols = n_items_;
  row.indices.assign(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  std::sort(row.indices.begin(), row.indices.end());
  row.indices.erase(std::unique(row.indices.begin(), row.indices.end()), row.indices.end());
  row.indptr = {0, static_cast<int64_t>(row.indices.size())};
  const auto w = solve(row, item_factors);  // [1, d]: the exact user half-step
  return torch::matmul(item_factors, w[0]);  // [I]
}

std::pair<at::Tensor, at::Tensor> IALSImpl::explain(const at::Tensor& items, int64_t item) {
  torch::NoGradGuard no_grad;
  const auto idx = items.to(torch::kCPU, torch::kLong);
  const auto h = item_factors.detach().to(torch::kCPU);
  const auto f = h.index_select(0, idx);  // [n, d]
  const double n = static_cast<double>(idx.numel());
  double reg = options.l2() * std::pow(n + options.unobserved_weight() * static_cast<double>(n_items_), options.nu());
  if (reg <= 0.0) reg = options.l2();
  const double c = 1.0 + options.alpha();
  // A as score_fold_in's solve builds it; A^-1 h_i once, then c <f_j, A^-1 h_i> per history item.
  const auto a = torch::matmul(h.t(), h).mul_(options.unobserved_weight()) + reg * torch::eye(h.size(1), h.options()) +
                 c * torch::matmul(f.t(), f);
  const auto z = torch::linalg_solve(a, h[item].unsqueeze(1)).squeeze(1);  // [d]
  return {idx, torch::mv(f, z).mul_(c).to(torch::kDouble)};
}

ScriptExport IALSImpl::script_export() const {
  ScriptExport e;
  e.fold_in = true;
  e.explain_kind = "items";
  // alpha0 G = alpha0 H^T H, as the user half-step builds it (in float, like training).
  const auto h = item_factors.detach().to(torch::kCPU);
  e.tensors = {{"user_factors", user_factors.detach().to(torch::kCPU).clone()},
               {"item_factors", h.clone()},
               {"unobserved_gram", torch::matmul(h.t(), h).mul_(options.unobserved_weight())}};
  e.code = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self.user_factors.index_select(0, users) * self.item_factors.index_select(0, items)).sum(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.user_factors.index_select(0, users), self.item_factors.t())
)PY";
  // Fold-in: the user half-step of training for one row (see score_fold_in), with this model's
  // constants: A = alpha0 G + lambda_u I + c F^T F, b = c F^T 1.
  e.code += fmt::format(R"PY(
def _score_fold_in(self, items: Tensor) -> Tensor:
    f = self.item_factors.index_select(0, items)
    reg = {l2:.17g} * (float(items.size(0)) + {a0:.17g} * {n_items}.0) ** {nu:.17g}
    if reg <= 0.0:
        reg = {l2:.17g}
    a = self.unobserved_gram + reg * torch.eye(f.size(1), dtype=f.dtype) + {c:.17g} * torch.matmul(f.t(), f)
    b = {c:.17g} * f.sum(0)
    w = torch.linalg_solve(a, b.unsqueeze(1)).squeeze(1)
    return torch.matmul(self.item_factors, w)

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    f = self.item_factors.index_select(0, items)
    reg = {l2:.17g} * (float(items.size(0)) + {a0:.17g} * {n_items}.0) ** {nu:.17g}
    if reg <= 0.0:
        reg = {l2:.17g}
    a = self.unobserved_gram + reg * torch.eye(f.size(1), dtype=f.dtype) + {c:.17g} * torch.matmul(f.t(), f)
    z = torch.linalg_solve(a, self.item_factors[item].unsqueeze(1)).squeeze(1)
    return items, (torch.mv(f, z) * {c:.17g}).double()
)PY",
                        fmt::arg("l2", options.l2()), fmt::arg("a0", options.unobserved_weight()),
                        fmt::arg("nu", options.nu()), fmt::arg("c", 1.0 + options.alpha()),
                        fmt::arg("n_items", n_items_));  // a literal: a hybrid prefixes every self.<name>
  return e;
}

}  // namespace rzoo
