// Candidate protocols: parsing, sampled negatives and the protocol in words.
#include "trainers/eval/protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>

#include "core/error.h"
#include "datasets/dataset.h"
#include "trainers/evaluator.h"

namespace rzoo::eval_impl {

bool parse_protocol(const std::string& s, Protocol& p) {
  if (s == "full") return p = {Protocol::Full, 0}, true;
  if (s == "given") return p = {Protocol::Given, 0}, true;
  if (s == "labeled") return p = {Protocol::Labeled, 0}, true;
  for (const auto& [prefix, type] : {std::pair{"uni", Protocol::Uniform}, std::pair{"pop", Protocol::Popularity}}) {
    const std::string pre = prefix;
    if (s.rfind(pre, 0) == 0 && s.size() > pre.size() && s.size() <= pre.size() + 6 &&
        std::all_of(s.begin() + static_cast<long>(pre.size()), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      p = {type, std::stoll(s.substr(pre.size()))};
      return p.n >= 1;
    }
  }
  return false;
}

// ---- sampled candidates ----------------------------------------------------------------------

static_assert(std::is_same_v<Csr::Index, int32_t>, "CandidateSource reads Csr rows as int32_t");

void CandidateSource::negatives(int64_t u, const int32_t* tg, int64_t T, std::vector<int64_t>& out) const {
  if (given) return given_negatives(u, tg, T, out);
  known_row.clear();
  for (const Csr* k : known) known_row.insert(known_row.end(), k->row_begin(u), k->row_end(u));
  known_row.insert(known_row.end(), tg, tg + T);
  std::sort(known_row.begin(), known_row.end());
  known_row.erase(std::unique(known_row.begin(), known_row.end()), known_row.end());
  const int64_t avail = n_items - static_cast<int64_t>(known_row.size());
  const int64_t want = std::min(proto.n * T, avail);
  if (want <= 0) return;
  Rng rng(seed, static_cast<uint64_t>(u));
  if (want * 2 >= avail)
    draw_from_pool(want, avail, rng, out);
  else
    draw_by_rejection(want, rng, out);
}

void CandidateSource::given_negatives(int64_t u, const int32_t* tg, int64_t T, std::vector<int64_t>& out) const {
  if (u >= given->n_rows || given->row_size(u) == 0)
    fail("eval.protocol given: user index {} has evaluation items but no given candidates in the data", u);
  for (const Csr::Index* p = given->row_begin(u); p != given->row_end(u); ++p)
    if (!std::binary_search(tg, tg + T, *p)) out.push_back(*p);
}

// Most of the complement is wanted (rejection would thrash): enumerate it and draw without
// replacement, uniformly (partial Fisher-Yates) or in proportion to popularity
// (Efraimidis-Spirakis keys log(r) / w, the largest `want` kept).
void CandidateSource::draw_from_pool(int64_t want, int64_t avail, Rng& rng, std::vector<int64_t>& out) const {
  pool.clear();
  size_t k = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    while (k < known_row.size() && known_row[k] < i) ++k;
    if (k < known_row.size() && known_row[k] == i) continue;
    pool.push_back(i);
  }
  if (want == avail) {
    out.insert(out.end(), pool.begin(), pool.end());
  } else if (proto.type == Protocol::Uniform) {
    for (int64_t j = 0; j < want; ++j) {
      const int64_t pick = j + rng.uniform(static_cast<int64_t>(pool.size()) - j);
      std::swap(pool[static_cast<size_t>(j)], pool[static_cast<size_t>(pick)]);
      out.push_back(pool[static_cast<size_t>(j)]);
    }
  } else {
    std::vector<std::pair<double, int64_t>> keyed(pool.size());
    for (size_t j = 0; j < pool.size(); ++j) {
      const int64_t i = pool[j];
      const double w = cdf[static_cast<size_t>(i)] - (i > 0 ? cdf[static_cast<size_t>(i) - 1] : 0.0);
      const double r = std::max(rng.uniform01(), 1e-300);
      keyed[j] = {w > 0 ? std::log(r) / w : -std::numeric_limits<double>::infinity(), i};
    }
    std::partial_sort(keyed.begin(), keyed.begin() + want, keyed.end(), [](const auto& x, const auto& y) {
      return x.first > y.first || (x.first == y.first && x.second < y.second);
    });
    for (int64_t j = 0; j < want; ++j) out.push_back(keyed[static_cast<size_t>(j)].second);
  }
}

// Few of the complement wanted: draw items and reject known or already drawn ones (popularity
// draws fall back to uniform after 64 misses in a row, when the popular items are all taken).
void CandidateSource::draw_by_rejection(int64_t want, Rng& rng, std::vector<int64_t>& out) const {
  const size_t first = out.size();
  int misses = 0;
  while (static_cast<int64_t>(out.size() - first) < want) {
    int64_t i;
    if (proto.type == Protocol::Popularity && misses < 64) {
      const double x = rng.uniform01() * cdf.back();
      i = std::min<int64_t>(std::upper_bound(cdf.begin(), cdf.end(), x) - cdf.begin(), n_items - 1);
    } else {
      i = rng.uniform(n_items);
    }
    if (taken[static_cast<size_t>(i)] || std::binary_search(known_row.begin(), known_row.end(), i)) {
      ++misses;
      continue;
    }
    misses = 0;
    taken[static_cast<size_t>(i)] = 1;
    out.push_back(i);
  }
  for (size_t j = first; j < out.size(); ++j) taken[static_cast<size_t>(out[j])] = 0;
}

// ---- setup and words -------------------------------------------------------------------------

namespace {

std::string mask_words(Target target) { return target == Target::Test ? "training and validation" : "training"; }

// The sampled protocols' candidate source (given candidates, or uniform / popularity negatives).
void setup_sampled(const Protocol& proto, const Split& split, Target target, CandidateSource& cs) {
  if (proto.type == Protocol::Given) {
    if (split.test_negatives.nnz() == 0)
      fail("eval.protocol given: the data has no given candidates (dataset.negatives_path, or format ncf)");
    if (target == Target::Valid) {
      // Validation has no given candidates: as many uniform negatives as the test has.
      int64_t rows = 0;
      for (int64_t u = 0; u < split.test_negatives.n_rows; ++u) rows += split.test_negatives.row_size(u) > 0;
      cs.proto = {Protocol::Uniform,
                  std::max<int64_t>(1, (split.test_negatives.nnz() + rows / 2) / std::max<int64_t>(rows, 1))};
    } else {
      cs.given = &split.test_negatives;
    }
  }
  cs.known = {&split.train, &split.valid, &split.test};
  cs.taken.assign(static_cast<size_t>(cs.n_items), 0);
  if (cs.proto.type == Protocol::Popularity) {
    cs.cdf.assign(static_cast<size_t>(cs.n_items), 0.0);
    std::vector<double> w(static_cast<size_t>(cs.n_items), 0.0);
    for (int64_t i : split.train.indices) w[static_cast<size_t>(i)] += 1.0;
    std::partial_sum(w.begin(), w.end(), cs.cdf.begin());
    if (cs.cdf.empty() || cs.cdf.back() <= 0) cs.proto.type = Protocol::Uniform;
  }
}

}  // namespace

CandidateSource setup_protocol(const Protocol& proto, const Split& split, Target target, const EvalOptions& opts,
                               int64_t n_items, EvalResult& res) {
  const std::string which = target == Target::Test ? "test" : "valid";
  const std::string ties = fmt::format("ties in a seeded per-user random order (eval.seed {})", opts.seed);
  CandidateSource cs;
  cs.proto = proto;
  cs.n_items = n_items;
  cs.seed = mix_seed(opts.seed, target == Target::Test ? 2 : 1);
  if (proto.type == Protocol::Full) {
    res.protocol_name = "full";
    res.protocol = fmt::format("full ranking of all {} items; the user's {} items masked (its own targets never); {}",
                               n_items, mask_words(target), ties);
  } else {
    setup_sampled(proto, split, target, cs);
    res.protocol_name = proto.type == Protocol::Given
                            ? "given"
                            : fmt::format("{}{}", proto.type == Protocol::Uniform ? "uni" : "pop", proto.n);
    if (cs.given)
      res.protocol =
          fmt::format("sampled: the user's {} items ranked among the given candidates from the data; {}", which, ties);
    else
      res.protocol = fmt::format(
          "sampled: each {} item ranked with {} {} negatives per target item (items the user never "
          "interacted with), drawn with eval.seed {} and the same for every model{}; {}",
          which, cs.proto.n, cs.proto.type == Protocol::Uniform ? "uniform" : "popularity-proportional", opts.seed,
          proto.type == Protocol::Given ? " (given candidates exist only for test)" : "", ties);
  }
  if (opts.target_max_train > 0)
    res.protocol += fmt::format(
        "; targets: only {} items with fewer than {} training interactions (the user's other {} items "
        "are not ranked)",
        which, opts.target_max_train, which);
  if (opts.user_max_train > 0)
    res.protocol += fmt::format("; users: only those with at most {} training interactions", opts.user_max_train);
  return cs;
}

}  // namespace rzoo::eval_impl
