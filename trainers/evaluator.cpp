// Evaluation (see evaluator.h for the protocols, the tie rule and the metric definitions).
//
// The ranking kernel is tight C++ over each user's score row (scores are computed by the model
// on its device, then copied to the CPU in chunks): one pass per user keeps a top-K heap and
// counts, for every target, the candidates ranked above it, so that every metric, AUC included,
// follows from the targets' exact ranks without sorting the catalogue.
#include "trainers/evaluator.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/random.h"
#include "datasets/dataset.h"
#include "models/recommender.h"

namespace rzoo {

namespace {

enum Kind { HR, RECALL, PRECISION, NDCG, MRR, MAP, AUC, GAUC, POPULARITY, NOVELTY, DIVERSITY, COVERAGE, GINI, RMSE, MAE };
const std::vector<std::string> kNames = {"hr",  "recall",     "precision", "ndcg",      "mrr",      "map",  "auc", "gauc",
                                         "popularity", "novelty", "diversity", "coverage", "gini", "rmse", "mae"};

Kind kind_of(const std::string& m) {
  const auto it = std::find(kNames.begin(), kNames.end(), m);
  if (it == kNames.end()) fail("unknown metric '{}'", m);
  return static_cast<Kind>(it - kNames.begin());
}

struct Protocol {
  enum Type { Full, Uniform, Popularity, Given } type = Full;
  int64_t n = 0;  // negatives per target (uni, pop)
};

bool parse_protocol(const std::string& s, Protocol& p) {
  if (s == "full") return p = {Protocol::Full, 0}, true;
  if (s == "given") return p = {Protocol::Given, 0}, true;
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

// ---- tie order -------------------------------------------------------------------------------
// A per-user bijection of item indices onto [0, 2^31 - 1): t(i) = (a i + b) mod p with the
// Mersenne prime p. Equal scores are ordered by t (larger first); distinct items never tie.
constexpr uint64_t kP = 2147483647ULL;
inline uint64_t mod_p(uint64_t x) {  // x < 2^63
  x = (x & kP) + (x >> 31);
  x = (x & kP) + (x >> 31);
  return x >= kP ? x - kP : x;
}
struct TieOrder {
  uint64_t a = 1, b = 0, a_inv = 1;
  TieOrder(uint64_t seed, int64_t user) {
    const uint64_t h = mix_seed(seed, static_cast<uint64_t>(user));
    a = 1 + (h % (kP - 1));
    b = (h >> 31) % kP;
    a_inv = 1;  // a^(p - 2) mod p (Fermat)
    uint64_t base = a, e = kP - 2;
    while (e) {
      if (e & 1) a_inv = mod_p(a_inv * base);
      base = mod_p(base * base);
      e >>= 1;
    }
  }
  uint32_t operator()(int64_t item) const { return static_cast<uint32_t>(mod_p(a * static_cast<uint64_t>(item) + b)); }
  int64_t item(uint32_t t) const { return static_cast<int64_t>(mod_p(mod_p(t + kP - b) * a_inv)); }
};

// Scores become order-preserving unsigned integers (-0 and +0 equal); the key puts the tie
// order in the low half, so keys of one user's candidates are distinct and totally ordered.
constexpr uint32_t kMaskBits = 0x7FC0DEADu;  // a NaN payload marking masked entries
inline uint32_t ord_bits(uint32_t b) {
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

struct Scratch {
  std::vector<uint64_t> heap;
  std::vector<std::pair<uint64_t, int64_t>> tk;  // (key, target position), by key descending
  std::vector<uint64_t> tkeys;                   // the keys alone
  std::vector<int64_t> diff;
};

[[noreturn]] void nan_score(const std::string& model, int64_t user, int64_t item) {
  fail("model '{}' returned a NaN score (user index {}, item index {}): its training diverged or it is broken", model,
       user, item);
}

// How many of s[0, n) are greater than x, and how many equal (NaN, hence masked entries, are
// neither). SSE2 (every x86-64) compares four scores at once; this is the inner loop of
// evaluation, run once per target over the user's whole row.
inline int64_t count_greater(const float* s, int64_t n, float x, int64_t& equal) {
  int64_t gt = 0, eq = 0, j = 0;
#if defined(__SSE2__)
  const __m128 vx = _mm_set1_ps(x);
  while (j + 4 <= n) {
    // Lane counters are int32: flush every 2^28 blocks, long before they could overflow.
    __m128i agt = _mm_setzero_si128(), aeq = _mm_setzero_si128();
    const int64_t stop = std::min(n - 3, j + (int64_t{1} << 30));
    for (; j < stop; j += 4) {
      const __m128 v = _mm_loadu_ps(s + j);
      agt = _mm_sub_epi32(agt, _mm_castps_si128(_mm_cmpgt_ps(v, vx)));
      aeq = _mm_sub_epi32(aeq, _mm_castps_si128(_mm_cmpeq_ps(v, vx)));
    }
    alignas(16) int32_t g[4], e[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(g), agt);
    _mm_store_si128(reinterpret_cast<__m128i*>(e), aeq);
    gt += int64_t{g[0]} + g[1] + g[2] + g[3];
    eq += int64_t{e[0]} + e[1] + e[2] + e[3];
  }
#endif
  for (; j < n; ++j) gt += s[j] > x, eq += s[j] == x;
  equal = eq;
  return gt;
}

// Ranks one user's candidates. s[j] scores candidate j (item cand[j], or j when cand is null);
// entries with kMaskBits are not candidates. tpos[t] is the index in s of target t. Writes each
// target's rank (1-based among candidates) and the top min(K, candidates) items; returns the
// number of candidates.
int64_t rank_row(const float* s, const int64_t* cand, int64_t n, const int64_t* tpos, int64_t T, const TieOrder& tie,
                 int64_t K, Scratch& w, int64_t* rank_out, int64_t* top_out, int64_t& n_top, const std::string& model,
                 int64_t user) {
  auto item_of = [cand](int64_t j) { return cand ? cand[j] : j; };
  auto key_of = [&](int64_t j) { return (static_cast<uint64_t>(ord_bits(bits_of(s[j]))) << 32) | tie(item_of(j)); };
  for (int64_t t = 0; t < T; ++t)
    if (s[tpos[t]] != s[tpos[t]]) nan_score(model, user, item_of(tpos[t]));
  // Top K: a min-heap of keys; a candidate whose score alone puts it below the heap's minimum
  // is rejected before its tie key is computed.
  w.heap.clear();
  const auto K_ = static_cast<size_t>(K);
  uint64_t lo = 0;
  int64_t masked = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float f = s[j];
    const uint32_t b = bits_of(f);
    if (f != f) {
      if (b == kMaskBits) { ++masked; continue; }
      nan_score(model, user, item_of(j));
    }
    const uint64_t hi = static_cast<uint64_t>(ord_bits(b)) << 32;
    if ((hi | 0xFFFFFFFFULL) < lo) continue;
    const uint64_t key = hi | tie(item_of(j));
    if (w.heap.size() < K_) {
      w.heap.push_back(key);
      std::push_heap(w.heap.begin(), w.heap.end(), std::greater<>());
      if (w.heap.size() == K_) lo = w.heap.front();
    } else if (key > w.heap.front()) {
      std::pop_heap(w.heap.begin(), w.heap.end(), std::greater<>());
      w.heap.back() = key;
      std::push_heap(w.heap.begin(), w.heap.end(), std::greater<>());
      lo = w.heap.front();
    }
  }
  // Target ranks: 1 + the candidates whose key is greater.
  if (T <= 32) {
    // Few targets: count higher scores per target (vectorised), then break exact ties.
    for (int64_t t = 0; t < T; ++t) {
      const float st = s[tpos[t]];
      int64_t eq = 0;
      int64_t above = count_greater(s, n, st, eq);
      if (eq > 1) {
        const uint64_t kt = key_of(tpos[t]);
        for (int64_t j = 0; j < n; ++j)
          if (s[j] == st && key_of(j) > kt) ++above;
      }
      rank_out[t] = 1 + above;
    }
  } else {
    // Many targets: one pass; each candidate at or above the lowest target finds, by a
    // branch-free binary search over the targets' keys, how many targets it outranks.
    w.tk.clear();
    for (int64_t t = 0; t < T; ++t) w.tk.emplace_back(key_of(tpos[t]), t);
    std::sort(w.tk.begin(), w.tk.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    w.tkeys.resize(w.tk.size());
    for (size_t t = 0; t < w.tk.size(); ++t) w.tkeys[t] = w.tk[t].first;
    const uint64_t tmin = w.tkeys.back();
    w.diff.assign(static_cast<size_t>(T) + 1, 0);
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t b = bits_of(s[j]);
      if (s[j] != s[j]) continue;  // masked
      const uint64_t hi = static_cast<uint64_t>(ord_bits(b)) << 32;
      if ((hi | 0xFFFFFFFFULL) < tmin) continue;
      const uint64_t key = hi | tie(item_of(j));
      if (key < tmin) continue;
      // p = targets with a key >= this one: this candidate outranks targets p.. (a target
      // itself lands just after its own position, counting for the targets below it).
      const uint64_t* base = w.tkeys.data();
      size_t len = w.tkeys.size();
      while (len > 1) {
        const size_t half = len / 2;
        base += half * static_cast<size_t>(base[half - 1] >= key);
        len -= half;
      }
      const auto p = static_cast<size_t>(base - w.tkeys.data()) + (*base >= key ? 1 : 0);
      if (p < static_cast<size_t>(T)) ++w.diff[p];
    }
    int64_t above = 0;
    for (int64_t t = 0; t < T; ++t) {
      above += w.diff[static_cast<size_t>(t)];
      rank_out[w.tk[static_cast<size_t>(t)].second] = 1 + above;
    }
  }
  std::sort(w.heap.begin(), w.heap.end(), std::greater<>());
  n_top = static_cast<int64_t>(w.heap.size());
  for (size_t i = 0; i < w.heap.size(); ++i) top_out[i] = tie.item(static_cast<uint32_t>(w.heap[i] & 0xFFFFFFFFULL));
  return n - masked;
}

// ---- metric columns --------------------------------------------------------------------------
struct Column_ {
  Kind kind;
  int64_t k;  // 0 = no K
  std::string name;
};

std::vector<Column_> columns_for(const std::vector<std::string>& metrics, const std::vector<int64_t>& ks) {
  std::vector<Column_> cols;
  for (const auto& m : metrics) {
    const Kind kd = kind_of(m);
    if (!metric_has_k(m)) cols.push_back({kd, 0, m});
    else
      for (int64_t k : ks) cols.push_back({kd, k, fmt::format("{}@{}", m, k)});
  }
  return cols;
}

struct Tables {
  std::vector<double> disc, idcg;  // disc[r] = 1/log2(r + 1); idcg[j] = sum_{i <= j} disc[i]
  explicit Tables(int64_t kmax) : disc(static_cast<size_t>(kmax) + 1, 0.0), idcg(static_cast<size_t>(kmax) + 1, 0.0) {
    for (int64_t r = 1; r <= kmax; ++r) {
      disc[static_cast<size_t>(r)] = 1.0 / std::log2(static_cast<double>(r) + 1.0);
      idcg[static_cast<size_t>(r)] = idcg[static_cast<size_t>(r) - 1] + disc[static_cast<size_t>(r)];
    }
  }
};

// Accuracy metrics of one user from its sorted target ranks.
double rank_value(const Column_& c, const int64_t* r, int64_t T, int64_t n_cand, const Tables& tb) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (c.kind == AUC || c.kind == GAUC) {
    const int64_t neg = n_cand - T;
    if (neg <= 0 || T == 0) return nan;
    double below = 0;  // non-target candidates ranked below each target
    for (int64_t j = 0; j < T; ++j) below += static_cast<double>(neg - (r[j] - 1 - j));
    return below / (static_cast<double>(T) * static_cast<double>(neg));
  }
  const int64_t k = c.k;
  const int64_t hits = std::upper_bound(r, r + T, k) - r;
  switch (c.kind) {
    case HR: return hits > 0 ? 1.0 : 0.0;
    case PRECISION: return static_cast<double>(hits) / static_cast<double>(k);
    case RECALL: return static_cast<double>(hits) / static_cast<double>(T);
    case NDCG: {
      double dcg = 0;
      for (int64_t j = 0; j < hits; ++j) dcg += tb.disc[static_cast<size_t>(r[j])];
      return dcg / tb.idcg[static_cast<size_t>(std::min(T, k))];
    }
    case MRR: return hits > 0 ? 1.0 / static_cast<double>(r[0]) : 0.0;
    case MAP: {
      double ap = 0;
      for (int64_t j = 0; j < hits; ++j) ap += static_cast<double>(j + 1) / static_cast<double>(r[j]);
      return ap / static_cast<double>(std::min(T, k));
    }
    default: return nan;
  }
}

// Item facts for the beyond-accuracy metrics.
struct ItemFacts {
  std::vector<int64_t> pop;                  // distinct training users per item
  std::vector<int64_t> feat_ptr{0}, feat;    // diversity feature tokens per item (sorted, unique)
  int64_t n_users = 0;
};

ItemFacts item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, bool need_features) {
  ItemFacts f;
  f.n_users = split.train.n_rows;
  f.pop.assign(static_cast<size_t>(split.train.n_cols), 0);
  for (int64_t i : split.train.indices) ++f.pop[static_cast<size_t>(i)];
  if (!need_features) return f;
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

double beyond_value(const Column_& c, const int64_t* top, int64_t n_top, const ItemFacts& f) {
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
  if (c.kind == DIVERSITY) {
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
          if (*x < *y) ++x;
          else if (*y < *x) ++y;
          else ++common, ++x, ++y;
        }
        sum += 1.0 - static_cast<double>(common) / std::sqrt(static_cast<double>((ae - ab) * (be - bb)));
        ++pairs;
      }
    }
    return pairs ? sum / static_cast<double>(pairs) : nan;
  }
  return nan;
}

// ---- sampled candidates ----------------------------------------------------------------------
struct CandidateSource {
  Protocol proto;
  int64_t n_items = 0;
  std::vector<const Csr*> known;   // every positive of the user (train, valid, test)
  const Csr* given = nullptr;
  std::vector<double> cdf;         // popularity
  uint64_t seed = 0;
  mutable std::vector<char> taken; // scratch bitmap over items (single-threaded use)
  mutable std::vector<int64_t> known_row, pool;

  // Appends user u's candidates after its targets (already in out).
  void negatives(int64_t u, const int64_t* tg, int64_t T, std::vector<int64_t>& out) const {
    const size_t first = out.size();
    if (given) {
      if (u >= given->n_rows || given->row_size(u) == 0)
        fail("eval.protocol given: user index {} has evaluation items but no given candidates in the data", u);
      for (const int64_t* p = given->row_begin(u); p != given->row_end(u); ++p)
        if (!std::binary_search(tg, tg + T, *p)) out.push_back(*p);
      return;
    }
    known_row.clear();
    for (const Csr* k : known) known_row.insert(known_row.end(), k->row_begin(u), k->row_end(u));
    known_row.insert(known_row.end(), tg, tg + T);
    std::sort(known_row.begin(), known_row.end());
    known_row.erase(std::unique(known_row.begin(), known_row.end()), known_row.end());
    const int64_t avail = n_items - static_cast<int64_t>(known_row.size());
    const int64_t want = std::min(proto.n * T, avail);
    if (want <= 0) return;
    Rng rng(seed, static_cast<uint64_t>(u));
    if (want * 2 >= avail) {
      // Most of the complement is wanted (rejection would thrash): enumerate it and draw
      // without replacement, uniformly (partial Fisher-Yates) or in proportion to popularity
      // (Efraimidis-Spirakis keys log(r) / w, the largest `want` kept).
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
        std::partial_sort(keyed.begin(), keyed.begin() + want, keyed.end(),
                          [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
        for (int64_t j = 0; j < want; ++j) out.push_back(keyed[static_cast<size_t>(j)].second);
      }
      return;
    }
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
};

std::string mask_words(Target target) {
  return target == Target::Test ? "training and validation" : "training";
}

}  // namespace

// ---- options and names -----------------------------------------------------------------------

const std::vector<std::string>& known_metrics() { return kNames; }
bool metric_has_k(const std::string& m) { return m != "auc" && m != "gauc" && m != "rmse" && m != "mae"; }
bool metric_per_user(const std::string& m) { return m != "coverage" && m != "gini"; }
bool metric_is_rating(const std::string& m) { return m == "rmse" || m == "mae"; }
bool metric_higher_is_better(const std::string& name) {
  const std::string m = name.substr(0, name.find('@'));
  return !metric_is_rating(m);
}

EvalOptions EvalOptions::from_config(const Config& cfg) {
  EvalOptions o;
  o.ks = cfg.get_int_list("eval.ks", 1);
  if (o.ks.empty()) cfg.bad("eval.ks", "needs at least one K");
  for (size_t i = 1; i < o.ks.size(); ++i)
    if (std::find(o.ks.begin(), o.ks.begin() + static_cast<long>(i), o.ks[i]) != o.ks.begin() + static_cast<long>(i))
      cfg.bad("eval.ks", fmt::format("K = {} is listed twice", o.ks[i]));
  o.metrics = cfg.get_string_list("eval.metrics");
  if (o.metrics.empty()) cfg.bad("eval.metrics", "needs at least one metric");
  std::string known;
  for (const auto& m : kNames) known += (known.empty() ? "" : ", ") + m;
  for (size_t i = 0; i < o.metrics.size(); ++i) {
    const auto& m = o.metrics[i];
    if (std::find(kNames.begin(), kNames.end(), m) == kNames.end())
      cfg.bad("eval.metrics", fmt::format("unknown metric '{}' (known: {})", m, known));
    if (std::find(o.metrics.begin(), o.metrics.begin() + static_cast<long>(i), m) != o.metrics.begin() + static_cast<long>(i))
      cfg.bad("eval.metrics", fmt::format("'{}' is listed twice", m));
  }
  o.protocol = cfg.get_string("eval.protocol");
  Protocol p;
  if (!parse_protocol(o.protocol, p))
    cfg.bad("eval.protocol", fmt::format("'{}' is not one of: full, uni<N>, pop<N> (N >= 1, e.g. uni100), given", o.protocol));
  o.memory_mb = cfg.get_int("eval.memory_mb", 1);
  o.batch_users = cfg.get_int("eval.batch_users", 0);
  o.seed = static_cast<uint64_t>(cfg.get_int("eval.seed", 0));
  o.save_rankings = cfg.get_bool("eval.save_rankings");
  o.target_max_train = cfg.get_int("eval.target_max_train", 0);
  o.diversity_features = cfg.get_string_list("eval.diversity_features");
  return o;
}

double EvalResult::get(const std::string& name) const {
  for (const auto& [k, v] : metrics)
    if (k == name) return v;
  std::string known;
  for (const auto& [k, v] : metrics) known += (known.empty() ? "" : ", ") + k;
  fail("metric '{}' was not computed (computed: {})", name, known);
}

bool EvalResult::has(const std::string& name) const {
  for (const auto& kv : metrics)
    if (kv.first == name) return true;
  return false;
}

const std::vector<double>* EvalResult::user_values(const std::string& name) const {
  for (const auto& [k, v] : per_user)
    if (k == name) return &v;
  return nullptr;
}

Json EvalResult::json() const {
  Json m = Json::object();
  for (const auto& [name, v] : metrics) m[name] = json_number(v);  // NaN (no user to evaluate) is null
  return Json{{"split", split}, {"protocol_name", protocol_name}, {"protocol", protocol}, {"n_users", n_users},
              {"n_items", n_items}, {"seconds", json_rounded(seconds, 6)}, {"metrics", std::move(m)}};
}

std::vector<std::pair<std::string, double>> rank_metrics(std::vector<int64_t> ranks, int64_t n_candidates,
                                                         const std::vector<int64_t>& ks,
                                                         const std::vector<std::string>& metrics) {
  if (ks.empty()) fail("rank_metrics: needs at least one K");
  std::sort(ranks.begin(), ranks.end());
  const auto cols = columns_for(metrics, ks);
  const Tables tb(*std::max_element(ks.begin(), ks.end()));
  std::vector<std::pair<std::string, double>> out;
  for (const auto& c : cols) {
    if (c.kind > GAUC) continue;
    out.emplace_back(c.name, rank_value(c, ranks.data(), static_cast<int64_t>(ranks.size()), n_candidates, tb));
  }
  return out;
}

// ---- evaluate --------------------------------------------------------------------------------

EvalResult evaluate(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                    const c10::Device& device, const Dataset* data) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  // Back to training mode on every exit, errors included.
  struct ModeGuard {
    RecommenderImpl& m;
    bool was;
    ~ModeGuard() {
      if (was) m.train();
    }
  } mode_guard{model, model.is_training()};
  model.eval();
  const Csr& all_truth = target == Target::Test ? split.test : split.valid;
  // eval.target_max_train: only targets with few training interactions (cold-ish items) count;
  // the user's other targets leave the ranking (masked, never candidates), so they are neither
  // hits nor negatives.
  Csr cold_truth, held_out;
  if (opts.target_max_train > 0) {
    std::vector<int64_t> pop(static_cast<size_t>(split.train.n_cols), 0);
    for (int64_t i : split.train.indices) ++pop[static_cast<size_t>(i)];
    std::vector<int64_t> ku, ki, hu, hi;
    for (int64_t u = 0; u < all_truth.n_rows; ++u)
      for (const int64_t* p = all_truth.row_begin(u); p != all_truth.row_end(u); ++p)
        (pop[static_cast<size_t>(*p)] < opts.target_max_train ? ku : hu).push_back(u),
            (pop[static_cast<size_t>(*p)] < opts.target_max_train ? ki : hi).push_back(*p);
    cold_truth = Csr::from_pairs(all_truth.n_rows, all_truth.n_cols, ku, ki);
    held_out = Csr::from_pairs(all_truth.n_rows, all_truth.n_cols, hu, hi);
  }
  const Csr& truth = opts.target_max_train > 0 ? cold_truth : all_truth;
  const int64_t n_items = truth.n_cols;
  const std::string which = target == Target::Test ? "test" : "valid";
  Protocol proto;
  if (!parse_protocol(opts.protocol, proto)) fail("eval.protocol: '{}' is not a protocol", opts.protocol);
  if (opts.ks.empty() || opts.metrics.empty()) fail("eval: needs at least one K and one metric");

  EvalResult res;
  res.split = which;
  res.n_items = n_items;
  for (int64_t u = 0; u < truth.n_rows; ++u)
    if (truth.row_size(u) > 0) res.users.push_back(u);
  const auto n_eval = static_cast<int64_t>(res.users.size());
  res.n_users = n_eval;

  const auto cols = columns_for(opts.metrics, opts.ks);
  bool want_rank = false, want_rating = false, want_features = false;
  for (const auto& c : cols) {
    (c.kind == RMSE || c.kind == MAE ? want_rating : want_rank) = true;
    want_features |= c.kind == DIVERSITY;
  }
  const int64_t kmax = *std::max_element(opts.ks.begin(), opts.ks.end());
  const Tables tb(kmax);
  const uint64_t split_seed = mix_seed(opts.seed, target == Target::Test ? 2 : 1);

  // The protocol, in words.
  const std::string ties = fmt::format("ties in a seeded per-user random order (eval.seed {})", opts.seed);
  std::vector<const Csr*> masked{&split.train};
  if (target == Target::Test) masked.push_back(&split.valid);
  if (opts.target_max_train > 0) masked.push_back(&held_out);
  CandidateSource cs;
  cs.proto = proto;
  cs.n_items = n_items;
  cs.seed = split_seed;
  if (proto.type == Protocol::Full) {
    res.protocol_name = "full";
    res.protocol = fmt::format("full ranking of all {} items; the user's {} items masked (its own targets never); {}",
                               n_items, mask_words(target), ties);

  } else {
    if (proto.type == Protocol::Given) {
      if (split.test_negatives.nnz() == 0)
        fail("eval.protocol given: the data has no given candidates (dataset.negatives_path, or format ncf)");
      if (target == Target::Valid) {
        // Validation has no given candidates: as many uniform negatives as the test has.
        int64_t rows = 0;
        for (int64_t u = 0; u < split.test_negatives.n_rows; ++u) rows += split.test_negatives.row_size(u) > 0;
        cs.proto = {Protocol::Uniform, std::max<int64_t>(1, (split.test_negatives.nnz() + rows / 2) / std::max<int64_t>(rows, 1))};
      } else {
        cs.given = &split.test_negatives;
      }
    }
    cs.known = {&split.train, &split.valid, &split.test};
    cs.taken.assign(static_cast<size_t>(n_items), 0);
    if (cs.proto.type == Protocol::Popularity) {
      cs.cdf.assign(static_cast<size_t>(n_items), 0.0);
      std::vector<double> w(static_cast<size_t>(n_items), 0.0);
      for (int64_t i : split.train.indices) w[static_cast<size_t>(i)] += 1.0;
      std::partial_sum(w.begin(), w.end(), cs.cdf.begin());
      if (cs.cdf.empty() || cs.cdf.back() <= 0) cs.proto.type = Protocol::Uniform;
    }
    res.protocol_name = proto.type == Protocol::Given ? "given"
                                                      : fmt::format("{}{}", proto.type == Protocol::Uniform ? "uni" : "pop", proto.n);
    if (cs.given)
      res.protocol = fmt::format("sampled: the user's {} items ranked among the given candidates from the data; {}", which, ties);
    else
      res.protocol = fmt::format("sampled: each {} item ranked with {} {} negatives per target item (items the user never "
                                 "interacted with), drawn with eval.seed {} and the same for every model{}; {}",
                                 which, cs.proto.n, cs.proto.type == Protocol::Uniform ? "uniform" : "popularity-proportional",
                                 opts.seed, proto.type == Protocol::Given ? " (given candidates exist only for test)" : "", ties);
  }

  if (opts.target_max_train > 0)
    res.protocol += fmt::format("; targets: only {} items with fewer than {} training interactions (the user's other {} items "
                                "are not ranked)", which, opts.target_max_train, which);

  // Per-user outputs.
  std::vector<size_t> per_user_cols;
  for (size_t c = 0; c < cols.size(); ++c)
    if (metric_per_user(kNames[cols[c].kind])) per_user_cols.push_back(c);
  const size_t nc = cols.size();
  std::vector<double> vals(static_cast<size_t>(n_eval) * nc, std::numeric_limits<double>::quiet_NaN());
  res.n_targets.resize(static_cast<size_t>(n_eval));
  res.n_candidates.assign(static_cast<size_t>(n_eval), 0);
  for (int64_t r = 0; r < n_eval; ++r) res.n_targets[static_cast<size_t>(r)] = truth.row_size(res.users[static_cast<size_t>(r)]);
  if (opts.save_rankings) {
    res.targets.resize(static_cast<size_t>(n_eval));
    res.ranks.resize(static_cast<size_t>(n_eval));
    res.top.resize(static_cast<size_t>(n_eval));
  }
  std::vector<int64_t> in_top;  // per item: users whose top-K contains it, per K (coverage, gini)
  std::vector<size_t> count_cols;
  for (size_t c = 0; c < nc; ++c)
    if (cols[c].kind == COVERAGE || cols[c].kind == GINI) count_cols.push_back(c);
  in_top.assign(count_cols.size() * static_cast<size_t>(n_items), 0);

  if (want_rank && n_eval > 0) {
    const ItemFacts facts = item_facts(split, data, opts, want_features);
    const int64_t budget = opts.memory_mb * (int64_t{1} << 20);
    const bool on_cpu = device.is_cpu();
    std::vector<int64_t> cand, cand_ptr, top_buf;
    using Clock = std::chrono::steady_clock;
    auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    std::atomic<int64_t> ns_mask{0}, ns_rank{0}, ns_metrics{0};
    for (int64_t start = 0; start < n_eval;) {
      // ---- the chunk's scores
      const auto ts = Clock::now();
      int64_t c = 0;
      at::Tensor scores;  // full: [C, I]; sampled: [pairs]
      if (proto.type == Protocol::Full) {
        // Scores (4 B per item), their CPU copy when the model runs elsewhere, and the model's
        // own temporaries (assumed no larger than its output).
        const int64_t per_user = n_items * (on_cpu ? 8 : 12) + 8 * kmax;
        c = opts.batch_users > 0 ? opts.batch_users : std::max<int64_t>(1, budget / std::max<int64_t>(per_user, 1));
        c = std::min(c, n_eval - start);
        auto u = torch::from_blob(res.users.data() + start, {c}, torch::kLong).to(device);
        scores = model.score_all(u).to(torch::kFloat);
        TORCH_CHECK(scores.dim() == 2 && scores.size(0) == c && scores.size(1) == n_items, "model '", model.name(),
                    "': score_all returned shape ", scores.sizes(), ", expected [", c, ", ", n_items, "]");
        scores = scores.to(torch::kCPU).contiguous();
      } else {
        cand.clear();
        cand_ptr.assign(1, 0);
        // Candidates are scored through score_all (one row per user, then picked): for every
        // model that is one matrix product, where score() on (user, item) pairs can cost a
        // gathered row per pair (EASE: a whole history row). Per user: the row (4 B/item, twice
        // off the CPU); per pair: the evaluator's arrays (~40 B).
        const int64_t per_user = n_items * (on_cpu ? 8 : 12) + 8 * kmax;
        const int64_t max_pairs = std::max<int64_t>(1, budget / 48);
        const int64_t max_users = std::max<int64_t>(1, budget / std::max<int64_t>(per_user, 1));
        while (start + c < n_eval && (opts.batch_users <= 0 ? c < max_users : c < opts.batch_users)) {
          const int64_t u = res.users[static_cast<size_t>(start + c)];
          const size_t before = cand.size();
          cand.insert(cand.end(), truth.row_begin(u), truth.row_end(u));
          cs.negatives(u, truth.row_begin(u), truth.row_size(u), cand);
          if (c > 0 && opts.batch_users <= 0 && static_cast<int64_t>(cand.size()) > max_pairs) {
            cand.resize(before);
            break;
          }
          cand_ptr.push_back(static_cast<int64_t>(cand.size()));
          ++c;
        }
        const auto m = static_cast<int64_t>(cand.size());
        if (model.pair_scoring_cheaper()) {
          std::vector<int64_t> pair_users(static_cast<size_t>(m));
          for (int64_t r = 0; r < c; ++r)
            std::fill(pair_users.begin() + cand_ptr[static_cast<size_t>(r)], pair_users.begin() + cand_ptr[static_cast<size_t>(r) + 1],
                      res.users[static_cast<size_t>(start + r)]);
          scores = model
                       .score(torch::from_blob(pair_users.data(), {m}, torch::kLong).to(device),
                              torch::from_blob(cand.data(), {m}, torch::kLong).to(device))
                       .to(torch::kFloat);
          TORCH_CHECK(scores.dim() == 1 && scores.size(0) == m, "model '", model.name(), "': score returned shape ",
                      scores.sizes(), ", expected [", m, "]");
          scores = scores.to(torch::kCPU).contiguous();
        } else {
        auto u = torch::from_blob(res.users.data() + start, {c}, torch::kLong).to(device);
        auto rows = model.score_all(u).to(torch::kFloat);
        TORCH_CHECK(rows.dim() == 2 && rows.size(0) == c && rows.size(1) == n_items, "model '", model.name(),
                    "': score_all returned shape ", rows.sizes(), ", expected [", c, ", ", n_items, "]");
        rows = rows.to(torch::kCPU).contiguous();
        scores = torch::empty({m}, torch::kFloat);
        const float* rp = rows.data_ptr<float>();
        float* out = scores.data_ptr<float>();
        for (int64_t r = 0; r < c; ++r)
          for (int64_t j = cand_ptr[static_cast<size_t>(r)]; j < cand_ptr[static_cast<size_t>(r) + 1]; ++j)
            out[j] = rp[r * n_items + cand[static_cast<size_t>(j)]];
        }
      }
      float* sp = scores.data_ptr<float>();
      res.seconds_scoring += secs(ts, Clock::now());
      top_buf.assign(static_cast<size_t>(c * kmax), -1);
      std::vector<int64_t> n_top(static_cast<size_t>(c), 0);
      const std::string& mname = model.name();
      // ---- rank each user of the chunk (in parallel; each user's numbers are its own)
      at::parallel_for(0, c, 1, [&](int64_t b, int64_t e) {
        Scratch w;
        std::vector<int64_t> ranks, tpos;
        int64_t t_mask = 0, t_rank = 0, t_metrics = 0;
        auto ns = [](Clock::time_point a, Clock::time_point z) {
          return std::chrono::duration_cast<std::chrono::nanoseconds>(z - a).count();
        };
        for (int64_t r = b; r < e; ++r) {
          const auto t_a = Clock::now();
          const size_t g = static_cast<size_t>(start + r);
          const int64_t u = res.users[g];
          const int64_t T = truth.row_size(u);
          const int64_t* tg = truth.row_begin(u);
          const TieOrder tie(opts.seed, u);
          ranks.assign(static_cast<size_t>(T), 0);
          tpos.resize(static_cast<size_t>(T));
          int64_t n_cand;
          int64_t* top = top_buf.data() + r * kmax;
          int64_t& nt = n_top[static_cast<size_t>(r)];
          if (proto.type == Protocol::Full) {
            float* row = sp + r * n_items;
            for (const Csr* m : masked)
              for (const int64_t* p = m->row_begin(u); p != m->row_end(u); ++p)
                if (!std::binary_search(tg, tg + T, *p)) std::memcpy(row + *p, &kMaskBits, 4);
            std::copy(tg, tg + T, tpos.begin());
            t_mask += ns(t_a, Clock::now());
            n_cand = rank_row(row, nullptr, n_items, tpos.data(), T, tie, kmax, w, ranks.data(), top, nt, mname, u);
          } else {
            const int64_t off = cand_ptr[static_cast<size_t>(r)];
            const int64_t n = cand_ptr[static_cast<size_t>(r) + 1] - off;
            std::iota(tpos.begin(), tpos.end(), int64_t{0});
            n_cand = rank_row(sp + off, cand.data() + off, n, tpos.data(), T, tie, kmax, w, ranks.data(), top, nt, mname, u);
          }
          const auto t_b = Clock::now();
          res.n_candidates[g] = n_cand;
          if (opts.save_rankings) {
            res.targets[g].assign(tg, tg + T);
            res.ranks[g] = ranks;
            res.top[g].assign(top, top + nt);
          }
          std::sort(ranks.begin(), ranks.end());
          double* out = vals.data() + g * nc;
          for (size_t ci = 0; ci < nc; ++ci) {
            const Column_& col = cols[ci];
            if (col.kind <= GAUC) out[ci] = rank_value(col, ranks.data(), T, n_cand, tb);
            else if (col.kind == POPULARITY || col.kind == NOVELTY || col.kind == DIVERSITY) out[ci] = beyond_value(col, top, nt, facts);
          }
          const auto t_c = Clock::now();
          t_rank += ns(t_a, t_b);
          t_metrics += ns(t_b, t_c);
        }
        ns_mask += t_mask, ns_rank += t_rank - t_mask, ns_metrics += t_metrics;
      });
      // Catalogue-level counts (sequential: shared arrays).
      for (size_t cc = 0; cc < count_cols.size(); ++cc) {
        const int64_t k = cols[count_cols[cc]].k;
        int64_t* cnt = in_top.data() + cc * static_cast<size_t>(n_items);
        for (int64_t r = 0; r < c; ++r)
          for (int64_t j = 0; j < std::min(k, n_top[static_cast<size_t>(r)]); ++j) ++cnt[top_buf[static_cast<size_t>(r * kmax + j)]];
      }
      start += c;
    }
    res.seconds_masking = static_cast<double>(ns_mask.load()) * 1e-9;
    res.seconds_ranking = static_cast<double>(ns_rank.load()) * 1e-9;
    res.seconds_metrics = static_cast<double>(ns_metrics.load()) * 1e-9;
  }

  // ---- rating prediction: the split's rated rows
  double sse = 0, sae = 0;
  int64_t n_rows = 0;
  if (want_rating && n_eval > 0) {
    if (!data || !data->has_ratings())
      fail("eval.metrics: rmse and mae need ratings, and the dataset has none (set dataset.columns.rating; no threshold)");
    const auto& rows = target == Target::Test ? split.test_rows : split.valid_rows;
    std::vector<int64_t> ru(rows.size()), ri(rows.size());
    const Column<int32_t>&du = data->user, &di = data->item;
    const Column<float>& dr = data->rating;
    for (size_t k = 0; k < rows.size(); ++k) ru[k] = du[static_cast<size_t>(rows[k])], ri[k] = di[static_cast<size_t>(rows[k])];
    std::vector<float> pred(rows.size());
    const int64_t step = std::max<int64_t>(1, opts.memory_mb * (int64_t{1} << 20) / (40 + 1024));  // as for pairs
    for (int64_t s = 0; s < static_cast<int64_t>(rows.size()); s += step) {
      const int64_t m = std::min<int64_t>(step, static_cast<int64_t>(rows.size()) - s);
      auto p = model.score(torch::from_blob(ru.data() + s, {m}, torch::kLong).to(device),
                           torch::from_blob(ri.data() + s, {m}, torch::kLong).to(device))
                   .to(torch::kFloat)
                   .to(torch::kCPU)
                   .contiguous();
      TORCH_CHECK(p.dim() == 1 && p.size(0) == m, "model '", model.name(), "': score returned shape ", p.sizes());
      std::memcpy(pred.data() + s, p.data_ptr<float>(), static_cast<size_t>(m) * 4);
    }
    // Per user (rows are grouped by user): each user's own RMSE and MAE.
    std::vector<double> u_se(static_cast<size_t>(truth.n_rows), 0.0), u_ae(u_se.size(), 0.0);
    std::vector<int64_t> u_n(u_se.size(), 0);
    for (size_t k = 0; k < rows.size(); ++k) {
      const double e = static_cast<double>(pred[k]) - static_cast<double>(dr[static_cast<size_t>(rows[k])]);
      if (std::isnan(e)) nan_score(model.name(), ru[k], ri[k]);
      sse += e * e, sae += std::abs(e), ++n_rows;
      u_se[static_cast<size_t>(ru[k])] += e * e, u_ae[static_cast<size_t>(ru[k])] += std::abs(e), ++u_n[static_cast<size_t>(ru[k])];
    }
    for (int64_t r = 0; r < n_eval; ++r) {
      const auto u = static_cast<size_t>(res.users[static_cast<size_t>(r)]);
      for (size_t ci = 0; ci < nc; ++ci) {
        if (u_n[u] == 0) continue;
        if (cols[ci].kind == RMSE) vals[static_cast<size_t>(r) * nc + ci] = std::sqrt(u_se[u] / static_cast<double>(u_n[u]));
        if (cols[ci].kind == MAE) vals[static_cast<size_t>(r) * nc + ci] = u_ae[u] / static_cast<double>(u_n[u]);
      }
    }
  }

  // ---- aggregates
  const double nan = std::numeric_limits<double>::quiet_NaN();
  size_t cc = 0;
  for (size_t ci = 0; ci < nc; ++ci) {
    const Column_& col = cols[ci];
    double agg = nan;
    if (col.kind == COVERAGE || col.kind == GINI) {
      const int64_t* cnt = in_top.data() + cc++ * static_cast<size_t>(n_items);
      if (n_eval > 0 && n_items > 0) {
        if (col.kind == COVERAGE) {
          agg = static_cast<double>(std::count_if(cnt, cnt + n_items, [](int64_t x) { return x > 0; })) / static_cast<double>(n_items);
        } else {
          std::vector<int64_t> sorted(cnt, cnt + n_items);
          std::sort(sorted.begin(), sorted.end());
          double num = 0, total = 0;
          for (int64_t i = 0; i < n_items; ++i) {
            num += static_cast<double>(2 * (i + 1) - n_items - 1) * static_cast<double>(sorted[static_cast<size_t>(i)]);
            total += static_cast<double>(sorted[static_cast<size_t>(i)]);
          }
          agg = total > 0 ? num / (static_cast<double>(n_items) * total) : 0.0;
        }
      }
    } else if (col.kind == RMSE || col.kind == MAE) {
      if (n_rows > 0) agg = col.kind == RMSE ? std::sqrt(sse / static_cast<double>(n_rows)) : sae / static_cast<double>(n_rows);
    } else {
      double s = 0, wsum = 0;
      for (int64_t r = 0; r < n_eval; ++r) {
        const double v = vals[static_cast<size_t>(r) * nc + ci];
        if (std::isnan(v)) continue;
        const double w = col.kind == GAUC ? static_cast<double>(res.n_targets[static_cast<size_t>(r)]) : 1.0;
        s += w * v, wsum += w;
      }
      if (wsum > 0) agg = s / wsum;
    }
    res.metrics.emplace_back(col.name, agg);
  }
  for (size_t ci : per_user_cols) {
    std::vector<double> v(static_cast<size_t>(n_eval));
    for (int64_t r = 0; r < n_eval; ++r) v[static_cast<size_t>(r)] = vals[static_cast<size_t>(r) * nc + ci];
    res.per_user.emplace_back(cols[ci].name, std::move(v));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

// ---- files -----------------------------------------------------------------------------------

void write_user_values(const EvalResult& r, const std::string& path) {
  std::string text = "user,n_targets,n_candidates";
  for (const auto& [name, v] : r.per_user) text += "," + name;
  text += "\n";
  for (size_t i = 0; i < r.users.size(); ++i) {
    text += fmt::format("{},{},{}", r.users[i], r.n_targets[i], r.n_candidates[i]);
    for (const auto& [name, v] : r.per_user) text += std::isnan(v[i]) ? std::string(",nan") : fmt::format(",{:.17g}", v[i]);
    text += "\n";
  }
  write_file_atomic(path, text);
}

namespace {
std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

void write_rankings(const EvalResult& r, const std::string& path) {
  if (r.top.size() != r.users.size()) fail("write_rankings: the evaluation kept no rankings (eval.save_rankings)");
  std::string text = "user\ttargets\tranks\ttop\tn_candidates\n";
  for (size_t i = 0; i < r.users.size(); ++i)
    text += fmt::format("{}\t{}\t{}\t{}\t{}\n", r.users[i], join(r.targets[i]), join(r.ranks[i]), join(r.top[i]), r.n_candidates[i]);
  write_file_atomic(path, text);
}

void write_item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, const std::string& path) {
  bool features = data != nullptr;
  if (features)
    for (const auto& name : opts.diversity_features) {
      const Feature* f = data->item_info.find(name);
      features = features && f && f->kind != Feature::Kind::Float;
    }
  const ItemFacts f = item_facts(split, data, opts, features);
  std::string text = "item\ttrain_users\tfeatures\n";
  for (size_t i = 0; i < f.pop.size(); ++i) {
    text += fmt::format("{}\t{}\t", i, f.pop[i]);
    if (features)
      for (int64_t p = f.feat_ptr[i]; p < f.feat_ptr[i + 1]; ++p)
        text += (p > f.feat_ptr[i] ? " " : "") + std::to_string(f.feat[static_cast<size_t>(p)]);
    text += "\n";
  }
  write_file_atomic(path, text);
}

}  // namespace rzoo
