// SASRec: self-attentive sequential recommendation.
// Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
//
// A user's most recent L items (left-padded) -> item embeddings * sqrt(D) + learned position embeddings
// -> `layers` causal self-attention blocks (pre-LayerNorm, as the authors' code: x + Dropout(MHA(
// LN(x))), then x + Dropout(FFN(LN(x))) with a ReLU feed-forward) -> final LayerNorm -> h [B, L, D].
// The score of item i after position j is <h_j, E_i> with the input item table E (shared, as in
// the paper). Positions count from the window's first real item (RecBole's convention), and keys
// at padding positions are masked, so a position's output depends only on the items at or before
// it, whatever the padding. Loss `model.loss`: full softmax cross-entropy over all items (ce,
// RecBole's default, "SASRec+" of Klenitskiy & Vasilev, RecSys 2023) or the paper's binary
// cross-entropy with one sampled negative per target (bce).
// Training on prefixes (one target per row, at the last position) and scoring read only the last
// position, so encode_last() computes the last block there alone (its keys and values for every
// position, models/sequential/attention.h: last_query_attention); the same values as encode().
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>

#include "models/recommender.h"
#include "models/sequential/history.h"

namespace rzoo {

struct SASRecOptions {
  static SASRecOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  void check() const;                                   // errors name the model.* key and value
  TORCH_ARG(int64_t, hidden_size) = 64;   // D: item, position and block width
  TORCH_ARG(int64_t, layers) = 2;         // self-attention blocks
  TORCH_ARG(int64_t, heads) = 2;          // attention heads; must divide hidden_size
  TORCH_ARG(int64_t, inner_size) = 256;   // feed-forward width
  TORCH_ARG(int64_t, max_len) = 50;       // L: most recent items read
  TORCH_ARG(double, dropout) = 0.2;       // on embeddings, block outputs and the feed-forward
  TORCH_ARG(double, attn_dropout) = 0.2;  // on attention weights
  TORCH_ARG(double, init_std) = 0.02;     // normal initialisation of embeddings and linear weights
  TORCH_ARG(double, layer_norm_eps) = 1e-8;
  TORCH_ARG(std::string, loss) = "ce";    // "ce" | "sampled" | "bce"
  TORCH_ARG(int64_t, neg_samples) = 100;  // negatives per batch of loss "sampled"
  TORCH_ARG(bool, fields) = false;        // add dataset.fields' item field embeddings to the items'
};

class SASRecBlockImpl : public torch::nn::Module {
 public:
  SASRecBlockImpl(const SASRecOptions& o);
  // x [B, L, D], mask [L, L] additive (0 or -inf) -> [B, L, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);
  // The block's output at one position per row, idx [B] (causal: position idx[b] reads positions
  // <= idx[b] of x [B, L, D]) -> [B, D]; equals forward(x, causal mask)[b, idx[b]].
  at::Tensor forward_at(const at::Tensor& x, const at::Tensor& idx);

  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  torch::nn::MultiheadAttention attn{nullptr};
  torch::nn::Linear ff1{nullptr}, ff2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(SASRecBlock);

class SASRecImpl : public SequenceRecommenderImpl {
 public:
  explicit SASRecImpl(const ModelContext& ctx);
  SASRecImpl(const ModelContext& ctx, SASRecOptions options);

  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  int64_t history_len() const override { return options.max_len(); }
  at::Tensor score_history(const at::Tensor& seq) override;                    // [B, L] -> [B, I]
  // The encoder's output after each window's most recent item, windows [B, L] -> [B, D], rows
  // grouped by history length (by_history_length in history.h).
  at::Tensor last_output(const at::Tensor& seq);
  // Explanation: the attention of the last block at the most recent position (the one whose
  // output scores every item) over the history's positions, averaged over heads: one weight per
  // position of the last L items, summing to 1 (the same for every recommended item: attention
  // says which past items the next-item representation was built from, not why one item
  // outranks another).
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  // The item vectors as read and scored: [I + 1, D], row I the zero padding. item_emb's weight
  // itself, or with model.fields each item's id row (items with training interactions) plus its
  // fields' vectors.
  at::Tensor item_table() const;
  // seq [B, L'] item indices (L' <= max_len, left-padded with n_items) -> h [B, L', D]; `table`:
  // item_table(), computed when not given (a training step passes the one it also scores with).
  at::Tensor encode(const at::Tensor& seq, const at::Tensor& table = {});
  // The same at the last position only: encode(seq).select(1, -1) -> [B, D], with the last block
  // computed for that position alone (its keys and values for all). Training on prefixes and
  // scoring read nothing else.
  at::Tensor encode_last(const at::Tensor& seq, const at::Tensor& table = {});

  SASRecOptions options;
  torch::nn::Embedding item_emb{nullptr};  // [I + 1, D], row I = padding (zero, no gradient)
  torch::nn::Embedding pos_emb{nullptr};   // [L, D]
  torch::nn::Dropout emb_drop{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_ln{nullptr};

 private:
  double emb_scale_;  // sqrt(hidden_size)
  // The blocks' input: right-aligned windows' embeddings [B, L, D] with positions and dropout,
  // the causal mask [L, L] and the padding shift [B] of encode().
  struct Embedded {
    at::Tensor x, mask, shift;
  };
  Embedded embed(const at::Tensor& seq_in, const at::Tensor& table);
};
TORCH_MODULE(SASRec);

}  // namespace rzoo
