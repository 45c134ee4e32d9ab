// Size-like settings checked against the data they apply to, once the data is loaded and before
// anything is trained or written (a run folder included): a number nobody bounded must not turn
// into an allocation or a loop that grows with it.
//   eval.ks            every K at most the number of items (a top-K list of a catalogue of
//                      n_items holds at most n_items);
//   train.neg_per_pos  at most the items the busiest training user has not seen (n_items minus
//                      the largest training history: negatives are drawn from a user's unseen
//                      items), checked when the model samples negatives.
// Each failure is a config error naming the key, the value and the number of items.
#pragma once
#include <cstdint>
#include <string>

namespace rzoo {

class Config;

// `max_seen`: the most distinct items any user has in the training part (0 when unknown).
void check_data_bounds(const Config& cfg, int64_t n_items, bool samples_negatives, int64_t max_seen = 0);

// A lower bound of a training run's memory, from the config and the data's shape alone (nothing
// is allocated): the embedding tables (n_users + n_items rows of the widest model.* width) with
// their gradients, EASE's two [I, I] float64 matrices, the autoencoders' [I, hidden] layers,
// and a sequence model's full-softmax logits for the largest batch. `what` names the key that
// dominates. Deliberately low (no optimizer state, no activations beyond the logits), so that a
// run it refuses could not have fitted.
struct MemoryEstimate {
  double bytes = 0;
  std::string what;  // e.g. "model.embedding_size = 65536: 2 embedding tables of 9,000 rows"
  std::string key;   // the config key to lower
};
MemoryEstimate estimate_training_memory(const Config& cfg, int64_t n_users, int64_t n_items);
// MemAvailable + SwapFree from /proc/meminfo, in bytes (0 when unknown).
double available_memory_bytes();
// Refuses (a config error naming the key) a run whose estimate exceeds the available memory,
// unless `memory_check: false`.
void check_memory_estimate(const Config& cfg, int64_t n_users, int64_t n_items);

}  // namespace rzoo
