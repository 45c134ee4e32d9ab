// Markov: first-order Markov chain over each user's time-ordered items, i.e. last-item ItemKNN
// with transition probabilities as similarities: the sequence-aware baseline next to the
// sequential models. The MC part as in Rendle, Freudenthaler & Schmidt-Thieme, "Factorizing
// Personalized Markov Chains for Next-Basket Recommendation", WWW 2010 (the transition matrix
// estimated by counting, there factorised; here kept sparse and unfactorised).
//
// Closed form, training part only: for each user's training items s_0, s_1, ... in time order
// (split.train_rows), every pair (s_p -> s_{p+d}) with 1 <= d <= window adds 1/d to
// C[s_p, s_{p+d}]; P(b | a) = C[a, b] / sum_b' C[a, b']. Kept as a sparse CSR matrix ([I + 1]
// indptr, [nnz] indices and values), never a dense [I, I]. The counts depend on the data and
// split alone, like the history windows, so the constructor counts them (the buffers get their
// final sizes, which checkpoints must match); fit(train) adds the popularity term.
// Score: from a history window [L] (L = history_items, left-padded with n_items, the most recent
// last), the r-th most recent real item a_r (r = 1, 2, ...) votes with weight decay^(r - 1):
//   s(b) = sum_r decay^(r - 1) P(b | a_r) + pop_weight * pop(b) / max_b' pop(b'),
// pop(b) = b's training users: items without a transition from the history are ranked by
// popularity instead of tying.
#pragma once
#include <torch/arg.h>

#include <cstdint>

#include "models/recommender.h"
#include "models/sequential/history.h"

namespace rzoo {

struct MarkovOptions {
  static MarkovOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  void check() const;                                   // errors name the model.* key and value
  TORCH_ARG(int64_t, window) = 1;         // items after a that count as its successors (weight 1/d)
  TORCH_ARG(int64_t, history_items) = 1;  // L: the user's most recent items that vote
  TORCH_ARG(double, decay) = 0.5;         // in (0, 1]: weight decay^(r - 1) of the r-th most recent
  TORCH_ARG(double, pop_weight) = 1e-6;   // >= 0: times the max-normalised training popularity
};

class MarkovImpl : public WindowRecommenderImpl {
 public:
  explicit MarkovImpl(const ModelContext& ctx);
  MarkovImpl(const ModelContext& ctx, MarkovOptions options);

  InputType input_type() const override { return InputType::None; }
  void fit(const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  int64_t history_len() const override { return options.history_items(); }
  at::Tensor score_history(const at::Tensor& seq) override;  // [B, L'] -> [B, I]
  ScriptExport script_export() const override;
  // Explanation: occlusion of each window position (history.h, explain_by_occlusion).
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;

  MarkovOptions options;
  // P(b | a) as CSR over source items a (rows) and successors b (sorted within a row), and the
  // popularity term pop_weight * pop(b) / max pop. Buffers: saved and loaded with the module.
  at::Tensor trans_indptr;   // [I + 1] int64
  at::Tensor trans_indices;  // [nnz] int64
  at::Tensor trans_values;   // [nnz] float
  at::Tensor pop_term;       // [I] float

 private:
  // Weight of the r-th most recent real item (r = 0, 1, ...): [L] float, decay^r.
  at::Tensor recency_weights() const;

  const Dataset* data_;
  const Split* split_;
};
TORCH_MODULE(Markov);

}  // namespace rzoo
