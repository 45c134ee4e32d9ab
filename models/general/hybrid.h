// Hybrid recommendation: a blend of any registered closed-form models, each defined by its own
// YAML inside the hybrid's (model.models), combined per user either by a weighted sum of
// normalised scores or by (weighted) reciprocal-rank fusion.
// Burke, "Hybrid Recommender Systems: Survey and Experiments", UMUAI 12(4), 2002 (weighted
// hybrids); Cormack, Clarke & Buettcher, "Reciprocal Rank Fusion outperforms Condorcet and
// individual Rank Learning Methods", SIGIR 2009 (RRF).
//
//   weighted: s(u, i) = sum_m w_m * norm_u(s_m(u, .))[i]   norm: minmax | zscore | none, per user
//   rrf:      s(u, i) = sum_m w_m / (rrf_k + rank_m(u, i)) rank 1 = the best item of model m
// Cold start (cold_start_threshold T > 0): the weights depend on the item's support. With n_i the
// item's training interactions and g_i = min(1, n_i / T), a collaborative part's weight becomes
// w_m g_i, and a part that scores from item features (scores_cold_items: content) gets
// w_m (1 + (1 - g_i) W_cf / W_content), W the summed weights of either kind: the weight the
// collaborative parts lose on a weakly supported item moves to content (support-weighted
// blending; Burke 2002's "switching" for new items at g_i = 0). Items with n_i >= T get the plain
// blend, a cold item (n_i = 0) content alone. (Tried and dropped: imputing the collaborative
// score of a weak item by the part's mean; on ml-latest-small it never lifted a cold item into
// a top 10.)
// over the items the user could be recommended: the user's training items are left out of the
// normalisation statistics and the ranks (they would otherwise dominate min-max and shift every
// rank), and get 0.
#pragma once
#include <torch/arg.h>

#include <string>
#include <vector>

#include "core/config.h"
#include "models/recommender.h"

namespace rzoo {

struct HybridOptions {
  TORCH_ARG(std::string, method) = "weighted";  // weighted | rrf
  TORCH_ARG(std::vector<double>, weights) = {};  // one per sub-model; [] = equal
  TORCH_ARG(std::string, normalize) = "minmax";  // weighted: minmax | zscore | none
  TORCH_ARG(double, rrf_k) = 60.0;               // rrf: the rank offset (Cormack et al.: 60)
  TORCH_ARG(double, cold_start_threshold) = 0.0; // T: 0 = off; see the header comment
};

class HybridImpl : public RecommenderImpl {
 public:
  // Sub-models come from model.models in ctx.config (each entry a model name or a map of that
  // model's keys), resolved like a run's model section (defaults from configs/models/<name>.yaml).
  explicit HybridImpl(const ModelContext& ctx);
  InputType input_type() const override { return InputType::None; }
  void fit(const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  ScriptExport script_export() const override;
  // Fold-in when every part folds in: each part's fold-in scores, normalised (or ranked) as
  // score_all does with the history's items as the known ones, weighted and summed.
  bool folds_in() const override;
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // Passed on to every sub-model: a part that reads users' histories (markov) must see the
  // evaluator's scope, or it would rank validation and test targets from the whole history.
  void set_history_scope(HistoryScope scope) override {
    for (auto& m : parts_) m->set_history_scope(scope);
  }

  HybridOptions options;
  const std::vector<Recommender>& parts() const { return parts_; }

 private:
  std::vector<Recommender> parts_;  // registered as submodules "part0", "part1", ...
  std::vector<std::string> part_names_;
  std::vector<Config> configs_;  // the sub-models' resolved configs (they may keep pointers to them)
  at::Tensor seen_indptr_;  // [U + 1] CSR of the users' training items
  at::Tensor seen_items_;   // [nnz]
  at::Tensor seen(const at::Tensor& users) const;  // [B, I] bool
  // Cold start: g_i [I] (a buffer only when T > 0, so checkpoints of hybrids without it load as
  // before); part m's term of the blend (weight times its normalised scores [B, I]).
  at::Tensor support_;
  at::Tensor term(const at::Tensor& part, const at::Tensor& known, size_t m) const;
  double cold_shift() const;  // W_cf / W_content
};
TORCH_MODULE(Hybrid);

}  // namespace rzoo
