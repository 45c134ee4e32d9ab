// `rzoo data stats`: what a dataset holds, as text and as JSON.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace rzoo {

struct Distribution {
  int64_t min = 0, median = 0, p90 = 0, max = 0;
  double mean = 0;
};

struct DataStats {
  int64_t users = 0, items = 0, interactions = 0, unique_pairs = 0;
  double density = 0;           // unique pairs / (users * items)
  Distribution per_user, per_item;
  double gini = 0;              // of item popularity (interactions per item); 0 = even, -> 1 = concentrated
  bool has_time = false;
  int64_t time_min = 0, time_max = 0, missing_time = 0;
  bool has_rating = false;
  double rating_min = 0, rating_max = 0, rating_mean = 0;
  int64_t neg_users = 0;        // users with given negatives
  Distribution neg_per_user;    // over those users
  int64_t given_part[3] = {0, 0, 0};  // a split that came with the data: train, valid, test rows
  int64_t split_train = 0, split_valid = 0, split_test = 0, test_users = 0;
};

DataStats compute_stats(const Dataset& d, const Split* split);
std::string stats_text(const Dataset& d, const DataStats& s, const Split* split);
std::string stats_json(const Dataset& d, const DataStats& s, const Split* split);

}  // namespace rzoo
