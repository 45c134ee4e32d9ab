// Beyond-accuracy metrics (internal to the evaluator): popularity, novelty and diversity of each
// user's top list; coverage and Gini of how often each item is in a top list over all users.
#pragma once
#include <cstdint>
#include <vector>

#include "trainers/eval/metrics.h"

namespace rzoo {
struct Split;
struct Dataset;
struct EvalOptions;
}  // namespace rzoo

namespace rzoo::eval_impl {

// Item facts for the beyond-accuracy metrics.
struct ItemFacts {
  std::vector<int64_t> pop;                // distinct training users per item
  std::vector<int64_t> feat_ptr{0}, feat;  // diversity feature tokens per item (sorted, unique)
  int64_t n_users = 0;
};

// Fails when need_features and the dataset lacks a token feature of eval.diversity_features.
ItemFacts item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, bool need_features);

// Popularity, novelty or diversity of one user's top list top[0, n_top) at c.k; NaN otherwise.
double beyond_value(const MetricColumn& c, const int64_t* top, int64_t n_top, const ItemFacts& f);

// Per coverage/gini column: how many users have each item in their top K.
class TopCounts {
 public:
  TopCounts(const std::vector<MetricColumn>& cols, int64_t n_items);
  // Adds the top lists of `users` users, user r's at top[r * stride], n_top[r] long.
  void add(const std::vector<MetricColumn>& cols, const int64_t* top, size_t stride, const std::vector<int64_t>& n_top,
           int64_t users);
  // The aggregate of column `ci` (one of the counted columns, asked for in column order).
  double value(const MetricColumn& c, size_t ci) const;
  // The counts themselves ([counted columns, n_items]), to sum those of several processes.
  std::vector<int64_t>& raw() { return in_top_; }

 private:
  int64_t n_items_;
  std::vector<size_t> cols_;     // the counted columns
  std::vector<int64_t> in_top_;  // [counted columns, n_items]
};

}  // namespace rzoo::eval_impl
