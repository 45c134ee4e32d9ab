#include "trainers/lazy_adam.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace rzoo {

LazyAdam::LazyAdam(std::vector<at::Tensor> params, torch::optim::AdamOptions options)
    : torch::optim::Optimizer(std::move(params), std::make_unique<torch::optim::AdamOptions>(options)), opt_(options) {
  TORCH_CHECK(options.lr() >= 0, "train.lr must be >= 0, got ", options.lr());
  const size_t n = param_groups()[0].params().size();
  steps_.assign(n, 0);
  m_.resize(n);
  v_.resize(n);
}

at::Tensor LazyAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode grad(true);
    loss = closure();
  }
  const double lr = opt_.lr(), eps = opt_.eps(), wd = opt_.weight_decay();
  const double b1 = std::get<0>(opt_.betas()), b2 = std::get<1>(opt_.betas());
  auto& params = param_groups()[0].params();  // (parameters() warns on every call in 1.13)
  for (size_t k = 0; k < params.size(); ++k) {
    auto& p = params[k];
    if (!p.grad().defined()) continue;
    auto grad = p.grad();
    // Row-sparse gradients ([N, D] with sparse rows, as embeddings give) take the lazy path;
    // any other sparse layout is applied densely.
    if (grad.is_sparse() && grad.sparse_dim() != 1) grad = grad.to_dense();
    if (!m_[k].defined()) {
      m_[k] = torch::zeros_like(p, at::MemoryFormat::Preserve);
      v_[k] = torch::zeros_like(p, at::MemoryFormat::Preserve);
    }
    const int64_t t = ++steps_[k];
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(b2, static_cast<double>(t));
    if (grad.is_sparse()) {
      // Rows of a [N, D] table: coalescing sums repeated rows of the batch.
      grad = grad.coalesce();
      const auto rows = grad._indices().select(0, 0);  // [n]
      auto g = grad._values();                          // [n, D]
      if (rows.numel() == 0) continue;
      auto pr = p.index_select(0, rows);
      if (wd != 0) g = g + wd * pr;
      auto mr = m_[k].index_select(0, rows).mul_(b1).add_(g, 1.0 - b1);
      auto vr = v_[k].index_select(0, rows).mul_(b2).addcmul_(g, g, 1.0 - b2);
      m_[k].index_copy_(0, rows, mr);
      v_[k].index_copy_(0, rows, vr);
      const auto denom = (vr.sqrt() / std::sqrt(bc2)).add_(eps);
      pr.addcdiv_(mr, denom, -lr / bc1);
      p.index_copy_(0, rows, pr);
    } else {
      if (wd != 0) grad = grad.add(p, wd);
      m_[k].mul_(b1).add_(grad, 1.0 - b1);
      v_[k].mul_(b2).addcmul_(grad, grad, 1.0 - b2);
      const auto denom = (v_[k].sqrt() / std::sqrt(bc2)).add_(eps);
      p.addcdiv_(m_[k], denom, -lr / bc1);
    }
  }
  return loss;
}

void LazyAdam::save(torch::serialize::OutputArchive& archive) const {
  archive.write("lazy_adam", torch::tensor({static_cast<int64_t>(steps_.size())}, torch::kLong));
  for (size_t k = 0; k < steps_.size(); ++k) {
    archive.write("step_" + std::to_string(k), torch::tensor({steps_[k]}, torch::kLong));
    if (m_[k].defined()) {
      archive.write("m_" + std::to_string(k), m_[k]);
      archive.write("v_" + std::to_string(k), v_[k]);
    }
  }
}

void LazyAdam::load(torch::serialize::InputArchive& archive) {
  at::Tensor n;
  if (!archive.try_read("lazy_adam", n) || n.numel() != 1 || n.item<int64_t>() != static_cast<int64_t>(steps_.size()))
    fail("the optimizer state is not a lazy_adam state for these {} parameters", steps_.size());
  const auto& params = param_groups()[0].params();
  for (size_t k = 0; k < steps_.size(); ++k) {
    at::Tensor s, m, v;
    if (!archive.try_read("step_" + std::to_string(k), s) || s.numel() != 1)
      fail("the lazy_adam state has no step count for parameter {}", k);
    steps_[k] = s.item<int64_t>();
    if (archive.try_read("m_" + std::to_string(k), m) && archive.try_read("v_" + std::to_string(k), v)) {
      if (m.sizes() != params[k].sizes() || v.sizes() != params[k].sizes())
        fail("the lazy_adam state of parameter {} has the wrong shape", k);
      m_[k] = m.to(params[k].device());
      v_[k] = v.to(params[k].device());
    } else {
      m_[k] = at::Tensor();
      v_[k] = at::Tensor();
    }
  }
}

}  // namespace rzoo
