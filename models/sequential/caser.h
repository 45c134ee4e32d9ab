// Caser: convolutional sequence embedding for top-N sequential recommendation.
// Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional Sequence
// Embedding", WSDM 2018.
//
// The embedding matrix E [L, D] of a user's L most recent items (left-padded; the padding row is
// zero, as in the authors' code) goes through
//   - horizontal convolutions: for every height h in 1..L, `n_h` filters of size h x D
//     (torch::nn::Conv2d), ReLU, max-pooled over the L - h + 1 time steps -> [n_h * L];
//   - vertical convolutions: `n_v` filters of size L x 1 (weighted sums of the L rows) -> [n_v * D];
// concatenated, dropout, a fully-connected layer with ReLU -> z [D], concatenated with the user's
// embedding P_u [D]; the score of item i is <[z; P_u], W_i> + b_i with a separate item output
// table W [I, 2D] and item bias b [I] (the paper's W' and b').
//
// Training: every position j of a sequence batch is represented by the window of the L items
// ending at j (the paper's sliding windows over each user's sequence), and predicts the next item
// (one target per window, as RecBole's Caser; the paper's T > 1 targets per window is not
// implemented). Loss `model.loss`: full softmax cross-entropy over all items (ce) or binary
// cross-entropy with one sampled negative (bce, the paper's loss with one negative).
// model.fields: true adds the item fields of dataset.fields (models/side_fields.h) to both item
// tables: E_i = known(i) E[i] + fields_E(i) read by the convolutions, and [W_i; b_i] = known(i)
// [W[i]; b[i]] + fields_W(i) (its own field vectors, 2D wide, with a bias), so an item without
// training interactions is read and ranked by its fields. The export stores both tables.
#pragma once
#include <torch/arg.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>

#include "models/recommender.h"
#include "models/sequential/history.h"

namespace rzoo {

struct CaserOptions {
  static CaserOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  void check() const;                                  // errors name the model.* key and value
  TORCH_ARG(int64_t, embedding_size) = 50;  // D: item and user embedding width (the paper's d)
  TORCH_ARG(int64_t, max_len) = 5;          // L: most recent items in the window (the paper's L)
  TORCH_ARG(int64_t, n_h) = 16;             // horizontal filters per height 1..L
  TORCH_ARG(int64_t, n_v) = 4;              // vertical filters
  TORCH_ARG(double, dropout) = 0.5;         // on the concatenated convolution outputs
  TORCH_ARG(std::string, loss) = "ce";      // "ce" | "sampled" | "bce"
  TORCH_ARG(int64_t, neg_samples) = 100;  // negatives per batch of loss "sampled"
  TORCH_ARG(bool, fields) = false;          // add dataset.fields' item field embeddings to both item tables
};

class CaserImpl : public SequenceRecommenderImpl {
 public:
  explicit CaserImpl(const ModelContext& ctx);
  CaserImpl(const ModelContext& ctx, CaserOptions options);

  at::Tensor loss(const Batch& batch) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  int64_t history_len() const override { return options.max_len(); }
  at::Tensor score_history(const at::Tensor& seq) override;                    // [B, L] -> [B, I]
  ScriptExport script_export() const override;
  // Explanation: occlusion of each window position (history.h, explain_by_occlusion).
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;

  // win [N, L] item indices (left-padded with n_items) -> z [N, D], before the user embedding.
  at::Tensor window_repr(const at::Tensor& win);
  // The two convolution branches on E [N, 1, L, D]: horizontal -> [N, n_h * L] (height 1 first),
  // vertical -> [N, n_v * D].
  at::Tensor horizontal(const at::Tensor& E);
  at::Tensor vertical(const at::Tensor& E);
  // seq [B, Lb] (left-padded), users [B] -> [B, Lb, 2D]: [z; P_u] of the window ending at each position.
  at::Tensor encode(const at::Tensor& seq, const at::Tensor& users);
  // The input item vectors as read, [I + 1, D] (row I the padding): item_emb's weight, or with
  // model.fields the known id rows plus the items' field vectors.
  at::Tensor input_table() const;
  // [I + 1, 2D + 1]: W with b as its last column (with model.fields, plus the output fields); the
  // representation gets a trailing 1, so that next_item_loss's dot products include the bias.
  at::Tensor output_table() const;

  CaserOptions options;
  torch::nn::Embedding item_emb{nullptr};  // [I + 1, D], row I = padding (zero, no gradient)
  torch::nn::Embedding user_emb{nullptr};  // [U, D]
  torch::nn::ModuleList conv_h{nullptr};   // L Conv2d(1, n_h, {h, D}), h = 1..L
  torch::nn::Conv2d conv_v{nullptr};       // Conv2d(1, n_v, {L, 1})
  torch::nn::Dropout drop{nullptr};
  torch::nn::Linear fc{nullptr};           // n_v * D + n_h * L -> D
  torch::nn::Embedding out_emb{nullptr};   // W [I + 1, 2D], row I = padding (never a candidate)
  torch::nn::Embedding out_bias{nullptr};  // b [I + 1, 1]
  // model.fields: `side` (the base's) adds to the input table, D wide; out_side to the output
  // table, 2D wide with a bias.
  SideFields out_side{nullptr};

 private:
  // [z; P_u] of users `u` [B] from their histories: [B, 2D].
  at::Tensor user_repr(const at::Tensor& u);
  // x [B, 2D] against every real item of the output table: [B, I].
  at::Tensor score_rows(const at::Tensor& x) const;
};
TORCH_MODULE(Caser);

}  // namespace rzoo
