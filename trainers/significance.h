// Paired significance testing of per-user metric vectors: is model A's per-user NDCG (say) better
// than model B's on the same users, and how sure are we of each model's mean?
//
// Free of torch and fmt (Boost.Math is used inside the .cpp only) so it can be tested and reused on
// plain std::vector<double>.
//
// References:
//   B. Efron, R. J. Tibshirani (1993). An Introduction to the Bootstrap. Chapman & Hall.
//     (percentile bootstrap confidence interval, ch. 13)
//   F. Wilcoxon (1945). Individual comparisons by ranking methods. Biometrics Bulletin 1(6), 80-83.
//   S. Holm (1979). A simple sequentially rejective multiple test procedure.
//     Scandinavian Journal of Statistics 6(2), 65-70.
// Student's t and normal tail probabilities and the incomplete beta function come from Boost.Math
// (header-only; boost::math::students_t, boost::math::normal, boost::math::ibeta).
//
// Missing values: a NaN inside x is dropped; for the paired tests a pair (a[i], b[i]) is dropped when
// a[i] - b[i] is NaN, i.e. when either value is NaN (or both are the same infinity). Users without a
// metric can therefore be passed as NaN instead of being filtered out by the caller. All sizes below
// (n) count what is left after dropping.
//
// Statistical edge cases (too few values, all differences zero, ...) never throw: they return NaN,
// 0 or 1 as documented per function. The only exception is a length mismatch of a and b, which is a
// programming error (std::invalid_argument naming both lengths).
#pragma once

#include <cstdint>
#include <vector>

namespace rzoo {

struct MeanCI {
  double mean = 0, low = 0, high = 0;
};

// Percentile bootstrap confidence interval of the mean of x: `resamples` resamples of size n drawn
// with replacement by a seeded xoshiro256** generator (deterministic for a given seed; no allocation
// per draw). low/high are the (1-level)/2 and (1+level)/2 quantiles of the resample means, linearly
// interpolated (numpy.percentile's default). `mean` is the mean of x itself.
// n == 0 -> all NaN; n == 1 -> mean = low = high = x[0].
// level outside (0, 1) or resamples < 1 -> mean as usual, low = high = NaN.
MeanCI bootstrap_mean_ci(const std::vector<double>& x, double level = 0.95, int64_t resamples = 1000,
                         uint64_t seed = 0);

// Two-sided p-value of the paired t-test on d = a - b (a, b the same length, else throw
// std::invalid_argument naming both lengths). n < 2 -> NaN. All differences equal to zero -> 1.
// Constant nonzero differences -> 0 (zero variance: the test is infinitely sure).
// Matches scipy.stats.ttest_rel(a, b).pvalue otherwise. mean_difference (if given) gets the mean
// of d (NaN when no pair is left): the direction of a significant result.
double paired_t_test(const std::vector<double>& a, const std::vector<double>& b, double* mean_difference = nullptr);

// Two-sided p-value of the Wilcoxon signed-rank test on d = a - b (same length requirement as
// paired_t_test): zero differences dropped (Wilcoxon's method, scipy's default zero_method='wilcox'),
// average ranks for tied |d| (exact equality).
// If the remaining n <= 25 and there are no ties: exact null distribution
//   (as scipy.stats.wilcoxon(a, b, method='exact')).
// Otherwise the normal approximation with the tie correction of the variance and a continuity
// correction of 0.5 (as scipy.stats.wilcoxon(a, b, correction=True, method='approx'), called
// method='asymptotic' in scipy >= 1.13). n == 0 after dropping zeros -> 1. rank_sum_difference
// (if given) gets T+ - T-, the ranks of the positive differences minus those of the negative ones:
// the direction of a significant result, which can differ from the mean difference's (many small
// gains against a few large losses).
double wilcoxon_signed_rank(const std::vector<double>& a, const std::vector<double>& b,
                            double* rank_sum_difference = nullptr);

// Holm-Bonferroni adjusted p-values, returned in input order; monotone (step-down, cumulative max
// over the ascending order), capped at 1; NaN inputs stay NaN and do not count towards m.
std::vector<double> holm_adjust(const std::vector<double>& p);

// Two-sided tail probability P(|T| >= |t|) of Student's t distribution with `dof` degrees of freedom
// (dof may be fractional): twice Boost.Math's upper tail, cdf(complement(students_t(dof), |t|)).
// NaN t or dof <= 0 -> NaN; t = +-inf -> 0.
double student_t_two_sided_p(double t, double dof);

// Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1 (NaN otherwise),
// exposed for testing: boost::math::ibeta(a, b, x).
double regularized_incomplete_beta(double x, double a, double b);

}  // namespace rzoo
