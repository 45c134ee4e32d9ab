// Ranking metrics, and the public names and properties of every metric.
#include "trainers/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "trainers/evaluator.h"

namespace rzoo {
namespace eval_impl {

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"hr",        "recall",   "precision", "ndcg",       "mrr",
                                                 "map",       "auc",      "gauc",      "popularity", "novelty",
                                                 "diversity", "coverage", "gini",      "rmse",       "mae",
                                                 "logloss"};
  return names;
}

Kind kind_of(const std::string& m) {
  const auto& names = metric_names();
  const auto it = std::find(names.begin(), names.end(), m);
  if (it == names.end()) fail("unknown metric '{}'", m);
  return static_cast<Kind>(it - names.begin());
}

std::vector<MetricColumn> columns_for(const std::vector<std::string>& metrics, const std::vector<int64_t>& ks) {
  std::vector<MetricColumn> cols;
  for (const auto& m : metrics) {
    const Kind kd = kind_of(m);
    if (!metric_has_k(m))
      cols.push_back({kd, 0, m});
    else
      for (int64_t k : ks) cols.push_back({kd, k, fmt::format("{}@{}", m, k)});
  }
  return cols;
}

Tables::Tables(int64_t kmax) : disc(static_cast<size_t>(kmax) + 1, 0.0), idcg(static_cast<size_t>(kmax) + 1, 0.0) {
  for (int64_t r = 1; r <= kmax; ++r) {
    disc[static_cast<size_t>(r)] = 1.0 / std::log2(static_cast<double>(r) + 1.0);
    idcg[static_cast<size_t>(r)] = idcg[static_cast<size_t>(r) - 1] + disc[static_cast<size_t>(r)];
  }
}

double rank_value(const MetricColumn& c, const int64_t* r, int64_t T, int64_t n_cand, const Tables& tb) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (c.kind == AUC || c.kind == GAUC) {
    const int64_t neg = n_cand - T;
    if (neg <= 0 || T == 0) return nan;
    double below = 0;  // non-target candidates ranked below each target
    for (int64_t j = 0; j < T; ++j) below += static_cast<double>(neg - (r[j] - 1 - j));
    return below / (static_cast<double>(T) * static_cast<double>(neg));
  }
  const int64_t k = c.k;
  const int64_t hits = std::upper_bound(r, r + T, k) - r;
  switch (c.kind) {
    case HR: return hits > 0 ? 1.0 : 0.0;
    case PRECISION: return static_cast<double>(hits) / static_cast<double>(k);
    case RECALL: return static_cast<double>(hits) / static_cast<double>(T);
    case NDCG: {
      // The tables hold min(K, catalogue) rows; a rank or count beyond them (only with K beyond
      // the catalogue and duplicate candidates) is computed directly.
      const auto top = static_cast<int64_t>(tb.disc.size()) - 1;
      auto disc = [&](int64_t x) { return x <= top ? tb.disc[static_cast<size_t>(x)] : 1.0 / std::log2(static_cast<double>(x) + 1.0); };
      double dcg = 0;
      for (int64_t j = 0; j < hits; ++j) dcg += disc(r[j]);
      const int64_t m = std::min(T, k);
      double idcg = tb.idcg[static_cast<size_t>(std::min(m, top))];
      for (int64_t x = top + 1; x <= m; ++x) idcg += disc(x);
      return dcg / idcg;
    }
    case MRR: return hits > 0 ? 1.0 / static_cast<double>(r[0]) : 0.0;
    case MAP: {
      double ap = 0;
      for (int64_t j = 0; j < hits; ++j) ap += static_cast<double>(j + 1) / static_cast<double>(r[j]);
      return ap / static_cast<double>(std::min(T, k));
    }
    default: return nan;
  }
}

double mean_over_users(const MetricColumn& c, const double* vals, size_t stride,
                       const std::vector<int64_t>& n_targets) {
  double s = 0, wsum = 0;
  for (size_t r = 0; r < n_targets.size(); ++r) {
    const double v = vals[r * stride];
    if (std::isnan(v)) continue;
    const double w = c.kind == GAUC ? static_cast<double>(n_targets[r]) : 1.0;
    s += w * v, wsum += w;
  }
  return wsum > 0 ? s / wsum : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace eval_impl

// ---- public names and properties -------------------------------------------------------------

const std::vector<std::string>& known_metrics() { return eval_impl::metric_names(); }
bool metric_has_k(const std::string& m) { return m != "auc" && m != "gauc" && m != "rmse" && m != "mae" && m != "logloss"; }
bool metric_per_user(const std::string& m) { return m != "coverage" && m != "gini"; }
bool metric_is_rating(const std::string& m) { return m == "rmse" || m == "mae"; }
bool metric_higher_is_better(const std::string& name) {
  const std::string m = name.substr(0, name.find('@'));
  return !metric_is_rating(m) && m != "logloss";
}

std::vector<std::pair<std::string, double>> rank_metrics(std::vector<int64_t> ranks, int64_t n_candidates,
                                                         const std::vector<int64_t>& ks,
                                                         const std::vector<std::string>& metrics) {
  using namespace eval_impl;
  if (ks.empty()) fail("rank_metrics: needs at least one K");
  std::sort(ranks.begin(), ranks.end());
  const auto cols = columns_for(metrics, ks);
  // Ranks and target counts never exceed the candidates: the tables need no more rows than that.
  const int64_t rows = std::max<int64_t>({n_candidates, static_cast<int64_t>(ranks.size()), ranks.empty() ? 0 : ranks.back(), 1});
  const Tables tb(std::min(*std::max_element(ks.begin(), ks.end()), rows));
  std::vector<std::pair<std::string, double>> out;
  for (const auto& c : cols) {
    if (!is_rank_kind(c.kind)) continue;
    out.emplace_back(c.name, rank_value(c, ranks.data(), static_cast<int64_t>(ranks.size()), n_candidates, tb));
  }
  return out;
}

}  // namespace rzoo
