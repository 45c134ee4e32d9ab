#include "trainers/eval/bounds.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include <fmt/core.h>

#include <yaml-cpp/yaml.h>

#include "core/config.h"

namespace rzoo {

void check_data_bounds(const Config& cfg, int64_t n_items, bool samples_negatives, int64_t max_seen) {
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
  const int64_t unseen = n_items - std::max<int64_t>(max_seen, 1);
  if (max_seen > 0 && neg > unseen)
    cfg.bad("train.neg_per_pos",
            fmt::format("{} is more than the {} items the busiest training user has not seen ({} of the {} items are "
                        "in their history; negatives are drawn from a user's unseen items); use at most {}",
                        neg, unseen, max_seen, n_items, unseen));
}


namespace {
std::string gib(double bytes) { return fmt::format("{:.1f} GiB", bytes / (1024.0 * 1024.0 * 1024.0)); }
}  // namespace

MemoryEstimate estimate_training_memory(const Config& cfg, int64_t n_users, int64_t n_items) {
  MemoryEstimate best;
  auto consider = [&](double bytes, std::string key, std::string what) {
    if (bytes > best.bytes) best = MemoryEstimate{bytes, std::move(what), std::move(key)};
  };
  const double rows = static_cast<double>(n_users + n_items + 2);
  const double items = static_cast<double>(n_items);
  // Embedding tables: weights and gradients (x2), float32.
  for (const char* key : {"model.embedding_size", "model.factors", "model.hidden_size"})
    if (cfg.has(key)) {
      const double d = static_cast<double>(cfg.get_int(key));
      consider(rows * d * 4.0 * 2.0, key,
               fmt::format("{} = {}: user and item tables of {} rows x {} floats, with gradients", key,
                           static_cast<int64_t>(d), static_cast<int64_t>(rows), static_cast<int64_t>(d)));
    }
  // Autoencoders and the MLP recommender: [I, h] input and output layers, with gradients.
  for (const char* key : {"model.hidden", "model.latent"})
    if (cfg.has(key)) {
      const auto v = cfg.node(key).IsSequence() ? cfg.get_int_list(key, 1)
                                                : std::vector<int64_t>{cfg.get_int(key)};
      int64_t h = 0;
      for (const int64_t x : v) h = std::max(h, x);
      consider(items * static_cast<double>(h) * 4.0 * 2.0 * 2.0, key,
               fmt::format("{} = {}: input and output layers of {} items x {} floats, with gradients", key, h, n_items, h));
    }
  const std::string model = cfg.get_string("model.name");
  if (model == "ease")  // the Gram matrix and its inverse, float64 (models/general/ease.cpp)
    consider(items * items * 8.0 * 2.0, "dataset.filter.item_min",
             fmt::format("EASE's two {} x {} float64 matrices", n_items, n_items));
  // A sequence model with the full softmax: logits and their gradient for one batch, [B, (L,) I].
  if (cfg.has("model.max_len") && cfg.has("model.loss") && cfg.get_string("model.loss") == "ce") {
    const int64_t b = cfg.get_int("train.batch_size", 1);
    const bool all_positions = cfg.has("train.sequence.augment") && cfg.get_string("train.sequence.augment") == "none";
    const int64_t l = all_positions ? cfg.get_int("model.max_len", 1) : 1;
    consider(static_cast<double>(b) * static_cast<double>(l) * items * 4.0 * 2.0, "train.batch_size",
             fmt::format("train.batch_size = {}: full-softmax logits of [{}, {}{} items] floats, with gradients", b, b,
                         all_positions ? fmt::format("{}, ", l) : "", n_items));
  }
  return best;
}

double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  double total = 0;
  bool any = false;
  for (std::string key; in >> key;) {
    double kb = 0;
    std::string unit;
    if (!(in >> kb >> unit)) break;
    if (key == "MemAvailable:" || key == "SwapFree:") {
      total += kb * 1024.0;
      any = true;
    }
  }
  return any ? total : 0.0;
}

void check_memory_estimate(const Config& cfg, int64_t n_users, int64_t n_items) {
  if (cfg.has("memory_check") && !cfg.get_bool("memory_check")) return;
  const MemoryEstimate e = estimate_training_memory(cfg, n_users, n_items);
  const double avail = available_memory_bytes();
  if (avail <= 0 || e.bytes <= avail) return;
  cfg.bad(e.key, fmt::format("this run needs at least {} ({}), more than the {} this machine has free (MemAvailable + "
                             "SwapFree); lower {}, or set memory_check: false to try anyway",
                             gib(e.bytes), e.what, gib(avail), e.key));
}

}  // namespace rzoo
