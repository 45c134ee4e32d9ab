// See report.h. The C++ side reads the folder and builds a page model in JSON: sections of notes,
// charts (complete Chart.js configurations) and tables. The page's script (kPageScript) turns it
// into elements with textContent only, so no value from the folder is ever parsed as HTML.
#include "trainers/report.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "trainers/compare_report.h"

namespace rzoo {

namespace detail {
// cmake/embed_file.cmake: chart.min.js, or nothing (size 0) when it was not found.
extern const char chartjs[];
extern const std::size_t chartjs_size;
}  // namespace detail

namespace fs = std::filesystem;

bool report_available() { return detail::chartjs_size > 0; }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::optional<std::string> read_text(const fs::path& p) { return read_file_if_exists(p.string()); }

Json read_json(const fs::path& p) {
  const auto text = read_text(p);
  if (!text) fail("{}: missing", p.string());
  return json_parse(*text, p.string());
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// One CSV record (RFC 4180 quoting, as core/table.h csv_field writes it); records here never
// span lines, since the fields quoted are names without line breaks.
std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cells.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else cells.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  return cells;
}

// A CSV cell as a number: empty (not measured) and "nan" are NaN; anything else not a number
// is an error naming the file, line and column.
double cell_number(const std::string& s, const fs::path& file, size_t line, const std::string& column) {
  if (s.empty()) return kNaN;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') fail("{}:{}: '{}' in column '{}' is not a number", file.string(), line, s, column);
  return v;
}

// history.csv (trainers/trainer.cpp): epoch,loss,seconds,lr,valid_<metric>...; a row per epoch,
// an empty cell where an epoch was not validated (or the value was NaN).
struct History {
  std::vector<double> epoch, loss;
  std::vector<std::pair<std::string, std::vector<double>>> valid;  // metric (without valid_), values
  const std::vector<double>* metric(const std::string& name) const {
    for (const auto& [m, v] : valid)
      if (m == name) return &v;
    return nullptr;
  }
};

std::optional<History> read_history(const fs::path& run_dir) {
  const fs::path file = run_dir / "history.csv";
  const auto text = read_text(file);
  if (!text) return std::nullopt;
  const auto lines = split_lines(*text);
  if (lines.empty()) fail("{}: empty (expected a header epoch,loss,...)", file.string());
  const auto header = csv_cells(lines[0]);
  int epoch_col = -1, loss_col = -1;
  History h;
  std::vector<std::pair<size_t, size_t>> valid_cols;  // column, index into h.valid
  for (size_t c = 0; c < header.size(); ++c) {
    if (header[c] == "epoch") epoch_col = static_cast<int>(c);
    else if (header[c] == "loss") loss_col = static_cast<int>(c);
    else if (header[c].rfind("valid_", 0) == 0) {
      valid_cols.emplace_back(c, h.valid.size());
      h.valid.emplace_back(header[c].substr(6), std::vector<double>{});
    }
  }
  if (epoch_col < 0) fail("{}:1: no 'epoch' column in the header '{}'", file.string(), lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto cells = csv_cells(lines[i]);
    if (cells.size() != header.size())
      fail("{}:{}: {} cells where the header has {}", file.string(), i + 1, cells.size(), header.size());
    h.epoch.push_back(cell_number(cells[epoch_col], file, i + 1, "epoch"));
    h.loss.push_back(loss_col < 0 ? kNaN : cell_number(cells[loss_col], file, i + 1, "loss"));
    for (const auto& [c, k] : valid_cols) h.valid[k].second.push_back(cell_number(cells[c], file, i + 1, header[c]));
  }
  return h;
}

// "ndcg@10" -> ("ndcg", 10); a metric without a cut-off (auc, rmse) -> (name, -1).
std::pair<std::string, int> split_metric(const std::string& m) {
  const size_t at = m.find('@');
  if (at == std::string::npos) return {m, -1};
  char* end = nullptr;
  const long k = std::strtol(m.c_str() + at + 1, &end, 10);
  if (end == m.c_str() + at + 1 || *end != '\0' || k <= 0) return {m, -1};
  return {m.substr(0, at), static_cast<int>(k)};
}

// Metric families in order of first appearance, each with its (K, metric name) sorted by K.
std::vector<std::pair<std::string, std::vector<std::pair<int, std::string>>>> families(const std::vector<std::string>& metrics) {
  std::vector<std::pair<std::string, std::vector<std::pair<int, std::string>>>> out;
  for (const auto& m : metrics) {
    const auto bk = split_metric(m);
    if (bk.second < 0) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& f) { return f.first == bk.first; });
    if (it == out.end()) out.emplace_back(bk.first, std::vector<std::pair<int, std::string>>{}), it = out.end() - 1;
    it->second.emplace_back(bk.second, m);
  }
  for (auto& f : out) std::sort(f.second.begin(), f.second.end());
  return out;
}

// j[key] when j is an object holding it, else `otherwise`. (Not Json::value: nlohmann 3.11.2's
// value() with a Json default returns a reference to that temporary.)
Json field(const Json& j, const std::string& key, const Json& otherwise) {
  if (!j.is_object()) return otherwise;
  const auto it = j.find(key);
  return it == j.end() ? otherwise : *it;
}

// A value as text: strings as they are, anything else as JSON (numbers, true, null).
std::string setting_text(const Json& v) { return v.is_string() ? v.get<std::string>() : json_dump(v, -1); }

double get_number(const Json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return kNaN;
  return j[key].get<double>();
}

// A value of a config.yaml (a run's resolved config), "" when absent or unreadable: the report
// only uses it for labels, so a config it cannot read costs a label, not the report.
std::string config_value(const fs::path& run_dir, const std::vector<std::string>& path) {
  try {
    YAML::Node n = YAML::LoadFile((run_dir / "config.yaml").string());
    for (const auto& k : path) {
      if (!n.IsMap()) return "";
      const YAML::Node child = static_cast<const YAML::Node&>(n)[k];  // const: looks up, never inserts
      n.reset(child);  // rebinds (operator= would overwrite the parent's value)
    }
    return n.IsScalar() ? n.Scalar() : "";
  } catch (const std::exception&) {
    return "";
  }
}

// ---- the page model ------------------------------------------------------------------------

Json xy(double x, double y) { return Json{{"x", json_number(x)}, {"y", json_number(y)}}; }

// A line chart over a numeric x axis. `series`: (label, points, colour index).
Json line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel, Json datasets,
                bool logx = false, const std::string& note = "") {
  Json x = {{"type", logx ? "logarithmic" : "linear"}, {"title", {{"display", true}, {"text", xlabel}}}};
  if (!logx) x["ticks"] = {{"precision", 0}};  // epochs, K and trial numbers are whole
  Json options = {{"scales", {{"x", x}, {"y", {{"title", {{"display", true}, {"text", ylabel}}}}}}},
                  {"plugins", {{"legend", {{"display", datasets.size() > 1}}}}}};
  Json chart = {{"title", title}, {"config", {{"type", "line"}, {"data", {{"datasets", std::move(datasets)}}}, {"options", options}}}};
  if (!note.empty()) chart["note"] = note;
  return chart;
}

Json dataset(const std::string& label, Json points, int colour) {
  const int radius = points.size() > 40 ? 0 : 2;  // dots only where they can be told apart
  return Json{{"label", label}, {"data", std::move(points)}, {"rzooColor", colour}, {"spanGaps", true},
              {"pointRadius", radius}, {"borderWidth", 2}};
}

// Points (epoch, value) of a history column, skipping epochs without a value.
Json epoch_points(const History& h, const std::vector<double>& v) {
  Json pts = Json::array();
  for (size_t i = 0; i < v.size() && i < h.epoch.size(); ++i)
    if (std::isfinite(v[i])) pts.push_back(xy(h.epoch[i], v[i]));
  return pts;
}

struct Section {
  Json j;
  explicit Section(const std::string& title) : j{{"title", title}, {"notes", Json::array()}, {"charts", Json::array()}, {"tables", Json::array()}} {}
  void note(const std::string& s) { j["notes"].push_back(s); }
  void chart(Json c) { j["charts"].push_back(std::move(c)); }
  void table(const std::string& title, const std::vector<std::string>& columns, Json rows) {
    j["tables"].push_back(Json{{"title", title}, {"columns", columns}, {"rows", std::move(rows)}});
  }
  void pre(const std::string& title, const std::string& text) { j["pre"].push_back(Json{{"title", title}, {"text", text}}); }
};

// A history's validation curves grouped by metric family, (family, datasets), in column order;
// only the family of `only` (a metric name) when given and present.
std::vector<std::pair<std::string, Json>> validation_by_family(const History& h, const std::string& only) {
  std::vector<std::pair<std::string, Json>> out;
  const std::string want = only.empty() ? "" : split_metric(only).first;
  const bool present = !want.empty() && std::any_of(h.valid.begin(), h.valid.end(), [&](const auto& c) {
    return split_metric(c.first).first == want;
  });
  for (const auto& col : h.valid) {
    const std::string base = split_metric(col.first).first;
    if (present && base != want) continue;
    Json pts = epoch_points(h, col.second);
    if (pts.empty()) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& f) { return f.first == base; });
    if (it == out.end()) out.emplace_back(base, Json::array()), it = out.end() - 1;
    it->second.push_back(dataset(col.first, std::move(pts), static_cast<int>(it->second.size())));
  }
  return out;
}

// The training charts of one run: loss and validation metrics per epoch.
void history_charts(Section& s, const fs::path& run_dir, const std::optional<History>& h) {
  if (!h) {
    s.note("no history.csv in " + run_dir.filename().string() +
           " (a run from before rzoo wrote one): the per-epoch charts are skipped");
    return;
  }
  Json loss = Json::array();
  loss.push_back(dataset("training loss", epoch_points(*h, h->loss), 0));
  if (!loss[0]["data"].empty()) s.chart(line_chart("Training loss per epoch", "epoch", "loss", std::move(loss)));
  else s.note("history.csv has no training loss (a closed-form model fits once)");
  // A chart per metric family (ndcg@10 with ndcg@20): families differ in scale (novelty vs hr).
  const int before = static_cast<int>(s.j["charts"].size());
  for (const auto& [base, charts] : validation_by_family(*h, ""))
    s.chart(line_chart("Validation " + base + " per epoch", "epoch", base, charts));
  if (static_cast<int>(s.j["charts"].size()) == before) s.note("history.csv has no validated epoch");
}

// j[part]["metrics"], or an empty object.
Json part_metrics(const Json& j, const char* part) {
  if (!j.is_object() || !j.contains(part) || !j[part].is_object()) return Json::object();
  const Json m = field(j[part], "metrics", Json::object());
  return m.is_object() ? m : Json::object();
}

Json metrics_table_rows(const Json& metrics_json) {
  Json rows = Json::array();
  const Json valid = part_metrics(metrics_json, "valid"), test = part_metrics(metrics_json, "test");
  for (const auto& [name, v] : test.items())
    rows.push_back(Json{name, valid.contains(name) ? valid[name] : Json(), v});
  return rows;
}

std::vector<std::string> metric_names(const Json& metrics) {
  std::vector<std::string> out;
  if (metrics.is_object())
    for (const auto& [name, v] : metrics.items()) out.push_back(name);
  return out;
}

// ---- run -----------------------------------------------------------------------------------

Json run_page(const fs::path& dir) {
  Json page = {{"kind", "run"}, {"sections", Json::array()}};
  const std::string model = config_value(dir, {"model", "name"}), data = config_value(dir, {"dataset", "name"});
  page["title"] = "rzoo run " + dir.filename().string();
  page["subtitle"] = (model.empty() ? std::string("model ?") : model) + (data.empty() ? "" : " on " + data);
  Section train("Training");
  history_charts(train, dir, read_history(dir));
  Section test("Test results");
  const auto metrics_text = read_text(dir / "metrics.json");
  if (!metrics_text) {
    test.note("no metrics.json: the run has not finished (or was paused)");
  } else {
    const Json m = json_parse(*metrics_text, (dir / "metrics.json").string());
    if (!m.is_object()) fail("{}: expected an object with 'valid' and 'test'", (dir / "metrics.json").string());
    if (m.contains("test") && m["test"].is_object() && m["test"].contains("protocol")) test.note("protocol: " + m["test"].value("protocol", ""));
    if (m.contains("rzoo") && m["rzoo"].is_string()) test.note("trained by rzoo " + m["rzoo"].get<std::string>());
    const Json tm = part_metrics(m, "test");
    Json curves = Json::array();
    int colour = 0;
    for (const auto& [base, ks] : families(metric_names(tm))) {
      Json pts = Json::array();
      for (const auto& [k, name] : ks) pts.push_back(xy(k, get_number(tm, name)));
      curves.push_back(dataset(base, std::move(pts), colour++));
    }
    if (!curves.empty()) test.chart(line_chart("Test metrics at K", "K", "test", std::move(curves)));
    test.table("Metrics (best epoch " + setting_text(field(m, "best_epoch", "?")) + " of " + setting_text(field(m, "epochs_run", "?")) + ")",
               {"metric", "valid", "test"}, metrics_table_rows(m));
  }
  Section config("Configuration");
  if (const auto cfg = read_text(dir / "config.yaml")) config.pre("config.yaml", *cfg);
  else config.note("no config.yaml");
  for (Section* s : {&train, &test, &config}) page["sections"].push_back(std::move(s->j));
  return page;
}

// ---- comparison ----------------------------------------------------------------------------

struct StatRow {
  double value = kNaN, low = kNaN, high = kNaN, p_t = kNaN, p_w = kNaN;
  bool sig_t = false, sig_w = false;
  int dir_t = 0, dir_w = 0;  // 0 in a compare.csv written before its direction columns
};

// compare.csv (trainers/compare_report.cpp report_csv): intervals and tests per (model, metric).
std::map<std::pair<std::string, std::string>, StatRow> read_compare_csv(const fs::path& file, std::string& baseline) {
  std::map<std::pair<std::string, std::string>, StatRow> out;
  const auto text = read_text(file);
  if (!text) return out;
  const auto lines = split_lines(*text);
  if (lines.empty()) fail("{}: empty", file.string());
  const auto header = csv_cells(lines[0]);
  auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail("{}:1: no column '{}'", file.string(), name);
    return static_cast<size_t>(it - header.begin());
  };
  const size_t cm = col("model"), cmet = col("metric"), cv = col("value"), cl = col("ci_low"), ch = col("ci_high"),
               cpt = col("p_ttest_holm"), cpw = col("p_wilcoxon_holm"), cst = col("significant_ttest"),
               csw = col("significant_wilcoxon"), cb = col("baseline");
  // Optional: the directions (absent from files of earlier versions).
  const auto optional_col = [&](const std::string& name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const size_t cdt = optional_col("direction_ttest"), cdw = optional_col("direction_wilcoxon");
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto c = csv_cells(lines[i]);
    if (c.size() != header.size()) fail("{}:{}: {} cells where the header has {}", file.string(), i + 1, c.size(), header.size());
    StatRow r;
    r.value = cell_number(c[cv], file, i + 1, "value");
    r.low = cell_number(c[cl], file, i + 1, "ci_low");
    r.high = cell_number(c[ch], file, i + 1, "ci_high");
    r.p_t = cell_number(c[cpt], file, i + 1, "p_ttest_holm");
    r.p_w = cell_number(c[cpw], file, i + 1, "p_wilcoxon_holm");
    r.sig_t = c[cst] == "1", r.sig_w = c[csw] == "1";
    if (cdt < header.size()) r.dir_t = c[cdt] == "1" ? 1 : c[cdt] == "-1" ? -1 : 0;
    if (cdw < header.size()) r.dir_w = c[cdw] == "1" ? 1 : c[cdw] == "-1" ? -1 : 0;
    baseline = c[cb];
    out[{c[cm], c[cmet]}] = r;
  }
  return out;
}

Json comparison_page(const fs::path& dir) {
  const fs::path cj = dir / "compare.json";
  const Json runs = read_json(cj);
  if (!runs.is_array() || runs.empty()) fail("{}: expected a list of the compared runs' results", cj.string());
  std::vector<std::string> models;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!runs[i].is_object() || !runs[i].contains("model") || !runs[i]["model"].is_string() || !runs[i].contains("test") ||
        !runs[i]["test"].is_object())
      fail("{}: entry {} has no 'model' name and 'test' results", cj.string(), i);
    models.push_back(runs[i]["model"].get<std::string>());
  }
  std::string baseline;
  const auto stats = read_compare_csv(dir / "compare.csv", baseline);
  // A comparison of stored runs (rzoo compare --runs) names where each entry's runs are; rzoo
  // compare's own runs are its folder's subfolders, named after the entries.
  std::vector<fs::path> run_dirs;
  bool stored = false;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Json& r = runs[i];
    stored = stored || r.contains("runs");
    if (r.contains("runs") && r["runs"].is_array() && !r["runs"].empty() && r["runs"][0].is_string())
      run_dirs.push_back(fs::path(r["runs"][0].get<std::string>()));
    else
      run_dirs.push_back(dir / models[i]);
  }
  const fs::path first_run = run_dirs[0];
  const std::string data = config_value(first_run, {"dataset", "name"});
  Json page = {{"kind", "comparison"}, {"sections", Json::array()}};
  page["title"] = "rzoo comparison " + dir.filename().string();
  page["subtitle"] = std::to_string(models.size()) + " models" + (data.empty() ? "" : " on " + data) +
                     (baseline.empty() ? "" : ", baseline " + baseline);
  auto label = [&](size_t m) { return models[m] + (models[m] == baseline ? " (baseline)" : ""); };
  const Json& test0 = runs[0]["test"];
  const std::vector<std::string> metrics = metric_names(part_metrics(runs[0], "test"));

  Section bars("Test metrics with 95% intervals");
  if (test0.contains("protocol")) bars.note("protocol: " + test0.value("protocol", "") + "; " +
                                            std::to_string(test0.value("n_users", 0)) + " test users");
  // Stored runs were compared with the command's settings, not their own configs'.
  const std::string alpha = stored ? std::string() : config_value(first_run, {"compare_stats", "alpha"});
  if (stats.empty())
    bars.note("no compare.csv (a comparison from before rzoo tested significance): bars without intervals or tests");
  else
    bars.note("Error bars: 95% bootstrap interval of the mean over test users. Marks against the baseline " + baseline +
              ": * paired t-test, † Wilcoxon signed-rank, each significant after Holm's correction across models" +
              (alpha.empty() ? "" : " at alpha " + alpha) +
              "; ↑ above the baseline, ↓ below (the t-test by the mean difference, Wilcoxon by its rank sums; "
              "a mark each when they disagree).");
  // A metric without a cut-off (auc, rmse) is its own family of one.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (const auto& m : metrics) {
    const std::string base = split_metric(m).first;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == base; });
    if (it == groups.end()) groups.emplace_back(base, std::vector<std::string>{}), it = groups.end() - 1;
    it->second.push_back(m);
  }
  for (auto& [base, names] : groups) {
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      return split_metric(a).second < split_metric(b).second;
    });
    Json datasets = Json::array();
    for (size_t m = 0; m < models.size(); ++m) {
      Json values = Json::array(), err = Json::array(), marks = Json::array();
      const Json mm = part_metrics(runs[m], "test");
      for (const auto& name : names) {
        const auto it = stats.find({models[m], name});
        const double v = it != stats.end() ? it->second.value : get_number(mm, name);
        values.push_back(json_number(v));
        if (it != stats.end() && std::isfinite(it->second.low) && std::isfinite(it->second.high))
          err.push_back(Json{it->second.low, it->second.high});
        else
          err.push_back(nullptr);
        marks.push_back(it == stats.end() ? std::string()
                                          : significance_marks(it->second.sig_t, it->second.sig_w, it->second.dir_t,
                                                               it->second.dir_w));
      }
      datasets.push_back(Json{{"label", label(m)}, {"data", std::move(values)}, {"rzooColor", m}, {"rzooErr", std::move(err)},
                              {"rzooMarks", std::move(marks)}});
    }
    // grace: room above the tallest bar for its interval and marks, below the legend.
    Json options = {{"scales", {{"y", {{"beginAtZero", true}, {"grace", "10%"}, {"title", {{"display", true}, {"text", base}}}}}}}};
    bars.chart(Json{{"title", base + " by model"},
                    {"config", {{"type", "bar"}, {"data", {{"labels", names}, {"datasets", std::move(datasets)}}}, {"options", options}}}});
  }

  Section curves("Metrics against K");
  for (const auto& [base, ks] : families(metrics)) {
    if (ks.size() < 2) continue;
    Json datasets = Json::array();
    for (size_t m = 0; m < models.size(); ++m) {
      const Json mm = part_metrics(runs[m], "test");
      Json pts = Json::array();
      for (const auto& [k, name] : ks) pts.push_back(xy(k, get_number(mm, name)));
      datasets.push_back(dataset(label(m), std::move(pts), static_cast<int>(m)));
    }
    curves.chart(line_chart("test " + base + "@K", "K", base, std::move(datasets)));
  }
  if (curves.j["charts"].empty()) curves.note("every metric was measured at one K only");

  Section valid("Validation per epoch");
  std::string vmetric = config_value(first_run, {"train", "early_stop", "metric"});
  std::vector<std::optional<History>> hist;
  for (const auto& d : run_dirs) hist.push_back(read_history(d));
  if (vmetric.empty() || std::none_of(hist.begin(), hist.end(), [&](const auto& h) { return h && h->metric(vmetric); }))
    for (const auto& h : hist)
      if (h && !h->valid.empty()) { vmetric = h->valid[0].first; break; }
  Json vsets = Json::array();
  std::vector<std::string> missing;
  for (size_t m = 0; m < models.size(); ++m) {
    const std::vector<double>* v = hist[m] ? hist[m]->metric(vmetric) : nullptr;
    if (!v) { missing.push_back(models[m]); continue; }
    vsets.push_back(dataset(label(m), epoch_points(*hist[m], *v), static_cast<int>(m)));
  }
  if (!vsets.empty()) valid.chart(line_chart("validation " + vmetric + " per epoch", "epoch", vmetric, std::move(vsets)));
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    valid.note("no validation history (history.csv) for: " + list);
  }

  Section tables("Tables");
  Json rows = Json::array();
  for (size_t m = 0; m < models.size(); ++m)
    rows.push_back(Json{models[m], field(runs[m], "best_epoch", Json()), field(runs[m], "epochs_run", Json()),
                        field(runs[m], "train_seconds", Json())});
  tables.table("Runs", {"model", "best epoch", "epochs", "training seconds"}, std::move(rows));
  Json srows = Json::array();
  for (const auto& name : metrics)
    for (size_t m = 0; m < models.size(); ++m) {
      const auto it = stats.find({models[m], name});
      const Json mm = part_metrics(runs[m], "test");
      if (it == stats.end()) { srows.push_back(Json{name, models[m], field(mm, name, Json()), nullptr, nullptr, nullptr, nullptr, ""}); continue; }
      const StatRow& r = it->second;
      srows.push_back(Json{name, models[m], json_number(r.value), json_number(r.low), json_number(r.high), json_number(r.p_t),
                           json_number(r.p_w), significance_marks(r.sig_t, r.sig_w, r.dir_t, r.dir_w)});
    }
  tables.table("Test metrics (p-values Holm-corrected, against the baseline)",
               {"metric", "model", "value", "95% low", "95% high", "p t-test", "p Wilcoxon", "significant"}, std::move(srows));
  for (Section* s : {&bars, &curves, &valid, &tables}) page["sections"].push_back(std::move(s->j));
  return page;
}

// ---- study ---------------------------------------------------------------------------------


Json study_page(const fs::path& dir) {
  const fs::path sj = dir / "study.json";
  const Json st = read_json(sj);
  if (!st.is_object() || !st.contains("trials") || !st["trials"].is_array())
    fail("{}: expected an object with a 'trials' list", sj.string());
  const std::string metric = st.value("metric", std::string("objective"));
  const bool higher = st.value("higher_is_better", true);
  std::vector<std::string> keys;
  if (st.contains("keys") && st["keys"].is_array())
    for (const auto& k : st["keys"])
      if (k.is_string()) keys.push_back(k.get<std::string>());
  const Json& trials = st["trials"];
  for (size_t i = 0; i < trials.size(); ++i)
    if (!trials[i].is_object() || !trials[i].contains("trial") || !trials[i]["trial"].is_number())
      fail("{}: trials[{}] has no trial number", sj.string(), i);
    else if (trials[i].contains("setting") && !trials[i]["setting"].is_object())
      fail("{}: trials[{}].setting is not an object of key: value", sj.string(), i);
  const Json best = field(st, "best", Json::object());
  const double best_trial = get_number(best, "trial");

  Json page = {{"kind", "study"}, {"sections", Json::array()}};
  page["title"] = "rzoo study " + dir.filename().string();
  page["subtitle"] = st.value("method", std::string("?")) + " search, " + std::to_string(trials.size()) + " trials, " +
                     metric + " on validation (" + (higher ? "higher" : "lower") + " is better)";
  auto value_of = [](const Json& t) { return get_number(t, "value"); };

  Section search("Search");
  if (trials.empty()) search.note("no trial yet");
  if (best.contains("run"))
    search.note("best: trial " + setting_text(field(best, "trial", Json())) + " (" + setting_text(best["run"]) + "), " + metric + " " +
                setting_text(field(best, "value", Json())));
  // The objective against each hyperparameter: finished and stopped (halving) trials apart, and
  // the best one on its own, in the same colours on every chart.
  for (const auto& key : keys) {
    bool categorical = false;
    double lo = INFINITY, hi = -INFINITY;
    std::vector<std::string> labels;
    for (const auto& t : trials) {
      if (!std::isfinite(value_of(t))) continue;
      const Json v = field(field(t, "setting", Json::object()), key, Json());
      if (v.is_number()) {
        lo = std::min(lo, v.get<double>()), hi = std::max(hi, v.get<double>());
      } else {
        categorical = true;
      }
      const std::string s = setting_text(v);
      if (std::find(labels.begin(), labels.end(), s) == labels.end()) labels.push_back(s);
    }
    if (labels.empty()) continue;
    const bool logx = !categorical && lo > 0 && hi / lo >= 100;
    Json sets = Json::array();
    const std::pair<const char*, int> groups[] = {{"done", 0}, {"stopped", 1}, {"best", 3}};
    for (const auto& [group, colour] : groups) {
      Json pts = Json::array();
      for (const auto& t : trials) {
        const double y = value_of(t);
        if (!std::isfinite(y)) continue;
        const bool is_best = t["trial"].get<double>() == best_trial;
        const std::string status = t.value("status", std::string("done"));
        if (std::string(group) == "best" ? !is_best : (is_best || (status == "stopped") != (std::string(group) == "stopped"))) continue;
        const Json v = field(field(t, "setting", Json::object()), key, Json());
        pts.push_back(Json{{"x", categorical ? Json(setting_text(v)) : v}, {"y", y}, {"trial", t["trial"]}});
      }
      if (pts.empty()) continue;
      Json ds = {{"label", std::string(group) == "best" ? "best trial" : std::string(group) == "stopped" ? "stopped early (halving)" : "trials"},
                 {"data", std::move(pts)}, {"rzooColor", colour}, {"pointRadius", std::string(group) == "best" ? 7 : 4},
                 {"pointStyle", std::string(group) == "best" ? "star" : "circle"}};
      sets.push_back(std::move(ds));
    }
    Json x = {{"title", {{"display", true}, {"text", key + (logx ? " (log scale)" : "")}}}};
    if (categorical) x["type"] = "category", x["labels"] = labels, x["offset"] = true;
    else x["type"] = logx ? "logarithmic" : "linear";
    Json options = {{"scales", {{"x", x}, {"y", {{"title", {{"display", true}, {"text", metric}}}}}}}};
    search.chart(Json{{"title", metric + " against " + key},
                      {"config", {{"type", "scatter"}, {"data", {{"datasets", std::move(sets)}}}, {"options", options}}}});
  }
  // The trial history: each trial's value in order, and the best so far.
  {
    Json values = Json::array(), best_so_far = Json::array();
    double b = kNaN;
    for (const auto& t : trials) {
      const double y = value_of(t), n = t["trial"].get<double>();
      if (!std::isfinite(y)) continue;
      values.push_back(xy(n, y));
      if (!std::isfinite(b) || (higher ? y > b : y < b)) b = y;
      best_so_far.push_back(xy(n, b));
    }
    if (!values.empty()) {
      Json sets = Json::array();
      Json v = dataset("trial", std::move(values), 0);
      v["showLine"] = false, v["pointRadius"] = 4;
      Json bs = dataset("best so far", std::move(best_so_far), 3);
      bs["stepped"] = true, bs["pointRadius"] = 0;
      sets.push_back(std::move(v)), sets.push_back(std::move(bs));
      search.chart(line_chart("Trial history", "trial", metric, std::move(sets)));
    }
  }
  Section curve("Best trial");
  if (best.contains("run") && best["run"].is_string()) {
    const fs::path run = dir / best["run"].get<std::string>();
    const auto h = read_history(run);
    if (!h) {
      curve.note("no history.csv in " + run.filename().string() + ": the validation curve is skipped");
    } else {
      const auto fams = validation_by_family(*h, metric);
      for (const auto& [base, sets] : fams)
        curve.chart(line_chart("validation " + base + " per epoch, " + run.filename().string(), "epoch", base, sets));
      if (fams.empty()) curve.note(run.filename().string() + "/history.csv has no validated epoch");
    }
  } else {
    curve.note("no best trial yet");
  }

  Section tables("Tables");
  std::vector<std::string> columns = {"trial", "run", "status"};
  columns.insert(columns.end(), keys.begin(), keys.end());
  for (const char* c : {"value", "best epoch", "epochs", "seconds"}) columns.push_back(c);
  Json rows = Json::array();
  for (const auto& t : trials) {
    Json status = field(t, "status", Json());
    if (t.contains("reused_from") && t["reused_from"].is_string() && status.is_string())  // search.reuse
      status = status.get<std::string>() + " (reused from " + t["reused_from"].get<std::string>() + ")";
    Json r = Json{t["trial"], field(t, "run", Json()), status};
    const Json s = field(t, "setting", Json::object());
    for (const auto& k : keys) r.push_back(field(s, k, Json()));
    for (const char* c : {"value", "best_epoch", "epochs", "seconds"}) r.push_back(field(t, c, Json()));
    rows.push_back(std::move(r));
  }
  tables.table("Trials", columns, std::move(rows));
  if (st.contains("test") && st["test"].is_object()) {
    const Json& test = st["test"];
    std::string seeds;
    for (const auto& s : field(test, "seeds", Json::array())) seeds += (seeds.empty() ? "" : ", ") + setting_text(s);
    Json trows = Json::array();
    const Json metrics = field(test, "metrics", Json::object());  // items() of a temporary would dangle
    for (const auto& [name, m] : metrics.items()) {
      std::string values;
      for (const auto& v : field(m, "values", Json::array())) values += (values.empty() ? "" : ", ") + setting_text(v);
      trows.push_back(Json{name, field(m, "mean", Json()), field(m, "sd", Json()), values});
    }
    tables.table("Test results of the best setting (seeds " + seeds + ")", {"metric", "mean", "sd", "values"}, std::move(trows));
  } else {
    tables.note("no test results (search.seeds not set, or the study has not finished)");
  }
  for (Section* s : {&search, &curve, &tables}) page["sections"].push_back(std::move(s->j));
  return page;
}

// ---- HTML ----------------------------------------------------------------------------------

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON safe inside a <script> element: '<', '>' and '&' only occur inside JSON strings, where
// their \u escapes mean the same, so no "</script>" or "<!--" in the data can end the element.
std::string script_json(const Json& j) {
  const std::string s = json_dump(j, -1);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

// Installed first, before Chart.js, so that every error of the page is counted.
const char* const kErrorHook = R"JS(
window.rzooErrors = [];
window.addEventListener('error', function (e) { window.rzooErrors.push(String(e.message || e.type)); });
(function () {
  var original = console.error;
  console.error = function () {
    window.rzooErrors.push(Array.prototype.map.call(arguments, String).join(' '));
    return original.apply(console, arguments);
  };
})();
)JS";

const char* const kPageScript = R"JS(
(function () {
  'use strict';
  var errors = window.rzooErrors;
  var status = document.getElementById('rzoo-render-status');
  var charts = [];
  var palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toFixed(4);
  }
  // Error bars (rzooErr: [low, high] per bar) and significance marks (rzooMarks) over the bars.
  var barDecorations = {
    id: 'rzooBarDecorations',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, i) {
        if (!chart.isDatasetVisible(i) || (!ds.rzooErr && !ds.rzooMarks)) return;
        var meta = chart.getDatasetMeta(i), y = chart.scales[meta.yAxisID];
        meta.data.forEach(function (bar, j) {
          var e = ds.rzooErr && ds.rzooErr[j], top = bar.y;
          ctx.save();
          ctx.strokeStyle = '#222';
          ctx.lineWidth = 1.2;
          if (e && e[0] !== null && e[1] !== null) {
            var lo = y.getPixelForValue(e[0]), hi = y.getPixelForValue(e[1]);
            ctx.beginPath();
            ctx.moveTo(bar.x, lo); ctx.lineTo(bar.x, hi);
            ctx.moveTo(bar.x - 4, lo); ctx.lineTo(bar.x + 4, lo);
            ctx.moveTo(bar.x - 4, hi); ctx.lineTo(bar.x + 4, hi);
            ctx.stroke();
            top = Math.min(top, hi);
          }
          var mark = ds.rzooMarks && ds.rzooMarks[j];
          if (mark) {
            ctx.fillStyle = '#000';
            ctx.font = 'bold 14px sans-serif';
            ctx.textAlign = 'center';
            ctx.fillText(mark, bar.x, top - 4);
          }
          ctx.restore();
        });
      });
    }
  };
  function addChart(parent, spec) {
    var box = el('div', 'chart');
    box.appendChild(el('h3', null, spec.title));
    var wrap = el('div', 'canvas-wrap');
    var canvas = el('canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', spec.title);
    wrap.appendChild(canvas);
    box.appendChild(wrap);
    if (spec.note) box.appendChild(el('p', 'note', spec.note));
    parent.appendChild(box);
    charts.push({canvas: canvas, title: spec.title});
    var cfg = spec.config;
    cfg.options = cfg.options || {};
    cfg.options.animation = false;  // drawn at once: the self-check below sees the final chart
    cfg.options.responsive = true;
    cfg.options.maintainAspectRatio = false;
    cfg.options.plugins = cfg.options.plugins || {};
    // Scatter points say which trial they are.
    cfg.options.plugins.tooltip = {callbacks: {afterLabel: function (c) {
      var r = c.raw; return r && r.trial !== undefined ? 'trial ' + r.trial : '';
    }}};
    cfg.plugins = [barDecorations];
    cfg.data.datasets.forEach(function (ds) {
      var c = palette[(ds.rzooColor || 0) % palette.length];
      if (ds.backgroundColor === undefined) ds.backgroundColor = c;
      if (ds.borderColor === undefined) ds.borderColor = c;
    });
    try {
      if (typeof Chart === 'undefined') throw new Error('Chart.js did not load');
      new Chart(canvas.getContext('2d'), cfg);
    } catch (e) {
      errors.push(spec.title + ': ' + e);
    }
  }
  function addTable(parent, spec) {
    parent.appendChild(el('h3', null, spec.title));
    var wrap = el('div', 'table-wrap'), table = el('table'), head = el('tr');
    spec.columns.forEach(function (c) { head.appendChild(el('th', null, c)); });
    table.appendChild(head);
    spec.rows.forEach(function (row) {
      var tr = el('tr');
      row.forEach(function (v) { tr.appendChild(el('td', typeof v === 'number' ? 'num' : null, fmt(v))); });
      table.appendChild(tr);
    });
    wrap.appendChild(table);
    parent.appendChild(wrap);
  }
  function check() {
    var rendered = 0;
    charts.forEach(function (c) {
      try {
        var w = c.canvas.width, h = c.canvas.height;
        if (!w || !h) return;
        var d = c.canvas.getContext('2d').getImageData(0, 0, w, h).data;
        for (var i = 3; i < d.length; i += 4) if (d[i] !== 0) { rendered++; return; }
      } catch (e) {
        errors.push('checking ' + c.title + ': ' + e);
      }
    });
    status.textContent = 'charts=' + charts.length + ' rendered=' + rendered + ' errors=' + errors.length +
                         (errors.length ? '\n' + errors.join('\n') : '');
    status.className = rendered === charts.length && errors.length === 0 ? 'ok' : 'bad';
  }
  try {
    var page = JSON.parse(document.getElementById('rzoo-data').textContent);
    document.getElementById('rzoo-title').textContent = page.title;
    document.getElementById('rzoo-subtitle').textContent = page.subtitle || '';
    var main = document.getElementById('rzoo-main');
    page.sections.forEach(function (s) {
      var sec = el('section');
      sec.appendChild(el('h2', null, s.title));
      s.notes.forEach(function (n) { sec.appendChild(el('p', 'note', n)); });
      if (s.charts.length) {
        var grid = el('div', 'charts');
        sec.appendChild(grid);
        s.charts.forEach(function (c) { addChart(grid, c); });
      }
      s.tables.forEach(function (t) { addTable(sec, t); });
      (s.pre || []).forEach(function (p) {
        var d = el('details');
        d.appendChild(el('summary', null, p.title));
        d.appendChild(el('pre', null, p.text));
        sec.appendChild(d);
      });
      main.appendChild(sec);
    });
  } catch (e) {
    errors.push('building the page: ' + e);
  }
  // After layout and painting.
  window.addEventListener('load', function () { requestAnimationFrame(function () { setTimeout(check, 0); }); });
})();
)JS";

const char* const kStyle = R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #222; background: #fff; }
h1 { margin: 0 0 .2em; font-size: 1.6em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
h3 { margin: .4em 0; font-size: 1em; }
.subtitle, .note { color: #555; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1.2em; }
.chart { border: 1px solid #ddd; border-radius: 4px; padding: .5em .8em; }
.canvas-wrap { position: relative; height: 300px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: .3em 0 1em; }
th, td { border: 1px solid #ddd; padding: .2em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
#rzoo-render-status { display: inline-block; margin: 0; padding: .2em .5em; }
#rzoo-render-status.ok { background: #e6f4e6; }
#rzoo-render-status.bad { background: #fbe3e3; }
footer { margin-top: 2em; color: #777; font-size: .9em; }
)CSS";

std::string chartjs_source() {
  std::string js(detail::chartjs, detail::chartjs_size);
  // Defensive: the minified library holds no "</script", but a different version might.
  for (size_t at = 0; (at = js.find("</", at)) != std::string::npos;) {
    js.replace(at, 2, "<\\/");
    at += 3;
  }
  return js;
}

std::string render_html(const Json& page) {
  std::string html;
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"generator\" content=\"rzoo report\">\n";
  html += "<title>" + html_escape(page.value("title", std::string("rzoo report"))) + "</title>\n";
  html += "<style>" + std::string(kStyle) + "</style>\n";
  html += "<script>" + std::string(kErrorHook) + "</script>\n";
  html += "<script>/* Chart.js, MIT License, from Debian's libjs-chart.js (its banner follows) */\n" +
          chartjs_source() + "\n</script>\n";
  html += "</head>\n<body>\n<header><h1 id=\"rzoo-title\"></h1><div class=\"subtitle\" id=\"rzoo-subtitle\"></div></header>\n";
  html += "<main id=\"rzoo-main\"></main>\n";
  html += "<footer>Written by rzoo report; charts by Chart.js. Self-check: "
          "<pre id=\"rzoo-render-status\" class=\"bad\">charts=? (the page's script did not run)</pre></footer>\n";
  html += "<script type=\"application/json\" id=\"rzoo-data\">" + script_json(page) + "</script>\n";
  html += "<script>" + std::string(kPageScript) + "</script>\n";
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace

std::string write_report(const std::string& dir_arg, const std::string& out_arg) {
  if (!report_available())
    fail("rzoo report: this rzoo was built without Chart.js; install Debian's libjs-chart.js "
         "(apt-get install libjs-chart.js) and rebuild (CMake looks for /usr/share/javascript/chart.js/chart.min.js)");
  std::error_code ec;
  if (!fs::is_directory(dir_arg, ec)) fail("{}: no such folder", dir_arg);
  // Absolute and without a trailing '/', so that its name (the page's title) is never empty.
  fs::path dir = fs::absolute(dir_arg).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  Json page;
  if (fs::exists(dir / "study.json")) page = study_page(dir);
  else if (fs::exists(dir / "compare.json")) page = comparison_page(dir);
  else if (fs::exists(dir / "metrics.json") || fs::exists(dir / "config.yaml") || fs::exists(dir / "history.csv")) page = run_page(dir);
  else fail("{}: not an rzoo run, comparison or study folder (no metrics.json, config.yaml, compare.json or study.json)", dir_arg);
  std::string out = out_arg.empty() ? (dir / "report.html").string() : out_arg;
  if (!out_arg.empty()) check_output_path(out, "--out");
  const std::string html = render_html(page);
  write_bytes_atomic(out, html.data(), html.size());
  return out;
}

}  // namespace rzoo
