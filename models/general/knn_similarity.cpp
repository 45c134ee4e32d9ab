// ItemKNN / UserKNN similarities: Sarwar et al., "Item-Based Collaborative Filtering
// Recommendation Algorithms", WWW 2001; Herlocker et al., SIGIR 1999; Koren, "Factor in the
// Neighbors", TKDD 2010; Aiolli, RecSys 2013 (asymmetric cosine). See knn.h for the formulas.
// The policies (one small class per similarity), the sparse similarity rows and the selection of
// each entity's k neighbours.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>
#include <vector>

#include "models/general/knn.h"
#include "models/general/knn_internal.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// Similarity policies

namespace {

double clamp1(double s) { return std::max(-1.0, std::min(1.0, s)); }

class CosineSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "cosine"; }
  Input input(bool rating_mode) const override { return rating_mode ? Input::Rating : Input::Binary; }
  Sums sums() const override { return Sums::Dot; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = x.norm * y.norm;
    return den > 0 ? clamp1(s.ab / den) : 0.0;
  }
};

// Aiolli's asymmetric cosine: ab / (|x|^(2 alpha) |y|^(2 (1 - alpha))) with |.| the vector norms,
// x the entity whose neighbours are chosen; alpha = 0.5 is the cosine. (Aiolli, "Efficient top-N
// recommendation for very large scale binary rated datasets", RecSys 2013.)
class AsymmetricCosineSimilarity final : public KNNSimilarity {
 public:
  explicit AsymmetricCosineSimilarity(double alpha) : alpha_(alpha) {}
  const char* name() const override { return "asymmetric_cosine"; }
  Input input(bool rating_mode) const override { return rating_mode ? Input::Rating : Input::Binary; }
  Sums sums() const override { return Sums::Dot; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = std::pow(x.norm, 2 * alpha_) * std::pow(y.norm, 2 * (1 - alpha_));
    return den > 0 ? s.ab / den : 0.0;
  }

 private:
  double alpha_;
};

class JaccardSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "jaccard"; }
  Input input(bool) const override { return Input::Binary; }
  Sums sums() const override { return Sums::Count; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = x.count + y.count - s.n;
    return den > 0 ? s.n / den : 0.0;
  }
};

// sum_C a b / sqrt(sum_C a^2 sum_C b^2) over the co-raters C, on entries centred beforehand
// (adjusted cosine: by the other dimension's mean; pearson_baseline: by the baseline).
class CoNormSimilarity final : public KNNSimilarity {
 public:
  CoNormSimilarity(const char* name, Input input) : name_(name), input_(input) {}
  const char* name() const override { return name_; }
  Input input(bool) const override { return input_; }
  Sums sums() const override { return Sums::CoNorms; }
  double value(const KNNCoSums& s, const KNNEntity&, const KNNEntity&) const override {
    const double den = s.aa * s.bb;
    return den > 0 ? clamp1(s.ab / std::sqrt(den)) : 0.0;
  }

 private:
  const char* name_;
  Input input_;
};

class PearsonSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "pearson"; }
  Input input(bool) const override { return Input::Rating; }
  Sums sums() const override { return Sums::Pearson; }
  double value(const KNNCoSums& s, const KNNEntity&, const KNNEntity&) const override {
    const double num = s.n * s.ab - s.a * s.b;
    const double den = (s.n * s.aa - s.a * s.a) * (s.n * s.bb - s.b * s.b);
    return den > 0 ? clamp1(num / std::sqrt(den)) : 0.0;
  }
};

}  // namespace

const std::vector<std::string>& knn_similarity_names() {
  static const std::vector<std::string> names = {"cosine", "adjusted_cosine", "pearson", "pearson_baseline", "jaccard",
                                                 "asymmetric_cosine"};
  return names;
}

std::shared_ptr<const KNNSimilarity> make_knn_similarity(const std::string& name, double asymmetric_alpha) {
  using Input = KNNSimilarity::Input;
  if (name == "cosine") return std::make_shared<CosineSimilarity>();
  if (name == "asymmetric_cosine") return std::make_shared<AsymmetricCosineSimilarity>(asymmetric_alpha);
  if (name == "adjusted_cosine") return std::make_shared<CoNormSimilarity>("adjusted_cosine", Input::CentredByOther);
  if (name == "pearson") return std::make_shared<PearsonSimilarity>();
  if (name == "pearson_baseline") return std::make_shared<CoNormSimilarity>("pearson_baseline", Input::BaselineResidual);
  if (name == "jaccard") return std::make_shared<JaccardSimilarity>();
  std::string known;
  for (const auto& n : knn_similarity_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "model.similarity: unknown similarity '", name, "' (known: ", known, ")");
}

namespace knn_detail {

namespace {

// Runs body(row) for every row in [0, n) on all threads, handing out rows in small blocks from
// a shared counter: rows cost very different amounts (popular items), so static chunks would
// leave threads idle. body gets a per-thread scratch object made by make_scratch().
// Rows [lo, n) of them (lo > 0: a distributed fit's share).
template <class MakeScratch, class Body>
void parallel_rows(int64_t lo, int64_t n, MakeScratch make_scratch, Body body) {
  std::atomic<int64_t> next{lo};
  constexpr int64_t kBlock = 8;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (n - lo + kBlock - 1) / kBlock));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      auto scratch = make_scratch();
      for (int64_t start; (start = next.fetch_add(kBlock)) < n;)
        for (int64_t r = start; r < std::min(n, start + kBlock); ++r) body(r, scratch);
    }
  });
}

// Per-thread accumulators of the co-rater sums, indexed by the other entity.
struct Accumulators {
  std::vector<int32_t> cnt;
  std::vector<double> ab, aa, bb, a, b;
  std::vector<std::pair<float, int64_t>> cand;
  bool unit = false;  // all values are 1: dot products are counts (no ab)
  Accumulators(int64_t n, KNNSimilarity::Sums sums, bool unit_values) : cnt(static_cast<size_t>(n), 0), unit(unit_values) {
    using S = KNNSimilarity::Sums;
    const size_t m = static_cast<size_t>(n);
    if (sums != S::Count && !unit) ab.assign(m, 0.0);
    if (sums == S::CoNorms || sums == S::Pearson) {
      aa.assign(m, 0.0);
      bb.assign(m, 0.0);
    }
    if (sums == S::Pearson) {
      a.assign(m, 0.0);
      b.assign(m, 0.0);
    }
  }
};

// Row x of the similarity, by Gustavson's row-by-row sparse product: for every y of x's list and
// every x2 of y's list, add to x2's sums. Work = sum over x's co-raters' list lengths (ML-1M:
// sum of squared user lengths, ~10^8 updates in total), with dense per-thread accumulators that
// stay in cache. emit(x2, s) gets every x2 != x with a nonzero shrunk similarity, in order.
// kUnit: every value is 1 (binary input), so a dot product is the co-rater count: only the
// counts are accumulated (the ItemKNN cosine fit on the NCF ML-1M split, K 50, one thread: 0.62
// -> 0.39 s).
template <KNNSimilarity::Sums kSums, bool kUnit = false, class Emit>
void similarity_row(int64_t x, const Lists& X, const Lists& Y, const std::vector<KNNEntity>& ent,
                    const KNNSimilarity& policy, double shrinkage, Accumulators& acc, Emit emit) {
  using S = KNNSimilarity::Sums;
  int32_t* cnt = acc.cnt.data();
  double *ab = acc.ab.data(), *aa = acc.aa.data(), *bb = acc.bb.data(), *sa = acc.a.data(), *sb = acc.b.data();
  for (int64_t q = X.ptr[x]; q < X.ptr[x + 1]; ++q) {
    const int64_t y = X.id[q];
    const double va = X.val[q];
    const int64_t* ids = Y.id.data();
    const double* vals = Y.val.data();
    for (int64_t t = Y.ptr[y]; t < Y.ptr[y + 1]; ++t) {
      const int64_t x2 = ids[t];
      const double vb = vals[t];
      ++cnt[x2];
      if constexpr (kSums != S::Count && !kUnit) ab[x2] += va * vb;
      if constexpr (kSums == S::CoNorms || kSums == S::Pearson) {
        aa[x2] += va * va;
        bb[x2] += vb * vb;
      }
      if constexpr (kSums == S::Pearson) {
        sa[x2] += va;
        sb[x2] += vb;
      }
    }
  }
  const int64_t n = static_cast<int64_t>(acc.cnt.size());
  for (int64_t x2 = 0; x2 < n; ++x2) {
    if (!cnt[x2]) continue;
    // Read and reset (the accumulators serve the thread's next row).
    KNNCoSums s;
    s.n = cnt[x2];
    cnt[x2] = 0;
    if constexpr (kUnit) s.ab = s.n;
    else if constexpr (kSums != S::Count) std::swap(s.ab, ab[x2]);
    if constexpr (kSums == S::CoNorms || kSums == S::Pearson) {
      std::swap(s.aa, aa[x2]);
      std::swap(s.bb, bb[x2]);
    }
    if constexpr (kSums == S::Pearson) {
      std::swap(s.a, sa[x2]);
      std::swap(s.b, sb[x2]);
    }
    if (x2 == x) continue;
    const double v = policy.value(s, ent[x], ent[x2]) * (s.n / (s.n + shrinkage));
    if (v != 0.0) emit(x2, v);
  }
}

template <class Emit>
void similarity_row_any(int64_t x, const Lists& X, const Lists& Y, const std::vector<KNNEntity>& ent,
                        const KNNSimilarity& policy, double shrinkage, Accumulators& acc, Emit emit) {
  using S = KNNSimilarity::Sums;
  switch (policy.sums()) {
    case S::Count: return similarity_row<S::Count>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::Dot:
      if (acc.unit) return similarity_row<S::Dot, true>(x, X, Y, ent, policy, shrinkage, acc, emit);
      return similarity_row<S::Dot>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::CoNorms: return similarity_row<S::CoNorms>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::Pearson: return similarity_row<S::Pearson>(x, X, Y, ent, policy, shrinkage, acc, emit);
  }
}

}  // namespace

// Whether every value of X and Y is 1 (binary input).
bool unit_values(const SimilarityInput& in) {
  const auto ones = [](const std::vector<double>& v) { return std::all_of(v.begin(), v.end(), [](double x) { return x == 1.0; }); };
  return ones(in.X.val) && ones(in.Y.val);
}

void dense_similarity(const SimilarityInput& in, int64_t n, float* out, int64_t lo, int64_t hi) {
  const auto sums = in.policy.sums();
  const bool unit = unit_values(in);
  parallel_rows(lo, hi < 0 ? n : hi, [&] { return Accumulators(n, sums, unit); }, [&](int64_t x, Accumulators& acc) {
    float* row = out + x * n;
    similarity_row_any(x, in.X, in.Y, in.ent, in.policy, in.shrinkage, acc,
                       [&](int64_t x2, double v) { row[x2] = static_cast<float>(v); });
  });
}

namespace {
// Row x's k-list into ip / vp (see top_k_neighbours).
void top_k_row(const SimilarityInput& in, int64_t k, int64_t* ip, float* vp, int64_t x, Accumulators& acc) {
  auto& cand = acc.cand;
  cand.clear();
  similarity_row_any(x, in.X, in.Y, in.ent, in.policy, in.shrinkage, acc, [&](int64_t x2, double v) {
    const float f = static_cast<float>(v);
    if (f != 0.0f) cand.emplace_back(f, x2);
  });
  const auto cmp = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) { return better(a, b); };
  const int64_t m = std::min<int64_t>(k, static_cast<int64_t>(cand.size()));
  std::partial_sort(cand.begin(), cand.begin() + m, cand.end(), cmp);
  for (int64_t t = 0; t < k; ++t) {
    ip[x * k + t] = t < m ? cand[t].second : x;
    vp[x * k + t] = t < m ? cand[t].first : 0.0f;
  }
}
}  // namespace

void top_k_neighbours(const SimilarityInput& in, int64_t n, int64_t k, int64_t* ip, float* vp, int64_t lo, int64_t hi) {
  const auto sums = in.policy.sums();
  const bool unit = unit_values(in);
  parallel_rows(lo, hi < 0 ? n : hi, [&] { return Accumulators(n, sums, unit); },
                [&](int64_t x, Accumulators& acc) { top_k_row(in, k, ip, vp, x, acc); });
}

void top_k_neighbours_rows(const SimilarityInput& in, int64_t n, int64_t k, int64_t* ip, float* vp,
                           const std::vector<int64_t>& rows) {
  const auto sums = in.policy.sums();
  const bool unit = unit_values(in);
  parallel_rows(0, static_cast<int64_t>(rows.size()), [&] { return Accumulators(n, sums, unit); },
                [&](int64_t t, Accumulators& acc) { top_k_row(in, k, ip, vp, rows[static_cast<size_t>(t)], acc); });
}

TransposedLists transpose_neighbours(const int64_t* ip, const float* vp, int64_t n, int64_t k) {
  // Entry (y, t) -> owner ip[y k + t]; y ascending within an owner.
  TransposedLists T;
  T.ptr.assign(static_cast<size_t>(n) + 1, 0);
  for (int64_t e = 0; e < n * k; ++e) ++T.ptr[ip[e] + 1];
  for (int64_t x = 0; x < n; ++x) T.ptr[x + 1] += T.ptr[x];
  T.list.resize(static_cast<size_t>(n * k));
  T.weight.resize(static_cast<size_t>(n * k));
  std::vector<int64_t> next(T.ptr.begin(), T.ptr.end() - 1);
  for (int64_t e = 0; e < n * k; ++e) {
    const int64_t slot = next[ip[e]]++;
    T.list[slot] = e / k;
    T.weight[slot] = vp[e];
  }
  return T;
}

at::Tensor long_tensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kLong).clone();
}

at::Tensor on_cpu(const at::Tensor& t) { return t.device().is_cpu() ? t.contiguous() : t.to(torch::kCPU).contiguous(); }

}  // namespace knn_detail
}  // namespace rzoo
