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

// Causal self-attention (query j reads keys <= j; `causal_mask` [L, L] is that mask, used only by
// the fallback). On CPU float32 one fused kernel (below) computes the scores, the softmax, the
// attention dropout and the weighted values per (row, head), forward and backward; elsewhere it is
// self_attention(attn, x, causal_mask, {}, training). The same values either way, dropout masks
// included (the same seed draw and the same element indices as fast_dropout on the [B, H, L, L]
// weights); tests/test_model_sequential.cpp compares the two.
// Why: with SASRec's sizes (L <= 50, head width 32) LibTorch's bmm runs one small GEMM per
// (row, head), at 4-12 GFLOP/s here, plus the head transposes, the mask, the softmax and the
// dropout as separate passes over [B, H, L, L]. Measured on RecBole's SASRec workload (ML-100K,
// prefix rows, micro-batches of 1024, 1 thread, AMD EPYC): 120 -> 112 s per epoch (README).
at::Tensor causal_self_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& causal_mask,
                                 bool training);

// The same attention for one query per row: the query at position idx[b] of x [B, L, D] (x_q =
// x[b, idx[b]], [B, D]) over the keys at positions <= idx[b] (the causal mask's row idx[b]) ->
// [B, D], equal to self_attention(attn, x, causal mask, ...)[b, idx[b]]. Keys and values are
// projected for every position, the query and everything after it for one: SASRec's last block
// when only the last position is read (training on prefixes, scoring). On CPU float32 a fused
// kernel per (row, head), forward and backward (a batched matmul of one query would be one
// 1 x dh x L GEMM call per (row, head); measured: 112 -> 97-101 s per SASRec epoch as above);
// elsewhere LibTorch's ops, with dropout on the [B, H, 1, L] weights at the same element indices.
at::Tensor last_query_attention(torch::nn::MultiheadAttention& attn, const at::Tensor& x, const at::Tensor& x_q,
                                const at::Tensor& idx, bool training);

}  // namespace rzoo
