#include "models/sequential/attention.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/simd.h"
#include "models/dropout.h"
#include "models/fast_linear.h"

namespace rzoo {

namespace {

// a . b over n floats, in 8 partial sums (vectorised; the order of the additions is fixed).
RZOO_ALWAYS_INLINE float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int t = 0; t < 8; ++t) acc[t] += a[d + t] * b[d + t];
  float tail = 0.0f;
  for (; d < n; ++d) tail += a[d] * b[d];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Softmax of the scores s[0..n) into P[0..n) (s is overwritten with exp(s - max); P may be s),
// and P[n..L) = 0: the weights of keys the query does not read.
RZOO_ALWAYS_INLINE void softmax_row(float* s, float* P, int64_t n, int64_t L) {
  float mx = s[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) P[j] = s[j] * inv;
  for (int64_t j = n; j < L; ++j) P[j] = 0.0f;
}

// One (row, head) of causal attention, forward, for head width DH (a compile-time constant, so
// that a query's and an output's DH floats stay in registers; 0 = dh at run time). qkv: the row's
// [L, 3D] projections (q, k, v of head h at columns h*dh, D + h*dh, 2D + h*dh); out: the row's
// [L, D] output (head h's columns); P: [L, L] softmax weights before dropout (0 above the
// diagonal), kept for the backward pass; s, m: [L] scratch. flat0: the flat index of P's first
// element in the [B, H, L, L] weights (the dropout mask's indices).
template <int DH>
RZOO_ALWAYS_INLINE void head_forward(const float* qkv, float* out, float* P, float* s, float* m, int64_t L, int64_t D,
                                     int64_t dh_rt, int64_t h, float scale, double p, uint64_t seed, int64_t flat0) {
  const int64_t dh = DH > 0 ? DH : dh_rt, ld = 3 * D;
  constexpr int kMax = DH > 0 ? DH : 1;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t n = i + 1;  // keys 0..i
    const float* q = qkv + i * ld + h * dh;
    for (int64_t j = 0; j < n; ++j) s[j] = dot8(q, qkv + j * ld + D + h * dh, dh) * scale;
    float* Pr = P + i * L;
    softmax_row(s, Pr, n, L);
    if (p > 0) {
      dropout_mask_range(m, flat0 + i * L, n, p, seed);
      for (int64_t j = 0; j < n; ++j) s[j] = Pr[j] * m[j];
    } else {
      for (int64_t j = 0; j < n; ++j) s[j] = Pr[j];
    }
    float* o = out + i * D + h * dh;
    if constexpr (DH > 0) {
      float acc[kMax] = {};
      for (int64_t j = 0; j < n; ++j) {
        const float w = s[j];
        const float* v = qkv + j * ld + 2 * D + h * dh;
        for (int d = 0; d < DH; ++d) acc[d] += w * v[d];
      }
      for (int d = 0; d < DH; ++d) o[d] = acc[d];
    } else {
      for (int64_t d = 0; d < dh; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        const float w = s[j];
        const float* v = qkv + j * ld + 2 * D + h * dh;
        for (int64_t d = 0; d < dh; ++d) o[d] += w * v[d];
      }
    }
  }
}

// Its backward pass: dout the row's [L, D] output gradient, dqkv the row's [L, 3D] gradient (head
// h's columns written). With S = scale q k^T, P = softmax(S), W = P * mask, O = W V:
// dW_ij = dO_i . V_j; dP = dW * mask; dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik);
// dQ_i = scale sum_j dS_ij K_j (by rows), then dV_j = sum_i W_ij dO_i and dK_j = scale sum_i
// dS_ij Q_i (by columns), each summed in registers and written once. G, W: [L, L] scratch.
template <int DH>
RZOO_ALWAYS_INLINE void head_backward(const float* qkv, const float* dout, const float* P, float* dqkv, float* G, float* W,
                                      float* m, int64_t L, int64_t D, int64_t dh_rt, int64_t h, float scale, double p,
                                      uint64_t seed, int64_t flat0) {
  const int64_t dh = DH > 0 ? DH : dh_rt, ld = 3 * D;
  constexpr int kMax = DH > 0 ? DH : 1;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t n = i + 1;
    const float* go = dout + i * D + h * dh;
    const float* Pr = P + i * L;
    float* g = G + i * L;
    float* w = W + i * L;
    if (p > 0) {
      dropout_mask_range(m, flat0 + i * L, n, p, seed);
    } else {
      for (int64_t j = 0; j < n; ++j) m[j] = 1.0f;
    }
    float rowdot = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      g[j] = dot8(go, qkv + j * ld + 2 * D + h * dh, dh) * m[j];  // dP_ij
      w[j] = Pr[j] * m[j];
      rowdot += Pr[j] * g[j];
    }
    for (int64_t j = 0; j < n; ++j) g[j] = Pr[j] * (g[j] - rowdot) * scale;  // scale * dS_ij
    float* dq = dqkv + i * ld + h * dh;
    if constexpr (DH > 0) {
      float acc[kMax] = {};
      for (int64_t j = 0; j < n; ++j) {
        const float c = g[j];
        const float* k = qkv + j * ld + D + h * dh;
        for (int d = 0; d < DH; ++d) acc[d] += c * k[d];
      }
      for (int d = 0; d < DH; ++d) dq[d] = acc[d];
    } else {
      for (int64_t d = 0; d < dh; ++d) dq[d] = 0.0f;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < dh; ++d) dq[d] += g[j] * qkv[j * ld + D + h * dh + d];
    }
  }
  for (int64_t j = 0; j < L; ++j) {
    float* dk = dqkv + j * ld + D + h * dh;
    float* dv = dqkv + j * ld + 2 * D + h * dh;
    if constexpr (DH > 0) {
      float ak[kMax] = {}, av[kMax] = {};
      for (int64_t i = j; i < L; ++i) {
        const float c = G[i * L + j], a = W[i * L + j];
        const float* q = qkv + i * ld + h * dh;
        const float* go = dout + i * D + h * dh;
        for (int d = 0; d < DH; ++d) {
          ak[d] += c * q[d];
          av[d] += a * go[d];
        }
      }
      for (int d = 0; d < DH; ++d) {
        dk[d] = ak[d];
        dv[d] = av[d];
      }
    } else {
      for (int64_t d = 0; d < dh; ++d) dk[d] = dv[d] = 0.0f;
      for (int64_t i = j; i < L; ++i)
        for (int64_t d = 0; d < dh; ++d) {
          dk[d] += G[i * L + j] * qkv[i * ld + h * dh + d];
          dv[d] += W[i * L + j] * dout[i * D + h * dh + d];
        }
    }
  }
}

// The head widths compiled with their width fixed (16, 32, 64: hidden 32-256 over 2-4 heads), in
// each SIMD clone; others at run time.
RZOO_SIMD_CLONES void causal_head_forward(const float* qkv, float* out, float* P, float* s, float* m, int64_t L, int64_t D,
                                          int64_t dh, int64_t h, float scale, double p, uint64_t seed, int64_t flat0) {
  switch (dh) {
    case 16: head_forward<16>(qkv, out, P, s, m, L, D, dh, h, scale, p, seed, flat0); break;
    case 32: head_forward<32>(qkv, out, P, s, m, L, D, dh, h, scale, p, seed, flat0); break;
    case 64: head_forward<64>(qkv, out, P, s, m, L, D, dh, h, scale, p, seed, flat0); break;
    default: head_forward<0>(qkv, out, P, s, m, L, D, dh, h, scale, p, seed, flat0);
  }
}

RZOO_SIMD_CLONES void causal_head_backward(const float* qkv, const float* dout, const float* P, float* dqkv, float* G,
                                           float* W, float* m, int64_t L, int64_t D, int64_t dh, int64_t h, float scale,
                                           double p, uint64_t seed, int64_t flat0) {
  switch (dh) {
    case 16: head_backward<16>(qkv, dout, P, dqkv, G, W, m, L, D, dh, h, scale, p, seed, flat0); break;
    case 32: head_backward<32>(qkv, dout, P, dqkv, G, W, m, L, D, dh, h, scale, p, seed, flat0); break;
    case 64: head_backward<64>(qkv, dout, P, dqkv, G, W, m, L, D, dh, h, scale, p, seed, flat0); break;
    default: head_backward<0>(qkv, dout, P, dqkv, G, W, m, L, D, dh, h, scale, p, seed, flat0);
  }
}

// The settings both attention kernels keep for their backward pass: heads, dropout p, seed.
struct HeadSettings {
  int64_t heads;
  double p;
  uint64_t seed;
  void save(torch::autograd::AutogradContext* ctx) const {
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
  }
  static HeadSettings load(torch::autograd::AutogradContext* ctx) {
    return {ctx->saved_data["heads"].toInt(), ctx->saved_data["p"].toDouble(),
            static_cast<uint64_t>(ctx->saved_data["seed"].toInt())};
  }
};

// qkv [B, L, 3D] (contiguous float) -> [B, L, D]; the weights [B, H, L, L] kept for backward.
struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv_in, int64_t heads, double p,
                            int64_t seed) {
    const auto qkv = qkv_in.contiguous();
    const int64_t B = qkv.size(0), L = qkv.size(1), D = qkv.size(2) / 3, H = heads, dh = D / H;
    auto out = torch::empty({B, L, D}, qkv.options());
    auto probs = torch::empty({B, H, L, L}, qkv.options());
    const float scale = static_cast<float>(std::pow(static_cast<double>(dh), -0.5));
    const float* x = qkv.data_ptr<float>();
    float* o = out.data_ptr<float>();
    float* P = probs.data_ptr<float>();
    at::parallel_for(0, B * H, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> buf(static_cast<size_t>(2 * L));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / H, h = t % H;
        causal_head_forward(x + b * L * 3 * D, o + b * L * D, P + t * L * L, buf.data(), buf.data() + L, L, D, dh, h, scale,
                            p, static_cast<uint64_t>(seed), t * L * L);
      }
    });
    ctx->save_for_backward({qkv, probs});
    HeadSettings{heads, p, static_cast<uint64_t>(seed)}.save(ctx);
    return out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& qkv = saved[0];
    const auto& probs = saved[1];
    const HeadSettings settings = HeadSettings::load(ctx);
    const int64_t H = settings.heads;
    const double p = settings.p;
    const uint64_t seed = settings.seed;
    const int64_t B = qkv.size(0), L = qkv.size(1), D = qkv.size(2) / 3, dh = D / H;
    const auto dout = grads[0].contiguous();
    auto dqkv = torch::empty_like(qkv);  // every element written by the heads
    const float scale = static_cast<float>(std::pow(static_cast<double>(dh), -0.5));
    const float* x = qkv.data_ptr<float>();
    const float* g = dout.data_ptr<float>();
    const float* P = probs.data_ptr<float>();
    float* dx = dqkv.data_ptr<float>();
    at::parallel_for(0, B * H, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> buf(static_cast<size_t>(2 * L * L + L));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / H, h = t % H;
        causal_head_backward(x + b * L * 3 * D, g + b * L * D, P + t * L * L, dx + b * L * 3 * D, buf.data(),
                             buf.data() + L * L, buf.data() + 2 * L * L, L, D, dh, h, scale, p, seed, t * L * L);
      }
    });
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// One query per (row, head) over the keys 0..n-1 (n = the query's position + 1), forward: kv the
// row's [L, 2D] key and value projections, q the row's [D] query projection, out the row's [D]
// output, P: [L] weights before dropout (0 from n on), m: [L] scratch; flat0: the index of P's first
// element in the [B, H, L] weights (the dropout mask's indices).
RZOO_SIMD_CLONES void last_query_head_forward(const float* kv, const float* q, float* out, float* P, float* m, int64_t L,
                                              int64_t n, int64_t D, int64_t dh, int64_t h, float scale, double p,
                                              uint64_t seed, int64_t flat0) {
  const int64_t ld = 2 * D;
  const float* qh = q + h * dh;
  for (int64_t j = 0; j < n; ++j) P[j] = dot8(qh, kv + j * ld + h * dh, dh) * scale;
  softmax_row(P, P, n, L);
  if (p > 0) dropout_mask_range(m, flat0, n, p, seed);
  float* o = out + h * dh;
  for (int64_t d = 0; d < dh; ++d) o[d] = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float w = p > 0 ? P[j] * m[j] : P[j];
    const float* v = kv + j * ld + D + h * dh;
    for (int64_t d = 0; d < dh; ++d) o[d] += w * v[d];
  }
}

// Its backward pass (the causal kernel's formulas for one query): dkv the row's [L, 2D] gradient
// (head h's columns, every row written), dq the row's [D] query gradient.
RZOO_SIMD_CLONES void last_query_head_backward(const float* kv, const float* q, const float* dout, const float* P, float* dkv,
                                               float* dq, float* g, float* m, int64_t L, int64_t n, int64_t D, int64_t dh,
                                               int64_t h, float scale, double p, uint64_t seed, int64_t flat0) {
  const int64_t ld = 2 * D;
  const float* go = dout + h * dh;
  const float* qh = q + h * dh;
  if (p > 0) {
    dropout_mask_range(m, flat0, n, p, seed);
  } else {
    for (int64_t j = 0; j < n; ++j) m[j] = 1.0f;
  }
  float rowdot = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    g[j] = dot8(go, kv + j * ld + D + h * dh, dh) * m[j];  // dP_j
    rowdot += P[j] * g[j];
    const float w = P[j] * m[j];
    float* dv = dkv + j * ld + D + h * dh;
    for (int64_t d = 0; d < dh; ++d) dv[d] = w * go[d];
  }
  float* dqh = dq + h * dh;
  for (int64_t d = 0; d < dh; ++d) dqh[d] = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float c = P[j] * (g[j] - rowdot) * scale;  // scale * dS_j
    const float* k = kv + j * ld + h * dh;
    float* dk = dkv + j * ld + h * dh;
    for (int64_t d = 0; d < dh; ++d) {
      dqh[d] += c * k[d];
      dk[d] = c * qh[d];
    }
  }
  for (int64_t j = n; j < L; ++j)
    for (int64_t d = 0; d < dh; ++d) dkv[j * ld + h * dh + d] = dkv[j * ld + D + h * dh + d] = 0.0f;
}

// kv [B, L, 2D], q [B, D] (contiguous float; q not yet scaled), idx [B] (long, the query's
// position) -> [B, D]; the weights [B, H, L] kept for backward.
struct LastQueryAttentionFn : public torch::autograd::Function<LastQueryAttentionFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& kv_in, const at::Tensor& q_in,
                            const at::Tensor& idx_in, int64_t heads, double p, int64_t seed) {
    const auto kv = kv_in.contiguous(), q = q_in.contiguous(), idx = idx_in.to(torch::kLong).contiguous();
    const int64_t B = kv.size(0), L = kv.size(1), D = kv.size(2) / 2, H = heads, dh = D / H;
    auto out = torch::empty({B, D}, kv.options());
    auto probs = torch::empty({B, H, L}, kv.options());
    const float scale = static_cast<float>(std::pow(static_cast<double>(dh), -0.5));
    const float *x = kv.data_ptr<float>(), *qp = q.data_ptr<float>();
    const int64_t* ip = idx.data_ptr<int64_t>();
    float *o = out.data_ptr<float>(), *P = probs.data_ptr<float>();
    at::parallel_for(0, B * H, 64, [&](int64_t begin, int64_t end) {
      std::vector<float> m(static_cast<size_t>(L));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / H, h = t % H;
        last_query_head_forward(x + b * L * 2 * D, qp + b * D, o + b * D, P + t * L, m.data(), L, ip[b] + 1, D, dh, h, scale,
                                p, static_cast<uint64_t>(seed), t * L);
      }
    });
    ctx->save_for_backward({kv, q, idx, probs});
    HeadSettings{heads, p, static_cast<uint64_t>(seed)}.save(ctx);
    return out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &kv = saved[0], &q = saved[1], &idx = saved[2], &probs = saved[3];
    const HeadSettings settings = HeadSettings::load(ctx);
    const int64_t H = settings.heads;
    const double p = settings.p;
    const uint64_t seed = settings.seed;
    const int64_t B = kv.size(0), L = kv.size(1), D = kv.size(2) / 2, dh = D / H;
    const auto dout = grads[0].contiguous();
    auto dkv = torch::empty_like(kv);  // every element written by the heads
    auto dq = torch::empty_like(q);
    const float scale = static_cast<float>(std::pow(static_cast<double>(dh), -0.5));
    const float *x = kv.data_ptr<float>(), *qp = q.data_ptr<float>(), *g = dout.data_ptr<float>(), *P = probs.data_ptr<float>();
    const int64_t* ip = idx.data_ptr<int64_t>();
    float *dx = dkv.data_ptr<float>(), *dqp = dq.data_ptr<float>();
    at::parallel_for(0, B * H, 64, [&](int64_t begin, int64_t end) {
      std::vector<float> buf(static_cast<size_t>(2 * L));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / H, h = t % H;
        last_query_head_backward(x + b * L * 2 * D, qp + b * D, g + b * D, P + t * L, dx + b * L * 2 * D, dqp + b * D,
                                 buf.data(), buf.data() + L, L, ip[b] + 1, D, dh, h, scale, p, seed, t * L);
      }
    });
    return {dkv, dq, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_self_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& causal_mask,
                                 bool training) {
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) return self_attention(attn, x, causal_mask, at::Tensor(), training);
  const double p = training ? attn->options.dropout() : 0.0;
  const auto qkv = fast_linear(x, attn->in_proj_weight, attn->in_proj_bias);  // [B, L, 3D]
  // The seed drawn where fast_dropout would draw it (after the projection), only when it would.
  const auto seed = p > 0 && qkv.numel() > 0 ? static_cast<int64_t>(dropout_seed()) : int64_t{0};
  return linear(attn->out_proj, CausalAttentionFn::apply(qkv, attn->options.num_heads(), p, seed));  // [B, L, D]
}

at::Tensor self_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& attn_mask,
                          const at::Tensor& key_pad, bool training) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), H = attn->options.num_heads(), dh = D / H;
  const auto qkv = fast_linear(x, attn->in_proj_weight, attn->in_proj_bias).chunk(3, -1);  // 3 x [B, L, D]
  auto heads = [&](const at::Tensor& t) { return t.reshape({B, L, H, dh}).transpose(1, 2); };  // [B, H, L, dh]
  const auto q = heads(qkv[0] * std::pow(static_cast<double>(dh), -0.5)), k = heads(qkv[1]), v = heads(qkv[2]);
  auto w = torch::matmul(q, k.transpose(2, 3));  // [B, H, L, L]
  if (attn_mask.defined()) w = w + attn_mask;
  if (key_pad.defined())
    w = w.masked_fill(key_pad.view({B, 1, 1, L}), -std::numeric_limits<float>::infinity());
  w = fast_dropout(torch::softmax(w, -1), attn->options.dropout(), training);
  return linear(attn->out_proj, torch::matmul(w, v).transpose(1, 2).reshape({B, L, D}));  // [B, L, D]
}

at::Tensor last_query_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& x_q,
                                const at::Tensor& idx, bool training) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), H = attn->options.num_heads(), dh = D / H;
  const auto& W = attn->in_proj_weight;  // [3D, D]: the q, k, v projections stacked
  const auto& b = attn->in_proj_bias;    // [3D]
  const auto kv = fast_linear(x, W.narrow(0, D, 2 * D), b.narrow(0, D, 2 * D));  // [B, L, 2D]
  const auto q = fast_linear(x_q, W.narrow(0, 0, D), b.narrow(0, 0, D));         // [B, D]
  const double p = training ? attn->options.dropout() : 0.0;
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat) {
    // One query per (row, head) in one pass (see causal_self_attention); LibTorch's bmm would
    // run one 1 x dh x L GEMM call per (row, head).
    const auto seed = p > 0 && B > 0 ? static_cast<int64_t>(dropout_seed()) : int64_t{0};
    return linear(attn->out_proj, LastQueryAttentionFn::apply(kv, q, idx, H, p, seed));  // [B, D]
  }
  const auto kvh = kv.chunk(2, -1);
  const auto k = kvh[0].reshape({B, L, H, dh}).permute({0, 2, 3, 1});             // [B, H, dh, L]
  const auto v = kvh[1].reshape({B, L, H, dh}).transpose(1, 2);                   // [B, H, L, dh]
  auto w = torch::matmul((q * std::pow(static_cast<double>(dh), -0.5)).view({B, H, 1, dh}), k);  // [B, H, 1, L]
  const auto later = torch::arange(L, idx.options()).unsqueeze(0) > idx.unsqueeze(1);           // [B, L]: keys after the query
  w = w.masked_fill(later.view({B, 1, 1, L}), -std::numeric_limits<float>::infinity());
  w = fast_dropout(torch::softmax(w, -1), p, training);
  return linear(attn->out_proj, torch::matmul(w, v).reshape({B, D}));  // [B, D]
}

}  // namespace rzoo
