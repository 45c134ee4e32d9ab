#include "models/general/pop.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <vector>

#include "datasets/dataset.h"

namespace rzoo {

PopImpl::PopImpl(const ModelContext& ctx)
    : RecommenderImpl("pop", ctx), counts_(register_buffer("counts", torch::zeros({ctx.n_items}))) {}

void PopImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_cols == n_items_, "pop: training matrix has ", train.n_cols, " items, model has ", n_items_);
  auto counts = torch::zeros({n_items_}, torch::kFloat);
  float* c = counts.data_ptr<float>();
  for (int64_t item : train.indices) c[item] += 1.0f;
  torch::NoGradGuard no_grad;
  counts_.copy_(counts);
}

UpdateResult PopImpl::fit_update(const ParentFit& parent, const Csr& train) {
  const at::Tensor old = parent.tensor("counts");
  if (!old.defined() || old.dim() != 1 || old.size(0) != parent.n_items || old.scalar_type() != torch::kFloat)
    return {false, "the parent's checkpoint has no counts of its items"};
  const Csr& before = *parent.train;
  TORCH_CHECK(train.n_rows == before.n_rows && train.n_cols == n_items_, "pop: update matrices of another shape");
  // The parent's counts must be those of its training pairs, or adding to them is not the count
  // of this run's pairs.
  std::vector<float> c(static_cast<size_t>(n_items_), 0.0f);
  for (int64_t item : before.indices) c[static_cast<size_t>(item)] += 1.0f;
  const auto o = old.contiguous();
  const float* op = o.data_ptr<float>();
  for (int64_t i = 0; i < n_items_; ++i)
    if (c[static_cast<size_t>(i)] != (i < parent.n_items ? op[i] : 0.0f))
      return {false, "the parent's counts are not those of its training pairs"};
  // Pairs in only one of the two versions of each changed row: +1 added, -1 removed.
  std::copy(op, op + parent.n_items, c.begin());
  int64_t added = 0, removed = 0;
  for (int64_t u : before.rows_differing(train)) {
    const Csr::Index* a = before.row_begin(u), *ae = before.row_end(u), *b = train.row_begin(u), *be = train.row_end(u);
    while (a != ae || b != be) {
      if (b == be || (a != ae && *a < *b)) {
        c[static_cast<size_t>(*a++)] -= 1.0f;
        ++removed;
      } else if (a == ae || *b < *a) {
        c[static_cast<size_t>(*b++)] += 1.0f;
        ++added;
      } else {
        ++a, ++b;
      }
    }
  }
  torch::NoGradGuard no_grad;
  counts_.copy_(torch::from_blob(c.data(), {n_items_}, torch::kFloat));
  return {true, fmt::format("the parent's counts plus {} added and minus {} removed pairs", added, removed)};
}

at::Tensor PopImpl::score(const at::Tensor& users, const at::Tensor& items) {
  return counts_.index_select(0, items.to(counts_.device()));
}

at::Tensor PopImpl::score_all(const at::Tensor& users) {
  // A fresh [B, I] copy (not an expanded view): callers may mask it in place.
  return counts_.unsqueeze(0).repeat({users.size(0), 1});
}

at::Tensor PopImpl::score_fold_in(const at::Tensor&) { return counts_.clone(); }

ScriptExport PopImpl::script_export() const {
  ScriptExport e;
  e.fold_in = true;
  e.tensors = {{"counts", counts_.detach().to(torch::kCPU).clone()}};
  e.code = R"(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return self.counts.index_select(0, items)

def _score_all(self, users: Tensor) -> Tensor:
    return self.counts.unsqueeze(0).repeat(users.size(0), 1)

def _score_fold_in(self, items: Tensor) -> Tensor:
    return self.counts.clone()
)";
  return e;
}

}  // namespace rzoo
