#include "trainers/adam_kernel.h"

#include <cmath>

#include "core/simd.h"

namespace rzoo {

namespace {

// kDecay false: the common case (no weight decay) carries no multiply by zero. Always inlined
// (core/simd.h), so that each clone of adam_span_update vectorises it for its own instruction set.
template <bool kDecay>
RZOO_ALWAYS_INLINE void adam_loop(const AdamSpan& s, const AdamConstants& c, int64_t begin, int64_t end) {
  float* __restrict P = s.p;
  float* __restrict G = s.g;
  float* __restrict M = s.m;
  float* __restrict V = s.v;
  const float b1 = c.b1, b2 = c.b2, omb1 = c.one_minus_b1, omb2 = c.one_minus_b2, eps = c.eps, wd = c.weight_decay;
  const float neg_step = s.neg_step, inv_sqrt_bc2 = s.inv_sqrt_bc2;
  for (int64_t i = begin; i < end; ++i) {
    const float g = kDecay ? G[i] + wd * P[i] : G[i];
    G[i] = 0.0f;
    const float m = M[i] * b1 + omb1 * g;
    const float v = V[i] * b2 + omb2 * g * g;
    M[i] = m;
    V[i] = v;
    P[i] = P[i] + neg_step * (m / (std::sqrt(v) * inv_sqrt_bc2 + eps));
  }
}

}  // namespace

// The operations and their order are torch::optim::Adam's (mul_ then add_, addcmul_, sqrt then
// scale then add eps, addcdiv_), each in float as LibTorch computes float tensors, except that the
// bias correction of the square root is a multiply by its reciprocal, not a divide; LibTorch's
// vector kernels may fuse a multiply-add where this loop does not (or the other way round), so
// results agree to float rounding, not bit for bit (tests/test_optim.cpp).
RZOO_SIMD_CLONES void adam_span_update(const AdamSpan& s, const AdamConstants& c, int64_t begin, int64_t end) {
  if (c.weight_decay != 0.0f) adam_loop<true>(s, c, begin, end);
  else adam_loop<false>(s, c, begin, end);
}

}  // namespace rzoo
