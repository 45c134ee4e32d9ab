// Tables of a comparison: each model's test metrics with a 95% bootstrap confidence interval
// of the mean over users, and paired significance tests against a baseline model (paired t-test
// and Wilcoxon signed-rank on the per-user values, Holm-corrected across the compared models,
// separately for each metric and test). Rendered as text, Markdown, CSV and LaTeX.
//
// Pairing is sound because every model of a comparison is evaluated on the same users with the
// same candidates (evaluator.h). A metric without per-user values (coverage, gini) gets neither
// an interval nor a test. gauc, rmse and mae are not means of their per-user values, so they get
// no interval; their tests use the per-user values (per-user AUC, RMSE, MAE).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rzoo {

class Config;
struct EvalResult;

struct CompareOptions {
  std::string baseline;   // compare entry (run name) tested against; "" = the first
  double alpha = 0.05;    // significance level after Holm's correction
  double ci_level = 0.95;
  int64_t bootstrap = 1000;
  uint64_t seed = 2020;
  static CompareOptions from_config(const Config& cfg);
};

struct MetricStat {
  std::string model, metric;
  double value = 0;                                  // the reported aggregate
  double low = 0, high = 0;                          // CI (NaN when none)
  double p_t = 0, p_t_holm = 0, p_w = 0, p_w_holm = 0;  // NaN for the baseline and untested metrics
  bool sig_t = false, sig_w = false;
  // Direction against the baseline: +1 above, -1 below, 0 none or untested; the t-test's from the
  // mean difference, the Wilcoxon test's from its rank sums (T+ - T-), which may disagree.
  int dir_t = 0, dir_w = 0;
  int64_t n_users = 0;
};

struct CompareReport {
  std::string baseline, protocol, dataset;
  CompareOptions opts;
  std::vector<std::string> models, metrics;
  std::vector<MetricStat> stats;  // models x metrics
  std::vector<int64_t> best_epoch;
  std::vector<double> train_seconds;
  const MetricStat& at(size_t model, size_t metric) const { return stats[model * metrics.size() + metric]; }
};

// models[i] named names[i]; all evaluated on the same split and protocol.
CompareReport compare_report(const std::vector<std::string>& names, const std::vector<const EvalResult*>& results,
                             const std::vector<int64_t>& best_epoch, const std::vector<double>& train_seconds,
                             const CompareOptions& opts);

// "*" (t-test) and "†" (Wilcoxon) for the significant tests, then the direction against the
// baseline once when they agree ("*†↓"), after each mark when they do not ("*↓†↑"); "" for none.
std::string significance_marks(bool sig_t, bool sig_w, int dir_t, int dir_w);

std::string report_text(const CompareReport& r);      // the table printed to the terminal
std::string report_markdown(const CompareReport& r);  // table + legend
std::string report_csv(const CompareReport& r);       // one row per (model, metric), every number
std::string report_latex(const CompareReport& r);     // booktabs table

}  // namespace rzoo
