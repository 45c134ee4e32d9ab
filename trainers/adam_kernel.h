// The element-wise Adam update (Kingma & Ba, "Adam: A Method for Stochastic Optimization",
// ICLR 2015) over float arrays, in one pass; plain C++ with no LibTorch header, so that its file
// can be built with -fno-math-errno (GCC does not vectorise sqrt otherwise).
#pragma once
#include <cstdint>

namespace rzoo {

// One parameter's arrays and its step's scalars (torch::optim::Adam's, coupled weight decay):
//   g = grad + weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p += neg_step * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// with neg_step = -lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t), t the parameter's step
// count. LibTorch divides by sqrt(1 - b2^t); a multiply by its reciprocal (computed in double) is
// one long-latency operation fewer per element: the pass is bound by its square root and
// divisions, not by memory (ML-100K NeuMF, 361 k parameters per step).
struct AdamSpan {
  float* p = nullptr;
  float* g = nullptr;  // read, then set to zero (the next step's zero_grad, in the same pass)
  float* m = nullptr;
  float* v = nullptr;
  int64_t n = 0;
  float neg_step = 0, inv_sqrt_bc2 = 1;
};

// Each the float of the double option (1 - b1 rounded once, as LibTorch's scalar arguments are).
struct AdamConstants {
  float b1 = 0.9f, one_minus_b1 = 0.1f, b2 = 0.999f, one_minus_b2 = 0.001f, eps = 1e-8f, weight_decay = 0;
};

// Elements [begin, end) of s (0 <= begin <= end <= s.n); leaves s.g zero there.
void adam_span_update(const AdamSpan& s, const AdamConstants& c, int64_t begin, int64_t end);

}  // namespace rzoo
