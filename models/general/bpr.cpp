#include "models/general/bpr.h"

#include <torch/torch.h>

#include "core/config.h"

namespace rzoo {

BPROptions BPROptions::from_config(const Config* cfg) {
  BPROptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  return o;
}

BPRImpl::BPRImpl(const ModelContext& ctx) : BPRImpl(ctx, BPROptions::from_config(ctx.config)) {}

BPRImpl::BPRImpl(const ModelContext& ctx, BPROptions opts)
    : RecommenderImpl("bpr", ctx),
      options(opts),
      user_emb(register_module("user_emb", torch::nn::Embedding(ctx.n_users, opts.embedding_size()))),
      item_emb(register_module("item_emb", torch::nn::Embedding(ctx.n_items, opts.embedding_size()))) {
  torch::NoGradGuard no_grad;
  user_emb->weight.normal_(0.0, options.init_std());
  item_emb->weight.normal_(0.0, options.init_std());
}

at::Tensor BPRImpl::loss(const Batch& b) {
  const auto u = user_emb(b.users);                      // [B, D]
  const auto diff = item_emb(b.items) - item_emb(b.neg_items);  // [B, D]
  // -log sigmoid(x) = softplus(-x), numerically stable for large |x|.
  return torch::nn::functional::softplus(-(u * diff).sum(1)).mean();
}

at::Tensor BPRImpl::score(const at::Tensor& users, const at::Tensor& items) {
  return (user_emb(users) * item_emb(items)).sum(1);
}

at::Tensor BPRImpl::score_all(const at::Tensor& users) {
  return torch::matmul(user_emb(users), item_emb->weight.t());  // [B, D] x [D, I]
}

ScriptExport BPRImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"user_emb", user_emb->weight.detach().to(torch::kCPU).clone()},
               {"item_emb", item_emb->weight.detach().to(torch::kCPU).clone()}};
  e.code = R"(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self.user_emb.index_select(0, users) * self.item_emb.index_select(0, items)).sum(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.user_emb.index_select(0, users), self.item_emb.t())
)";
  return e;
}

}  // namespace rzoo
