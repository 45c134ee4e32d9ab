// GRU4Rec: session-based recommendation with recurrent neural networks.
// Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent Neural
// Networks", ICLR 2016 (loss variants: Hidasi & Karatzoglou, CIKM 2018).
//
// As RecBole's GRU4Rec: a user's most recent L items -> item embeddings -> dropout -> a GRU
// (`layers` layers) -> a linear map back to the embedding width -> h [B, L, D]; the score of item i
// after position j is <h_j, E_i> with the input item table E. The GRU runs over right-padded rows,
// so the state after a real item never depends on padding. Loss `model.loss`: full softmax
// cross-entropy over all items (ce) or binary cross-entropy with one sampled negative (bce).
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include <string>

#include "models/recommender.h"
#include "models/sequential/history.h"

namespace rzoo {

struct GRU4RecOptions {
  static GRU4RecOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  void check() const;                                    // errors name the model.* key and value
  TORCH_ARG(int64_t, embedding_size) = 64;  // D: item embedding width
  TORCH_ARG(int64_t, hidden_size) = 128;    // GRU state width
  TORCH_ARG(int64_t, layers) = 1;           // stacked GRU layers
  TORCH_ARG(int64_t, max_len) = 50;         // L: most recent items read
  TORCH_ARG(double, dropout) = 0.3;         // on the item embeddings
  TORCH_ARG(double, init_std) = 0.02;       // normal initialisation of the item embeddings
  TORCH_ARG(std::string, loss) = "ce";      // "ce" | "sampled" | "bce"
  TORCH_ARG(int64_t, neg_samples) = 100;  // negatives per batch of loss "sampled"
  TORCH_ARG(bool, fields) = false;          // add dataset.fields' item field embeddings to the items'
};

class GRU4RecImpl : public SequenceRecommenderImpl {
 public:
  explicit GRU4RecImpl(const ModelContext& ctx);
  GRU4RecImpl(const ModelContext& ctx, GRU4RecOptions options);

  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  int64_t history_len() const override { return options.max_len(); }
  at::Tensor score_history(const at::Tensor& seq) override;                    // [B, L] -> [B, I]
  // The encoder's output after each window's most recent item, windows [B, L] -> [B, D], rows
  // grouped by history length (by_history_length in history.h).
  at::Tensor last_output(const at::Tensor& seq);
  ScriptExport script_export() const override;
  // Explanation: occlusion of each window position (history.h, explain_by_occlusion).
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;

  // The item vectors as read and scored, [I + 1, D] (row I the padding): item_emb's weight, or
  // with model.fields the known id rows plus the items' field vectors (models/side_fields.h).
  at::Tensor item_table() const;
  // seq [B, L'] item indices (L' <= max_len, left-padded with n_items) -> h [B, L', D]; `table`:
  // item_table(), computed when not given.
  at::Tensor encode(const at::Tensor& seq, const at::Tensor& table = {});

  GRU4RecOptions options;
  torch::nn::Embedding item_emb{nullptr};  // [I + 1, D], row I = padding
  torch::nn::Dropout emb_drop{nullptr};
  torch::nn::GRU gru{nullptr};             // D -> hidden_size, batch first
  torch::nn::Linear dense{nullptr};        // hidden_size -> D
};
TORCH_MODULE(GRU4Rec);

}  // namespace rzoo
