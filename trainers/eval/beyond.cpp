// Beyond-accuracy metrics (definitions in trainers/evaluator.h).
#include "trainers/eval/beyond.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "datasets/dataset.h"
#include "trainers/evaluator.h"

namespace rzoo::eval_impl {

namespace {

// The diversity features, checked: token features of the items.
std::vector<const Feature*> diversity_features(const Dataset* data, const EvalOptions& opts) {
  std::string known;
  std::vector<const Feature*> feats;
  if (data)
    for (const auto& ft : data->item_info.features) known += (known.empty() ? "" : ", ") + ft.name;
  for (const auto& name : opts.diversity_features) {
    const Feature* ft = data ? data->item_info.find(name) : nullptr;
    if (!ft || ft->kind == Feature::Kind::Float)
      fail("eval.diversity_features: the dataset has no item token feature '{}' (item features: {})", name,
           known.empty() ? "none" : known);
    feats.push_back(ft);
  }
  return feats;
}

// Intra-list diversity of top[0, m): mean 1 - cosine of the (binary) feature vectors over the
// pairs of items that both have features.
double diversity(const int64_t* top, int64_t m, const ItemFacts& f) {
  double sum = 0;
  int64_t pairs = 0;
  for (int64_t a = 0; a < m; ++a) {
    const int64_t* ab = f.feat.data() + f.feat_ptr[static_cast<size_t>(top[a])];
    const int64_t* ae = f.feat.data() + f.feat_ptr[static_cast<size_t>(top[a]) + 1];
    if (ab == ae) continue;
    for (int64_t b = a + 1; b < m; ++b) {
      const int64_t* bb = f.feat.data() + f.feat_ptr[static_cast<size_t>(top[b])];
      const int64_t* be = f.feat.data() + f.feat_ptr[static_cast<size_t>(top[b]) + 1];
      if (bb == be) continue;
      int64_t common = 0;
      for (const int64_t *x = ab, *y = bb; x != ae && y != be;) {
        if (*x < *y)
          ++x;
        else if (*y < *x)
          ++y;
        else
          ++common, ++x, ++y;
      }
      sum += 1.0 - static_cast<double>(common) / std::sqrt(static_cast<double>((ae - ab) * (be - bb)));
      ++pairs;
    }
  }
  return pairs ? sum / static_cast<double>(pairs) : std::numeric_limits<double>::quiet_NaN();
}

double gini(const int64_t* cnt, int64_t n_items) {
  std::vector<int64_t> sorted(cnt, cnt + n_items);
  std::sort(sorted.begin(), sorted.end());
  double num = 0, total = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    num += static_cast<double>(2 * (i + 1) - n_items - 1) * static_cast<double>(sorted[static_cast<size_t>(i)]);
    total += static_cast<double>(sorted[static_cast<size_t>(i)]);
  }
  return total > 0 ? num / (static_cast<double>(n_items) * total) : 0.0;
}

}  // namespace

ItemFacts item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, bool need_features) {
  ItemFacts f;
  f.n_users = split.train.n_rows;
  f.pop.assign(static_cast<size_t>(split.train.n_cols), 0);
  for (int64_t i : split.train.indices) ++f.pop[static_cast<size_t>(i)];
  if (!need_features) return f;
  const std::vector<const Feature*> feats = diversity_features(data, opts);
  const int64_t n_items = split.train.n_cols;
  std::vector<int64_t> row;
  for (int64_t i = 0; i < n_items; ++i) {
    row.clear();
    int64_t offset = 0;
    for (const Feature* ft : feats) {
      if (i < ft->n())
        for (int64_t p = ft->offsets[static_cast<size_t>(i)]; p < ft->offsets[static_cast<size_t>(i) + 1]; ++p)
          row.push_back(offset + ft->tokens[static_cast<size_t>(p)]);
      offset += static_cast<int64_t>(ft->vocab.size());
    }
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    f.feat.insert(f.feat.end(), row.begin(), row.end());
    f.feat_ptr.push_back(static_cast<int64_t>(f.feat.size()));
  }
  return f;
}

double beyond_value(const MetricColumn& c, const int64_t* top, int64_t n_top, const ItemFacts& f) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const int64_t m = std::min(c.k, n_top);
  if (c.kind == POPULARITY || c.kind == NOVELTY) {
    if (m == 0) return nan;
    double s = 0;
    for (int64_t j = 0; j < m; ++j) {
      const auto p = static_cast<double>(f.pop[static_cast<size_t>(top[j])]);
      s += c.kind == POPULARITY ? p : -std::log2(std::max(p, 1.0) / static_cast<double>(f.n_users));
    }
    return s / static_cast<double>(m);
  }
  if (c.kind == DIVERSITY) return diversity(top, m, f);
  return nan;
}

TopCounts::TopCounts(const std::vector<MetricColumn>& cols, int64_t n_items) : n_items_(n_items) {
  for (size_t c = 0; c < cols.size(); ++c)
    if (is_count_kind(cols[c].kind)) cols_.push_back(c);
  in_top_.assign(cols_.size() * static_cast<size_t>(n_items), 0);
}

void TopCounts::add(const std::vector<MetricColumn>& cols, const int64_t* top, size_t stride,
                    const std::vector<int64_t>& n_top, int64_t users) {
  for (size_t cc = 0; cc < cols_.size(); ++cc) {
    const int64_t k = cols[cols_[cc]].k;
    int64_t* cnt = in_top_.data() + cc * static_cast<size_t>(n_items_);
    for (int64_t r = 0; r < users; ++r)
      for (int64_t j = 0; j < std::min(k, n_top[static_cast<size_t>(r)]); ++j)
        ++cnt[top[static_cast<size_t>(r) * stride + static_cast<size_t>(j)]];
  }
}

double TopCounts::value(const MetricColumn& c, size_t ci) const {
  const auto cc = static_cast<size_t>(std::find(cols_.begin(), cols_.end(), ci) - cols_.begin());
  const int64_t* cnt = in_top_.data() + cc * static_cast<size_t>(n_items_);
  if (c.kind == COVERAGE)
    return static_cast<double>(std::count_if(cnt, cnt + n_items_, [](int64_t x) { return x > 0; })) /
           static_cast<double>(n_items_);
  return gini(cnt, n_items_);
}

}  // namespace rzoo::eval_impl
