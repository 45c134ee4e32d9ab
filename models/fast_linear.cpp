#include "models/fast_linear.h"

#include <torch/torch.h>

#include "core/gemm.h"

namespace rzoo {

namespace {
// A 2-D matrix as gemm_into reads it: itself, or a contiguous copy.
at::Tensor gemm_ready(const at::Tensor& t) { return gemm_readable(t) ? t : t.contiguous(); }

struct FastLinearFn : public torch::autograd::Function<FastLinearFn> {
  // b: the bias, or an empty tensor for none (an undefined tensor cannot be an input of apply()).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& W,
                            const at::Tensor& b_or_empty) {
    const at::Tensor b = b_or_empty.numel() > 0 ? b_or_empty : at::Tensor();
    const int64_t in = W.size(1), out = W.size(0);
    const at::Tensor x2 = gemm_ready(x.reshape({-1, in}));  // [N, in]
    at::Tensor y2;                                           // [N, out]
    if (b.defined()) {
      // The bias rows, then += x2 W^T. A copy into a new tensor: expand().contiguous() of one row
      // would be the bias itself, which the product would then overwrite.
      y2 = at::empty({x2.size(0), out}, x2.options());
      y2.copy_(b.unsqueeze(0).expand({x2.size(0), out}));
      gemm_into(y2, x2, W.t(), 1.0f);
    } else {
      y2 = gemm(x2, W.t());
    }
    ctx->save_for_backward({x2, W});
    ctx->saved_data["has_bias"] = b.defined();
    ctx->saved_data["x_shape"] = x.sizes().vec();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out;
    return y2.view(shape);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x2 = saved[0];
    const at::Tensor& W = saved[1];
    const at::Tensor dy = gemm_ready(g[0].reshape({-1, W.size(0)}));  // [N, out]
    at::Tensor dx, dW, db;
    if (ctx->needs_input_grad(0)) dx = gemm(dy, W).view(ctx->saved_data["x_shape"].toIntVector());  // [..., in]
    if (ctx->needs_input_grad(1)) dW = gemm(dy.t(), x2);                                              // [out, in]
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) db = dy.sum(0);           // [out]
    return {dx, dW, db};
  }
};
}  // namespace

at::Tensor fast_linear(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b) {
  const bool cpu_float = x.device().is_cpu() && W.device().is_cpu() && x.scalar_type() == at::kFloat &&
                         W.scalar_type() == at::kFloat && (!b.defined() || b.scalar_type() == at::kFloat);
  if (!cpu_float || !onednn_gemm_active() || x.dim() < 1 || x.size(-1) != W.size(1) || x.numel() == 0)
    return torch::linear(x, W, b);
  return FastLinearFn::apply(x, W, b.defined() ? b : at::empty({0}, W.options()));
}

}  // namespace rzoo
