#include "models/sequential/attention.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "models/dropout.h"

namespace rzoo {

at::Tensor self_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& attn_mask,
                          const at::Tensor& key_pad, bool training) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), H = attn->options.num_heads(), dh = D / H;
  const auto qkv = torch::linear(x, attn->in_proj_weight, attn->in_proj_bias).chunk(3, -1);  // 3 x [B, L, D]
  auto heads = [&](const at::Tensor& t) { return t.reshape({B, L, H, dh}).transpose(1, 2); };  // [B, H, L, dh]
  const auto q = heads(qkv[0] * std::pow(static_cast<double>(dh), -0.5)), k = heads(qkv[1]), v = heads(qkv[2]);
  auto w = torch::matmul(q, k.transpose(2, 3));  // [B, H, L, L]
  if (attn_mask.defined()) w = w + attn_mask;
  if (key_pad.defined())
    w = w.masked_fill(key_pad.view({B, 1, 1, L}), -std::numeric_limits<float>::infinity());
  w = fast_dropout(torch::softmax(w, -1), attn->options.dropout(), training);
  return attn->out_proj(torch::matmul(w, v).transpose(1, 2).reshape({B, L, D}));  // [B, L, D]
}

}  // namespace rzoo
