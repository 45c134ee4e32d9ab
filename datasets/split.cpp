// Splits, all seeded and deterministic (`dataset.split.method`):
//   random       by ratios, per user (each user's unique items shuffled and cut) or global
//   leave_last   each user's last `test_k` interactions by time (file order without timestamps)
//                are test, the `valid_k` before them validation (leave-one-out: k = 1)
//   temporal     one global cut by time: by ratios of the time-ordered interactions, or at
//                timestamps `cut: [valid_start, test_start]`
//   kfold        unique (user, item) pairs shuffled into `folds` folds; fold `fold` is test
//   given        the split that came with the data (NCF files, split.train_path/test_path, RecBole's
//                .train/.valid/.test.inter), with its evaluation negatives
// For kfold and given, validation is carved from train by `valid` (none | random | last).
// All rows of one (user, item) pair go to one part under random and kfold splits, so a repeated
// interaction never leaks from train into test.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "core/random.h"
#include "datasets/dataset.h"
#include "datasets/fields.h"

namespace rzoo {

namespace {

// Rows grouped by user, each user's rows in time order (timestamp, then file order).
std::vector<int64_t> by_user_time(const Dataset& d, std::vector<int64_t>& start) {
  std::vector<int64_t> out = d.rows_by_user(start);
  if (d.has_timestamps()) {
    for (int64_t u = 0; u < d.n_users(); ++u)
      std::stable_sort(out.begin() + start[static_cast<size_t>(u)], out.begin() + start[static_cast<size_t>(u) + 1],
                       [&](int64_t a, int64_t b) { return d.timestamp[static_cast<size_t>(a)] < d.timestamp[static_cast<size_t>(b)]; });
  }
  return out;
}

void check_ratios(const std::vector<double>& r) {
  if (r.size() != 3) fail("split ratios must be [train, valid, test], got {} numbers", r.size());
  const double sum = r[0] + r[1] + r[2];
  if (r[0] <= 0 || r[1] < 0 || r[2] < 0 || std::abs(sum - 1.0) > 1e-6)
    fail("split ratios must be >= 0 with train > 0 and sum to 1, got [{}, {}, {}]", r[0], r[1], r[2]);
}

// Cumulative rounding of n by ratios; keeps >= 1 in train when n > 0.
std::pair<int64_t, int64_t> cut_points(int64_t n, const std::vector<double>& r) {
  int64_t n_train = std::max<int64_t>(n > 0 ? 1 : 0, std::llround(static_cast<double>(n) * r[0]));
  int64_t n_tv = std::max<int64_t>(n_train, std::llround(static_cast<double>(n) * (r[0] + r[1])));
  return {std::min(n_train, n), std::min(n_tv, n)};
}

// Unique (user, item) pairs in (user, item) order, and each row's pair index.
struct Pairs {
  std::vector<int64_t> user, item;
  std::vector<int64_t> of_row;
};
Pairs unique_pairs(const Dataset& d) {
  Pairs p;
  std::vector<int64_t> start;
  std::vector<int64_t> order = d.rows_by_user(start);  // then each user's rows sorted by item
  p.of_row.assign(d.user.size(), -1);
  for (int64_t u = 0; u < d.n_users(); ++u) {
    auto b = order.begin() + start[static_cast<size_t>(u)], e = order.begin() + start[static_cast<size_t>(u) + 1];
    std::sort(b, e, [&](int64_t x, int64_t y) {
      return d.item[static_cast<size_t>(x)] < d.item[static_cast<size_t>(y)] || (d.item[static_cast<size_t>(x)] == d.item[static_cast<size_t>(y)] && x < y);
    });
    for (auto it = b; it != e; ++it) {
      const int64_t i = d.item[static_cast<size_t>(*it)];
      if (p.item.empty() || p.user.back() != u || p.item.back() != i) {
        p.user.push_back(u);
        p.item.push_back(i);
      }
      p.of_row[static_cast<size_t>(*it)] = static_cast<int64_t>(p.user.size()) - 1;
    }
  }
  return p;
}

// Moves some of each user's train rows to validation: `k` per user (or `ratio` of them when
// ratio > 0), at random or the latest; every user keeps at least one training row.
void carve_valid(const Dataset& d, std::vector<int8_t>& part, const std::string& how, int64_t k, double ratio, uint64_t seed) {
  if (how == "none") return;
  std::vector<int64_t> start;
  const std::vector<int64_t> order = by_user_time(d, start);
  std::vector<int64_t> rows;
  for (int64_t u = 0; u < d.n_users(); ++u) {
    rows.clear();
    for (int64_t p = start[static_cast<size_t>(u)]; p < start[static_cast<size_t>(u) + 1]; ++p)
      if (part[static_cast<size_t>(order[static_cast<size_t>(p)])] == 0) rows.push_back(order[static_cast<size_t>(p)]);
    const auto n = static_cast<int64_t>(rows.size());
    int64_t take = ratio > 0 ? std::llround(static_cast<double>(n) * ratio) : k;
    take = std::min(take, n - 1);
    if (take <= 0) continue;
    if (how == "random") {
      Rng rng(seed ^ 0x5A17ULL, static_cast<uint64_t>(u));
      rng.shuffle(rows.begin(), rows.end());
    }
    for (int64_t j = n - take; j < n; ++j) part[static_cast<size_t>(rows[static_cast<size_t>(j)])] = 1;
  }
}

Csr csr_of(const Dataset& d, const std::vector<int64_t>& rows) {
  return Csr::from_rows(d.n_users(), d.n_items(), d.user, d.item, rows);
}

// sequences = false: no train_seq (an int64 per training row, read only by sequence models).
Split assemble(const Dataset& d, const std::vector<int8_t>& part, bool with_negatives, bool sequences, std::string method) {
  Split s;
  s.method = std::move(method);
  {
    // Sized first and `order` gone before the matrices are built: each array of one entry per
    // row is allocated once and no two such temporaries overlap (the split's peak memory).
    size_t count[3] = {0, 0, 0};
    for (int8_t p : part)
      if (p >= 0 && p <= 2) ++count[p];
    s.train_rows.reserve(count[0]);
    s.valid_rows.reserve(count[1]);
    s.test_rows.reserve(count[2]);
    std::vector<int64_t> start;
    const std::vector<int64_t> order = by_user_time(d, start);
    for (int64_t k : order) {
      const int8_t p = part[static_cast<size_t>(k)];
      if (p == 0) s.train_rows.push_back(k);
      else if (p == 1) s.valid_rows.push_back(k);
      else if (p == 2) s.test_rows.push_back(k);
    }
  }
  s.train = csr_of(d, s.train_rows);
  s.valid = csr_of(d, s.valid_rows);
  s.test = csr_of(d, s.test_rows);
  if (with_negatives && !d.neg_user.empty()) s.test_negatives = Csr::from_interactions(d.n_users(), d.n_items(), d.neg_user, d.neg_item);
  else s.test_negatives = Csr::from_pairs(d.n_users(), d.n_items(), {}, {});
  if (!sequences) return s;
  s.train_seq.n_rows = d.n_users();
  s.train_seq.n_cols = d.n_items();
  s.train_seq.indptr.assign(static_cast<size_t>(d.n_users()) + 1, 0);
  for (int64_t k : s.train_rows) ++s.train_seq.indptr[static_cast<size_t>(d.user[static_cast<size_t>(k)]) + 1];
  std::partial_sum(s.train_seq.indptr.begin(), s.train_seq.indptr.end(), s.train_seq.indptr.begin());
  s.train_seq.items.reserve(s.train_rows.size());
  for (int64_t k : s.train_rows) s.train_seq.items.push_back(d.item[static_cast<size_t>(k)]);  // rows are in (user, time) order
  return s;
}

}  // namespace

void release_train_rows(Split& split) {
  std::vector<int64_t>().swap(split.train_rows);  // clear() would keep the capacity
  split.train_rows_released = true;
}

Split split_random_per_user(const Dataset& data, const std::vector<double>& ratios, uint64_t seed, bool sequences) {
  check_ratios(ratios);
  const Pairs p = unique_pairs(data);
  std::vector<int8_t> pair_part(p.user.size(), 0);
  std::vector<int64_t> idx;
  for (size_t b = 0; b < p.user.size();) {
    size_t e = b;
    while (e < p.user.size() && p.user[e] == p.user[b]) ++e;
    idx.resize(e - b);
    std::iota(idx.begin(), idx.end(), static_cast<int64_t>(b));
    Rng rng(seed, static_cast<uint64_t>(p.user[b]));  // per-user stream: a user's split ignores the others
    rng.shuffle(idx.begin(), idx.end());
    const auto [n_train, n_tv] = cut_points(static_cast<int64_t>(idx.size()), ratios);
    for (int64_t k = 0; k < static_cast<int64_t>(idx.size()); ++k)
      pair_part[static_cast<size_t>(idx[static_cast<size_t>(k)])] = static_cast<int8_t>(k < n_train ? 0 : (k < n_tv ? 1 : 2));
    b = e;
  }
  std::vector<int8_t> part(data.user.size());
  for (size_t k = 0; k < part.size(); ++k) part[k] = pair_part[static_cast<size_t>(p.of_row[k])];
  return assemble(data, part, true, sequences, fmt::format("random per user {}/{}/{}", ratios[0], ratios[1], ratios[2]));
}

Split extend_split(const Dataset& d, const Split& base, int64_t base_rows, int64_t valid_begin, int64_t valid_end,
                   int64_t row_end) {
  std::vector<int8_t> part(d.user.size(), -1);
  const bool newest = valid_begin < valid_end;
  for (int64_t k : base.train_rows) part[static_cast<size_t>(k)] = 0;
  for (int64_t k : base.valid_rows) part[static_cast<size_t>(k)] = newest ? 0 : 1;
  for (int64_t k : base.test_rows) part[static_cast<size_t>(k)] = 2;
  const size_t end = row_end < 0 ? part.size() : std::min(part.size(), static_cast<size_t>(row_end));
  for (size_t k = static_cast<size_t>(base_rows); k < end; ++k) part[k] = 0;
  if (newest) {
    // Each user's latest row of [valid_begin, valid_end) (by time, then file order) validates,
    // when the user has another row there to train on.
    std::vector<int64_t> last(static_cast<size_t>(d.n_users()), -1), count(static_cast<size_t>(d.n_users()), 0);
    for (int64_t k = valid_begin; k < valid_end; ++k) {
      const auto u = static_cast<size_t>(d.user[static_cast<size_t>(k)]);
      ++count[u];
      if (last[u] < 0 || !d.has_timestamps() || d.timestamp[static_cast<size_t>(k)] >= d.timestamp[static_cast<size_t>(last[u])])
        last[u] = k;
    }
    for (size_t u = 0; u < last.size(); ++u)
      if (count[u] >= 2) part[static_cast<size_t>(last[u])] = 1;
  }
  return assemble(d, part, true, true, base.method + (newest ? ", appended rows in train but each user's newest of the last file "
                                                           "in valid (the run's valid rows in train)"
                                                         : ", appended rows in train"));
}

namespace {
Split split_parts(const Dataset& d, const Config& cfg, bool sequences) {
  const std::string method = cfg.get_choice("dataset.split.method", {"random", "leave_last", "temporal", "kfold", "given"});
  const auto seed = static_cast<uint64_t>(cfg.get_int("dataset.split.seed", 0));
  const std::string valid_how = cfg.get_choice("dataset.split.valid", {"none", "random", "last"});
  const int64_t valid_k = cfg.get_int("dataset.split.valid_k", 0);
  const double valid_ratio = cfg.get_double("dataset.split.valid_ratio", 0.0, 0.99);
  std::vector<int8_t> part(d.user.size(), 0);

  if (method == "random") {
    const std::vector<double> ratios = cfg.get_double_list("dataset.split.ratios");
    try {
      check_ratios(ratios);
    } catch (const Error& e) {
      cfg.bad("dataset.split.ratios", e.what());
    }
    if (cfg.get_choice("dataset.split.scope", {"user", "global"}) == "user") return split_random_per_user(d, ratios, seed, sequences);
    const Pairs p = unique_pairs(d);
    std::vector<int64_t> idx(p.user.size());
    std::iota(idx.begin(), idx.end(), int64_t{0});
    Rng rng(seed);
    rng.shuffle(idx.begin(), idx.end());
    const auto [n_train, n_tv] = cut_points(static_cast<int64_t>(idx.size()), ratios);
    std::vector<int8_t> pair_part(p.user.size());
    for (int64_t k = 0; k < static_cast<int64_t>(idx.size()); ++k)
      pair_part[static_cast<size_t>(idx[static_cast<size_t>(k)])] = static_cast<int8_t>(k < n_train ? 0 : (k < n_tv ? 1 : 2));
    for (size_t k = 0; k < part.size(); ++k) part[k] = pair_part[static_cast<size_t>(p.of_row[k])];
    return assemble(d, part, true, sequences, fmt::format("random global {}/{}/{}", ratios[0], ratios[1], ratios[2]));
  }

  if (method == "leave_last") {
    const int64_t tk = cfg.get_int("dataset.split.test_k", 1), vk = cfg.get_int("dataset.split.valid_k", 0);
    {  // `order` goes before assemble makes its own
      std::vector<int64_t> start;
      const std::vector<int64_t> order = by_user_time(d, start);
      for (int64_t u = 0; u < d.n_users(); ++u) {
        const int64_t b = start[static_cast<size_t>(u)], n = start[static_cast<size_t>(u) + 1] - b;
        const int64_t t = std::min(tk, n - 1), v = std::min(vk, n - 1 - std::max<int64_t>(t, 0));
        for (int64_t j = 0; j < n; ++j) {
          const int64_t k = order[static_cast<size_t>(b + j)];
          part[static_cast<size_t>(k)] = static_cast<int8_t>(j >= n - t ? 2 : (j >= n - t - v ? 1 : 0));
        }
      }
    }
    return assemble(d, part, true, sequences, fmt::format("leave last {} (valid {}) by {}", tk, vk, d.has_timestamps() ? "time" : "file order"));
  }

  if (method == "temporal") {
    const std::vector<int64_t> cut = cfg.get_int_list("dataset.split.cut");
    std::vector<int64_t> order(d.user.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    if (d.has_timestamps())
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d.timestamp[static_cast<size_t>(a)] < d.timestamp[static_cast<size_t>(b)]; });
    if (!cut.empty()) {
      if (cut.size() != 2 || cut[0] > cut[1]) cfg.bad("dataset.split.cut", "expected [valid_start, test_start] with valid_start <= test_start");
      if (!d.has_timestamps()) cfg.bad("dataset.split.cut", "a cut at timestamps needs a timestamp column");
      for (size_t k = 0; k < part.size(); ++k)
        part[k] = static_cast<int8_t>(d.timestamp[k] >= cut[1] ? 2 : (d.timestamp[k] >= cut[0] ? 1 : 0));
      return assemble(d, part, true, sequences, fmt::format("temporal cut at {} / {}", cut[0], cut[1]));
    }
    const std::vector<double> ratios = cfg.get_double_list("dataset.split.ratios");
    try {
      check_ratios(ratios);
    } catch (const Error& e) {
      cfg.bad("dataset.split.ratios", e.what());
    }
    const auto [n_train, n_tv] = cut_points(static_cast<int64_t>(order.size()), ratios);
    for (int64_t j = 0; j < static_cast<int64_t>(order.size()); ++j)
      part[static_cast<size_t>(order[static_cast<size_t>(j)])] = static_cast<int8_t>(j < n_train ? 0 : (j < n_tv ? 1 : 2));
    return assemble(d, part, true, sequences, fmt::format("temporal by ratio {}/{}/{} ({})", ratios[0], ratios[1], ratios[2],
                                                d.has_timestamps() ? "time" : "file order"));
  }

  if (method == "kfold") {
    const int64_t folds = cfg.get_int("dataset.split.folds", 2), fold = cfg.get_int("dataset.split.fold", 0, folds - 1);
    const Pairs p = unique_pairs(d);
    std::vector<int64_t> idx(p.user.size());
    std::iota(idx.begin(), idx.end(), int64_t{0});
    Rng rng(seed);
    rng.shuffle(idx.begin(), idx.end());
    const auto n = static_cast<int64_t>(idx.size());
    std::vector<int8_t> pair_part(p.user.size(), 0);
    for (int64_t j = fold * n / folds; j < (fold + 1) * n / folds; ++j) pair_part[static_cast<size_t>(idx[static_cast<size_t>(j)])] = 2;
    for (size_t k = 0; k < part.size(); ++k) part[k] = pair_part[static_cast<size_t>(p.of_row[k])];
    carve_valid(d, part, valid_how, valid_k, valid_ratio, seed);
    return assemble(d, part, true, sequences, fmt::format("fold {} of {} (valid: {})", fold + 1, folds, valid_how));
  }

  // given
  if (d.part.empty())
    cfg.bad("dataset.split.method", "'given' needs a split that came with the data (format ncf; split.train_path/test_path for csv; "
                                    "STEM.train/.valid/.test.inter for recbole)");
  part = d.part.to_vector();
  const bool has_valid = std::find(part.begin(), part.end(), int8_t{1}) != part.end();
  if (!has_valid) carve_valid(d, part, valid_how, valid_k, valid_ratio, seed);
  return assemble(d, part, true, sequences, fmt::format("given{}", has_valid ? "" : fmt::format(" (valid: {})", valid_how)));
}

// dataset.label_threshold: every row keeps its part, labelled; the rows below the threshold are
// then dropped from the positives' view (the split re-assembled without them).
void apply_labels(const Dataset& d, Split& s, double t, const Config& cfg, bool sequences) {
  const std::vector<std::string> ctx_fields = context_fields(cfg);
  const std::vector<int32_t> ctx = context_tokens(d, ctx_fields, cfg);
  const size_t C = ctx_fields.size();
  std::vector<int8_t> part(d.user.size(), -1);
  LabeledRows lab[3];
  const std::vector<int64_t>* rows[3] = {&s.train_rows, &s.valid_rows, &s.test_rows};
  for (int p = 0; p < 3; ++p) {
    lab[p].n_context = static_cast<int64_t>(C);
    for (int64_t k : *rows[p]) {
      const auto r = static_cast<size_t>(k);
      const bool pos = d.rating[r] >= t;
      lab[p].user.push_back(d.user[r]);
      lab[p].item.push_back(d.item[r]);
      lab[p].label.push_back(pos ? 1.0F : 0.0F);
      lab[p].context.insert(lab[p].context.end(), ctx.begin() + static_cast<long>(r * C), ctx.begin() + static_cast<long>((r + 1) * C));
      if (pos) part[r] = static_cast<int8_t>(p);
    }
  }
  s = assemble(d, part, true, sequences, fmt::format("{}; labels: rating >= {} is 1 (positives), below 0", s.method, t));
  s.train_labeled = std::move(lab[0]);
  s.valid_labeled = std::move(lab[1]);
  s.test_labeled = std::move(lab[2]);
  s.label_threshold = t;
}

}  // namespace

Split split_dataset(const Dataset& d, const Config& cfg, bool sequences) {
  Split s = split_parts(d, cfg, sequences);
  if (cfg.has("dataset.label_threshold") && !cfg.node("dataset.label_threshold").IsNull()) {
    const double t = cfg.get_double("dataset.label_threshold");
    if (!d.has_ratings())
      cfg.bad("dataset.label_threshold", "labels need a rating (or label) column: set dataset.columns.rating");
    if (!cfg.node("dataset.threshold").IsNull())
      cfg.bad("dataset.label_threshold", "set either dataset.threshold (drop the rows below it) or "
                                         "dataset.label_threshold (keep them as labelled negatives), not both");
    apply_labels(d, s, t, cfg, sequences);
    if (s.train_labeled.size() == 0) cfg.bad("dataset.label_threshold", "no labelled training rows");
  }
  return s;
}

}  // namespace rzoo
