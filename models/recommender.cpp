#include "models/recommender.h"

#include <torch/torch.h>

#include "datasets/dataset.h"

namespace rzoo {

const char* to_string(HistoryScope s) {
  switch (s) {
    case HistoryScope::Train: return "train";
    case HistoryScope::TrainValid: return "train+valid";
    case HistoryScope::All: return "all";
  }
  return "?";
}

RecommenderImpl::RecommenderImpl(std::string name, const ModelContext& ctx)
    : torch::nn::Module(std::move(name)), n_users_(ctx.n_users), n_items_(ctx.n_items) {
  TORCH_CHECK(ctx.n_users > 0 && ctx.n_items > 0, "model '", this->name(), "': needs n_users > 0 and n_items > 0, got ",
              ctx.n_users, " and ", ctx.n_items);
}

void RecommenderImpl::fit(const Csr&) {
  TORCH_CHECK(false, "model '", name(), "' is trained by gradient steps (input type ", to_string(input_type()),
              "), not by fit()");
}

UpdateResult RecommenderImpl::fit_update(const ParentFit&, const Csr&) { return {}; }

ScriptExport RecommenderImpl::script_export() const {
  TORCH_CHECK(false, "model '", name(), "' has no TorchScript export");
}

double RecommenderImpl::per_sample_sgd(const Batch&, double) {
  TORCH_CHECK(false, "model '", name(), "' has no native per-sample SGD (has_per_sample_sgd() is false)");
}

at::Tensor RecommenderImpl::score_history(const at::Tensor&) {
  TORCH_CHECK(false, "model '", name(), "' ranks from a user index, not from a history of items (only the sequential models do)");
}

at::Tensor RecommenderImpl::score_fold_in(const at::Tensor&) {
  TORCH_CHECK(false, "model '", name(), "' cannot fold in a new user's history (its scores need a trained user "
              "representation); models that can: bpr, content, ease, gmf, ials, itemknn (ranking mode), mf, mlp, multdae, multvae, ncfmlp, neumf, pop, svdpp, a hybrid of those, and the sequential models "
              "through their own history input");
}

std::pair<at::Tensor, at::Tensor> RecommenderImpl::explain(const at::Tensor&, int64_t) {
  TORCH_CHECK(false, "model '", name(), "' does not explain its recommendations; models that do: bpr, content, ease, "
              "gmf, ials, itemknn (ranking mode), mf");
}

at::Tensor RecommenderImpl::loss(const Batch&) {
  TORCH_CHECK(false, "model '", name(), "' is fitted in closed form; it has no batch loss");
}

at::Tensor& dense_grad(at::Tensor& w) {
  auto& g = w.mutable_grad();
  if (!g.defined()) g = torch::zeros_like(w);
  return g;
}

}  // namespace rzoo
