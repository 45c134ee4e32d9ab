// rzoo compare --runs: see compare_runs.h.
#include "trainers/compare_runs.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/strings.h"
#include "datasets/text.h"

namespace rzoo {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::optional<std::string> read_text(const fs::path& p) { return read_file_if_exists(p.string()); }

// The results file of a run folder (metrics.json) or of an evaluation folder (eval.json).
fs::path results_file(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: no such folder", dir.string());
  for (const char* name : {"metrics.json", "eval.json"})
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  if (fs::is_regular_file(dir / "compare.json", ec))
    fail("{}: a comparison, not a run: compare its runs (the folders inside it)", dir.string());
  if (fs::is_regular_file(dir / "last.pt", ec))
    fail("{}: the run has not finished (no metrics.json; continue it with rzoo train --resume {})", dir.string(), dir.string());
  fail("{}: not an rzoo run or evaluation folder (no metrics.json or eval.json)", dir.string());
}

// The run folder that holds the ids of `dir` (an evaluation folder's parent run).
fs::path run_of(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "users.txt", ec)) return dir;
  if (fs::is_regular_file(dir / "eval.json", ec) && fs::is_regular_file(dir.parent_path() / "users.txt", ec))
    return dir.parent_path();
  fail("{}: no users.txt beside its results (nor in the run folder above it): which users its per-user values belong "
       "to is unknown", dir.string());
}

double number(const Json& j) { return j.is_number() ? j.get<double>() : kNaN; }  // null: NaN, as written

struct Stored {
  std::string dir, model;
  Json valid;  // the "valid" part of the results file (null if none)
  EvalResult test;
  int64_t best_epoch = 0;
  double train_seconds = 0;
  std::string users_txt, items_txt;
};

// The results file of `dir`, parsed: an object with a "test" object.
Json read_results(const std::string& dir, fs::path& file) {
  file = results_file(dir);
  Json j = json_parse(*read_text(file), file.string());
  if (!j.is_object() || !j.contains("test") || !j["test"].is_object())
    fail("{}: no 'test' results in it", file.string());
  return j;
}

EvalResult test_part(const std::string& dir, const Json& j, const fs::path& file);

Stored read_stored(const std::string& dir) {
  Stored s;
  s.dir = dir;
  fs::path file;
  const Json j = read_results(dir, file);
  s.model = j.value("model", std::string());
  s.best_epoch = j.contains("best_epoch") && j["best_epoch"].is_number_integer() ? j["best_epoch"].get<int64_t>() : 0;
  s.train_seconds = j.contains("train_seconds") ? number(j["train_seconds"]) : 0.0;
  if (!std::isfinite(s.train_seconds)) s.train_seconds = 0;
  s.valid = j.contains("valid") ? j["valid"] : Json();
  s.test = test_part(dir, j, file);
  const fs::path run = run_of(dir);
  s.users_txt = read_text(run / "users.txt").value_or("");
  const auto items = read_text(run / "items.txt");
  if (!items) fail("{}: missing (is this an rzoo run folder?)", (run / "items.txt").string());
  s.items_txt = *items;
  return s;
}

// The label of a run when none was given: its folder's name, with its parent's for the folders
// rzoo names alike in every study (seed-1, trial-0003, eval-...).
std::string folder_label(const fs::path& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string name = p.filename().string();
  const bool generic = name.rfind("seed-", 0) == 0 || name.rfind("trial-", 0) == 0 || name.rfind("eval-", 0) == 0;
  if (!generic || p.parent_path().filename().empty()) return name;
  return folder_label(p.parent_path()) + "/" + name;
}

std::string what_differs(const EvalResult& a, const EvalResult& b) {
  if (a.users.size() != b.users.size())
    return fmt::format("{} test users against {}", b.users.size(), a.users.size());
  for (size_t i = 0; i < a.users.size(); ++i) {
    if (a.users[i] != b.users[i]) return fmt::format("test user #{} is user {} against {}", i + 1, b.users[i], a.users[i]);
    if (a.n_targets[i] != b.n_targets[i])
      return fmt::format("user {} has {} test targets against {}", a.users[i], b.n_targets[i], a.n_targets[i]);
    if (a.n_candidates[i] != b.n_candidates[i])
      return fmt::format("user {} is ranked among {} candidates against {}", a.users[i], b.n_candidates[i], a.n_candidates[i]);
  }
  return "";
}

// The runs an rzoo tune study tested its chosen setting with (study.json's test.runs: the seeds);
// empty when `dir` is not a study.
std::vector<std::string> study_runs(const fs::path& arg) {
  // STUDY/eval-...: that evaluation folder of each of the study's test runs.
  fs::path dir = arg, eval;
  std::error_code ec;
  if (!fs::exists(arg, ec) && arg.filename().string().rfind("eval-", 0) == 0 &&
      fs::is_regular_file(arg.parent_path() / "study.json", ec)) {
    dir = arg.parent_path();
    eval = arg.filename();
  }
  const auto text = read_text(dir / "study.json");
  if (!text) return {};
  const Json j = json_parse(*text, (dir / "study.json").string());
  const Json* runs = j.is_object() && j.contains("test") && j["test"].is_object() && j["test"].contains("runs")
                         ? &j["test"]["runs"]
                         : nullptr;
  if (!runs || !runs->is_array() || runs->empty())
    fail("{}: an rzoo tune study whose chosen setting has no test runs yet (run the same rzoo tune command to finish "
         "it), or give its trial-... folders", dir.string());
  std::vector<std::string> out;
  for (const auto& r : *runs) {
    if (!r.is_string()) fail("{}: test.runs must list folder names", (dir / "study.json").string());
    out.push_back((eval.empty() ? dir / r.get<std::string>() : dir / r.get<std::string>() / eval).string());
  }
  return out;
}

}  // namespace

StoredEntry parse_stored_entry(const std::string& arg) {
  StoredEntry e;
  std::string list = arg;
  const size_t eq = arg.find('=');
  if (eq != std::string::npos) {
    e.name = arg.substr(0, eq);
    list = arg.substr(eq + 1);
    if (e.name.empty()) fail("--runs {}: an empty name before '=' (NAME=DIR[,DIR...])", arg);
    for (const char c : e.name)
      if (std::iscntrl(static_cast<unsigned char>(c))) fail("--runs {}: the name has a control character", arg);
    // One run: the whole text after '=' is the folder, commas included; several: comma-separated.
  }
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {  // a folder whose name has '=' in it
    e.name.clear();
    e.dirs.push_back(arg);
  } else if (eq != std::string::npos && fs::is_directory(list, ec)) {
    e.dirs.push_back(list);
  } else if (eq == std::string::npos) {
    e.dirs.push_back(list);
  } else {
    std::vector<std::string_view> parts;
    split_fields(list, ',', /*collapse=*/true, parts);  // empty parts skipped
    e.dirs.assign(parts.begin(), parts.end());
  }
  if (e.dirs.empty() || e.dirs[0].empty()) fail("--runs {}: no run folder", arg);
  return e;
}

EvalResult read_stored_test(const std::string& dir) {
  fs::path file;
  const Json j = read_results(dir, file);
  return test_part(dir, j, file);
}

namespace {

// The test part of a results file `j` (read from `file` in `dir`) with dir/test.users.csv.
EvalResult test_part(const std::string& dir, const Json& j, const fs::path& file) {
  const Json& t = j["test"];
  EvalResult r;
  r.split = "test";
  r.protocol_name = t.value("protocol_name", std::string());
  r.protocol = t.value("protocol", std::string());
  r.n_users = t.contains("n_users") && t["n_users"].is_number_integer() ? t["n_users"].get<int64_t>() : 0;
  r.n_items = t.contains("n_items") && t["n_items"].is_number_integer() ? t["n_items"].get<int64_t>() : 0;
  r.seconds = t.contains("seconds") ? number(t["seconds"]) : 0.0;
  if (!t.contains("metrics") || !t["metrics"].is_object()) fail("{}: the test results have no 'metrics'", file.string());
  for (const auto& [name, v] : t["metrics"].items()) r.metrics.emplace_back(name, number(v));

  const fs::path csv = fs::path(dir) / "test.users.csv";
  const auto text = read_text(csv);
  if (!text)
    fail("{}: missing: the per-user values the tests pair (a run keeps them beside its metrics; re-create them "
         "with rzoo evaluate)", csv.string());
  std::vector<std::string_view> lines, hv, fv;
  split_fields(*text, '\n', false, lines);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) fail("{}: empty (expected the header user,n_targets,n_candidates,...)", csv.string());
  for (auto& l : lines)
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  split_fields(lines[0], ',', false, hv);
  const std::vector<std::string> header(hv.begin(), hv.end());
  if (header.size() < 3 || header[0] != "user" || header[1] != "n_targets" || header[2] != "n_candidates")
    fail("{}:1: expected the header user,n_targets,n_candidates,<metric>..., got '{}'", csv.string(), lines[0]);
  for (size_t c = 3; c < header.size(); ++c) r.per_user.emplace_back(header[c], std::vector<double>{});
  for (size_t i = 1; i < lines.size(); ++i) {
    split_fields(lines[i], ',', false, fv);
    const std::vector<std::string> f(fv.begin(), fv.end());
    if (f.size() != header.size())
      fail("{}:{}: {} fields, the header has {}", csv.string(), i + 1, f.size(), header.size());
    int64_t ints[3];
    for (int c = 0; c < 3; ++c) {
      char* end = nullptr;
      ints[c] = std::strtoll(f[static_cast<size_t>(c)].c_str(), &end, 10);
      if (f[static_cast<size_t>(c)].empty() || *end != '\0' || ints[c] < 0)
        fail("{}:{}: {} '{}' is not a count", csv.string(), i + 1, header[static_cast<size_t>(c)], f[static_cast<size_t>(c)]);
    }
    if (!r.users.empty() && ints[0] <= r.users.back())
      fail("{}:{}: user {} after user {} (the file lists users in ascending order)", csv.string(), i + 1, ints[0], r.users.back());
    r.users.push_back(ints[0]);
    r.n_targets.push_back(ints[1]);
    r.n_candidates.push_back(ints[2]);
    for (size_t c = 3; c < f.size(); ++c) {
      double v = kNaN;
      if (f[c] != "nan") {
        char* end = nullptr;
        v = std::strtod(f[c].c_str(), &end);
        if (f[c].empty() || *end != '\0')
          fail("{}:{}: {} '{}' is not a number", csv.string(), i + 1, header[c], f[c]);
      }
      r.per_user[c - 3].second.push_back(v);
    }
  }
  if (r.n_users != 0 && static_cast<int64_t>(r.users.size()) != r.n_users)
    fail("{}: {} users, but {} says the test part had {} (the two files are from different evaluations)", csv.string(),
         r.users.size(), file.string(), r.n_users);
  return r;
}

}  // namespace

CompareReport compare_stored_runs(std::vector<StoredEntry> entries, const CompareOptions& opts,
                                  const std::string& out_dir, Logger& log) {
  if (entries.size() < 2) fail("compare --runs: give at least two runs to compare (got {})", entries.size());
  std::vector<std::vector<Stored>> runs;
  std::vector<bool> from_study;
  for (const auto& e : entries) {
    runs.emplace_back();
    from_study.push_back(false);
    for (const auto& d : e.dirs) {
      const auto seeds = study_runs(d);  // a study stands for the seeds of its chosen setting
      from_study.back() = from_study.back() || !seeds.empty();
      for (const auto& r : seeds.empty() ? std::vector<std::string>{d} : seeds) runs.back().push_back(read_stored(r));
    }
  }
  // Every run against the first one: the same ids, protocol and test users with their candidates.
  const Stored& ref = runs[0][0];
  for (const auto& rs : runs)
    for (const Stored& s : rs) {
      if (&s == &ref) continue;
      if (s.users_txt != ref.users_txt || s.items_txt != ref.items_txt)
        fail("compare --runs: {} and {} were trained on different data ({} differ): a comparison pairs each user's "
             "values, so every run must come from the same dataset and split", ref.dir, s.dir,
             s.users_txt != ref.users_txt ? "their users.txt" : "their items.txt");
      if (s.test.protocol != ref.test.protocol)
        fail("compare --runs: {} and {} were evaluated under different protocols:\n  {}: {}\n  {}: {}\n(evaluate one "
             "again with the other's settings: rzoo evaluate RUN --set eval.KEY=VALUE, then compare its eval-... folder)",
             ref.dir, s.dir, ref.dir, ref.test.protocol, s.dir, s.test.protocol);
      const std::string d = what_differs(ref.test, s.test);
      if (!d.empty())
        fail("compare --runs: {} and {} were tested on different targets ({}): not the same split", ref.dir, s.dir, d);
    }

  // Labels: given, else the model's name, else (when names repeat) the folders'.
  std::map<std::string, int> model_count;
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].name.empty()) ++model_count[runs[i][0].model];
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].name.empty()) continue;
    const std::string& m = runs[i][0].model;
    // One plain run of a model no other entry has: the model's name; else the folder's (a study's
    // name, e.g. gru4rec, or seed-1 with its parent).
    const bool by_model = runs[i].size() == 1 && !from_study[i] && !m.empty() && model_count[m] == 1;
    fs::path where = entries[i].dirs[0];
    std::error_code ec;
    if (from_study[i] && !fs::exists(where, ec)) where = where.parent_path();  // STUDY/eval-...: the study's name
    entries[i].name = by_model ? m : folder_label(where);
  }
  std::set<std::string> seen;
  for (const auto& e : entries)
    if (!seen.insert(e.name).second)
      fail("compare --runs: two entries are named '{}'; name them with NAME=DIR", e.name);

  // Metrics every run has, in the first run's order; per-user ones only where every run has them.
  std::vector<std::string> metrics;
  std::vector<std::string> dropped;
  for (const auto& [name, v] : ref.test.metrics) {
    bool all = true;
    for (const auto& rs : runs)
      for (const Stored& s : rs) all = all && s.test.has(name);
    (all ? metrics : dropped).push_back(name);
  }
  if (metrics.empty()) fail("compare --runs: the runs have no test metric in common");
  if (!dropped.empty()) {
    log.line("compare --runs: left out (not computed by every run): " + join(dropped));
  }

  std::vector<EvalResult> merged(entries.size());
  std::vector<int64_t> epochs;
  std::vector<double> secs;
  Json all = Json::array();
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& rs = runs[i];
    const double n = static_cast<double>(rs.size());
    EvalResult& m = merged[i];
    m = rs[0].test;
    m.metrics.clear();
    m.per_user.clear();
    double seconds = 0, train = 0, epoch = 0;
    for (const Stored& s : rs) seconds += s.test.seconds, train += s.train_seconds, epoch += static_cast<double>(s.best_epoch);
    m.seconds = seconds / n;
    for (const auto& name : metrics) {
      double sum = 0;
      for (const Stored& s : rs) sum += s.test.get(name);
      m.metrics.emplace_back(name, sum / n);
      bool per_user = true;
      for (const Stored& s : rs) per_user = per_user && s.test.user_values(name) != nullptr;
      if (!per_user) continue;
      std::vector<double> mean(m.users.size(), 0.0);
      for (const Stored& s : rs) {
        const auto& v = *s.test.user_values(name);
        for (size_t u = 0; u < mean.size(); ++u) mean[u] += v[u] / n;
      }
      m.per_user.emplace_back(name, std::move(mean));
    }
    epochs.push_back(static_cast<int64_t>(std::llround(epoch / n)));
    secs.push_back(train / n);
    // compare.json: as rzoo compare writes it, plus where the runs are (rzoo report reads their
    // history.csv from there).
    Json valid = rs[0].valid;
    if (rs.size() > 1 && valid.is_object() && valid.contains("metrics") && valid["metrics"].is_object()) {
      for (auto& [name, v] : valid["metrics"].items()) {
        double sum = 0;
        bool ok = true;
        for (const Stored& s : rs) {
          const Json& vm = s.valid.is_object() && s.valid.contains("metrics") ? s.valid["metrics"] : Json();
          ok = ok && vm.is_object() && vm.contains(name);
          if (ok) sum += number(vm[name]);
        }
        v = ok ? json_number(sum / n) : Json();
      }
    }
    Json dirs = Json::array();
    for (const Stored& s : rs) dirs.push_back(fs::absolute(s.dir).lexically_normal().string());
    all.push_back(Json{{"model", entries[i].name}, {"model_name", rs[0].model}, {"runs", std::move(dirs)},
                       {"best_epoch", epochs.back()}, {"train_seconds", json_rounded(secs.back(), 4)},
                       {"valid", std::move(valid)}, {"test", m.json()}});
  }
  std::vector<std::string> names;
  std::vector<const EvalResult*> tests;
  for (size_t i = 0; i < entries.size(); ++i) names.push_back(entries[i].name), tests.push_back(&merged[i]);
  const CompareReport report = compare_report(names, tests, epochs, secs, opts);

  std::string runs_md;
  for (size_t i = 0; i < entries.size(); ++i) {
    runs_md += fmt::format("- {}: ", entries[i].name);
    if (runs[i].size() > 1) runs_md += fmt::format("the mean of {} runs (per-user values averaged user by user): ", runs[i].size());
    for (size_t k = 0; k < runs[i].size(); ++k) runs_md += (k ? ", " : "") + runs[i][k].dir;
    runs_md += "\n";
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("{}: cannot create the folder: {}", out_dir, ec.message());
  const std::string stem = fs::path(out_dir).filename().string();
  write_file_atomic(out_dir + "/compare.md",
                    fmt::format("# {}\n\nStored runs compared (rzoo compare --runs); test split ({} users); {}.\n\n{}\n{}", stem,
                                ref.test.users.size(), ref.test.protocol, runs_md, report_markdown(report)));
  write_file_atomic(out_dir + "/compare.csv", report_csv(report));
  write_file_atomic(out_dir + "/compare.tex", report_latex(report));
  write_file_atomic(out_dir + "/compare.json", json_dump(all, 2) + "\n");
  log.result(fmt::format("\ncomparison of stored runs (test split, {} users; {})\n", ref.test.users.size(), ref.test.protocol));
  log.result(runs_md);
  log.result(report_text(report));
  log.line(fmt::format("written: {0}/compare.md, compare.csv, compare.tex, compare.json", out_dir));
  return report;
}

}  // namespace rzoo
