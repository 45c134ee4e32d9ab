// EASE: an item-item linear autoencoder with a closed-form solution.
// Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
//
// With X the binary user x item training matrix, EASE learns the item-item weights
//   B = argmin |X - X B|_F^2 + lambda |B|_F^2  subject to diag(B) = 0,
// whose solution is, with P = (X^T X + lambda I)^-1,
//   B_ij = -P_ij / P_jj (i != j),  B_jj = 0.
// score(u, i) = X_u . B[:, i]: a user's items vote for the items they co-occur with.
#pragma once
#include <string>
#include <torch/arg.h>

#include "models/recommender.h"

namespace rzoo {

struct EASEOptions {
  static EASEOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  // lambda of the paper (> 0). It is added to counts of co-occurrences, so it scales with the
  // data: Steck reports 200-1000 for ML-20M, Netflix and MSD; 500 suits ML-1M-sized data.
  TORCH_ARG(double, l2) = 500.0;
  // Precision of the inverse: "auto" (float32 where the conditioning allows, else float64; see
  // ease.cpp), "float32" or "float64".
  TORCH_ARG(std::string, precision) = "auto";
};

class EASEImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  explicit EASEImpl(const ModelContext& ctx);
  EASEImpl(const ModelContext& ctx, EASEOptions options);

  InputType input_type() const override { return InputType::None; }
  void fit(const Csr& train) override;
  // The parent's P = G^-1 (from its B and the diagonal of P, which its B and G give) updated by
  // Woodbury's identity for the change of G, V S V^T with V the changed users' new and old rows
  // (S = +1 / -1): O(I^2 r) for rank r against the O(I^3) of a refit. Checked against the new
  // G (|G P z - z| / |z| <= 1e-3 for random z); refits in full where that fails or r > I / 4.
  UpdateResult fit_update(const ParentFit& parent, const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // Fold-in: X_h B for the history h, the sum of B's rows at h's items: exactly what a known
  // user with those training items gets.
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // Explanation: history item j contributes B[j, i] to item i's score (they add up to it).
  std::string explain_kind() const override { return "items"; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  EASEOptions options;
  // [I, I] float: B, zero diagonal. Built in double precision, stored in float.
  at::Tensor item_weights;
  // The binary training matrix X as CSR (user u's items: history_items[history_indptr[u] ..
  // history_indptr[u + 1]), sorted), which scoring needs: X_u B is the sum of B's rows at u's
  // items, nnz_u * I work per user (torch::embedding_bag) instead of the I^2 of a dense row
  // times B. Sized from the context's training split at construction, so that a checkpoint
  // loads into a freshly built model; fit() replaces them.
  at::Tensor history_indptr;  // [U + 1] long
  at::Tensor history_items;   // [nnz] long
};
TORCH_MODULE(EASE);

}  // namespace rzoo
