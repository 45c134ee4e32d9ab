// Content-based recommendation: items as TF-IDF vectors of their side information (genres and
// categories as multi-hot tokens, tags and title words as tokenised text), users as the
// (rating-weighted) mean of the vectors of the items they consumed, and cosine scoring.
// Pazzani & Billsus, "Content-Based Recommendation Systems", The Adaptive Web, LNCS 4321, 2007;
// TF-IDF after Salton & Buckley, "Term-weighting approaches in automatic text retrieval", 1988.
//
// Items need no interactions to be scored: an item known only from its metadata (cold start,
// dataset.items.keep_unseen) gets a score from its content alone.
#pragma once
#include <torch/arg.h>

#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

struct ContentOptions {
  static ContentOptions from_config(const Config* cfg);  // reads model.* (defaults when cfg is null)
  TORCH_ARG(std::vector<std::string>, features) = {};     // item token features; empty = all of them
  TORCH_ARG(std::string, weighting) = "tfidf";            // tfidf | binary
  TORCH_ARG(int64_t, max_features) = 2000;                // vocabulary kept (by document frequency)
  TORCH_ARG(int64_t, min_df) = 1;                         // tokens on fewer items are dropped
  TORCH_ARG(std::string, profile) = "mean";               // mean | rating (rating-weighted, centred)
};

class ContentImpl : public RecommenderImpl {
 public:
  explicit ContentImpl(const ModelContext& ctx);
  ContentImpl(const ModelContext& ctx, ContentOptions options);
  InputType input_type() const override { return InputType::None; }
  bool scores_cold_items() const override { return true; }
  void fit(const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // Fold-in: the profile of the history, the normalised sum of its items' vectors (the mean
  // profile: a history carries no ratings, so profile: rating folds in as mean), then cosine.
  // With profile: mean, a known user's own items give exactly its trained scores.
  bool folds_in() const override { return true; }
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // Explanation by feature: feature t contributes v_i[t] p[t] / |p| (p the history's summed
  // item vectors): the shared features by TF-IDF weight, adding up to the fold-in cosine.
  std::string explain_kind() const override { return "features"; }
  std::vector<std::string> explain_features() const override { return vocab; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  ContentOptions options;
  std::vector<std::string> vocab;  // "feature:token" of each column of the item vectors

 private:
  at::Tensor item_vec_;  // [I, T] L2-normalised TF-IDF rows (zero for items without features)
  at::Tensor user_vec_;  // [U, T] L2-normalised profiles (zero for users without training items)
  // The training data (for rating-weighted profiles); used by fit() only, which runs while the
  // data the model was built from is alive.
  const Dataset* ctx_data_ = nullptr;
  const Split* ctx_split_ = nullptr;
};
TORCH_MODULE(Content);

}  // namespace rzoo
