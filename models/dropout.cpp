#include "models/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <mutex>

#include "core/simd.h"

namespace rzoo {

namespace {

// Elements per block: each block hashes its own key from (seed, block index), so the mask is
// independent of how blocks are spread over threads.
constexpr int64_t kBlock = int64_t{1} << 14;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The mask value of element j of a block: scale where the keyed 32-bit hash of j (Wellons'
// "lowbias32" mixer, a bijection of 32-bit words) maps to a uniform in [0, 1) at or above p, else
// 0; 32-bit multiplies only, so that it vectorises on every clone.
RZOO_ALWAYS_INLINE float mask_value(int64_t j, uint32_t key_add, uint32_t key_xor, float p, float scale) {
  uint32_t h = (static_cast<uint32_t>(j) + key_add) ^ key_xor;
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  const float u = static_cast<float>(h >> 8) * 0x1p-24f;  // 24 bits: exact in float
  return u >= p ? scale : 0.0f;
}

// out[t] = mask(j0 + t), or out[t] = in[t] * mask(j0 + t) when `in` is given (the forward pass, and
// the backward pass with the mask drawn again from the same seed), for t < n; j0 + n <= kBlock.
RZOO_SIMD_CLONES void mask_block(const float* in, float* out, int64_t j0, int64_t n, uint32_t key_add, uint32_t key_xor,
                                 float p, float scale) {
  if (in == nullptr) {
    for (int64_t t = 0; t < n; ++t) out[t] = mask_value(j0 + t, key_add, key_xor, p, scale);
  } else {
    for (int64_t t = 0; t < n; ++t) out[t] = in[t] * mask_value(j0 + t, key_add, key_xor, p, scale);
  }
}

void apply_mask(const float* in, float* out, int64_t n, double p, uint64_t seed) {
  const float pf = static_cast<float>(p), scale = static_cast<float>(1.0 / (1.0 - p));
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const uint64_t key = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(b)));
      const int64_t lo = b * kBlock;
      mask_block(in ? in + lo : nullptr, out + lo, 0, std::min(kBlock, n - lo), static_cast<uint32_t>(key),
                 static_cast<uint32_t>(key >> 32), pf, scale);
    }
  });
}

// x * mask(seed) as a new contiguous tensor [x's sizes].
at::Tensor masked(const at::Tensor& x, double p, uint64_t seed) {
  const auto in = x.contiguous();
  auto out = torch::empty(in.sizes(), in.options());
  apply_mask(in.data_ptr<float>(), out.data_ptr<float>(), in.numel(), p, seed);
  return out;
}

// y = x * m; dx = dy * m, with m drawn again in the backward pass from the saved seed: the mask is
// never stored (LibTorch's dropout keeps a float mask the size of x until the backward pass).
struct FastDropoutFn : public torch::autograd::Function<FastDropoutFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p, int64_t seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return masked(x, p, static_cast<uint64_t>(seed));
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {masked(grads[0], p, seed), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void dropout_mask(float* out, int64_t n, double p, uint64_t seed) { apply_mask(nullptr, out, n, p, seed); }

void dropout_mask_range(float* out, int64_t begin, int64_t n, double p, uint64_t seed) {
  const float pf = static_cast<float>(p), scale = static_cast<float>(1.0 / (1.0 - p));
  for (int64_t e = begin; e < begin + n;) {
    const int64_t b = e / kBlock, lo = e - b * kBlock, len = std::min(kBlock - lo, begin + n - e);
    const uint64_t key = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(b)));
    mask_block(nullptr, out + (e - begin), lo, len, static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32), pf, scale);
    e += len;
  }
}

uint64_t dropout_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

at::Tensor fast_dropout(const at::Tensor& x, double p, bool training) {
  TORCH_CHECK(p >= 0 && p < 1, "fast_dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0 || x.numel() == 0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) return torch::dropout(x, p, true);
  return FastDropoutFn::apply(x, p, static_cast<int64_t>(dropout_seed()));
}

}  // namespace rzoo
