// BERT4Rec: sequential recommendation with bidirectional encoder representations from Transformer.
// Sun, Liu, Wu, Pei, Lin, Ou & Jiang, "BERT4Rec: Sequential Recommendation with Bidirectional
// Encoder Representations from Transformer", CIKM 2019.
//
// Item indices: 0..I-1 items, I padding (zero row, no gradient), I + 1 the mask token ("[mask]").
// A window of L items (left-padded) -> item embeddings + learned position embeddings -> LayerNorm
// -> dropout -> `layers` bidirectional Transformer blocks (torch::nn::TransformerEncoderLayer:
// post-LayerNorm, GELU feed-forward, as BERT; no causal mask, so every position sees every item of
// the window, later ones included) -> h [B, L, D]. The output layer is the paper's: the logit of
// item i at a position is <GELU(W^P h + b^P), E_i> + b^O_i with the input item table E (shared).
// As in SASRec (sasrec.h), the blocks run on right-padded rows with positions counted from the
// window's first real item; padding keys are masked per sequence with the attention's
// key_padding_mask (LibTorch 1.13's C++ MultiheadAttention supports it), so the outputs at real
// positions do not depend on the amount of padding.
//
// Training (cloze): each training sequence (the batch's window and its target(s), last L items)
// has a fraction `mask_prob` of its real positions replaced by the mask token, at least one per
// sequence, drawn with torch's global generator (which the trainer seeds from (seed, epoch) before
// each epoch, as for dropout), and the loss is the softmax cross-entropy over all I items at the
// masked positions. A fraction `last_mask_prob` of the sequences masks only its last item
// instead: the paper (Sec. 3.6) adds such samples as a fine-tuning for the next-item task that
// inference asks (RecBole's ft_ratio). Inference: the user's L - 1 most recent items followed by
// the mask token; the output at that last position scores every item.
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/transformerlayer.h>

#include <string>

#include "models/recommender.h"
#include "models/sequential/history.h"

namespace rzoo {

struct BERT4RecOptions {
  static BERT4RecOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  void check() const;                                     // errors name the model.* key and value
  TORCH_ARG(int64_t, hidden_size) = 64;  // D: item, position and block width
  TORCH_ARG(int64_t, layers) = 2;        // Transformer blocks
  TORCH_ARG(int64_t, heads) = 2;         // attention heads; must divide hidden_size
  TORCH_ARG(int64_t, inner_size) = 256;  // feed-forward width
  TORCH_ARG(int64_t, max_len) = 50;      // L: window width, the mask token included at inference
  TORCH_ARG(double, dropout) = 0.0;      // on embeddings, attention weights, block outputs, feed-forward
  TORCH_ARG(double, mask_prob) = 0.2;    // fraction of a training sequence's items masked, in (0, 1)
  TORCH_ARG(double, last_mask_prob) = 0.0;  // fraction of training sequences masked at their last item only
  TORCH_ARG(double, init_std) = 0.02;    // normal initialisation of embeddings and linear weights
  TORCH_ARG(std::string, loss) = "ce";   // "ce" | "sampled" | "bce" at the masked positions
  TORCH_ARG(int64_t, neg_samples) = 100; // negatives per batch of loss "sampled"
  TORCH_ARG(bool, fields) = false;       // add dataset.fields' item field embeddings to the items'
};

class BERT4RecImpl : public SequenceRecommenderImpl {
 public:
  explicit BERT4RecImpl(const ModelContext& ctx);
  BERT4RecImpl(const ModelContext& ctx, BERT4RecOptions options);

  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // The L - 1 most recent items; the mask token follows them.
  int64_t history_len() const override { return options.max_len() - 1; }
  at::Tensor score_history(const at::Tensor& seq) override;                    // [B, L - 1] -> [B, I]
  // Explanation: the attention of the last block at the mask token (the position whose output
  // scores every item) over the history's positions, averaged over heads: one weight per
  // position of the last L - 1 items (the remainder, up to 1, is the mask token's attention to
  // itself); the same for every recommended item.
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  // The item vectors as read and scored, [I + 2, D] (padding, mask token): item_emb's weight, or
  // with model.fields the known id rows plus the items' field vectors (models/side_fields.h).
  at::Tensor item_table() const;
  // seq [B, L'] item indices (L' <= max_len, left-padded with n_items, may hold the mask token
  // n_items + 1) -> h [B, L', D]; `table`: item_table(), computed when not given.
  at::Tensor encode(const at::Tensor& seq, const at::Tensor& table = {});
  // h [N, D] -> logits [N, I] over the real items
  at::Tensor logits(const at::Tensor& h);
  // The training sequence of each batch row, its last max_len items, left-padded: the window
  // followed by its target (augment none: the last column of items, the sequence's last item).
  at::Tensor cloze_sequence(const Batch& b) const;  // [B, L]
  // Which positions of `full` [B, L] to mask: each real position with probability mask_prob,
  // and where that picks none, the real position with the smallest draw; then, with probability
  // last_mask_prob per row, only the row's last real position instead. Uses torch's global
  // generator. -> bool [B, L]
  at::Tensor cloze_mask(const at::Tensor& full) const;
  // Mean cross-entropy over all items at the masked positions of `full`.
  at::Tensor cloze_loss(const at::Tensor& full, const at::Tensor& masked);
  int64_t mask_token() const { return n_items_ + 1; }

  BERT4RecOptions options;
  torch::nn::Embedding item_emb{nullptr};  // [I + 2, D]: row I padding, row I + 1 the mask token
  torch::nn::Embedding pos_emb{nullptr};   // [L, D]
  torch::nn::LayerNorm emb_ln{nullptr};
  torch::nn::Dropout emb_drop{nullptr};
  torch::nn::ModuleList blocks{nullptr};   // TransformerEncoderLayer, [L, B, D] in and out
  torch::nn::Linear head{nullptr};         // W^P, b^P: D -> D, then GELU
  at::Tensor out_bias;                     // b^O [I]

 private:
  // [B, D] at the mask token after the users' history / after hist [B, L - 1].
  at::Tensor last_output(const at::Tensor& users);
  at::Tensor last_output_of(const at::Tensor& hist);
};
TORCH_MODULE(BERT4Rec);

}  // namespace rzoo
