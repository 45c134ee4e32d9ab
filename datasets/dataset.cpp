#include "datasets/dataset.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include <fmt/core.h>

#include "core/error.h"
#include "core/random.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// Side features

const char* to_string(Feature::Kind k) {
  switch (k) {
    case Feature::Kind::Token: return "token";
    case Feature::Kind::TokenSeq: return "token_seq";
    case Feature::Kind::Float: return "float";
  }
  return "?";
}

std::vector<float> Feature::multi_hot() const {
  if (kind == Kind::Float) fail("feature '{}' is numeric; it has no multi-hot form", name);
  const int64_t rows = n(), cols = static_cast<int64_t>(vocab.size());
  std::vector<float> out(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t e = 0; e < rows; ++e)
    for (int64_t k = offsets[static_cast<size_t>(e)]; k < offsets[static_cast<size_t>(e) + 1]; ++k)
      out[static_cast<size_t>(e * cols + tokens[static_cast<size_t>(k)])] = 1.0f;
  return out;
}

void FeatureBuilder::add(int64_t entity, std::string_view token) {
  const int64_t before = token_ids_.size();
  const int64_t id = token_ids_.add(token);
  if (id == before) vocab_.emplace_back(token);
  entries_.emplace_back(entity, static_cast<int32_t>(id));
}

void FeatureBuilder::set_value(int64_t entity, float v) { values_.emplace_back(entity, v); }

Feature FeatureBuilder::build(int64_t n) const {
  Feature f;
  f.name = name_;
  f.kind = kind_;
  if (kind_ == Feature::Kind::Float) {
    f.values.assign(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    for (const auto& [e, v] : values_)
      if (e >= 0 && e < n) f.values[static_cast<size_t>(e)] = v;
    return f;
  }
  f.vocab = vocab_;
  f.offsets.assign(static_cast<size_t>(n) + 1, 0);
  for (const auto& [e, t] : entries_)
    if (e >= 0 && e < n) ++f.offsets[static_cast<size_t>(e) + 1];
  if (kind_ == Feature::Kind::Token)  // one token per entity: the last one given wins
    for (auto& c : f.offsets) c = std::min<int64_t>(c, 1);
  std::partial_sum(f.offsets.begin(), f.offsets.end(), f.offsets.begin());
  f.tokens.assign(static_cast<size_t>(f.offsets.back()), 0);
  std::vector<int64_t> fill(f.offsets.begin(), f.offsets.end() - 1);
  for (const auto& [e, t] : entries_) {
    if (e < 0 || e >= n) continue;
    if (kind_ == Feature::Kind::Token) f.tokens[static_cast<size_t>(f.offsets[static_cast<size_t>(e)])] = t;
    else f.tokens[static_cast<size_t>(fill[static_cast<size_t>(e)]++)] = t;
  }
  return f;
}

const Feature* SideInfo::find(std::string_view name) const {
  for (const auto& f : features)
    if (f.name == name) return &f;
  return nullptr;
}

void SideInfo::remap(const std::vector<int64_t>& new_of_old, int64_t n_new) {
  if (!title.empty()) {
    std::vector<std::string> t(static_cast<size_t>(n_new));
    for (size_t e = 0; e < new_of_old.size() && e < title.size(); ++e)
      if (new_of_old[e] >= 0) t[static_cast<size_t>(new_of_old[e])] = std::move(title[e]);
    title = std::move(t);
  }
  for (auto& f : features) {
    if (f.kind == Feature::Kind::Float) {
      std::vector<float> v(static_cast<size_t>(n_new), std::numeric_limits<float>::quiet_NaN());
      for (size_t e = 0; e < new_of_old.size() && e < f.values.size(); ++e)
        if (new_of_old[e] >= 0) v[static_cast<size_t>(new_of_old[e])] = f.values[e];
      f.values = std::move(v);
      continue;
    }
    std::vector<int64_t> old_of_new(static_cast<size_t>(n_new), -1);
    for (size_t e = 0; e < new_of_old.size(); ++e)
      if (new_of_old[e] >= 0) old_of_new[static_cast<size_t>(new_of_old[e])] = static_cast<int64_t>(e);
    std::vector<int64_t> off{0};
    std::vector<int32_t> tok;
    for (int64_t e = 0; e < n_new; ++e) {
      const int64_t o = old_of_new[static_cast<size_t>(e)];
      if (o >= 0 && o + 1 < static_cast<int64_t>(f.offsets.size()))
        tok.insert(tok.end(), f.tokens.begin() + f.offsets[static_cast<size_t>(o)], f.tokens.begin() + f.offsets[static_cast<size_t>(o) + 1]);
      off.push_back(static_cast<int64_t>(tok.size()));
    }
    f.offsets = std::move(off);
    f.tokens = std::move(tok);
  }
}

void SideInfo::resize(int64_t n) {
  if (!title.empty() && static_cast<int64_t>(title.size()) < n) title.resize(static_cast<size_t>(n));
  for (auto& f : features) {
    if (f.kind == Feature::Kind::Float) {
      if (static_cast<int64_t>(f.values.size()) < n) f.values.resize(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    } else if (f.n() < n) {
      f.offsets.resize(static_cast<size_t>(n) + 1, f.offsets.back());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report, Dataset

int64_t LoadReport::total_dropped() const {
  int64_t n = 0;
  for (const auto& d : dropped) n += d.second;
  return n;
}

std::string LoadReport::summary() const {
  std::string s = fmt::format("{} rows read", rows_read);
  for (const auto& [why, n] : dropped)
    if (n > 0) s += fmt::format(", {} dropped: {}", n, why);
  for (const auto& note : notes) s += "; " + note;
  return s;
}

std::vector<int64_t> Dataset::rows_by_user(std::vector<int64_t>& start) const {
  start.assign(static_cast<size_t>(n_users()) + 1, 0);
  for (int32_t u : user) ++start[static_cast<size_t>(u) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> fill(start.begin(), start.end() - 1), out(user.size());
  for (size_t k = 0; k < user.size(); ++k) out[static_cast<size_t>(fill[static_cast<size_t>(user[k])]++)] = static_cast<int64_t>(k);
  return out;
}

void Dataset::filter_rows(const std::vector<bool>& keep) {
  size_t o = 0;
  const bool r = has_ratings(), t = has_timestamps(), p = !part.empty();
  for (size_t k = 0; k < user.size(); ++k) {
    if (!keep[k]) continue;
    user[o] = user[k];
    item[o] = item[k];
    if (r) rating[o] = rating[k];
    if (t) timestamp[o] = timestamp[k];
    if (p) part[o] = part[k];
    ++o;
  }
  user.resize(o);
  item.resize(o);
  if (r) rating.resize(o);
  if (t) timestamp.resize(o);
  if (p) part.resize(o);
}

void Dataset::compact(bool keep_unseen_items) {
  // Users first: negatives of dropped users go with them, so their items do not keep a place.
  std::vector<bool> ukeep(static_cast<size_t>(n_users()), false);
  for (int32_t u : user) ukeep[static_cast<size_t>(u)] = true;
  if (!std::all_of(ukeep.begin(), ukeep.end(), [](bool b) { return b; })) {
    const auto m = users.compact(ukeep);
    for (auto& u : user) u = static_cast<int32_t>(m[static_cast<size_t>(u)]);
    size_t o = 0;
    for (size_t k = 0; k < std::as_const(neg_user).size(); ++k)
      if (m[static_cast<size_t>(std::as_const(neg_user)[k])] >= 0) {
        neg_user[o] = static_cast<int32_t>(m[static_cast<size_t>(neg_user[k])]);
        neg_item[o++] = neg_item[k];
      }
    neg_user.resize(o);
    neg_item.resize(o);
    user_info.remap(m, users.size());
  }
  std::vector<bool> ikeep(static_cast<size_t>(n_items()), keep_unseen_items);
  for (int32_t i : item) ikeep[static_cast<size_t>(i)] = true;
  for (int32_t i : std::as_const(neg_item)) ikeep[static_cast<size_t>(i)] = true;
  if (!std::all_of(ikeep.begin(), ikeep.end(), [](bool b) { return b; })) {
    const auto m = items.compact(ikeep);
    for (auto& i : item) i = static_cast<int32_t>(m[static_cast<size_t>(i)]);
    for (auto& i : neg_item) i = static_cast<int32_t>(m[static_cast<size_t>(i)]);
    item_info.remap(m, items.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Csr

namespace {
// Pair k is (row_of(k), col_of(k)), k < n. Counting sort straight into the result's indices, then
// each row sorted and deduplicated in place and moved down over the duplicates removed before
// it: no second array of n entries (at 1 M pairs the temporary copies of the pairs were 16 MB
// more at the split's peak).
template <class RowOf, class ColOf>
Csr csr_from(int64_t n_rows, int64_t n_cols, size_t n, const RowOf& row_of, const ColOf& col_of) {
  if (n_cols > std::numeric_limits<Csr::Index>::max())
    fail("a matrix of {} columns: rzoo numbers items and users with 32-bit indices (at most {})", n_cols,
         std::numeric_limits<Csr::Index>::max());
  Csr m;
  m.n_rows = n_rows;
  m.n_cols = n_cols;
  std::vector<int64_t> start(static_cast<size_t>(n_rows) + 1, 0);
  for (size_t k = 0; k < n; ++k) ++start[static_cast<size_t>(row_of(k)) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  m.indices.resize(n);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t k = 0; k < n; ++k) m.indices[static_cast<size_t>(fill[static_cast<size_t>(row_of(k))]++)] = static_cast<Csr::Index>(col_of(k));
  }
  m.indptr.assign(static_cast<size_t>(n_rows) + 1, 0);
  auto* x = m.indices.data();
  int64_t out = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    Csr::Index* b = x + start[static_cast<size_t>(r)];
    Csr::Index* e = x + start[static_cast<size_t>(r) + 1];
    std::sort(b, e);
    e = std::unique(b, e);
    if (x + out != b) std::copy(b, e, x + out);  // out <= b: a forward copy never overwrites what it still reads
    out += e - b;
    m.indptr[static_cast<size_t>(r) + 1] = out;
  }
  m.indices.resize(static_cast<size_t>(out));
  return m;
}

template <class V>
Csr csr_from_pairs(int64_t n_rows, int64_t n_cols, const V& rows, const V& cols) {
  return csr_from(n_rows, n_cols, rows.size(), [&](size_t k) { return static_cast<int64_t>(rows[k]); },
                  [&](size_t k) { return static_cast<int64_t>(cols[k]); });
}

}  // namespace

std::vector<int64_t> Csr::rows_differing(const Csr& other) const {
  if (n_rows != other.n_rows || n_cols != other.n_cols)
    fail("rows_differing: matrices of {} x {} and {} x {}", n_rows, n_cols, other.n_rows, other.n_cols);
  std::vector<int64_t> out;
  for (int64_t r = 0; r < n_rows; ++r)
    if (row_size(r) != other.row_size(r) || !std::equal(row_begin(r), row_end(r), other.row_begin(r))) out.push_back(r);
  return out;
}

Csr Csr::from_pairs(int64_t n_rows, int64_t n_cols, const std::vector<int64_t>& rows, const std::vector<int64_t>& cols) {
  return csr_from_pairs(n_rows, n_cols, rows, cols);
}
Csr Csr::from_interactions(int64_t n_rows, int64_t n_cols, const Column<int32_t>& rows, const Column<int32_t>& cols) {
  return csr_from_pairs(n_rows, n_cols, rows, cols);
}

Csr Csr::from_rows(int64_t n_rows, int64_t n_cols, const Column<int32_t>& rows, const Column<int32_t>& cols,
                   const std::vector<int64_t>& which) {
  return csr_from(n_rows, n_cols, which.size(), [&](size_t k) { return static_cast<int64_t>(rows[static_cast<size_t>(which[k])]); },
                  [&](size_t k) { return static_cast<int64_t>(cols[static_cast<size_t>(which[k])]); });
}

bool Csr::contains(int64_t r, int64_t c) const { return std::binary_search(row_begin(r), row_end(r), c); }


// ---------------------------------------------------------------------------------------------
// Synthetic data

Dataset make_synthetic(const SyntheticOptions& o) {
  if (o.n_users < 1 || o.n_items < 2 || o.per_user < 1 || o.per_user >= o.n_items || o.factors < 1)
    fail("synthetic dataset: need n_users >= 1, n_items >= 2, 1 <= per_user < n_items, factors >= 1");
  Rng rng(o.seed);
  auto gauss = [&rng] {  // Box-Muller
    const double u1 = 1.0 - rng.uniform01(), u2 = rng.uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  const auto F = static_cast<size_t>(o.factors);
  std::vector<double> uf(static_cast<size_t>(o.n_users) * F), vf(static_cast<size_t>(o.n_items) * F),
      pop(static_cast<size_t>(o.n_items));
  for (auto& x : uf) x = gauss();
  for (auto& x : vf) x = gauss();
  for (auto& x : pop) x = 0.7 * gauss();
  Dataset d;
  d.name = "synthetic";
  for (int64_t i = 0; i < o.n_items; ++i) d.items.add("i" + std::to_string(i));
  std::vector<std::pair<double, int64_t>> keyed(static_cast<size_t>(o.n_items));
  for (int64_t u = 0; u < o.n_users; ++u) {
    d.users.add("u" + std::to_string(u));
    // Gumbel top-k: a sample without replacement with P(i) ~ exp(affinity).
    for (int64_t i = 0; i < o.n_items; ++i) {
      double a = pop[static_cast<size_t>(i)];
      for (size_t f = 0; f < F; ++f) a += uf[static_cast<size_t>(u) * F + f] * vf[static_cast<size_t>(i) * F + f];
      const double g = -std::log(-std::log(1.0 - rng.uniform01() * (1.0 - 1e-12)));
      keyed[static_cast<size_t>(i)] = {a + g, i};
    }
    std::partial_sort(keyed.begin(), keyed.begin() + o.per_user, keyed.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    for (int64_t k = 0; k < o.per_user; ++k) {
      d.user.push_back(u);
      d.item.push_back(keyed[static_cast<size_t>(k)].second);
      d.rating.push_back(static_cast<float>(5 - (4 * k) / o.per_user));
      d.timestamp.push_back(k);
    }
  }
  // Item side information for content models: "genres" = the item's two strongest hidden
  // factors with their signs (so content carries real signal), and a title.
  Feature genres;
  genres.name = "genres";
  genres.kind = Feature::Kind::TokenSeq;
  for (size_t f = 0; f < F; ++f) genres.vocab.push_back(fmt::format("f{}+", f)), genres.vocab.push_back(fmt::format("f{}-", f));
  genres.offsets.push_back(0);
  std::vector<size_t> order(F);
  for (int64_t i = 0; i < o.n_items; ++i) {
    const double* v = vf.data() + static_cast<size_t>(i) * F;
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [v](size_t a, size_t b) { return std::abs(v[a]) > std::abs(v[b]) || (std::abs(v[a]) == std::abs(v[b]) && a < b); });
    for (size_t j = 0; j < std::min<size_t>(2, F); ++j)
      genres.tokens.push_back(static_cast<int32_t>(2 * order[j] + (v[order[j]] < 0 ? 1 : 0)));
    genres.offsets.push_back(static_cast<int64_t>(genres.tokens.size()));
    d.item_info.title.push_back(fmt::format("Item {}", i));
  }
  d.item_info.features.push_back(std::move(genres));
  // User side information for feature models: "group" = the user's strongest hidden factor with
  // its sign (a token), "taste" = the length of the user's hidden vector (a float).
  Feature group, taste;
  group.name = "group", group.kind = Feature::Kind::Token;
  taste.name = "taste", taste.kind = Feature::Kind::Float;
  for (size_t f = 0; f < F; ++f) group.vocab.push_back(fmt::format("f{}+", f)), group.vocab.push_back(fmt::format("f{}-", f));
  group.offsets.push_back(0);
  for (int64_t u = 0; u < o.n_users; ++u) {
    const double* v = uf.data() + static_cast<size_t>(u) * F;
    size_t best = 0;
    double norm = 0;
    for (size_t f = 0; f < F; ++f) {
      if (std::abs(v[f]) > std::abs(v[best])) best = f;
      norm += v[f] * v[f];
    }
    group.tokens.push_back(static_cast<int32_t>(2 * best + (v[best] < 0 ? 1 : 0)));
    group.offsets.push_back(static_cast<int64_t>(group.tokens.size()));
    taste.values.push_back(static_cast<float>(std::sqrt(norm)));
  }
  d.user_info.features.push_back(std::move(group));
  d.user_info.features.push_back(std::move(taste));
  d.report.rows_read = d.n_interactions();
  return d;
}

}  // namespace rzoo
