// rzoo report: the page of a real run, a real comparison and a study fixture. Each page must be
// self-contained (no network reference), carry its charts, escape the folder's data, and, when a
// Chromium is installed (scripts/install-deps.sh installs one), render in a headless browser with
// every chart painted and no script error, as the page's own self-check reports it.
#include <map>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "helpers.h"
#include "trainers/experiment.h"
#include "trainers/report.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// A headless Chromium on PATH, or "".
std::string find_chromium() {
  const auto r = run_shell("command -v chromium || command -v chromium-headless-shell || command -v google-chrome");
  if (r.code != 0) return "";
  std::string path = r.output.substr(0, r.output.find('\n'));
  return path;
}

// Chromium with a private profile and HOME under `tmp` (never the user's), the page's script
// given 10 s of virtual time.
std::string chromium_command(const std::string& chromium, const TempDir& tmp) {
  return "HOME=" + q(tmp.file("home")) + " timeout 90 " + q(chromium) +
         " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + q(tmp.file("chrome-profile")) +
         " --virtual-time-budget=10000";
}

// Renders the page and requires every chart painted without a script error, as the page's
// self-check line says in the DOM Chromium leaves after running the scripts; returns that DOM.
std::string require_rendered(const std::string& html, int expected_charts, const TempDir& tmp) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    WARN("no chromium on PATH (scripts/install-deps.sh installs it): " << html << " was not rendered");
    return "";
  }
  std::string dom, status;
  // Headless Chromium now and then dumps the DOM before the page's script has run (seen once in
  // about 30 runs under a loaded test suite: the status still reads "charts=?"); only that case is
  // rendered again, at most twice.
  int attempts = 0;
  do {
    ++attempts;
    dom = run_shell(chromium_command(chromium, tmp) + " --dump-dom " + q("file://" + html) + " 2>/dev/null").output;
    status = "(no status element)";
    const size_t at = dom.find("id=\"rzoo-render-status\"");
    if (at != std::string::npos) {
      const size_t start = dom.find('>', at) + 1;
      status = dom.substr(start, dom.find("</pre>", start) - start);
    }
  } while (attempts < 3 && status.find("charts=?") != std::string::npos);
  INFO("self-check of " << html << ": " << status << " (" << attempts << " rendering(s))");
  std::smatch m;
  REQUIRE(std::regex_search(status, m, std::regex("charts=(\\d+) rendered=(\\d+) errors=(\\d+)")));
  CHECK(std::stoi(m[1]) == expected_charts);
  CHECK(std::stoi(m[2]) == expected_charts);
  CHECK(std::stoi(m[3]) == 0);
  return dom;
}

// Without Chart.js (libjs-chart.js missing at build time) a report is one clear error.
bool require_chartjs(const std::string& dir) {
  if (report_available()) return true;
  CHECK_THROWS_WITH(write_report(dir), Contains("libjs-chart.js"));
  WARN("this rzoo was built without Chart.js: only its error was tested");
  return false;
}

// Nothing fetched from elsewhere: no external script, style sheet, image or frame.
void require_self_contained(const std::string& html) {
  for (const char* bad : {"src=\"http", "src='http", "href=\"http", "href='http", "<link", "@import", "url(http", "<iframe",
                          "<script src", "<img"})
    CHECK_THAT(html, !Contains(bad, Catch::CaseSensitive::No));
  CHECK_THAT(html, Contains("Released under the MIT License"));  // Chart.js is inside (its banner)
  CHECK_THAT(html, Contains("id=\"rzoo-render-status\""));
}

// history.csv as the trainer writes it: the tests do not depend on which epochs validated.
void write_history(const fs::path& run, int epochs) {
  std::string text = "epoch,loss,seconds,lr,valid_ndcg@10,valid_hr@10\n";
  for (int e = 1; e <= epochs; ++e)
    text += e % 2 ? fmt::format("{},{},0.1,0.01,{},{}\n", e, 1.0 / e, 0.1 + 0.01 * e, 0.2 + 0.01 * e)
                  : fmt::format("{},{},0.1,0.01,,\n", e, 1.0 / e);
  std::ofstream(run / "history.csv") << text;
}

}  // namespace

TEST_CASE("report: a run folder, with and without history.csv", "[report]") {
  TempDir t;
  const Config cfg = synthetic_config("bpr", {"train.epochs=3", "model.embedding_size=8", "eval.ks=[5, 10, 20]"});
  PreparedData p{load_dataset(cfg), {}};
  p.split = split_dataset(p.data, cfg);
  Logger log(true);
  train_model(cfg, p, t.file("run"), log);
  const fs::path run = t.file("run");
  // The trainer writes history.csv; a fixture in its format stands in where it does not yet.
  if (!fs::exists(run / "history.csv")) write_history(run, 3);
  if (!require_chartjs(run.string())) return;

  const std::string path = write_report(run.string());
  CHECK(path == (run / "report.html").string());
  const std::string html = read_file(path);
  require_self_contained(html);
  CHECK_THAT(html, Contains("Training loss per epoch"));
  CHECK_THAT(html, Contains("Validation ndcg per epoch"));
  CHECK_THAT(html, Contains("Test metrics at K"));
  CHECK_THAT(html, Contains("\"x\":20"));  // the test curve reaches the last K
  CHECK_THAT(html, Contains("trained by rzoo " + build_string()));  // metrics.json's build
  // The loss, a validation chart per metric family of history.csv, the test metrics against K.
  std::set<std::string> families;
  const std::string header = read_file((run / "history.csv").string()).substr(0, read_file((run / "history.csv").string()).find('\n'));
  for (size_t at = header.find("valid_"); at != std::string::npos; at = header.find("valid_", at + 1))
    families.insert(header.substr(at + 6, header.find_first_of("@,", at) - at - 6));
  const std::string dom = require_rendered(path, 2 + static_cast<int>(families.size()), t);
  if (!dom.empty()) CHECK_THAT(dom, Contains("<canvas"));

  // A run from before history.csv: its per-epoch charts are left out with a note, never an error.
  fs::remove(run / "history.csv");
  const std::string old = read_file(write_report(run.string(), t.file("old.html")));
  CHECK_THAT(old, Contains("no history.csv in run"));
  CHECK_THAT(old, !Contains("Training loss per epoch"));
  CHECK_THAT(old, Contains("Test metrics at K"));
  require_rendered(t.file("old.html"), 1, t);
}

TEST_CASE("report: a comparison folder, by compare and by the CLI", "[report]") {
  TempDir t;
  ConfigSources s;
  s.config_dir = config_dir();
  s.experiment = parse_layer("dataset: synthetic\ncompare: [pop, {model: {name: bpr, embedding_size: 8}, train: {epochs: 3}}]\n",
                             "cmp.yaml");
  s.sets = {"threads=1", "train.progress=false", "output_dir=" + t.path.string(), "run_name=cmp"};
  Logger log(true);
  std::string dir;
  const auto results = compare_models(s, log, &dir);
  REQUIRE(results.size() == 2);
  for (const char* m : {"pop", "bpr"})
    if (!fs::exists(fs::path(dir) / m / "history.csv")) write_history(fs::path(dir) / m, m[0] == 'p' ? 1 : 3);
  if (!require_chartjs(dir)) return;

  const std::string path = write_report(dir);
  const std::string html = read_file(path);
  require_self_contained(html);
  // Bars with the bootstrap intervals and marks of compare.csv, for each metric family.
  CHECK_THAT(html, Contains("\"rzooErr\":[["));
  CHECK_THAT(html, Contains("\"rzooMarks\""));
  CHECK_THAT(html, Contains("pop (baseline)"));
  CHECK_THAT(html, Contains("ndcg by model"));
  CHECK_THAT(html, Contains("test ndcg@K"));
  CHECK_THAT(html, Contains("per epoch"));
  // Expected charts: a bar chart per metric family, a K curve per family measured at several K,
  // one validation chart.
  std::set<std::string> fams, multi;
  std::map<std::string, int> count;
  for (const auto& [name, v] : results[0].test.metrics) {
    const std::string base = name.substr(0, name.find('@'));
    fams.insert(base);
    if (name.find('@') != std::string::npos && ++count[base] > 1) multi.insert(base);
  }
  const int charts = static_cast<int>(fams.size() + multi.size()) + 1;
  require_rendered(path, charts, t);

  const std::string chromium = find_chromium();
  if (!chromium.empty()) {
    const std::string png = t.file("compare.png");
    run_shell(chromium_command(chromium, t) + " --window-size=1280,2400 --screenshot=" + q(png) + " " + q("file://" + path) +
              " 2>/dev/null");
    REQUIRE(fs::exists(png));
    CHECK(fs::file_size(png) > 50000);  // a blank page of that size is a few kB
    CHECK(read_file(png).substr(1, 3) == "PNG");
  }

  // The CLI: --out, and one clear error for a folder of no known kind or none at all.
  const auto r = run_cli("report " + q(dir) + " --out " + q(t.file("cli.html")));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK_THAT(r.output, Contains(t.file("cli.html")));
  CHECK(read_file(t.file("cli.html")).size() > 100000);
  fs::create_directories(t.file("empty"));
  require_clean_failure(run_cli("report " + q(t.file("empty"))), "not an rzoo run, comparison or study folder");
  require_clean_failure(run_cli("report " + q(t.file("nowhere"))), "no such folder");
}

TEST_CASE("report: a study folder, its data escaped", "[report]") {
  TempDir t;
  const fs::path study = t.file("study");
  fs::create_directories(study / "trial-0003");
  // A key and a categorical value that would break out of a <script> or an attribute if they
  // reached the page unescaped.
  const std::string evil_key = "model.x\\\"</script><b>bold</b>";
  const std::string json = R"({"method": "random", "metric": "ndcg@10", "higher_is_better": true,
  "keys": ["train.lr", "model.embedding_size", ")" + evil_key + R"("],
  "trials": [
    {"trial": 1, "run": "trial-0001", "status": "done", "setting": {"train.lr": 0.0001, "model.embedding_size": 32, ")" + evil_key + R"(": "a</script>"}, "value": 0.21, "best_epoch": 4, "epochs": 9, "seconds": 1.5},
    {"trial": 2, "run": "trial-0002", "status": "stopped", "setting": {"train.lr": 0.01, "model.embedding_size": 128, ")" + evil_key + R"(": "b"}, "value": 0.18, "best_epoch": 2, "epochs": 3, "seconds": 0.5},
    {"trial": 3, "run": "trial-0003", "status": "done", "setting": {"train.lr": 0.001, "model.embedding_size": 64, ")" + evil_key + R"(": "a</script>"}, "value": 0.33, "best_epoch": 7, "epochs": 12, "seconds": 3.2},
    {"trial": 4, "run": "trial-0004", "status": "failed", "setting": {"train.lr": 0.005, "model.embedding_size": 64, ")" + evil_key + R"(": "b"}, "value": null}
  ],
  "best": {"trial": 3, "run": "trial-0003", "value": 0.33},
  "test": {"seeds": [1, 2], "runs": ["seed-1", "seed-2"], "metrics": {"ndcg@10": {"mean": 0.3, "sd": 0.01, "values": [0.29, 0.31]}}}})";
  std::ofstream(study / "study.json") << json;
  write_history(study / "trial-0003", 12);
  if (!require_chartjs(study.string())) return;

  const std::string path = write_report(study.string());
  const std::string html = read_file(path);
  require_self_contained(html);
  CHECK_THAT(html, !Contains("</script><b>"));
  CHECK_THAT(html, !Contains("a</script>"));
  CHECK_THAT(html, Contains("\"logarithmic\""));  // train.lr spans two decades
  CHECK_THAT(html, Contains("ndcg@10 against model.embedding_size"));
  CHECK_THAT(html, Contains("Trial history"));
  CHECK_THAT(html, Contains("best so far"));
  CHECK_THAT(html, Contains("validation ndcg per epoch, trial-0003"));
  CHECK_THAT(html, !Contains("validation hr per epoch"));  // only the study metric's family
  CHECK_THAT(html, Contains("Test results of the best setting (seeds 1, 2)"));
  // Three hyperparameters, the trial history, the best trial's curve.
  const std::string dom = require_rendered(path, 5, t);
  if (!dom.empty()) {
    // Drawn as text: the markup in the key shows as characters, never as an element.
    CHECK_THAT(dom, Contains("&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"));
    CHECK_THAT(dom, !Contains("<b>bold</b>"));
    CHECK_THAT(dom, Contains("trial-0004"));
  }

  // Without test results nor the best trial's history: notes, fewer charts, no error.
  fs::remove(study / "trial-0003" / "history.csv");
  Json j = Json::parse(json);
  j.erase("test");
  std::ofstream(study / "study.json", std::ios::trunc) << j.dump();
  const std::string bare = read_file(write_report(study.string()));
  CHECK_THAT(bare, Contains("no history.csv in trial-0003"));
  CHECK_THAT(bare, Contains("no test results"));
  require_rendered(path, 4, t);
}

TEST_CASE("report: malformed inputs are errors naming the file", "[report]") {
  TempDir t;
  const fs::path run = t.file("run");
  fs::create_directories(run);
  if (!require_chartjs(run.string())) return;
  std::ofstream(run / "config.yaml") << "model: {name: bpr}\n";
  std::ofstream(run / "history.csv") << "epoch,loss,seconds,lr,valid_ndcg@10\n1,0.5,0.1,0.01,0.2\n2,0.4,0.1\n";
  CHECK_THROWS_WITH(write_report(run.string()), Contains("history.csv:3: 3 cells where the header has 5"));
  std::ofstream(run / "history.csv", std::ios::trunc) << "epoch,loss\n1,abc\n";
  CHECK_THROWS_WITH(write_report(run.string()), Contains("history.csv:2: 'abc' in column 'loss' is not a number"));
  std::ofstream(run / "study.json") << R"({"trials": 3})";
  CHECK_THROWS_WITH(write_report(run.string()), Contains("study.json: expected an object with a 'trials' list"));
  fs::remove(run / "study.json");
  std::ofstream(run / "compare.json") << "[{\"model\": 1}]";
  CHECK_THROWS_WITH(write_report(run.string()), Contains("compare.json: entry 0 has no 'model' name"));
}
