#include "trainers/eval/bounds.h"

#include <fmt/core.h>

#include "core/config.h"

namespace rzoo {

void check_data_bounds(const Config& cfg, int64_t n_items, bool samples_negatives) {
  for (const int64_t k : cfg.get_int_list("eval.ks", 1))
    if (k > n_items)
      cfg.bad("eval.ks", fmt::format("K = {} is larger than the number of items of the data ({}); every K must be at "
                                     "most {} (a top-K list cannot hold more items than the catalogue)",
                                     k, n_items, n_items));
  if (!samples_negatives) return;
  const int64_t neg = cfg.get_int("train.neg_per_pos", 1);
  if (neg > n_items - 1)
    cfg.bad("train.neg_per_pos",
            fmt::format("{} is more than the {} items a user could have as negatives (the data has {} items); use at "
                        "most {}",
                        neg, n_items - 1, n_items, n_items - 1));
}

}  // namespace rzoo
