// Reproducible cleaning, in this order: rating range filter, duplicate (user, item) policy,
// rating threshold (implicit feedback), k-core filtering to a fixed point, and dropping users and
// items left without interactions. Each step's dropped rows are counted in the report. Also
// load_dataset(), which puts reading, cleaning and the cache together.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <unordered_map>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/readers.h"

namespace rzoo {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Duplicate (user, item) rows: keep the first or last (by timestamp, then file order), or one
// row with the mean rating (at the first row's place and time).
int64_t dedup(Dataset& d, const std::string& policy) {
  std::vector<int64_t> start;
  const std::vector<int64_t> order = d.rows_by_user(start);
  // With a given split, a pair repeated across its parts (seen in train, held out in test) is
  // not a duplicate: the key is (item, part).
  const size_t parts = d.part.empty() ? 1 : 3;
  std::vector<int64_t> mark(static_cast<size_t>(d.n_items()) * parts, -1), leader(mark.size(), -1);
  std::vector<bool> keep(d.user.size(), true);
  std::unordered_map<int64_t, std::pair<double, int64_t>> sums;  // leader row -> (rating sum, count)
  const bool timed = d.has_timestamps();
  auto later = [&](int64_t a, int64_t b) {  // row a comes after row b in time
    if (timed && d.timestamp[static_cast<size_t>(a)] != d.timestamp[static_cast<size_t>(b)])
      return d.timestamp[static_cast<size_t>(a)] > d.timestamp[static_cast<size_t>(b)];
    return a > b;
  };
  int64_t dropped = 0;
  for (int64_t u = 0; u < d.n_users(); ++u) {
    for (int64_t p = start[static_cast<size_t>(u)]; p < start[static_cast<size_t>(u) + 1]; ++p) {
      const int64_t k = order[static_cast<size_t>(p)];
      const auto i = static_cast<size_t>(d.item[static_cast<size_t>(k)]) * parts +
                     (parts == 1 ? 0 : static_cast<size_t>(d.part[static_cast<size_t>(k)]));
      if (mark[i] != u) {
        mark[i] = u;
        leader[i] = k;
        continue;
      }
      ++dropped;
      const int64_t l = leader[i];
      if (policy == "mean") {
        auto& s = sums.try_emplace(l, d.rating[static_cast<size_t>(l)], 1).first->second;
        s.first += d.rating[static_cast<size_t>(k)];
        ++s.second;
        keep[static_cast<size_t>(k)] = false;
      } else {
        const bool replace = policy == "last" ? later(k, l) : later(l, k);
        if (replace) {
          keep[static_cast<size_t>(l)] = false;
          leader[i] = k;
        } else {
          keep[static_cast<size_t>(k)] = false;
        }
      }
    }
  }
  for (const auto& [l, s] : sums) d.rating[static_cast<size_t>(l)] = static_cast<float>(s.first / static_cast<double>(s.second));
  if (dropped > 0) d.filter_rows(keep);
  return dropped;
}

// Drops rows of users with fewer than `umin` and items with fewer than `imin` interactions,
// repeatedly, until every remaining user and item qualifies. Returns (rows dropped, rounds).
std::pair<int64_t, int64_t> kcore(Dataset& d, int64_t umin, int64_t imin) {
  int64_t dropped = 0, rounds = 0;
  std::vector<int64_t> uc, ic;
  for (;;) {
    uc.assign(static_cast<size_t>(d.n_users()), 0);
    ic.assign(static_cast<size_t>(d.n_items()), 0);
    for (size_t k = 0; k < d.user.size(); ++k) {
      ++uc[static_cast<size_t>(d.user[k])];
      ++ic[static_cast<size_t>(d.item[k])];
    }
    std::vector<bool> keep(d.user.size());
    int64_t n = 0;
    for (size_t k = 0; k < d.user.size(); ++k) {
      keep[k] = uc[static_cast<size_t>(d.user[k])] >= umin && ic[static_cast<size_t>(d.item[k])] >= imin;
      n += !keep[k];
    }
    ++rounds;
    if (n == 0) break;
    dropped += n;
    d.filter_rows(keep);
  }
  return {dropped, rounds};
}

}  // namespace

RowRules row_rules(const Config& cfg) {
  RowRules r;
  r.has_min = !cfg.node("dataset.filter.rating_min").IsNull();
  r.has_max = !cfg.node("dataset.filter.rating_max").IsNull();
  if (r.has_min) r.lo = cfg.get_double("dataset.filter.rating_min");
  if (r.has_max) r.hi = cfg.get_double("dataset.filter.rating_max");
  if (r.lo > r.hi) cfg.bad("dataset.filter.rating_max", fmt::format("{} is below rating_min {}", r.hi, r.lo));
  r.has_threshold = !cfg.node("dataset.threshold").IsNull();
  if (r.has_threshold) r.threshold = cfg.get_double("dataset.threshold");
  r.dedup = cfg.get_choice("dataset.dedup", {"auto", "first", "last", "mean", "none"});
  if (r.dedup == "auto") r.dedup = cfg.get_string("dataset.format") == "sequence" ? "none" : "first";
  return r;
}

void clean_dataset(const Config& cfg, Dataset& d) {
  const auto t0 = std::chrono::steady_clock::now();
  const RowRules rules = row_rules(cfg);
  // 1. Rating range.
  const bool has_min = rules.has_min, has_max = rules.has_max;
  if (has_min || has_max) {
    if (!d.has_ratings()) cfg.bad(has_min ? "dataset.filter.rating_min" : "dataset.filter.rating_max", "the data has no rating column");
    const double lo = rules.lo, hi = rules.hi;
    std::vector<bool> keep(d.user.size());
    int64_t n = 0;
    for (size_t k = 0; k < keep.size(); ++k) {
      keep[k] = d.rating[k] >= lo && d.rating[k] <= hi;
      n += !keep[k];
    }
    d.filter_rows(keep);
    d.report.drop(fmt::format("rating outside [{}, {}]", lo, hi), n);
  }
  // 2. Duplicates.
  const std::string& policy = rules.dedup;
  if (policy == "mean" && !d.has_ratings()) cfg.bad("dataset.dedup", "'mean' needs a rating column");
  if (policy != "none") d.report.drop(fmt::format("duplicate (user, item), kept {}", policy == "mean" ? "the mean rating" : policy), dedup(d, policy));
  // 3. Threshold.
  if (rules.has_threshold) {
    if (!d.has_ratings()) cfg.bad("dataset.threshold", "a rating threshold needs a rating column (dataset.columns.rating)");
    const double t = rules.threshold;
    std::vector<bool> keep(d.user.size());
    int64_t n = 0;
    for (size_t k = 0; k < keep.size(); ++k) {
      keep[k] = d.rating[k] >= t;
      n += !keep[k];
    }
    d.filter_rows(keep);
    d.report.drop(fmt::format("rating below the threshold {}", t), n);
  }
  // 4. k-core.
  const int64_t umin = cfg.get_int("dataset.filter.user_min", 0), imin = cfg.get_int("dataset.filter.item_min", 0);
  if (umin > 1 || imin > 1) {
    const auto [n, rounds] = kcore(d, umin, imin);
    d.report.drop(fmt::format("k-core (users >= {}, items >= {}; {} round{})", umin, imin, rounds, rounds == 1 ? "" : "s"), n);
  }
  // 5. Renumber without the users and items left empty.
  const int64_t nu = d.n_users(), ni = d.n_items();
  d.compact(cfg.get_bool("dataset.items.keep_unseen"));
  if (d.n_users() < nu) d.report.notes.push_back(fmt::format("{} users left without interactions removed", nu - d.n_users()));
  if (d.n_items() < ni) d.report.notes.push_back(fmt::format("{} items left without interactions removed", ni - d.n_items()));
  d.report.clean_seconds = seconds_since(t0);
}

Dataset load_dataset_uncached(const Config& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  Dataset d = read_raw_dataset(cfg);
  d.report.parse_seconds = seconds_since(t0);
  if (d.n_interactions() == 0) fail("dataset '{}': {} has no data rows", d.name, cfg.get_string("dataset.path"));
  clean_dataset(cfg, d);
  if (d.n_interactions() == 0)
    fail("dataset '{}': no interactions left after cleaning ({})", d.name, d.report.summary());
  return d;
}

Dataset load_dataset(const Config& cfg) {
  const std::string file = cache_file(cfg);
  std::string key, why;
  if (!file.empty()) {
    key = cache_key_text(cfg);
    const auto t0 = std::chrono::steady_clock::now();
    const bool verify = cfg.get_choice("dataset.cache.verify", {"stat", "checksum"}) == "checksum";
    if (auto d = cache_load(file, key, verify, why)) {
      d->name = cfg.get_string("dataset.name");
      d->report.from_cache = true;
      d->report.notes.push_back(fmt::format("from cache {} ({:.3f} s)", file, seconds_since(t0)));
      return std::move(*d);
    }
  }
  // Why an existing cache file was not used (damaged, stale, of other options): said in the
  // report, after the store (the cache itself must not carry this note).
  const std::string not_used = why == "no cache file" ? "" : why;
  Dataset d = load_dataset_uncached(cfg);
  if (!file.empty()) {
    uint64_t bytes = 0;
    std::error_code ec;
    for (const auto& s : d.sources)
      if (s.exists) bytes += std::filesystem::file_size(s.path, ec);
    if (static_cast<double>(bytes) >= cfg.get_double("dataset.cache.min_mb", 0) * 1048576.0) {
      if (cache_store(file, key, d, why)) d.report.notes.push_back("cached in " + file);
      else d.report.notes.push_back("not cached: " + why);
    }
    if (!not_used.empty()) d.report.notes.push_back(fmt::format("cache {} not used: {}; rebuilt from the data", file, not_used));
  }
  return d;
}

}  // namespace rzoo
