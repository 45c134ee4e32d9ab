#include "trainers/compare_report.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "core/table.h"
#include "trainers/evaluator.h"
#include "trainers/significance.h"

namespace rzoo {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string base_of(const std::string& name) { return name.substr(0, name.find('@')); }
std::string k_of(const std::string& name) {
  const auto at = name.find('@');
  return at == std::string::npos ? "all" : name.substr(at + 1);
}

// Metric bases in first-seen order, and K groups ("10", "20", then "all" for metrics without K).
void layout(const CompareReport& r, std::vector<std::string>& bases, std::vector<std::string>& groups) {
  for (const auto& m : r.metrics) {
    if (std::find(bases.begin(), bases.end(), base_of(m)) == bases.end()) bases.push_back(base_of(m));
    if (std::find(groups.begin(), groups.end(), k_of(m)) == groups.end()) groups.push_back(k_of(m));
  }
  std::stable_partition(groups.begin(), groups.end(), [](const std::string& g) { return g != "all"; });
}

int metric_index(const CompareReport& r, const std::string& base, const std::string& group) {
  const std::string name = group == "all" ? base : base + "@" + group;
  const auto it = std::find(r.metrics.begin(), r.metrics.end(), name);
  return it == r.metrics.end() ? -1 : static_cast<int>(it - r.metrics.begin());
}

const char* arrow(int dir) { return dir > 0 ? "↑" : dir < 0 ? "↓" : ""; }

std::string marks(const MetricStat& s) { return significance_marks(s.sig_t, s.sig_w, s.dir_t, s.dir_w); }

std::string cell(const MetricStat& s) {
  if (!std::isfinite(s.value)) return "-";
  std::string c = fmt::format("{:.4f}", s.value);
  if (std::isfinite(s.low) && std::isfinite(s.high)) c += fmt::format(" ±{:.4f}", (s.high - s.low) / 2);
  const std::string m = marks(s);
  if (!m.empty()) c += " " + m;
  return c;
}

std::vector<std::vector<std::string>> table_rows(const CompareReport& r) {
  std::vector<std::string> bases, groups;
  layout(r, bases, groups);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header{"model", "K"};
  header.insert(header.end(), bases.begin(), bases.end());
  header.push_back("best epoch");
  header.push_back("train s");
  rows.push_back(header);
  for (const auto& g : groups)
    for (size_t m = 0; m < r.models.size(); ++m) {
      std::vector<std::string> row{r.models[m], g};
      for (const auto& b : bases) {
        const int i = metric_index(r, b, g);
        row.push_back(i < 0 ? "" : cell(r.at(m, static_cast<size_t>(i))));
      }
      row.push_back(std::to_string(r.best_epoch[m]));
      row.push_back(fmt::format("{:.2f}", r.train_seconds[m]));
      rows.push_back(row);
    }
  return rows;
}

std::string legend(const CompareReport& r) {
  return fmt::format("Mean over test users ± half-width of the {:g}% percentile bootstrap interval ({} resamples). "
                     "Against the baseline {}: * paired t-test, † Wilcoxon signed-rank, each significant at {} after "
                     "Holm's correction across the {} other model(s); ↑ above the baseline, ↓ below (the t-test by the mean "
                     "difference, Wilcoxon by its rank sums; a mark each when they disagree). coverage and gini have no "
                     "per-user values (no interval, no test).",
                     r.opts.ci_level * 100, r.opts.bootstrap, r.baseline, r.opts.alpha,
                     r.models.empty() ? 0 : r.models.size() - 1);
}

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.10g}", v) : std::string(); }

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string("&%$#_{}").find(c) != std::string::npos) out += std::string("\\") + c;
    else if (c == '~') out += "\\textasciitilde{}";
    else if (c == '^') out += "\\textasciicircum{}";
    else if (c == '\\') out += "\\textbackslash{}";
    else out += c;
  }
  return out;
}

}  // namespace

std::string significance_marks(bool sig_t, bool sig_w, int dir_t, int dir_w) {
  if (!sig_t && !sig_w) return "";
  if (sig_t && sig_w && dir_t != dir_w) return std::string("*") + arrow(dir_t) + "†" + arrow(dir_w);
  return std::string(sig_t ? "*" : "") + (sig_w ? "†" : "") + arrow(sig_t ? dir_t : dir_w);
}

CompareOptions CompareOptions::from_config(const Config& cfg) {
  CompareOptions o;
  o.baseline = cfg.get_string("compare_stats.baseline");
  o.alpha = cfg.get_double("compare_stats.alpha", 0.0, 1.0);
  o.ci_level = cfg.get_double("compare_stats.ci_level", 0.0, 1.0);
  if (o.alpha <= 0 || o.alpha >= 1) cfg.bad("compare_stats.alpha", fmt::format("must be in (0, 1), got {}", o.alpha));
  if (o.ci_level <= 0 || o.ci_level >= 1) cfg.bad("compare_stats.ci_level", fmt::format("must be in (0, 1), got {}", o.ci_level));
  o.bootstrap = cfg.get_int("compare_stats.bootstrap", 1);
  o.seed = static_cast<uint64_t>(cfg.get_int("compare_stats.seed", 0));
  return o;
}

CompareReport compare_report(const std::vector<std::string>& names, const std::vector<const EvalResult*>& results,
                             const std::vector<int64_t>& best_epoch, const std::vector<double>& train_seconds,
                             const CompareOptions& opts) {
  CompareReport r;
  r.opts = opts;
  r.models = names;
  r.best_epoch = best_epoch;
  r.train_seconds = train_seconds;
  if (results.empty()) return r;
  r.protocol = results[0]->protocol;
  size_t base = 0;
  if (!opts.baseline.empty()) {
    const auto it = std::find(names.begin(), names.end(), opts.baseline);
    if (it == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      fail("compare_stats.baseline: '{}' is not one of the compared runs ({})", opts.baseline, known);
    }
    base = static_cast<size_t>(it - names.begin());
  }
  r.baseline = names[base];
  for (const auto& kv : results[0]->metrics) r.metrics.push_back(kv.first);
  const size_t nm = r.metrics.size();
  r.stats.resize(names.size() * nm);
  for (size_t m = 0; m < names.size(); ++m)
    for (size_t i = 0; i < nm; ++i) {
      MetricStat& s = r.stats[m * nm + i];
      const std::string& metric = r.metrics[i];
      s.model = names[m];
      s.metric = metric;
      s.value = results[m]->has(metric) ? results[m]->get(metric) : kNaN;
      s.low = s.high = s.p_t = s.p_t_holm = s.p_w = s.p_w_holm = kNaN;
      s.n_users = results[m]->n_users;
      const std::vector<double>* v = results[m]->user_values(metric);
      const std::string b = base_of(metric);
      if (v && b != "gauc" && !metric_is_rating(b)) {
        const MeanCI ci = bootstrap_mean_ci(*v, opts.ci_level, opts.bootstrap, opts.seed);
        s.low = ci.low, s.high = ci.high;
      }
    }
  // Paired tests against the baseline, Holm-corrected across models for each metric and test.
  for (size_t i = 0; i < nm; ++i) {
    const std::vector<double>* vb = results[base]->user_values(r.metrics[i]);
    if (!vb) continue;
    std::vector<double> pt, pw;
    std::vector<size_t> who;
    for (size_t m = 0; m < names.size(); ++m) {
      if (m == base) continue;
      const std::vector<double>* v = results[m]->user_values(r.metrics[i]);
      // Not paired (other users, protocol or candidates): no test.
      if (!v || results[m]->users != results[base]->users || results[m]->protocol != results[base]->protocol) continue;
      double mean_diff = 0, rank_diff = 0;
      pt.push_back(paired_t_test(*v, *vb, &mean_diff));
      pw.push_back(wilcoxon_signed_rank(*v, *vb, &rank_diff));
      MetricStat& s = r.stats[m * nm + i];
      s.dir_t = mean_diff > 0 ? 1 : mean_diff < 0 ? -1 : 0;
      s.dir_w = rank_diff > 0 ? 1 : rank_diff < 0 ? -1 : 0;
      who.push_back(m);
    }
    const auto ht = holm_adjust(pt), hw = holm_adjust(pw);
    for (size_t j = 0; j < who.size(); ++j) {
      MetricStat& s = r.stats[who[j] * nm + i];
      s.p_t = pt[j], s.p_t_holm = ht[j], s.p_w = pw[j], s.p_w_holm = hw[j];
      s.sig_t = ht[j] < opts.alpha;
      s.sig_w = hw[j] < opts.alpha;
    }
  }
  return r;
}

std::string report_text(const CompareReport& r) { return render_table(table_rows(r), false) + legend(r) + "\n"; }

std::string report_markdown(const CompareReport& r) { return render_table(table_rows(r), true) + "\n" + legend(r) + "\n"; }

std::string report_csv(const CompareReport& r) {
  std::string out = "model,metric,value,ci_low,ci_high,n_users,p_ttest,p_ttest_holm,p_wilcoxon,p_wilcoxon_holm,"
                    "significant_ttest,significant_wilcoxon,baseline,direction_ttest,direction_wilcoxon\n";
  for (const auto& s : r.stats)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(s.model), s.metric, num(s.value),
                       num(s.low), num(s.high), s.n_users, num(s.p_t), num(s.p_t_holm), num(s.p_w), num(s.p_w_holm),
                       s.sig_t ? 1 : 0, s.sig_w ? 1 : 0, csv_field(r.baseline), s.dir_t, s.dir_w);
  return out;
}

std::string report_latex(const CompareReport& r) {
  std::vector<std::string> bases, groups;
  layout(r, bases, groups);
  std::string out = "% rzoo compare: " + latex_escape(r.protocol) + "\n";
  out += "\\begin{tabular}{ll" + std::string(bases.size(), 'r') + "}\n\\toprule\nModel & K";
  for (const auto& b : bases) out += " & " + latex_escape(b);
  out += " \\\\\n\\midrule\n";
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (gi) out += "\\midrule\n";
    for (size_t m = 0; m < r.models.size(); ++m) {
      out += latex_escape(r.models[m]) + " & " + latex_escape(groups[gi]);
      for (const auto& b : bases) {
        const int i = metric_index(r, b, groups[gi]);
        out += " & ";
        if (i < 0) continue;
        const MetricStat& s = r.at(m, static_cast<size_t>(i));
        if (!std::isfinite(s.value)) { out += "--"; continue; }
        out += fmt::format("${:.4f}", s.value);
        if (std::isfinite(s.low)) out += fmt::format(" \\pm {:.4f}", (s.high - s.low) / 2);
        if (s.sig_t || s.sig_w) {
          // The same marks and arrows as the text table's.
          std::string m = marks(s);
          for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
                   {"†", "\\dagger "}, {"↑", "\\uparrow "}, {"↓", "\\downarrow "}})
            for (size_t at = m.find(from); at != std::string::npos; at = m.find(from, at + to.size()))
              m.replace(at, from.size(), to);
          while (!m.empty() && m.back() == ' ') m.pop_back();
          out += "^{" + m + "}";
        }
        out += "$";
      }
      out += " \\\\\n";
    }
  }
  out += "\\bottomrule\n\\end{tabular}\n";
  out += "% " + legend(r) + "\n";
  return out;
}

}  // namespace rzoo
