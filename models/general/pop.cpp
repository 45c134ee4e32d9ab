#include "models/general/pop.h"

#include <torch/torch.h>

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
