// EASE: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
#include "models/general/ease.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/config.h"
#include "core/linalg.h"
#include "datasets/dataset.h"

namespace rzoo {

EASEOptions EASEOptions::from_config(const Config* cfg) {
  EASEOptions o;
  if (!cfg) return o;
  o.l2(cfg->get_double("model.l2"));
  // G + lambda I must be positive definite even for items nobody interacted with (zero rows
  // and columns of G), so lambda = 0 is refused too.
  if (!(o.l2() > 0.0)) cfg->bad("model.l2", fmt::format("must be > 0, got {}", o.l2()));
  if (cfg->has("model.precision")) o.precision(cfg->get_choice("model.precision", {"auto", "float32", "float64"}));
  return o;
}

EASEImpl::EASEImpl(const ModelContext& ctx) : EASEImpl(ctx, EASEOptions::from_config(ctx.config)) {}

EASEImpl::EASEImpl(const ModelContext& ctx, EASEOptions opts)
    : RecommenderImpl("ease", ctx),
      options(opts),
      item_weights(register_buffer("item_weights", torch::zeros({ctx.n_items, ctx.n_items}))),
      history_indptr(register_buffer("history_indptr", torch::zeros({ctx.n_users + 1}, torch::kLong))),
      history_items(register_buffer("history_items",
                                    torch::zeros({ctx.split ? ctx.split->train.nnz() : int64_t{0}}, torch::kLong))) {
  TORCH_CHECK(options.l2() > 0.0, "ease: model.l2 must be > 0, got ", options.l2());
}

namespace {
// Precision of the inverse. float32 took about half the time of float64 through LAPACK (LibTorch
// 1.13, the NCF ML-1M train's G, 3,706 items, one core: 1.0 s against 1.7 s; float32 now goes by
// blocks, core/linalg.h: 0.36-0.39 s on the AVX-512 Xeon) and gave the same top-10
// lists but for 0.01-0.03% of positions (near-ties) at lambda 1-250 there. But a near-singular G with a tiny lambda loses
// everything in float32 (its factorisation may even "succeed" on rounding noise), so "auto"
// takes float32 only where the condition number of G + lambda I, bounded by its largest row
// sum over lambda (Gershgorin), times float32's epsilon stays below 1e-2. Row i of G sums to
// the number of items of each of item i's users.
// The transpose of x's first n_items columns by counting sort: item i's users, ascending, at
// users[ptr[i] .. ptr[i + 1]).
struct ItemUsers {
  std::vector<int64_t> ptr, users;
};
ItemUsers item_users(const Csr& x, int64_t n_items) {
  ItemUsers t{std::vector<int64_t>(static_cast<size_t>(n_items) + 1, 0), std::vector<int64_t>(x.indices.size())};
  for (int64_t item : x.indices) ++t.ptr[static_cast<size_t>(item) + 1];
  for (int64_t i = 0; i < n_items; ++i) t.ptr[i + 1] += t.ptr[i];
  std::vector<int64_t> next(t.ptr.begin(), t.ptr.end() - 1);
  for (int64_t u = 0; u < x.n_rows; ++u)
    for (const Csr::Index* p = x.row_begin(u); p != x.row_end(u); ++p) t.users[next[*p]++] = u;
  return t;
}

bool single_precision(const EASEOptions& o, const Csr& train) {
  if (o.precision() != "auto") return o.precision() == "float32";
  std::vector<double> row_sum(static_cast<size_t>(train.n_cols), 0.0);
  for (int64_t u = 0; u < train.n_rows; ++u)
    for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p)
      row_sum[static_cast<size_t>(*p)] += static_cast<double>(train.row_size(u));
  const double max_row = row_sum.empty() ? 0.0 : *std::max_element(row_sum.begin(), row_sum.end());
  return (max_row + o.l2()) / o.l2() * 1.2e-7 <= 1e-2;
}
}  // namespace

void EASEImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "ease: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  const int64_t n_items = n_items_;

  // The users of each item, so that row i of G = X^T X is the sum of the rows X_u of item i's
  // users and each thread owns whole rows of G.
  const ItemUsers cols = item_users(train, n_items);
  const std::vector<int64_t>& col_ptr = cols.ptr;
  const std::vector<int64_t>& col_users = cols.users;

  const bool single = single_precision(options, train);

  // The lower triangle of G = X^T X (all that the Cholesky factorisation reads), counting
  // co-occurrences: sum over users of n_u^2 / 2 increments (rows of X are sorted, so j <= i ends
  // at a binary search), far fewer than the U * I^2 of a dense product. Counts below 2^24 are
  // exact in float32, which halves the memory traffic.
  auto fill_lower = [&](auto* g) {
    at::parallel_for(0, n_items, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        auto* row = g + i * n_items;
        for (int64_t p = col_ptr[i]; p < col_ptr[i + 1]; ++p) {
          const int64_t u = col_users[p];
          const Csr::Index* first = train.row_begin(u);
          for (const Csr::Index* q = first, *last = std::upper_bound(first, train.row_end(u), i); q != last; ++q)
            row[*q] += 1;
        }
      }
    });
  };
  // G + lambda I in `dtype` on the model's device.
  auto build = [&](c10::ScalarType dtype) {
    auto gram = torch::zeros({n_items, n_items}, dtype);
    if (dtype == torch::kFloat) fill_lower(gram.data_ptr<float>());
    else fill_lower(gram.data_ptr<double>());
    gram.diagonal().add_(options.l2());
    return gram.to(item_weights.device());
  };
  // P = G^-1 (G is symmetric positive definite), in place from G's lower triangle: in float32 by
  // blocks through matrix products (core/linalg.h; LAPACK's Cholesky factor and inverse on a GPU
  // and in float64), half the work of an LU inverse. On the model's device, where a GPU does it
  // much faster. A float32 inverse that meets a pivot block that is not positive definite is
  // redone in float64.
  at::Tensor weights;  // P, [I, I], full
  if (single && train.n_rows < (int64_t{1} << 24)) {
    at::Tensor g = build(torch::kFloat);
    if (spd_inverse_lower_(g)) weights = g;
  }
  if (!weights.defined()) weights = torch::cholesky_inverse(torch::linalg_cholesky(build(torch::kDouble)));
  // B_ij = -P_ij / P_jj: column j divided by its diagonal entry; diag(B) = 0.
  weights.div_((-weights.diagonal()).unsqueeze(0));
  weights.fill_diagonal_(0.0);

  torch::NoGradGuard no_grad;
  item_weights.set_(weights.to(torch::kFloat).contiguous());  // no copy when already float32
  // set_ keeps the registered buffers (their size follows the data).
  history_indptr.set_(torch::tensor(train.indptr, torch::kLong).to(history_indptr.device()));
  history_items.set_(torch::tensor(train.indices, torch::kLong).reshape({train.nnz()}).to(history_items.device()));
}

UpdateResult EASEImpl::fit_update(const ParentFit& parent, const Csr& train) {
  if (!item_weights.device().is_cpu()) return {false, "the update of the inverse runs on the CPU only"};
  const int64_t I = n_items_, I0 = parent.n_items, U0 = parent.n_users;
  const Csr& before = *parent.train;
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == I && before.n_rows == n_users_ && before.n_cols == I,
              "ease: update matrices of another shape");
  const at::Tensor B0 = parent.tensor("item_weights"), hp = parent.tensor("history_indptr"),
                   hi = parent.tensor("history_items");
  if (!B0.defined() || B0.dim() != 2 || B0.size(0) != I0 || B0.size(1) != I0 || B0.scalar_type() != torch::kFloat ||
      !hp.defined() || !hi.defined())
    return {false, "the parent's checkpoint lacks B or its training pairs"};
  // The parent's stored training pairs must be `before`: P is recovered from them.
  {
    const auto a = hp.to(torch::kLong).contiguous(), b = hi.to(torch::kLong).contiguous();
    const int64_t nnz0 = before.indptr[static_cast<size_t>(U0)];
    if (a.numel() != U0 + 1 || b.numel() != nnz0 || before.nnz() != nnz0 ||
        !std::equal(before.indptr.begin(), before.indptr.begin() + U0 + 1, a.data_ptr<int64_t>()) ||
        !std::equal(before.indices.begin(), before.indices.end(), b.data_ptr<int64_t>()))
      return {false, "the parent's training pairs are not those of its split"};
  }
  // V's columns: each changed user's new row (sign +1) and old row (sign -1, where it had one).
  const std::vector<int64_t> changed = before.rows_differing(train);
  std::vector<int64_t> v_items, v_offsets;
  std::vector<double> sign;
  for (int64_t u : changed) {
    v_offsets.push_back(static_cast<int64_t>(v_items.size()));
    v_items.insert(v_items.end(), train.row_begin(u), train.row_end(u));
    sign.push_back(1.0);
    if (before.row_size(u) > 0) {
      v_offsets.push_back(static_cast<int64_t>(v_items.size()));
      v_items.insert(v_items.end(), before.row_begin(u), before.row_end(u));
      sign.push_back(-1.0);
    }
  }
  const auto r = static_cast<int64_t>(sign.size());
  if (4 * r > I)
    return {false, fmt::format("the change of G has rank {} (two per changed user), over a quarter of the {} items, "
                               "where a refit costs less", r, I)};
  const auto dtype = single_precision(options, train) ? torch::kFloat : torch::kDouble;
  torch::NoGradGuard no_grad;

  // The diagonal p of P0 = G0^-1 from B0 = I - P0 diag(p)^-1: G0 (I - B0) = diag(p)^-1, so
  // 1 / p_j = G0_jj - (G0 B0)_jj = c_j + lambda - sum over j's users u of sum_{i in u} B0_ij
  // (B0_jj = 0). Row j of B0^T is contiguous, so each sum gathers from one cached row.
  const double lambda = options.l2();
  std::vector<double> p(static_cast<size_t>(I0), 0.0);
  {
    const ItemUsers cols = item_users(before, I0);  // the parent's items only: its pairs are within them
    const std::vector<int64_t>& col_ptr = cols.ptr;
    const std::vector<int64_t>& col_users = cols.users;
    const auto BT = B0.t().contiguous();
    const float* bt = BT.data_ptr<float>();
    std::atomic<bool> bad{false};
    at::parallel_for(0, I0, 16, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        const float* row = bt + j * I0;
        double s = 0.0;
        for (int64_t q = col_ptr[j]; q < col_ptr[j + 1]; ++q) {
          const int64_t u = col_users[q];
          for (const Csr::Index* it = before.row_begin(u); it != before.row_end(u); ++it) s += row[*it];
        }
        const double inv = static_cast<double>(col_ptr[j + 1] - col_ptr[j]) + lambda - s;
        p[j] = 1.0 / inv;
        if (!(inv > 0) || !std::isfinite(p[j])) bad = true;
      }
    });
    if (bad) return {false, "the parent's B does not give a positive diagonal of P (not its training pairs' fit?)"};
  }
  // P0 = (I - B0) diag(p), grown by the new items (no pairs before: their rows of G0 are
  // lambda e_i, of P0 e_i / lambda).
  auto P = torch::zeros({I, I}, dtype);
  {
    auto top = P.narrow(0, 0, I0).narrow(1, 0, I0);
    top.copy_(B0).neg_();
    top.diagonal().fill_(1.0);
    top.mul_(torch::from_blob(p.data(), {1, I0}, torch::kDouble).to(dtype));
    if (I > I0) P.diagonal().narrow(0, I0, I - I0).fill_(1.0 / lambda);
  }
  // Woodbury: G = G0 + V S V^T gives P = P0 - (P0 V) (S + V^T P0 V)^-1 (V^T P0), with V^T P0 the
  // sums of P0's rows at each column's items ([r, I]; P0 is symmetric).
  if (r > 0) {
    const auto items = torch::from_blob(v_items.data(), {static_cast<int64_t>(v_items.size())}, torch::kLong);
    const auto offsets = torch::from_blob(v_offsets.data(), {r}, torch::kLong);
    const auto W = std::get<0>(torch::embedding_bag(P, items, offsets, false, 0)).to(torch::kDouble);  // [r, I]
    auto M = std::get<0>(torch::embedding_bag(W.t().contiguous(), items, offsets, false, 0)).t();       // [r, r]
    M = M + torch::diag(torch::from_blob(sign.data(), {r}, torch::kDouble));
    const auto Z = torch::linalg_solve(M, W);  // [r, I]
    P.addmm_(W.t().to(dtype), Z.to(dtype), 1.0, -1.0);
  }
  // The check: G P z = z for four random z (seeded), G z computed from the pairs.
  double rel = 0.0;
  {
    auto gen = at::detail::createCPUGenerator(0x5EA5E);
    const auto z = at::normal(0.0, 1.0, {I, 4}, gen, torch::TensorOptions().dtype(torch::kDouble));
    const auto y = torch::mm(P, z.to(dtype)).to(torch::kDouble).contiguous();  // [I, 4]
    const double* yp = y.data_ptr<double>();
    auto g = (y * lambda).contiguous();  // G y = X^T (X y) + lambda y
    double* gp = g.data_ptr<double>();
    for (int64_t u = 0; u < train.n_rows; ++u) {
      double xy[4] = {0, 0, 0, 0};
      for (const Csr::Index* it = train.row_begin(u); it != train.row_end(u); ++it)
        for (int c = 0; c < 4; ++c) xy[c] += yp[*it * 4 + c];
      for (const Csr::Index* it = train.row_begin(u); it != train.row_end(u); ++it)
        for (int c = 0; c < 4; ++c) gp[*it * 4 + c] += xy[c];
    }
    rel = (g - z).norm().item<double>() / z.norm().item<double>();
  }
  constexpr double kTolerance = 1e-3;
  if (!(rel <= kTolerance))
    return {false, fmt::format("the updated inverse misses G P = I by {:.1e} (|G P z - z| / |z|, over {:.0e})", rel,
                               kTolerance)};
  // B_ij = -P_ij / P_jj, diag(B) = 0, as fit() does.
  P.div_((-P.diagonal()).unsqueeze(0));
  P.fill_diagonal_(0.0);
  item_weights.set_(P.to(torch::kFloat).contiguous());
  history_indptr.set_(torch::tensor(train.indptr, torch::kLong));
  history_items.set_(torch::tensor(train.indices, torch::kLong).reshape({train.nnz()}));
  return {true, fmt::format("Woodbury update of rank {} ({} changed users, {} new items) of the parent's inverse, in "
                            "{}; |G P z - z| / |z| = {:.1e}", r, changed.size(), I - I0,
                            dtype == torch::kFloat ? "float32" : "float64", rel)};
}

namespace {
// For each of the [P] users, the positions of their items in history_items, flat, each
// position's row (0..P-1), and each user's offset in that flat list (an embedding_bag offset):
// the segments of a CSR gather, vectorised.
struct HistoryPositions {
  at::Tensor pos, row, first;  // [n], [n], [P]
};
HistoryPositions history_positions(const at::Tensor& indptr, const at::Tensor& users) {
  const auto start = indptr.index_select(0, users), count = indptr.index_select(0, users + 1) - start;  // [P]
  const auto first = count.cumsum(0) - count;                                       // [P]
  const auto base = torch::repeat_interleave(start - first, count);                // [n]
  const auto pos = base + torch::arange(base.size(0), base.options());              // [n]
  const auto row = torch::repeat_interleave(torch::arange(users.size(0), users.options()), count);  // [n]
  return {pos, row, first};
}
}  // namespace

at::Tensor EASEImpl::score(const at::Tensor& users, const at::Tensor& items) {
  // X_u . B[:, i] = sum of B[j, i] over u's items j: one entry per (pair, history item), in
  // slices of pairs of at most ~4M entries, so that scoring many pairs stays within memory.
  const auto dev = history_indptr.device();
  const auto u = users.to(dev), it = items.to(dev);
  const auto counts = (history_indptr.index_select(0, u + 1) - history_indptr.index_select(0, u)).to(torch::kCPU);
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t n = u.size(0);
  const auto flat = item_weights.view({-1});
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < n;) {
    int64_t e = b, entries = 0;
    while (e < n && (e == b || entries + c[e] <= (int64_t{1} << 22))) entries += c[e++];
    const auto [pos, row, first] = history_positions(history_indptr, u.slice(0, b, e));
    const auto idx = history_items.index_select(0, pos) * n_items_ + it.slice(0, b, e).index_select(0, row);
    out.push_back(torch::zeros({e - b}, item_weights.options()).index_add_(0, row, flat.index_select(0, idx)));
    b = e;
  }
  return out.empty() ? torch::zeros({0}, item_weights.options()) : torch::cat(out);
}

at::Tensor EASEImpl::score_all(const at::Tensor& users) {
  const auto [pos, row, first] = history_positions(history_indptr, users.to(history_indptr.device()));
  // Sum of B's rows at the user's items: [B, I], nnz_batch * I work (a user without items: 0).
  return std::get<0>(torch::embedding_bag(item_weights, history_items.index_select(0, pos), first, false, 0));
}

at::Tensor EASEImpl::score_fold_in(const at::Tensor& items) {
  const auto idx = items.to(item_weights.device(), torch::kLong);
  TORCH_CHECK(idx.dim() == 1, "ease: score_fold_in needs items [n]");
  return item_weights.index_select(0, idx).sum(0);  // [I]
}

std::pair<at::Tensor, at::Tensor> EASEImpl::explain(const at::Tensor& items, int64_t item) {
  torch::NoGradGuard no_grad;
  const auto idx = items.to(torch::kCPU, torch::kLong);
  const auto w = item_weights.index_select(1, torch::tensor({item}, torch::kLong).to(item_weights.device())).squeeze(1);  // [I]
  return {idx, w.to(torch::kCPU).index_select(0, idx).to(torch::kDouble)};
}

ScriptExport EASEImpl::script_export() const {
  ScriptExport e;
  e.fold_in = true;
  e.explain_kind = "items";
  e.tensors = {{"item_weights", item_weights.detach().to(torch::kCPU).clone()},
               {"history_indptr", history_indptr.detach().to(torch::kCPU).clone()},
               {"history_items", history_items.detach().to(torch::kCPU).clone()}};
  e.code = R"PY(
def _positions(self, users: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    start = self.history_indptr.index_select(0, users)
    count = self.history_indptr.index_select(0, users + 1) - start
    first = count.cumsum(0) - count
    base = torch.repeat_interleave(start - first, count)
    pos = base + torch.arange(base.size(0))
    row = torch.repeat_interleave(torch.arange(users.size(0)), count)
    return pos, row, first

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    pos, row, first = self._positions(users)
    idx = self.history_items.index_select(0, pos) * self.item_weights.size(1) + items.index_select(0, row)
    out = torch.zeros([users.size(0)], dtype=self.item_weights.dtype)
    return out.index_add_(0, row, self.item_weights.view(-1).index_select(0, idx))

def _score_all(self, users: Tensor) -> Tensor:
    pos, row, first = self._positions(users)
    bags = torch.embedding_bag(self.item_weights, self.history_items.index_select(0, pos), first, False, 0)
    return bags[0]

def _score_fold_in(self, items: Tensor) -> Tensor:
    return self.item_weights.index_select(0, items).sum(0)

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    return items, self.item_weights[:, item].index_select(0, items).double()
)PY";
  return e;
}

}  // namespace rzoo
