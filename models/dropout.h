// fast_dropout (Srivastava et al., JMLR 2014) with a fast mask: y = x * m, m = 1 / (1 - p) where a
// counter-based hash of (seed, element index) is >= p, else 0; the seed is one draw from
// LibTorch's default generator per call, so torch::manual_seed makes it reproducible, and the mask
// does not depend on the thread count. The backward pass draws the same mask again from the seed
// (dx = dy * m), so no mask is kept between the passes. Why: Debian's LibTorch (no MKL) draws
// bernoulli_ one element at a time through the locked generator; on SASRec with RecBole's shape
// (ML-100K, batch 2048, 50 positions, dropout 0.5) that draw and its kernel took about 30% of a
// training epoch (perf), and its float masks a share of the peak memory. Other devices and dtypes
// (CUDA) use torch::dropout.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace rzoo {

// x unchanged when !training or p == 0; p in [0, 1).
at::Tensor fast_dropout(const at::Tensor& x, double p, bool training);

// The mask alone ([n] floats: 0 or scale), from `seed` (exposed for tests): element i of a mask is
// the same whatever the thread count and whatever n is beyond i.
void dropout_mask(float* out, int64_t n, double p, uint64_t seed);

// Elements [begin, begin + n) of the same mask (for kernels that apply dropout in their own loops,
// e.g. fused attention: the same values fast_dropout would use at those flat indices).
void dropout_mask_range(float* out, int64_t begin, int64_t n, double p, uint64_t seed);

// One seed from LibTorch's default CPU generator, as fast_dropout draws it.
uint64_t dropout_seed();

}  // namespace rzoo
