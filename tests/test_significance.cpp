// trainers/significance.h: paired t-test, Wilcoxon signed-rank test, Holm adjustment and the
// bootstrap CI of a mean. p-values are checked against scipy 1.17.1 (numpy 2.4.6); each reference
// number names the call that produced it, on the vectors written next to it.
#include <catch2/catch.hpp>

#include "trainers/significance.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

using rzoo::bootstrap_mean_ci;
using rzoo::holm_adjust;
using rzoo::MeanCI;
using rzoo::paired_t_test;
using rzoo::regularized_incomplete_beta;
using rzoo::student_t_two_sided_p;
using rzoo::wilcoxon_signed_rank;
using Catch::Matchers::Contains;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kRel = 1e-6;  // p-values vs scipy

// Deterministic N(mu, sigma) sample (splitmix64 + Box-Muller), independent of the library's
// generator and of std:: distributions, whose output differs between standard libraries.
std::vector<double> normal_sample(size_t n, double mu, double sigma, uint64_t seed) {
  auto next = [&seed] {
    uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;  // [0, 1)
  };
  const double pi = std::acos(-1.0);
  std::vector<double> x;
  while (x.size() < n) {
    const double u1 = 1.0 - next(), u2 = next();  // u1 in (0, 1]
    const double r = std::sqrt(-2 * std::log(u1));
    x.push_back(mu + sigma * r * std::cos(2 * pi * u2));
    if (x.size() < n) x.push_back(mu + sigma * r * std::sin(2 * pi * u2));
  }
  return x;
}

double mean_of(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double sd_of(const std::vector<double>& x) {  // population sd: what the bootstrap resamples from
  const double m = mean_of(x);
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(x.size()));
}

// Shared paired example (n = 10, t = 2.968).
const std::vector<double> kA = {0.31, 0.45, 0.12, 0.58, 0.27, 0.40, 0.36, 0.50, 0.22, 0.44};
const std::vector<double> kB = {0.28, 0.41, 0.15, 0.49, 0.25, 0.33, 0.37, 0.42, 0.20, 0.39};

// n = 30, a strong effect: p ~ 5e-16 tests the far tail of the t distribution. One tie in |d|.
const std::vector<double> kA30 = {0.5,   0.53,  0.473, 0.411, 0.455, 0.401, 0.506, 0.634, 0.451, 0.438,
                                  0.549, 0.536, 0.511, 0.407, 0.497, 0.57,  0.366, 0.454, 0.31,  0.371,
                                  0.316, 0.476, 0.373, 0.527, 0.516, 0.481, 0.248, 0.446, 0.495, 0.511};
const std::vector<double> kB30 = {0.466, 0.464, 0.422, 0.355, 0.343, 0.345, 0.427, 0.527, 0.389, 0.361,
                                  0.466, 0.454, 0.468, 0.325, 0.376, 0.536, 0.26,  0.37,  0.249, 0.231,
                                  0.213, 0.432, 0.291, 0.43,  0.442, 0.381, 0.17,  0.346, 0.372, 0.451};

// n = 60, values in [0, 1] with 4 decimals, small negative shift; one tie in |d|, no zeros.
const std::vector<double> kA60 = {
    0.1286, 0.4993, 0.6015, 0.0287, 0.1479, 0.9282, 0.0704, 0.1298, 0.9483, 0.6219, 0.369,  0.5114,
    0.6628, 0.2753, 0.138,  0.788,  0.6704, 0.5124, 0.8167, 0.5491, 0.9809, 0.2045, 0.5537, 0.4836,
    0.3533, 0.5916, 0.2353, 0.8022, 0.8673, 0.1288, 0.4671, 0.2771, 0.0831, 0.8959, 0.4299, 0.1477,
    0.6734, 0.2022, 0.9014, 0.2171, 0.0331, 0.2008, 0.3457, 0.4689, 0.9061, 0.6974, 0.3393, 0.0169,
    0.1598, 0.9964, 0.4597, 0.691,  0.0547, 0.0341, 0.8459, 0.5879, 0.3087, 0.3174, 0.0892, 0.1727};
const std::vector<double> kB60 = {
    0.0736, 0.5475, 0.5276, 0.0,    0.1522, 0.8106, 0.1003, 0.0893, 0.9675, 0.5397, 0.4476, 0.5419,
    0.615,  0.3085, 0.234,  0.9371, 0.483,  0.5707, 0.8332, 0.5097, 0.8502, 0.3002, 0.3975, 0.5103,
    0.4535, 0.4016, 0.175,  0.6413, 0.8617, 0.2502, 0.6395, 0.0693, 0.0,    0.9363, 0.5578, 0.1598,
    0.5688, 0.2019, 0.8697, 0.1667, 0.0,    0.2095, 0.3465, 0.4296, 0.8539, 0.5389, 0.2607, 0.1075,
    0.1107, 0.8224, 0.5631, 0.714,  0.2355, 0.0104, 0.7698, 0.4131, 0.4111, 0.5444, 0.0,    0.078};

}  // namespace

// ---- Student t / incomplete beta -----------------------------------------------------------------

TEST_CASE("student_t_two_sided_p matches scipy", "[stats]") {
  // 2 * scipy.stats.t.sf(abs(t), dof)
  CHECK(student_t_two_sided_p(2.0, 5) == Approx(0.10193947882985835).epsilon(kRel));
  CHECK(student_t_two_sided_p(0.3, 12.5) == Approx(0.7691077439685347).epsilon(kRel));
  CHECK(student_t_two_sided_p(50.0, 3) == Approx(1.761715204127197e-05).epsilon(kRel));
  CHECK(student_t_two_sided_p(-4.2, 100) == Approx(5.802735483958658e-05).epsilon(kRel));
  CHECK(student_t_two_sided_p(1e-4, 7) == Approx(0.9999230017099803).epsilon(kRel));
  CHECK(student_t_two_sided_p(3.0, 138000) == Approx(0.0027002778087779674).epsilon(kRel));
  // dof = 1 is the Cauchy distribution: P(|T| >= t) = 1 - 2 atan(t) / pi.
  const double pi = std::acos(-1.0);
  CHECK(student_t_two_sided_p(1.7, 1) == Approx(1 - 2 * std::atan(1.7) / pi).epsilon(1e-12));
  CHECK(student_t_two_sided_p(0, 4) == 1.0);
  CHECK(student_t_two_sided_p(INFINITY, 4) == 0.0);
  CHECK(std::isnan(student_t_two_sided_p(kNaN, 4)));
  CHECK(std::isnan(student_t_two_sided_p(1.0, 0)));
}

TEST_CASE("regularized_incomplete_beta matches scipy", "[stats]") {
  // scipy.special.betainc(a, b, x)
  CHECK(regularized_incomplete_beta(0.3, 2.0, 3.0) == Approx(0.34829999999999994).epsilon(kRel));
  CHECK(regularized_incomplete_beta(0.9, 0.5, 7.5) == Approx(0.9999999932897103).epsilon(kRel));
  CHECK(regularized_incomplete_beta(0.01, 50.0, 0.5) == Approx(7.998227417904836e-102).epsilon(kRel));
  CHECK(regularized_incomplete_beta(0.7, 200.0, 150.0) == Approx(0.9999998043866899).epsilon(kRel));
  CHECK(regularized_incomplete_beta(0.0, 2.0, 3.0) == 0.0);
  CHECK(regularized_incomplete_beta(1.0, 2.0, 3.0) == 1.0);
  CHECK(std::isnan(regularized_incomplete_beta(1.5, 2.0, 3.0)));
  CHECK(std::isnan(regularized_incomplete_beta(0.5, -1.0, 3.0)));
}

// ---- Paired t-test -------------------------------------------------------------------------------

TEST_CASE("paired_t_test matches scipy.stats.ttest_rel", "[stats]") {
  // scipy.stats.ttest_rel(kA, kB).pvalue (t = 2.9681084336182892)
  CHECK(paired_t_test(kA, kB) == Approx(0.015750728030810426).epsilon(kRel));
  CHECK(paired_t_test(kB, kA) == Approx(0.015750728030810426).epsilon(kRel));  // two-sided
  // scipy.stats.ttest_rel(kA30, kB30).pvalue (t = 16.09710218095771): far tail keeps its precision
  CHECK(paired_t_test(kA30, kB30) == Approx(5.36423919181418e-16).epsilon(kRel));
  // scipy.stats.ttest_rel(kA60, kB60).pvalue
  CHECK(paired_t_test(kA60, kB60) == Approx(0.2520923763392756).epsilon(kRel));
}

TEST_CASE("paired_t_test edge cases", "[stats]") {
  SECTION("all differences zero -> 1 (scipy gives NaN)") {
    CHECK(paired_t_test(kA, kA) == 1.0);
  }
  SECTION("constant nonzero differences -> 0") {
    CHECK(paired_t_test({1, 2, 3}, {0, 1, 2}) == 0.0);
  }
  SECTION("fewer than two pairs -> NaN") {
    CHECK(std::isnan(paired_t_test({}, {})));
    CHECK(std::isnan(paired_t_test({1.0}, {0.5})));
    CHECK(std::isnan(paired_t_test({1.0, kNaN}, {0.5, 0.2})));
  }
  SECTION("pairs with a NaN are dropped") {
    std::vector<double> a = kA, b = kB;
    a.insert(a.begin() + 3, kNaN);
    b.insert(b.begin() + 3, 0.7);
    a.push_back(0.9);
    b.push_back(kNaN);
    CHECK(paired_t_test(a, b) == Approx(0.015750728030810426).epsilon(kRel));
  }
  SECTION("length mismatch throws, naming both lengths") {
    CHECK_THROWS_AS(paired_t_test({1, 2, 3}, {1, 2, 3, 4}), std::invalid_argument);
    CHECK_THROWS_WITH(paired_t_test({1, 2, 3}, {1, 2, 3, 4}), Contains("3") && Contains("4"));
    CHECK_THROWS_AS(wilcoxon_signed_rank({1, 2}, {1}), std::invalid_argument);
  }
}

// ---- Wilcoxon signed-rank ------------------------------------------------------------------------

TEST_CASE("wilcoxon_signed_rank exact null distribution for small n without ties", "[stats]") {
  // n = 12, no zeros, 12 distinct |d|.
  const std::vector<double> a = {0.52, 0.61, 0.47, 0.70, 0.33, 0.58, 0.49, 0.66, 0.41, 0.55, 0.62, 0.38};
  const std::vector<double> b = {0.45, 0.63, 0.405, 0.585, 0.36, 0.46, 0.50, 0.57, 0.30, 0.591, 0.48, 0.355};
  // scipy.stats.wilcoxon(a, b, method='exact').pvalue (statistic 12) = 70 / 2048
  CHECK(wilcoxon_signed_rank(a, b) == Approx(0.0341796875).epsilon(kRel));
  CHECK(wilcoxon_signed_rank(b, a) == Approx(0.0341796875).epsilon(kRel));

  // n = 20, statistic near the middle.
  const std::vector<double> x = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
                                 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0};
  const std::vector<double> y = {0.099, 0.214, 0.273, 0.36,  0.553, 0.534, 0.779, 0.892, 0.795, 0.882,
                                 1.231, 1.056, 1.457, 1.23,  1.317, 1.796, 1.491, 1.578, 2.135, 1.752};
  // scipy.stats.wilcoxon(x, y, method='exact').pvalue (statistic 81)
  CHECK(wilcoxon_signed_rank(x, y) == Approx(0.38837623596191406).epsilon(kRel));

  // All three differences positive: the most extreme of 2^3 sign patterns, two-sided 2/8.
  // scipy.stats.wilcoxon([1, 2, 3], [0.5, 1, 1.5], method='exact').pvalue
  CHECK(wilcoxon_signed_rank({1, 2, 3}, {0.5, 1, 1.5}) == Approx(0.25).epsilon(kRel));
}

TEST_CASE("wilcoxon_signed_rank normal approximation with ties and zeros", "[stats]") {
  // d = {1, 0, -1, 2, 0, 2, 2, 2, 2, 0, 1, 0, 3, 2, 1}: 4 zeros dropped, ties in |d| -> approx.
  const std::vector<double> a = {3, 5, 2, 7, 4, 6, 5, 8, 3, 4, 6, 2, 7, 5, 4};
  const std::vector<double> b = {2, 5, 3, 5, 4, 4, 3, 6, 1, 4, 5, 2, 4, 3, 3};
  // scipy.stats.wilcoxon(a, b, zero_method='wilcox', correction=True, method='asymptotic').pvalue
  // ('asymptotic' is scipy >= 1.13's name for method='approx'; statistic 2.5)
  CHECK(wilcoxon_signed_rank(a, b) == Approx(0.006358788722505615).epsilon(kRel));
  CHECK(wilcoxon_signed_rank(b, a) == Approx(0.006358788722505615).epsilon(kRel));

  SECTION("no nonzero differences left -> 1") {
    CHECK(wilcoxon_signed_rank(a, a) == 1.0);
    CHECK(wilcoxon_signed_rank({}, {}) == 1.0);
    CHECK(wilcoxon_signed_rank({1.0, kNaN}, {1.0, 2.0}) == 1.0);
  }
}

TEST_CASE("wilcoxon_signed_rank normal approximation for n > 25", "[stats]") {
  // n = 30 (one tie in |d|). scipy's method='auto' would be exact up to n = 50; rzoo switches
  // at 25, so the reference uses the approximation explicitly:
  // scipy.stats.wilcoxon(kA30, kB30, correction=True, method='asymptotic').pvalue
  CHECK(wilcoxon_signed_rank(kA30, kB30) == Approx(1.8242279994594784e-06).epsilon(kRel));
  // n = 60: scipy.stats.wilcoxon(kA60, kB60, correction=True, method='asymptotic').pvalue
  // (statistic 751.5)
  CHECK(wilcoxon_signed_rank(kA60, kB60) == Approx(0.23016056428595566).epsilon(kRel));
  CHECK(wilcoxon_signed_rank(kB60, kA60) == Approx(0.23016056428595566).epsilon(kRel));

  SECTION("pairs with a NaN are dropped") {
    std::vector<double> a = kA60, b = kB60;
    a[10] = kNaN;
    a.push_back(0.5);
    b.push_back(kNaN);
    std::vector<double> a59 = kA60, b59 = kB60;
    a59.erase(a59.begin() + 10);
    b59.erase(b59.begin() + 10);
    CHECK(wilcoxon_signed_rank(a, b) == wilcoxon_signed_rank(a59, b59));
  }
}

// ---- Holm ----------------------------------------------------------------------------------------

TEST_CASE("holm_adjust on a hand-worked example", "[stats]") {
  // m = 4, ascending: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> 0.06
  // (cumulative max), back in input order.
  const std::vector<double> adjusted = holm_adjust({0.01, 0.04, 0.03, 0.005});
  REQUIRE(adjusted.size() == 4);
  CHECK(adjusted[0] == Approx(0.03));
  CHECK(adjusted[1] == Approx(0.06));
  CHECK(adjusted[2] == Approx(0.06));
  CHECK(adjusted[3] == Approx(0.02));

  SECTION("NaN stays NaN and does not count towards m") {
    const std::vector<double> with_nan = holm_adjust({0.01, kNaN, 0.04, 0.03, 0.005, kNaN});
    REQUIRE(with_nan.size() == 6);
    CHECK(with_nan[0] == Approx(0.03));
    CHECK(std::isnan(with_nan[1]));
    CHECK(with_nan[2] == Approx(0.06));
    CHECK(with_nan[3] == Approx(0.06));
    CHECK(with_nan[4] == Approx(0.02));
    CHECK(std::isnan(with_nan[5]));
  }
  SECTION("capped at 1") {
    // 0.3 * 3 = 0.9; 0.5 * 2 = 1.0; 0.6 * 1 = 0.6 -> 1.0
    const std::vector<double> capped = holm_adjust({0.6, 0.3, 0.5});
    CHECK(capped[0] == Approx(1.0));
    CHECK(capped[1] == Approx(0.9));
    CHECK(capped[2] == Approx(1.0));
    CHECK(holm_adjust({0.7, 0.8})[0] == 1.0);
  }
  SECTION("trivial inputs") {
    CHECK(holm_adjust({}).empty());
    CHECK(holm_adjust({0.2})[0] == Approx(0.2));
    CHECK(std::isnan(holm_adjust({kNaN})[0]));
  }
}

// ---- Bootstrap -----------------------------------------------------------------------------------

TEST_CASE("bootstrap_mean_ci is deterministic for a seed and contains the mean", "[stats]") {
  const std::vector<double> x = normal_sample(500, 0.3, 0.1, 1);
  const MeanCI a = bootstrap_mean_ci(x, 0.95, 1000, 42);
  const MeanCI b = bootstrap_mean_ci(x, 0.95, 1000, 42);
  CHECK(a.mean == b.mean);
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  const MeanCI c = bootstrap_mean_ci(x, 0.95, 1000, 43);
  CHECK((c.low != a.low || c.high != a.high));

  CHECK(a.mean == Approx(mean_of(x)).epsilon(1e-12));
  CHECK(a.low < a.mean);
  CHECK(a.mean < a.high);
  // A wider level gives a wider interval from the same resamples.
  const MeanCI wide = bootstrap_mean_ci(x, 0.99, 1000, 42);
  CHECK(wide.low <= a.low);
  CHECK(wide.high >= a.high);
}

TEST_CASE("bootstrap_mean_ci width shrinks as 1/sqrt(n)", "[stats]") {
  const MeanCI small = bootstrap_mean_ci(normal_sample(100, 1.0, 2.0, 7), 0.95, 2000, 3);
  const MeanCI large = bootstrap_mean_ci(normal_sample(10000, 1.0, 2.0, 8), 0.95, 2000, 3);
  const double ratio = (small.high - small.low) / (large.high - large.low);
  // sqrt(10000 / 100) = 10; the n = 100 sample's sd and the resampling noise move it by a few %.
  CHECK(ratio > 8.5);
  CHECK(ratio < 11.5);
}

TEST_CASE("bootstrap_mean_ci agrees with the normal-theory interval", "[stats]") {
  const std::vector<double> x = normal_sample(1000, 5.0, 1.5, 123);
  const double m = mean_of(x);
  const double half = 1.96 * sd_of(x) / std::sqrt(1000.0);
  // 10,000 resamples: the Monte Carlo error of a 2.5% quantile is then ~1.5% of the half-width.
  const MeanCI ci = bootstrap_mean_ci(x, 0.95, 10000, 5);
  CHECK(ci.mean == Approx(m).epsilon(1e-12));
  CHECK(std::fabs(ci.low - (m - half)) < 0.1 * half);
  CHECK(std::fabs(ci.high - (m + half)) < 0.1 * half);
}

TEST_CASE("bootstrap_mean_ci edge cases", "[stats]") {
  const MeanCI empty = bootstrap_mean_ci({});
  CHECK(std::isnan(empty.mean));
  CHECK(std::isnan(empty.low));
  CHECK(std::isnan(empty.high));
  const MeanCI all_nan = bootstrap_mean_ci({kNaN, kNaN});
  CHECK(std::isnan(all_nan.mean));

  const MeanCI one = bootstrap_mean_ci({0.25, kNaN});
  CHECK(one.mean == 0.25);
  CHECK(one.low == 0.25);
  CHECK(one.high == 0.25);

  const MeanCI constant = bootstrap_mean_ci({2.0, 2.0, 2.0, 2.0});
  CHECK(constant.low == Approx(2.0));
  CHECK(constant.high == Approx(2.0));

  // NaNs are dropped before resampling: same interval as without them.
  std::vector<double> x = normal_sample(200, 0.0, 1.0, 9);
  const MeanCI clean = bootstrap_mean_ci(x, 0.9, 500, 11);
  x.insert(x.begin() + 50, kNaN);
  x.push_back(kNaN);
  const MeanCI dirty = bootstrap_mean_ci(x, 0.9, 500, 11);
  CHECK(dirty.mean == clean.mean);
  CHECK(dirty.low == clean.low);
  CHECK(dirty.high == clean.high);

  const MeanCI bad_level = bootstrap_mean_ci({1.0, 2.0, 3.0}, 1.5);
  CHECK(bad_level.mean == Approx(2.0));
  CHECK(std::isnan(bad_level.low));
  CHECK(std::isnan(bad_level.high));
}
