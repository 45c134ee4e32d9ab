// EASE: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
#include "models/general/ease.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <vector>

#include "core/config.h"
#include "datasets/dataset.h"

namespace rzoo {

EASEOptions EASEOptions::from_config(const Config* cfg) {
  EASEOptions o;
  if (!cfg) return o;
  o.l2(cfg->get_double("model.l2"));
  // G + lambda I must be positive definite even for items nobody interacted with (zero rows
  // and columns of G), so lambda = 0 is refused too.
  if (!(o.l2() > 0.0)) cfg->bad("model.l2", fmt::format("must be > 0, got {}", o.l2()));
  return o;
}

EASEImpl::EASEImpl(const ModelContext& ctx) : EASEImpl(ctx, EASEOptions::from_config(ctx.config)) {}

EASEImpl::EASEImpl(const ModelContext& ctx, EASEOptions opts)
    : RecommenderImpl("ease", ctx),
      options(opts),
      item_weights(register_buffer("item_weights", torch::zeros({ctx.n_items, ctx.n_items}))),
      history(register_buffer("history", torch::zeros({ctx.n_users, ctx.n_items}, torch::kByte))) {
  TORCH_CHECK(options.l2() > 0.0, "ease: model.l2 must be > 0, got ", options.l2());
}

void EASEImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "ease: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  const int64_t n_items = n_items_;

  // The users of each item (the transpose, by counting sort), so that row i of G = X^T X is
  // the sum of the rows X_u of item i's users and each thread owns whole rows of G.
  std::vector<int64_t> col_ptr(static_cast<size_t>(n_items) + 1, 0), col_users(train.indices.size());
  for (int64_t item : train.indices) ++col_ptr[static_cast<size_t>(item) + 1];
  for (int64_t i = 0; i < n_items; ++i) col_ptr[i + 1] += col_ptr[i];
  {
    std::vector<int64_t> next(col_ptr.begin(), col_ptr.end() - 1);
    for (int64_t u = 0; u < train.n_rows; ++u)
      for (const int64_t* p = train.row_begin(u); p != train.row_end(u); ++p) col_users[next[*p]++] = u;
  }

  // G = X^T X in double, counting co-occurrences: sum over users of n_u^2 / 2 increments (the
  // upper triangle; rows of X are sorted, so j >= i starts at a binary search), far fewer than
  // the U * I^2 of a dense product.
  auto gram = torch::zeros({n_items, n_items}, torch::kDouble);  // [I, I]
  double* g = gram.data_ptr<double>();
  at::parallel_for(0, n_items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double* row = g + i * n_items;
      for (int64_t p = col_ptr[i]; p < col_ptr[i + 1]; ++p) {
        const int64_t u = col_users[p];
        const int64_t* last = train.row_end(u);
        for (const int64_t* q = std::lower_bound(train.row_begin(u), last, i); q != last; ++q) row[*q] += 1.0;
      }
    }
  });
  // Mirror the upper triangle in place (a copy of G would double the peak memory).
  at::parallel_for(0, n_items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      for (int64_t j = 0; j < i; ++j) g[i * n_items + j] = g[j * n_items + i];
  });
  gram.diagonal().add_(options.l2());

  // P = G^-1 through the Cholesky factor (G is symmetric positive definite): half the work of
  // an LU inverse. On the model's device, where a GPU does it much faster.
  const auto device = item_weights.device();
  gram = gram.to(device);
  auto weights = torch::cholesky_inverse(torch::linalg_cholesky(gram));  // P, [I, I]
  gram = at::Tensor();
  // B_ij = -P_ij / P_jj: column j divided by its diagonal entry; diag(B) = 0.
  weights.div_((-weights.diagonal()).unsqueeze(0));
  weights.fill_diagonal_(0.0);

  auto dense = torch::zeros({n_users_, n_items}, torch::kByte);  // [U, I]
  uint8_t* x = dense.data_ptr<uint8_t>();
  for (int64_t u = 0; u < n_users_; ++u)
    for (const int64_t* p = train.row_begin(u); p != train.row_end(u); ++p) x[u * n_items + *p] = 1;

  torch::NoGradGuard no_grad;
  item_weights.copy_(weights.to(torch::kFloat));
  history.copy_(dense);
}

at::Tensor EASEImpl::score(const at::Tensor& users, const at::Tensor& items) {
  // Each pair gathers a history row and a weight column ([B, I] each): in slices of ~64 MB, so
  // that scoring many pairs (rating metrics over a whole split) stays within memory.
  const auto u = users.to(history.device()), it = items.to(item_weights.device());
  const int64_t n = u.size(0), step = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(n_items_, 1));
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < n; b += step) {
    const int64_t m = std::min(step, n - b);
    const auto x = history.index_select(0, u.narrow(0, b, m)).to(torch::kFloat);  // [m, I]
    const auto w = item_weights.index_select(1, it.narrow(0, b, m)).t();            // [m, I]: B[:, i]
    out.push_back((x * w).sum(1));
  }
  return out.empty() ? torch::zeros({0}, item_weights.options()) : torch::cat(out);
}

at::Tensor EASEImpl::score_all(const at::Tensor& users) {
  const auto x = history.index_select(0, users.to(history.device())).to(torch::kFloat);  // [B, I]
  return torch::matmul(x, item_weights);                                                  // [B, I] x [I, I]
}

ScriptExport EASEImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"item_weights", item_weights.detach().to(torch::kCPU).clone()},
               {"history", history.detach().to(torch::kCPU).clone()}};
  e.code = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    x = self.history.index_select(0, users).float()
    return (x * self.item_weights.index_select(1, items).t()).sum(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.history.index_select(0, users).float(), self.item_weights)
)PY";
  return e;
}

}  // namespace rzoo
