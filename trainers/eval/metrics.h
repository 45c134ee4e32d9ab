// Ranking metrics (internal to the evaluator): the metric kinds, the result's columns (metric x
// K) and one user's accuracy metrics from its targets' ranks (definitions in trainers/evaluator.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rzoo::eval_impl {

enum Kind {
  HR, RECALL, PRECISION, NDCG, MRR, MAP, AUC, GAUC,  // from the targets' ranks
  POPULARITY, NOVELTY, DIVERSITY, COVERAGE, GINI,    // beyond accuracy
  RMSE, MAE,                                         // rating prediction
  LOGLOSS                                            // labelled rows (eval.protocol labeled)
};
const std::vector<std::string>& metric_names();  // indexed by Kind
Kind kind_of(const std::string& m);

inline bool is_rank_kind(Kind k) { return k <= GAUC; }  // from the targets' ranks alone
inline bool is_top_kind(Kind k) { return k == POPULARITY || k == NOVELTY || k == DIVERSITY; }  // per user, top list
inline bool is_count_kind(Kind k) { return k == COVERAGE || k == GINI; }  // over all users' top lists
inline bool is_rating_kind(Kind k) { return k == RMSE || k == MAE; }

// One number of a result: "ndcg@10" is {NDCG, 10, "ndcg@10"}; metrics without K have k = 0.
struct MetricColumn {
  Kind kind;
  int64_t k;  // 0 = no K
  std::string name;
};
std::vector<MetricColumn> columns_for(const std::vector<std::string>& metrics, const std::vector<int64_t>& ks);

struct Tables {
  std::vector<double> disc, idcg;  // disc[r] = 1/log2(r + 1); idcg[j] = sum_{i <= j} disc[i]
  explicit Tables(int64_t kmax);
};

// Accuracy metrics of one user from its sorted target ranks r[0, T) among n_cand candidates.
double rank_value(const MetricColumn& c, const int64_t* r, int64_t T, int64_t n_cand, const Tables& tb);

// The aggregate of a per-user column: the mean over users of vals[r * stride] (NaN left out),
// weighted by the user's number of targets for GAUC. NaN when no user has a value.
double mean_over_users(const MetricColumn& c, const double* vals, size_t stride, const std::vector<int64_t>& n_targets);

}  // namespace rzoo::eval_impl
