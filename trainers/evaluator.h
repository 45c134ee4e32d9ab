// Evaluation: every protocol, every standard metric, per-user values.
//
// Protocols (eval.protocol), written beside every number:
//   full    rank all items; the user's training items (and validation items at test time) are
//           masked, except the user's own targets, which are never masked.
//   uniN    rank each user's targets among N sampled negatives per target, drawn uniformly from
//           the items the user never interacted with (in any split).
//   popN    the same with negatives drawn in proportion to training popularity.
//   given   rank the targets among the candidates that came with the data (NCF's 99 negatives);
//           validation, which has no given candidates, uses uniN with N the mean number given.
// Sampled candidates depend only on (eval.seed, user, split): every model of a comparison is
// ranked against the same candidates, so per-user results are paired.
//
// Ties: items with equal scores are ordered by a pseudo-random permutation of the items, fixed
// per user by eval.seed and the same for every model. A constant scorer therefore ranks items at
// random and gets the random-ranking expectation, never a perfect score; and the result never
// depends on the order in which items happen to be stored or scored.
//
// Metrics (@K for each K of eval.ks unless marked "no K"); a user's targets T (n_t of them) have
// ranks r_t (1-based among the N_u candidates):
//   hr = [any r_t <= K]; precision = hits / K; recall = hits / n_t;
//   ndcg = sum_{r_t <= K} 1/log2(r_t + 1) / sum_{j <= min(n_t, K)} 1/log2(j + 1);
//   mrr = 1 / min r_t if <= K, else 0;  map = sum_{r_t <= K} (targets ranked <= r_t) / r_t / min(n_t, K);
//   auc (no K) = share of (target, non-target candidate) pairs ordered correctly, per user;
//   gauc (no K) = the per-user AUC averaged with weights n_t (auc: unweighted);
//   popularity = mean training popularity (distinct users) of the top-K items;
//   novelty = mean of -log2(max(pop_i, 1) / n_users) over the top-K items;
//   diversity = intra-list diversity: mean 1 - cosine of the item feature vectors
//               (eval.diversity_features) over pairs of top-K items that have features;
//   coverage = share of the catalogue in at least one user's top-K (over all users, no per-user value);
//   gini = Gini coefficient of how often each item is in a top-K (over all users, no per-user value);
//   rmse, mae (no K) = rating prediction error over the split's rated rows (aggregate over rows;
//               the per-user values are each user's own RMSE / MAE).
// Per-user metrics are averaged over the users with at least one target (NaN values, e.g. AUC of
// a user without non-target candidates, are left out of the mean).
//
// Users are processed in chunks sized by eval.memory_mb; each user's numbers are computed from
// that user's scores alone, so nothing depends on the chunk size or the thread count.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"

namespace rzoo {

class Config;
struct Split;
struct Dataset;
class RecommenderImpl;

enum class Target { Valid, Test };

struct EvalOptions {
  std::vector<int64_t> ks = {10, 20};
  std::vector<std::string> metrics = {"hr", "recall", "precision", "ndcg", "mrr", "map", "auc", "coverage", "novelty"};
  std::string protocol = "full";  // full | uni<N> | pop<N> | given
  int64_t memory_mb = 512;        // budget for one chunk's scores and candidates
  int64_t batch_users = 0;        // users per chunk; 0 = derived from memory_mb
  uint64_t seed = 2020;           // sampled candidates and tie order
  bool save_rankings = false;     // keep each user's targets, ranks and top list (for files)
  int64_t target_max_train = 0;   // > 0: only targets with fewer training interactions count (full)
  int64_t user_max_train = 0;     // > 0: only users with at most this many training interactions count
  std::vector<std::string> diversity_features = {"genres"};
  static EvalOptions from_config(const Config& cfg);
};

const std::vector<std::string>& known_metrics();
bool metric_has_k(const std::string& metric);          // "ndcg" yes, "auc" no
bool metric_per_user(const std::string& metric);        // coverage and gini are not
bool metric_higher_is_better(const std::string& name);  // rmse and mae: lower is better
bool metric_is_rating(const std::string& metric);       // rmse, mae

struct EvalResult {
  std::string split;          // "valid" or "test"
  std::string protocol_name;  // "full", "uni100", "pop100", "given"
  std::string protocol;       // the protocol in words, written beside the numbers
  int64_t n_users = 0;        // users with at least one target item
  int64_t n_items = 0;
  double seconds = 0;
  // Where the time went: scoring (the model, and copying scores to the CPU) in wall seconds;
  // masking, ranking (top-K and target ranks) and per-user metrics in thread-seconds.
  double seconds_scoring = 0, seconds_masking = 0, seconds_ranking = 0, seconds_metrics = 0;
  std::vector<std::pair<std::string, double>> metrics;  // "ndcg@10" -> aggregate, in table order

  // Per user (ascending user index; users with >= 1 target):
  std::vector<int64_t> users, n_targets, n_candidates;
  std::vector<std::pair<std::string, std::vector<double>>> per_user;  // per-user metrics, same order
  // With eval.save_rankings: each user's targets, their ranks (same order) and top list.
  std::vector<std::vector<int64_t>> targets, ranks, top;

  double get(const std::string& name) const;  // throws listing the known names
  bool has(const std::string& name) const;
  const std::vector<double>* user_values(const std::string& name) const;  // null if not per user
  // {"split", "protocol_name", "protocol", "n_users", "n_items", "seconds", "metrics": {name: value
  // or null}} (the valid/test entries of metrics.json).
  Json json() const;
  std::string to_json() const { return json_dump(json(), 2); }
};

// Evaluates `model` on the valid or test part of `split`. `data` supplies ratings (rmse, mae)
// and item features (diversity); it may be null when those metrics are not requested.
// While it scores, the model's HistoryScope (models/recommender.h) is Train for the valid part and
// TrainValid for the test part, so a sequence model never reads its own targets; All afterwards.
EvalResult evaluate(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                    const c10::Device& device, const Dataset* data = nullptr);

// The ranking metrics of one user from the ranks of its targets (1-based among n_candidates),
// in the order metrics x ks (metrics without K once); beyond-accuracy metrics are not included.
std::vector<std::pair<std::string, double>> rank_metrics(std::vector<int64_t> ranks, int64_t n_candidates,
                                                         const std::vector<int64_t>& ks,
                                                         const std::vector<std::string>& metrics);

// Files of a run folder: per-user values (S.users.csv), rankings (S.rankings.tsv, with
// save_rankings) and the item facts the beyond-accuracy metrics used (items.tsv).
void write_user_values(const EvalResult& r, const std::string& path);
void write_rankings(const EvalResult& r, const std::string& path);
void write_item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, const std::string& path);

}  // namespace rzoo
