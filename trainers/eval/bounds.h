// Size-like settings checked against the data they apply to, once the data is loaded and before
// anything is trained or written (a run folder included): a number nobody bounded must not turn
// into an allocation or a loop that grows with it.
//   eval.ks            every K at most the number of items (a top-K list of a catalogue of
//                      n_items holds at most n_items);
//   train.neg_per_pos  at most n_items - 1 (the items a user could have as negatives), checked
//                      when the model samples negatives.
// Each failure is a config error naming the key, the value and the number of items.
#pragma once
#include <cstdint>

namespace rzoo {

class Config;

void check_data_bounds(const Config& cfg, int64_t n_items, bool samples_negatives);

}  // namespace rzoo
