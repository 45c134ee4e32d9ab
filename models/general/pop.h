// Pop: ranks every item by its number of training interactions, the same list for every user.
// The non-personalised baseline every recommender must beat (e.g. Cremonesi, Koren & Turrin,
// "Performance of Recommender Algorithms on Top-N Recommendation Tasks", RecSys 2010).
#pragma once
#include "models/recommender.h"

namespace rzoo {

class PopImpl : public RecommenderImpl {
 public:
  static constexpr bool kReadsTrainRows = false;  // models/registry.h: model_reads_train_rows
  explicit PopImpl(const ModelContext& ctx);

  InputType input_type() const override { return InputType::None; }
  void fit(const Csr& train) override;
  // The parent's counts plus the pairs added since (exact: counts are sums).
  UpdateResult fit_update(const ParentFit& parent, const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // Fold-in: the popularity scores, the same for every history (as for every known user).
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  ScriptExport script_export() const override;

 private:
  at::Tensor counts_;  // [I] float: training interactions per item (a buffer, so it is saved)
};
TORCH_MODULE(Pop);

}  // namespace rzoo
