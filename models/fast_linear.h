// y = x W^T + b (torch::linear) with its products through core/gemm.h, forward and backward: oneDNN's
// sgemm where the process has it, which is faster than the OpenBLAS that torch::linear reaches on
// the skinny products of recommender models (core/gemm.h gives the measurements). For CPU float32
// tensors while oneDNN is active; anything else goes to torch::linear. The same values as
// torch::linear up to float rounding (tests/test_gemm.cpp), and no random numbers drawn.
#pragma once
#include <ATen/core/Tensor.h>

namespace rzoo {

// x [..., in], W [out, in] (a view is fine: W.narrow(0, ..)), b [out] or undefined -> [..., out].
at::Tensor fast_linear(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b = at::Tensor());
// A torch::nn::Linear's forward through fast_linear (its weight and bias).
template <class LinearModule>
at::Tensor linear(const LinearModule& m, const at::Tensor& x) {
  return fast_linear(x, m->weight, m->bias);
}

}  // namespace rzoo
