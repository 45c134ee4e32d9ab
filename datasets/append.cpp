// New interactions appended to a loaded and split dataset (dataset.append; rzoo update), and the
// rows a warm-started run's epochs go over (train.replay).
//
// Appended rows come after the split so that nothing the split decided moves: the run's
// validation and test parts stay as they were, every existing user and item keeps its index
// (a warm start copies its rows by index), and the new users and items are numbered after them.
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "core/random.h"
#include "datasets/dataset.h"
#include "datasets/readers.h"

namespace rzoo {

namespace {
uint64_t pair_key(int64_t u, int64_t i) { return (static_cast<uint64_t>(u) << 32) | static_cast<uint64_t>(i); }
}  // namespace

Appended append_interactions(const Config& cfg, Dataset& d) {
  Appended out;
  out.base_rows = d.n_interactions();
  const std::vector<std::string> files = cfg.get_string_list("dataset.append");
  if (files.empty()) return out;
  const int64_t nu0 = d.n_users(), ni0 = d.n_items();
  if (nu0 >= (int64_t{1} << 31) || ni0 >= (int64_t{1} << 31)) fail("dataset.append: too many users or items");
  // The cleaning rules that apply row by row, as clean_dataset() applies them to the run's data.
  const RowRules rules = row_rules(cfg);
  const std::string& policy = rules.dedup;
  const bool dedup = policy != "none";
  std::unordered_set<uint64_t> known;
  if (dedup) {
    known.reserve(static_cast<size_t>(d.n_interactions()) * 2);
    for (int64_t k = 0; k < d.n_interactions(); ++k)
      known.insert(pair_key(d.user[static_cast<size_t>(k)], d.item[static_cast<size_t>(k)]));
  }
  const bool with_rating = d.has_ratings(), with_time = d.has_timestamps();
  for (const std::string& path : files) {
    // Read into a dataset that starts from this one's id maps, so known ids keep their indices.
    Dataset t;
    t.users = d.users;
    t.items = d.items;
    read_appended_rows(cfg, t, path, with_rating, with_time);
    const int64_t begin = d.n_interactions();
    int64_t range = 0, dup = 0;
    for (int64_t k = 0; k < t.n_interactions(); ++k) {
      const auto kk = static_cast<size_t>(k);
      if (with_rating) {
        if (!rules.keeps_rating(t.rating[kk])) {
          ++range;
          continue;
        }
      }
      const int32_t u = t.user[kk], i = t.item[kk];
      if (dedup && !known.insert(pair_key(u, i)).second) {
        ++dup;
        continue;
      }
      d.user.push_back(u);
      d.item.push_back(i);
      if (with_rating) d.rating.push_back(t.rating[kk]);
      if (with_time) d.timestamp.push_back(t.timestamp[kk]);
      if (!d.part.empty()) d.part.push_back(0);
    }
    d.users = std::move(t.users);
    d.items = std::move(t.items);
    out.files.emplace_back(begin, d.n_interactions());
    std::string note = fmt::format("appended {}: {} rows read, {} kept", path, t.n_interactions(), d.n_interactions() - begin);
    if (range > 0) note += fmt::format(", {} outside the rating range or below the threshold", range);
    if (dup > 0) note += fmt::format(", {} of (user, item) pairs already known (dedup {})", dup, policy);
    out.notes.push_back(note);
  }
  // Ids that only dropped rows named are removed again; the existing ones all stay where they were.
  auto compact_new = [&](IdMap& ids, int64_t n0, Column<int32_t>& col) {
    std::vector<bool> keep(static_cast<size_t>(ids.size()), false);
    std::fill(keep.begin(), keep.begin() + n0, true);
    for (int64_t k = out.base_rows; k < d.n_interactions(); ++k) keep[static_cast<size_t>(col[static_cast<size_t>(k)])] = true;
    const std::vector<int64_t> to = ids.compact(keep);
    for (int64_t k = out.base_rows; k < d.n_interactions(); ++k)
      col[static_cast<size_t>(k)] = static_cast<int32_t>(to[static_cast<size_t>(col[static_cast<size_t>(k)])]);
    return ids.size() - n0;
  };
  out.new_users = compact_new(d.users, nu0, d.user);
  out.new_items = compact_new(d.items, ni0, d.item);
  if (d.n_users() >= (int64_t{1} << 31) || d.n_items() >= (int64_t{1} << 31)) fail("dataset.append: too many users or items");
  d.user_info.resize(d.n_users());
  d.item_info.resize(d.n_items());
  out.notes.push_back(fmt::format("appended {} interactions: {} new users, {} new items", d.n_interactions() - out.base_rows,
                                  out.new_users, out.new_items));
  return out;
}

void replay_subset(Split& s, const Dataset& d, int64_t new_begin, int64_t new_end, double replay, uint64_t seed) {
  // The new pairs, then the other training pairs.
  std::unordered_set<uint64_t> fresh;
  std::vector<int64_t> users, items;
  for (int64_t k = new_begin; k < new_end; ++k) {
    const int64_t u = d.user[static_cast<size_t>(k)], i = d.item[static_cast<size_t>(k)];
    if (fresh.insert(pair_key(u, i)).second) {
      users.push_back(u);
      items.push_back(i);
    }
  }
  std::vector<std::pair<int64_t, int64_t>> old;
  for (int64_t u = 0; u < s.train.n_rows; ++u)
    for (const Csr::Index* p = s.train.row_begin(u); p != s.train.row_end(u); ++p)
      if (!fresh.count(pair_key(u, *p))) old.emplace_back(u, *p);
  const auto want = static_cast<size_t>(std::llround(replay * static_cast<double>(users.size())));
  const size_t take = std::min(want, old.size());
  Rng rng(seed ^ 0x2E91A7ULL);
  for (size_t k = 0; k < take; ++k) {  // a partial Fisher-Yates shuffle: `take` distinct pairs
    std::swap(old[k], old[k + static_cast<size_t>(rng.uniform(static_cast<int64_t>(old.size() - k)))]);
    users.push_back(old[k].first);
    items.push_back(old[k].second);
  }
  s.epoch = Csr::from_pairs(s.train.n_rows, s.train.n_cols, users, items);
  // Sequence models: the sequences of the users those pairs belong to.
  std::vector<bool> pick(static_cast<size_t>(s.train_seq.n_rows), false);
  for (int64_t u : users) pick[static_cast<size_t>(u)] = true;
  Sequences& q = s.epoch_seq;
  q.n_rows = s.train_seq.n_rows;
  q.n_cols = s.train_seq.n_cols;
  q.indptr.assign(1, 0);
  q.items.clear();
  for (int64_t u = 0; u < q.n_rows; ++u) {
    if (pick[static_cast<size_t>(u)]) q.items.insert(q.items.end(), s.train_seq.begin(u), s.train_seq.begin(u) + s.train_seq.size(u));
    q.indptr.push_back(static_cast<int64_t>(q.items.size()));
  }
  s.replay_new = static_cast<int64_t>(fresh.size());
  s.replay_old = static_cast<int64_t>(take);
}

}  // namespace rzoo
