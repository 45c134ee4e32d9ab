#include "trainers/fused_adam.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "trainers/adam_kernel.h"

namespace rzoo {

namespace {

// torch::optim::Optimizer's state key for a parameter: the TensorImpl's address, printed in 1.13
// (c10::guts::to_string), the pointer itself in 2.x.
template <typename Key>
Key state_key(at::TensorImpl* impl) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << impl;
    return os.str();
  } else {
    return static_cast<Key>(impl);
  }
}

constexpr int64_t kAdamGrain = int64_t{1} << 18;

bool fusable(const at::Tensor& p) {
  if (!p.grad().defined()) return true;  // skipped, as Adam skips it
  const auto& g = p.grad();
  return p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_contiguous() && g.layout() == at::kStrided &&
         g.device().is_cpu() && g.scalar_type() == at::kFloat && g.is_contiguous() && g.sizes() == p.sizes();
}

}  // namespace

at::Tensor FusedAdam::step(LossClosure closure) {
  gradients_zeroed_ = false;
  // A closure may change the gradients' layout after the check: leave it to Adam.
  if (closure) return Adam::step(closure);
  for (const auto& group : param_groups()) {
    if (static_cast<const torch::optim::AdamOptions&>(group.options()).amsgrad()) return Adam::step(closure);
    for (const auto& p : group.params())
      if (!fusable(p)) return Adam::step(closure);
  }
  torch::NoGradGuard no_grad;
  using Key = typename std::decay_t<decltype(state())>::key_type;
  std::vector<AdamSpan> spans;
  std::vector<AdamConstants> constants;
  std::vector<size_t> span_constants;
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double b1 = std::get<0>(o.betas()), b2 = std::get<1>(o.betas());
    constants.push_back({static_cast<float>(b1), static_cast<float>(1 - b1), static_cast<float>(b2),
                         static_cast<float>(1 - b2), static_cast<float>(o.eps()), static_cast<float>(o.weight_decay())});
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state()[state_key<Key>(p.unsafeGetTensorImpl())];
      if (!slot) {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, at::MemoryFormat::Contiguous));
        s->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Contiguous));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamParamState&>(*slot);
      // A state loaded from a checkpoint may be strided otherwise; the pass needs contiguous moments.
      if (!s.exp_avg().is_contiguous()) s.exp_avg(s.exp_avg().contiguous());
      if (!s.exp_avg_sq().is_contiguous()) s.exp_avg_sq(s.exp_avg_sq().contiguous());
      s.step(s.step() + 1);
      const double t = static_cast<double>(s.step());
      const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
      AdamSpan span;
      span.p = p.data_ptr<float>();
      span.g = p.mutable_grad().data_ptr<float>();
      span.m = s.exp_avg().data_ptr<float>();
      span.v = s.exp_avg_sq().data_ptr<float>();
      span.n = p.numel();
      span.neg_step = static_cast<float>(-(o.lr() / bc1));
      span.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
      spans.push_back(span);
      span_constants.push_back(constants.size() - 1);
    }
  }
  // Spans laid end to end: element e of the whole is element e - start[k] of span k.
  std::vector<int64_t> start(spans.size() + 1, 0);
  for (size_t k = 0; k < spans.size(); ++k) start[k + 1] = start[k] + spans[k].n;
  // A second thread only from 2 x 256 k elements on: below that (BPR-MF on ML-100K, 168 k), waking it
  // cost more than the half pass it took over, and two threads were slower than one.
  at::parallel_for(0, start.back(), kAdamGrain, [&](int64_t begin, int64_t end) {
    size_t k = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), begin) - start.begin()) - 1;
    for (int64_t e = begin; e < end && k < spans.size(); ++k) {
      const int64_t lo = e - start[k], hi = std::min(end, start[k + 1]) - start[k];
      adam_span_update(spans[k], constants[span_constants[k]], lo, hi);
      e = start[k + 1];
    }
  });
  gradients_zeroed_ = true;
  return {};
}

}  // namespace rzoo
