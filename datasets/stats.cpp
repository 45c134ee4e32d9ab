#include "datasets/stats.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <numeric>

#include <fmt/core.h>

#include "core/error.h"
#include "core/json.h"

namespace rzoo {

namespace {

// Nearest-rank quantiles of integer counts.
Distribution distribution(std::vector<int64_t> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) { return v[static_cast<size_t>(std::min<double>(static_cast<double>(v.size()) - 1, std::ceil(q * static_cast<double>(v.size())) - 1))]; };
  d.min = v.front();
  d.max = v.back();
  d.median = rank(0.5);
  d.p90 = rank(0.9);
  d.mean = static_cast<double>(std::accumulate(v.begin(), v.end(), int64_t{0})) / static_cast<double>(v.size());
  return d;
}

// Gini coefficient of non-negative counts (sorted ascending):
// G = sum_i (2i - n - 1) x_i / (n sum x), i = 1..n.
double gini(std::vector<int64_t> x) {
  if (x.empty()) return 0;
  std::sort(x.begin(), x.end());
  const auto n = static_cast<double>(x.size());
  double num = 0, sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (2.0 * static_cast<double>(i + 1) - n - 1.0) * static_cast<double>(x[i]);
    sum += static_cast<double>(x[i]);
  }
  return sum > 0 ? num / (n * sum) : 0;
}

std::string date(int64_t t) {
  if (t == kNoTime) return "-";
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (!gmtime_r(&tt, &tm)) return std::to_string(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

Json dist_json(const Distribution& d) {
  return Json{{"min", d.min}, {"median", d.median}, {"p90", d.p90}, {"max", d.max}, {"mean", json_rounded(d.mean, 4)}};
}

std::string dist_text(const Distribution& d) {
  return fmt::format("min {}, median {}, p90 {}, max {}, mean {:.2f}", d.min, d.median, d.p90, d.max, d.mean);
}

}  // namespace

DataStats compute_stats(const Dataset& d, const Split* split) {
  DataStats s;
  s.users = d.n_users();
  s.items = d.n_items();
  s.interactions = d.n_interactions();
  std::vector<int64_t> pu(static_cast<size_t>(s.users), 0), pi(static_cast<size_t>(s.items), 0);
  for (size_t k = 0; k < d.user.size(); ++k) {
    ++pu[static_cast<size_t>(d.user[k])];
    ++pi[static_cast<size_t>(d.item[k])];
  }
  const Csr all = Csr::from_interactions(s.users, s.items, d.user, d.item);
  s.unique_pairs = all.nnz();
  s.density = s.users > 0 && s.items > 0 ? static_cast<double>(s.unique_pairs) / (static_cast<double>(s.users) * static_cast<double>(s.items)) : 0;
  s.per_user = distribution(pu);
  s.per_item = distribution(pi);
  s.gini = gini(pi);
  if (d.has_timestamps()) {
    s.has_time = true;
    s.time_min = INT64_MAX;
    s.time_max = INT64_MIN;
    for (int64_t t : d.timestamp) {
      if (t == kNoTime) { ++s.missing_time; continue; }
      s.time_min = std::min(s.time_min, t);
      s.time_max = std::max(s.time_max, t);
    }
    if (s.missing_time == s.interactions) s.time_min = s.time_max = kNoTime;
  }
  if (d.has_ratings()) {
    s.has_rating = true;
    const auto [lo, hi] = std::minmax_element(d.rating.begin(), d.rating.end());
    s.rating_min = *lo;
    s.rating_max = *hi;
    double sum = 0;
    for (float r : d.rating) sum += r;
    s.rating_mean = sum / static_cast<double>(d.rating.size());
  }
  if (!d.neg_user.empty()) {
    std::vector<int64_t> per(static_cast<size_t>(s.users), 0);
    for (int64_t u : d.neg_user) ++per[static_cast<size_t>(u)];
    std::vector<int64_t> nz;
    for (int64_t c : per)
      if (c > 0) nz.push_back(c);
    s.neg_users = static_cast<int64_t>(nz.size());
    s.neg_per_user = distribution(nz);
  }
  for (int8_t p : d.part)
    if (p >= 0 && p < 3) ++s.given_part[p];
  if (split) {
    if (split->train_rows_released) fail("data stats: the split's training rows were released (prepare_data)");
    s.split_train = static_cast<int64_t>(split->train_rows.size());
    s.split_valid = static_cast<int64_t>(split->valid_rows.size());
    s.split_test = static_cast<int64_t>(split->test_rows.size());
    for (int64_t u = 0; u < split->test.n_rows; ++u) s.test_users += split->test.row_size(u) > 0;
  }
  return s;
}

std::string stats_text(const Dataset& d, const DataStats& s, const Split* split) {
  std::string o = fmt::format("dataset {}\n", d.name);
  o += fmt::format("  users          {}\n  items          {}\n  interactions   {}", s.users, s.items, s.interactions);
  if (s.unique_pairs != s.interactions) o += fmt::format(" ({} unique user-item pairs)", s.unique_pairs);
  o += fmt::format("\n  density        {:.6f} ({:.4f}%)\n", s.density, 100 * s.density);
  o += fmt::format("  per user       {}\n  per item       {}\n", dist_text(s.per_user), dist_text(s.per_item));
  o += fmt::format("  popularity Gini {:.4f}\n", s.gini);
  if (s.has_rating) o += fmt::format("  ratings        {} to {}, mean {:.3f}\n", s.rating_min, s.rating_max, s.rating_mean);
  if (s.has_time) {
    o += fmt::format("  time span      {} to {} ({:.1f} days)", date(s.time_min), date(s.time_max),
                     s.time_min == kNoTime ? 0.0 : static_cast<double>(s.time_max - s.time_min) / 86400.0);
    if (s.missing_time > 0) o += fmt::format(", {} rows without a timestamp", s.missing_time);
    o += "\n";
  } else {
    o += "  time span      none (no timestamps; file order is the time order)\n";
  }
  if (!d.part.empty())
    o += fmt::format("  given split    train {} / valid {} / test {} rows (as read)\n", s.given_part[0], s.given_part[1], s.given_part[2]);
  if (s.neg_users > 0) o += fmt::format("  given negatives {} users: {} per user\n", s.neg_users, dist_text(s.neg_per_user));
  for (const auto* side : {&d.user_info, &d.item_info}) {
    const char* who = side == &d.user_info ? "user" : "item";
    if (!side->title.empty()) {
      int64_t n = 0;
      for (const auto& t : side->title) n += !t.empty();
      o += fmt::format("  {} titles    {} of {}\n", who, n, side == &d.user_info ? s.users : s.items);
    }
    for (const auto& f : side->features) {
      if (f.kind == Feature::Kind::Float) {
        int64_t n = 0;
        for (float v : f.values) n += v == v;
        o += fmt::format("  {} feature {} ({}): {} with a value\n", who, f.name, to_string(f.kind), n);
      } else {
        int64_t with = 0;
        for (int64_t e = 0; e + 1 < static_cast<int64_t>(f.offsets.size()); ++e) with += f.offsets[static_cast<size_t>(e) + 1] > f.offsets[static_cast<size_t>(e)];
        o += fmt::format("  {} feature {} ({}): {} distinct, {} entries, on {} {}s\n", who, f.name, to_string(f.kind),
                         f.vocab.size(), f.tokens.size(), with, who);
      }
    }
  }
  o += "  cleaning       " + d.report.summary() + "\n";
  if (split)
    o += fmt::format("  split          {}: train {} / valid {} / test {} interactions; {} test users\n", split->method,
                     s.split_train, s.split_valid, s.split_test, s.test_users);
  return o;
}

std::string stats_json(const Dataset& d, const DataStats& s, const Split* split) {
  auto time = [](int64_t t) { return t == kNoTime ? Json(nullptr) : Json(t); };
  Json j{{"dataset", d.name},
         {"users", s.users},
         {"items", s.items},
         {"interactions", s.interactions},
         {"unique_pairs", s.unique_pairs},
         {"density", json_rounded(s.density, 8)},
         {"per_user", dist_json(s.per_user)},
         {"per_item", dist_json(s.per_item)},
         {"popularity_gini", json_rounded(s.gini, 6)}};
  if (s.has_time) j["time"] = Json{{"min", time(s.time_min)}, {"max", time(s.time_max)}, {"missing", s.missing_time}};
  if (s.has_rating)
    j["rating"] = Json{{"min", s.rating_min}, {"max", s.rating_max}, {"mean", json_rounded(s.rating_mean, 6)}};
  if (!d.part.empty())
    j["given_split"] = Json{{"train", s.given_part[0]}, {"valid", s.given_part[1]}, {"test", s.given_part[2]}};
  j["negatives"] = Json{{"users", s.neg_users}, {"per_user", dist_json(s.neg_per_user)}};
  Json features = Json::array();
  for (const auto* side : {&d.user_info, &d.item_info})
    for (const auto& f : side->features)
      features.push_back(Json{{"of", side == &d.user_info ? "user" : "item"},
                              {"name", f.name},
                              {"kind", to_string(f.kind)},
                              {"vocab", f.vocab.size()}});
  j["features"] = std::move(features);
  j["rows_read"] = d.report.rows_read;
  Json dropped = Json::array();
  for (const auto& [why, n] : d.report.dropped) dropped.push_back(Json{{"reason", why}, {"rows", n}});
  j["dropped"] = std::move(dropped);
  if (split)
    j["split"] = Json{{"method", split->method}, {"train", s.split_train}, {"valid", s.split_valid},
                      {"test", s.split_test}, {"test_users", s.test_users}};
  j["from_cache"] = d.report.from_cache;
  return json_dump(j, 2) + "\n";
}

}  // namespace rzoo
