// Multi-head self-attention (Vaswani et al., "Attention Is All You Need", NeurIPS 2017) written out
// batch-first with a torch::nn::MultiheadAttention's own parameters, for SASRec and BERT4Rec.
// Why not attn->forward: LibTorch's attention dropout is torch::dropout, which Debian's LibTorch
// (no MKL) draws one element at a time; here it is fast_dropout (models/dropout.h), and the
// activations stay [B, L, D] (no [L, B, D] transposes). The same operations as LibTorch's
// multi_head_attention_forward otherwise (q scaled by head_dim^-1/2 after its projection, the
// masks added / filled with -inf before the softmax), so checkpoints and the exports' scripts are
// unchanged; tests/test_model_sequential.cpp compares the two.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/activation.h>

namespace rzoo {

// x [B, L, D] -> [B, L, D]. attn_mask: [L, L] additive (0 or -inf) or undefined; key_pad: [B, L]
// bool (true = a padding key, ignored) or undefined. Dropout on the attention weights at the
// module's own rate when `training`.
at::Tensor self_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& attn_mask,
                          const at::Tensor& key_pad, bool training);

}  // namespace rzoo
