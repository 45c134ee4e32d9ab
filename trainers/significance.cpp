// Paired significance tests and the bootstrap CI of a mean, for per-user metric vectors.
// See significance.h for the API and the references (Efron & Tibshirani 1993; Wilcoxon 1945;
// Holm 1979). The t and normal distributions and the incomplete beta function are Boost.Math's.
#include "trainers/significance.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <boost/math/special_functions/beta.hpp>

namespace rzoo {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- Random numbers for the bootstrap ---------------------------------------------------------

// splitmix64 only expands the user's seed into xoshiro's 256-bit state: consecutive seeds (0, 1,
// 2, ...) then still give unrelated streams, and the state is never all zero.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna 2018): a handful of shifts and xors per 64 bits, good statistical
// quality, and the same sequence on every platform (unlike std:: distributions).
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(uint64_t seed) {
    for (auto& word : s_) word = splitmix64(seed);
  }
  uint64_t operator()() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Uniform index in [0, n) for n < 2^32 by Lemire's multiply-shift (Lemire 2019, "Fast random integer
// generation in an interval"): one 32x32->64 multiply instead of a division. The rejection step
// keeps it exactly unbiased; it triggers with probability n / 2^32, so the modulo that computes its
// threshold is hoisted out of the loop by the caller.
class BoundedIndex32 {
 public:
  explicit BoundedIndex32(uint32_t n) : n_(n), threshold_(static_cast<uint32_t>(-n) % n) {}
  template <class Rng>
  uint32_t operator()(uint32_t r, Rng& rng) const {
    uint64_t m = static_cast<uint64_t>(r) * n_;
    if (static_cast<uint32_t>(m) < n_) {
      while (static_cast<uint32_t>(m) < threshold_) m = static_cast<uint64_t>(rng() >> 32) * n_;
    }
    return static_cast<uint32_t>(m >> 32);
  }

 private:
  uint32_t n_, threshold_;
};

// Sum of one resample of size n = x.size() < 2^32. Each 64-bit draw gives two indices, and two
// accumulators let the two (cache-missing) loads and adds overlap.
double resample_sum32(const std::vector<double>& x, const BoundedIndex32& index, Xoshiro256ss& rng) {
  const size_t n = x.size();
  const double* data = x.data();
  double sum0 = 0, sum1 = 0;
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const uint64_t r = rng();
    sum0 += data[index(static_cast<uint32_t>(r), rng)];
    sum1 += data[index(static_cast<uint32_t>(r >> 32), rng)];
  }
  if (i < n) sum0 += data[index(static_cast<uint32_t>(rng()), rng)];
  return sum0 + sum1;
}

// n >= 2^32 values (32 GiB of doubles): not a realistic input, so plain unbiased rejection with a
// modulo is fast enough and avoids needing 128-bit integers.
double resample_sum64(const std::vector<double>& x, Xoshiro256ss& rng) {
  const uint64_t n = x.size();
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  double sum = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t r;
    do r = rng();
    while (r >= limit);
    sum += x[r % n];
  }
  return sum;
}

// numpy.percentile's default ("linear") quantile of v at q in [0, 1]; reorders v.
double quantile_linear(std::vector<double>& v, double q) {
  const double h = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double v_lo = v[lo];
  if (lo + 1 >= v.size()) return v_lo;
  // After nth_element everything right of lo is >= v[lo]; the next order statistic is their minimum.
  const double v_hi = *std::min_element(v.begin() + lo + 1, v.end());
  return v_lo + (h - static_cast<double>(lo)) * (v_hi - v_lo);
}

// ---- Paired differences --------------------------------------------------------------------------

// d = a - b without the pairs where that is NaN (either value missing).
std::vector<double> paired_differences(const std::vector<double>& a, const std::vector<double>& b,
                                       const char* who) {
  if (a.size() != b.size())
    throw std::invalid_argument(std::string(who) + ": a has " + std::to_string(a.size()) +
                                " values but b has " + std::to_string(b.size()) +
                                "; paired tests need one value per user in each");
  std::vector<double> d;
  d.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double di = a[i] - b[i];
    if (!std::isnan(di)) d.push_back(di);
  }
  return d;
}

// Boost.Math reports a bad argument (a <= 0, x outside [0, 1], NaN) as NaN instead of throwing, and
// an overflow as infinity: the callers' edge cases are all "no answer", never an exception.
using NanPolicy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::evaluation_error<boost::math::policies::ignore_error>>;

// ---- Wilcoxon ------------------------------------------------------------------------------------

// P(T+ <= k) under H0 for n untied ranks 1..n: each rank is positive with probability 1/2, so
// count the subsets of {1..n} with each sum (counts <= 2^25, exact in a double).
double wilcoxon_exact_cdf(int n, int k) {
  if (k < 0) return 0;
  const int max_sum = n * (n + 1) / 2;
  if (k >= max_sum) return 1;
  std::vector<double> count(max_sum + 1, 0.0);
  count[0] = 1;
  for (int r = 1; r <= n; ++r)
    for (int s = r * (r + 1) / 2; s >= r; --s) count[s] += count[s - r];
  double below = 0;
  for (int s = 0; s <= k; ++s) below += count[s];
  return below / std::ldexp(1.0, n);
}

}  // namespace

// ---- Public API ------------------------------------------------------------------------------------

double regularized_incomplete_beta(double x, double a, double b) {
  // Boost accepts a = 0 or b = 0 (as limits); the documented domain here is a, b > 0.
  if (std::isnan(x) || std::isnan(a) || std::isnan(b) || a <= 0 || b <= 0 || x < 0 || x > 1) return kNaN;
  return boost::math::ibeta(a, b, x, NanPolicy());
}

double student_t_two_sided_p(double t, double dof) {
  if (std::isnan(t) || std::isnan(dof) || dof <= 0) return kNaN;
  if (std::isinf(t)) return 0;
  // The upper tail by complement keeps full relative precision of tiny p-values (no 1 - cdf).
  const boost::math::students_t_distribution<double, NanPolicy> dist(dof);
  return std::clamp(2 * boost::math::cdf(boost::math::complement(dist, std::fabs(t))), 0.0, 1.0);
}

MeanCI bootstrap_mean_ci(const std::vector<double>& x_in, double level, int64_t resamples, uint64_t seed) {
  std::vector<double> x;
  x.reserve(x_in.size());
  for (double v : x_in)
    if (!std::isnan(v)) x.push_back(v);
  const size_t n = x.size();
  if (n == 0) return {kNaN, kNaN, kNaN};
  if (n == 1) return {x[0], x[0], x[0]};

  MeanCI ci;
  ci.mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  if (!(level > 0 && level < 1) || resamples < 1) {
    ci.low = ci.high = kNaN;
    return ci;
  }

  Xoshiro256ss rng(seed);
  std::vector<double> means(static_cast<size_t>(resamples));
  const double inv_n = 1.0 / static_cast<double>(n);
  if (n <= std::numeric_limits<uint32_t>::max()) {
    const BoundedIndex32 index(static_cast<uint32_t>(n));
    for (auto& m : means) m = resample_sum32(x, index, rng) * inv_n;
  } else {
    for (auto& m : means) m = resample_sum64(x, rng) * inv_n;
  }
  // Percentile interval (Efron & Tibshirani 1993, 13.3): the empirical quantiles of the resample means.
  const double alpha = (1 - level) / 2;
  ci.low = quantile_linear(means, alpha);
  ci.high = quantile_linear(means, 1 - alpha);
  return ci;
}

double paired_t_test(const std::vector<double>& a, const std::vector<double>& b, double* mean_difference) {
  const std::vector<double> d = paired_differences(a, b, "paired_t_test");
  const size_t n = d.size();
  if (mean_difference)
    *mean_difference = n == 0 ? kNaN : std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(n);
  if (n < 2) return kNaN;
  const auto [min_it, max_it] = std::minmax_element(d.begin(), d.end());
  // Zero variance: t is 0/0 (no difference at all: nothing against H0) or c/0 (every user moved by
  // the same nonzero amount: as strong as evidence gets). scipy returns NaN / 0 here.
  if (*min_it == *max_it) return *min_it == 0 ? 1.0 : 0.0;
  const double mean = std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(n);
  double ss = 0;  // two-pass variance: no cancellation when the mean is large relative to the spread
  for (double v : d) ss += (v - mean) * (v - mean);
  const double var = ss / static_cast<double>(n - 1);
  const double t = mean / std::sqrt(var / static_cast<double>(n));
  return student_t_two_sided_p(t, static_cast<double>(n - 1));
}

double wilcoxon_signed_rank(const std::vector<double>& a, const std::vector<double>& b, double* rank_sum_difference) {
  std::vector<double> d = paired_differences(a, b, "wilcoxon_signed_rank");
  // Wilcoxon's treatment of zeros: a user with no difference says nothing about its sign.
  d.erase(std::remove(d.begin(), d.end(), 0.0), d.end());
  const size_t n = d.size();
  if (rank_sum_difference) *rank_sum_difference = 0;
  if (n == 0) return 1;

  std::sort(d.begin(), d.end(), [](double u, double v) { return std::fabs(u) < std::fabs(v); });
  double r_plus = 0, r_minus = 0;
  double tie_term = 0;  // sum over tie groups of t^3 - t
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && std::fabs(d[j]) == std::fabs(d[i])) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // average of i+1..j
    for (size_t k = i; k < j; ++k) (d[k] > 0 ? r_plus : r_minus) += rank;
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    i = j;
  }
  const double nn = static_cast<double>(n);
  if (rank_sum_difference) *rank_sum_difference = r_plus - r_minus;

  if (n <= 25 && tie_term == 0) {
    // Exact: T+ and T- have the same symmetric null distribution, so the two-sided p-value is
    // twice the lower tail at the smaller of the two (ranks are integers without ties).
    const int t_min = static_cast<int>(std::min(r_plus, r_minus));
    return std::min(1.0, 2 * wilcoxon_exact_cdf(static_cast<int>(n), t_min));
  }

  // Normal approximation; ties reduce the variance of T+ by sum(t^3 - t) / 48.
  const double mean = nn * (nn + 1) / 4;
  const double se = std::sqrt((nn * (nn + 1) * (2 * nn + 1) - tie_term / 2) / 24);
  double z = (r_plus - mean) / se;
  // Continuity correction towards zero: T+ is discrete (steps of 1/2 or 1), the normal is not.
  z -= (z > 0 ? 0.5 : z < 0 ? -0.5 : 0.0) / se;
  const boost::math::normal_distribution<double, NanPolicy> standard_normal;
  return std::min(1.0, 2 * boost::math::cdf(boost::math::complement(standard_normal, std::fabs(z))));
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  std::vector<double> out(p.size(), kNaN);
  std::vector<size_t> order;
  order.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i)
    if (!std::isnan(p[i])) order.push_back(i);
  // Step-down: the k-th smallest of m p-values is compared against alpha / (m - k), i.e. multiplied
  // by (m - k); the running maximum keeps a hypothesis from being "more significant" than one with
  // a smaller raw p-value (Holm 1979).
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p[i] < p[j]; });
  const size_t m = order.size();
  double running = 0;
  for (size_t k = 0; k < m; ++k) {
    running = std::max(running, std::min(1.0, static_cast<double>(m - k) * p[order[k]]));
    out[order[k]] = running;
  }
  return out;
}

}  // namespace rzoo
