// rzoo tune: the search space and its draws, bad inputs, a whole study through the CLI, and a
// study killed with SIGKILL mid-trial that ends, once rerun, with the files of an uninterrupted one.
#include "helpers.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/json.h"
#include "trainers/report.h"
#include "trainers/tune.h"

using namespace rzoo;
using namespace rzoo::test;
namespace fs = std::filesystem;

extern char** environ;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

Config with_space(const std::string& space_yaml) {
  ConfigSources s;
  s.config_dir = config_dir();
  s.experiment = parse_layer("model: bpr\ndataset: synthetic\nsearch:\n  space: " + space_yaml + "\n", "t.yaml");
  return resolve_config(s);
}

std::string value_of(const std::string& assignment) { return assignment.substr(assignment.find('=') + 1); }

// trials.csv without its `seconds` column (wall time differs between any two runs).
std::string trials_without_seconds(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string out, line;
  int col = -1;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (col < 0)
      for (size_t i = 0; i < f.size(); ++i)
        if (f[i] == "seconds") col = static_cast<int>(i);
    for (size_t i = 0; i < f.size(); ++i)
      if (static_cast<int>(i) != col) out += f[i] + ",";
    out += "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("tune: the grid is every combination, first key slowest", "[tune]") {
  const Config c = with_space("{train.lr: [0.001, 0.01], model.embedding_size: [8, 16, 32]}");
  const auto space = parse_space(c);
  REQUIRE(space.size() == 2);
  CHECK(space[0].key == "train.lr");
  const auto g = draw_settings(space, "grid", 1, 1);
  REQUIRE(g.size() == 6);
  CHECK(g[0] == std::vector<std::string>{"train.lr=0.001", "model.embedding_size=8"});
  CHECK(g[1] == std::vector<std::string>{"train.lr=0.001", "model.embedding_size=16"});
  CHECK(g[5] == std::vector<std::string>{"train.lr=0.01", "model.embedding_size=32"});
  // A nested key (as `--set search.space.train.lr=[...]` makes it) reads the same.
  const auto nested = parse_space(with_space("{train: {lr: [0.1, 0.2]}}"));
  REQUIRE(nested.size() == 1);
  CHECK(nested[0].key == "train.lr");
  CHECK(nested[0].values == std::vector<std::string>{"0.1", "0.2"});
}

TEST_CASE("tune: random draws stay in their ranges, repeat with the seed and differ with another", "[tune]") {
  const auto space = parse_space(with_space(
      "{train.lr: {loguniform: [1.0e-4, 1.0e-2]}, train.weight_decay: {uniform: [0, 0.5]}, model.embedding_size: {int: [4, 9]}, "
      "train.batch_size: {logint: [16, 1024]}, train.optimizer: [adam, sgd]}"));
  REQUIRE(space.size() == 5);
  const auto a = draw_settings(space, "random", 400, 7);
  REQUIRE(a.size() == 400);
  CHECK(draw_settings(space, "random", 400, 7) == a);
  CHECK(draw_settings(space, "random", 400, 8) != a);
  std::set<std::string> sizes, optim;
  double lr_min = 1, lr_max = 0, log_mean = 0;
  for (const auto& s : a) {
    const double lr = std::stod(value_of(s[0]));
    lr_min = std::min(lr_min, lr);
    lr_max = std::max(lr_max, lr);
    log_mean += std::log10(lr) / static_cast<double>(a.size());
    const double wd = std::stod(value_of(s[1]));
    CHECK(wd >= 0);
    CHECK(wd <= 0.5);
    const int e = std::stoi(value_of(s[2]));
    CHECK(e >= 4);
    CHECK(e <= 9);
    sizes.insert(value_of(s[2]));
    const int b = std::stoi(value_of(s[3]));
    CHECK(b >= 16);
    CHECK(b <= 1024);
    optim.insert(value_of(s[4]));
  }
  CHECK(lr_min >= 1e-4);
  CHECK(lr_max <= 1e-2);
  CHECK(log_mean == Approx(-3).margin(0.15));  // uniform on the log scale: mean exponent -3
  CHECK(sizes.size() == 6);                      // every integer of [4, 9] drawn, both ends included
  CHECK(optim == std::set<std::string>{"adam", "sgd"});
  // A small list-only space with trials >= its size is searched whole, in grid order.
  const auto small = parse_space(with_space("{train.lr: [0.1, 0.2], train.epochs: [1, 2]}"));
  CHECK(draw_settings(small, "random", 10, 1) == draw_settings(small, "grid", 1, 1));
}

TEST_CASE("tune: bad search inputs fail before anything is written, naming the key", "[tune]") {
  CHECK(parse_space(with_space("{}")).empty());  // the study refuses it (below, through the CLI)
  CHECK_THROWS_WITH(parse_space(with_space("{train.lr: {uniform: [0.1, 0.01]}}")),
                    Catch::Contains("search.space.train.lr") && Catch::Contains("low 0.1 is above high 0.01"));
  CHECK_THROWS_WITH(parse_space(with_space("{train.lr: {loguniform: [0, 0.01]}}")),
                    Catch::Contains("search.space.train.lr") && Catch::Contains("must be > 0"));
  CHECK_THROWS_WITH(parse_space(with_space("{train.lr: []}")), Catch::Contains("an empty list"));
  CHECK_THROWS_WITH(parse_space(with_space("{train.lr: 0.1}")), Catch::Contains("expected a list of values or a range"));
  CHECK_THROWS_WITH(parse_space(with_space("{model.embedding_size: {int: [1.5, 4]}}")), Catch::Contains("integers"));
  CHECK_THROWS_WITH(draw_settings(parse_space(with_space("{train.lr: {uniform: [0, 1]}}")), "grid", 1, 1),
                    Catch::Contains("method grid takes lists"));

  // Through the CLI: each a clear error, exit 1, and an earlier study left as it was.
  TempDir t;
  const std::string out = t.file("study");
  const std::string good = t.write("tune.yaml",
                                   "dataset: synthetic\nmodel: {name: bpr, embedding_size: 4}\ntrain: {epochs: 1}\n"
                                   "search: {space: {train.lr: [0.01]}}\n");
  const std::string common = " --config-dir " + q(config_dir()) + " --set threads=1 --quiet --out " + q(out);
  auto r = run_cli("tune " + q(good) + common);
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string trials_before = read_file(out + "/trials.csv");
  REQUIRE_FALSE(trials_before.empty());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--set 'search.space.train.lr={uniform: [0.1, 0.01]}'", "low 0.1 is above high 0.01"},
      {"--set 'search.space.train.lr={loguniform: [-1, 0.01]}'", "must be > 0"},
      {"--set 'search.space.train.bogus=[1, 2]'", "unknown key 'train.bogus'"},
      {"--set 'search.space.train.epochs=[1, two]'", "'train.epochs' must be"},
      {"--set search.method=random --set search.trials=0", "search.trials"},
      {"--set search.method=annealing", "search.method"},
      {"--set train.epochs=2", "made by another config"},
  };
  for (const auto& [sets, expected] : bad) {
    const auto rb = run_cli("tune " + q(good) + common + " " + sets);
    INFO(sets);
    require_clean_failure(rb, expected);
    CHECK(rb.code == 1);
    CHECK(read_file(out + "/trials.csv") == trials_before);
  }
  // An empty space (a later layer cannot empty a map: the experiment file has to say it).
  const std::string empty = t.write("empty.yaml", "dataset: synthetic\nmodel: bpr\nsearch: {space: {}}\n");
  require_clean_failure(run_cli("tune " + q(empty) + common), "search.space: empty");
  CHECK(read_file(out + "/trials.csv") == trials_before);
  CHECK_FALSE(fs::exists(out + ".old-1"));
  // --force moves the earlier study aside, whole, and starts again.
  r = run_cli("tune " + q(good) + common + " --set train.epochs=2 --force");
  REQUIRE(r.code == 0);
  CHECK(read_file(out + ".old-1/trials.csv") == trials_before);
  CHECK(read_file(out + "/trials.csv") != trials_before);
}

TEST_CASE("tune: a grid study in parallel with seeds writes trials.csv, best.yaml and the test table", "[tune][cli]") {
  TempDir t;
  const std::string exp = t.write(
      "tune-g.yaml",
      "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 4, batch_size: 256}\n"
      "eval: {ks: [10], metrics: [hr, ndcg]}\n"
      "search:\n  method: grid\n  space:\n    train.lr: [0.0001, 0.05]\n    model.embedding_size: [4, 16]\n"
      "  seeds: [2020, 7]\n  jobs: 2\n");
  const std::string out = t.file("study");
  auto r = run_cli("tune " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=2 --out " + q(out));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("trial   4/4 done") != std::string::npos);
  const Json st = json_parse(read_file(out + "/study.json"), "study.json");
  REQUIRE(st["trials"].size() == 4);
  // The best trial is the one with the highest validation value, read back from its own run.
  double best = -1;
  int64_t best_trial = 0;
  for (const auto& tr : st["trials"]) {
    CHECK(tr["status"] == "done");
    const Json m = json_parse(read_file(out + "/" + tr["run"].get<std::string>() + "/metrics.json"), "metrics.json");
    CHECK(tr["value"].get<double>() == m["valid"]["metrics"]["ndcg@10"].get<double>());
    if (tr["value"].get<double>() > best) best = tr["value"].get<double>(), best_trial = tr["trial"].get<int64_t>();
  }
  CHECK(st["best"]["trial"].get<int64_t>() == best_trial);
  CHECK(st["total_epochs"].get<int64_t>() == 16);
  const std::string csv = read_file(out + "/trials.csv");
  CHECK(csv.rfind("trial,status,train.lr,model.embedding_size,ndcg@10,best_epoch,epochs,seconds,run\n", 0) == 0);
  CHECK(st["test"]["runs"].size() == 2);
  CHECK(fs::exists(out + "/seed-7/metrics.json"));
  CHECK(read_file(out + "/test.md").find("| ndcg@10 |") != std::string::npos);
  // The study's report.html comes with it (rendering is checked in [report]).
  if (report_available()) CHECK(read_file(out + "/report.html").find("rzoo-render-status") != std::string::npos);
  // best.yaml is a ready experiment: it trains the chosen setting, and validation gives the same value.
  const std::string best_yaml = read_file(out + "/best.yaml");
  CHECK(best_yaml.find("search") == std::string::npos);
  r = run_cli("train " + q(out + "/best.yaml") + " --config-dir " + q(config_dir()) +
              " --quiet --set threads=1 --set output_dir=" + q(t.file("again")) + " --set run_name=r");
  REQUIRE(r.code == 0);
  const Json again = json_parse(read_file(t.file("again/r/metrics.json")), "metrics.json");
  CHECK(again["valid"]["metrics"]["ndcg@10"].get<double>() == Approx(best).epsilon(1e-9));
}

TEST_CASE("tune: seed runs go side by side when the grid has fewer settings than search.jobs", "[tune][cli]") {
  // A one-setting grid (a chosen setting re-run with seeds) used to run its seeds one at a time.
  TempDir t;
  const std::string exp = t.write(
      "tune-1.yaml",
      "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 2, batch_size: 256}\n"
      "eval: {ks: [10], metrics: [ndcg]}\n"
      "search:\n  method: grid\n  space:\n    train.lr: [0.01]\n  seeds: [1, 2, 3]\n  jobs: 2\n");
  const std::string out = t.file("study");
  auto r = run_cli("tune " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=2 --out " + q(out));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string log = read_file(out + "/tune.log");
  INFO(log);
  CHECK(log.find("1 side by side, 2 threads each") != std::string::npos);                    // the trial: alone
  CHECK(log.find("seeds [1, 2, 3]; 2 side by side, 1 threads each") != std::string::npos);  // the seeds: paired
  CHECK(read_file(out + "/trial-0001/config.yaml").find("threads: 2") != std::string::npos);
  for (const char* s : {"seed-1", "seed-2", "seed-3"}) {
    INFO(s);
    CHECK(read_file(out + "/" + s + "/config.yaml").find("threads: 1") != std::string::npos);
  }
  // Resumed with every seed done, it runs nothing and reports the same table.
  const std::string table = read_file(out + "/test.md");
  r = run_cli("tune " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=2 --out " + q(out));
  REQUIRE(r.code == 0);
  CHECK(read_file(out + "/test.md") == table);
}

TEST_CASE("tune: trials run the program that started the study, even once its file is gone", "[tune][cli]") {
  // Rebuilding rzoo during a study used to start the later trials from the new file, or fail them
  // (exit 127) while the linker was writing it. A copy of rzoo starts the study and is deleted
  // as soon as the study folder appears; the trials after that (and the seed runs) must still run.
  TempDir t;
  const std::string exp = t.write(
      "tune-x.yaml",
      "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 2, batch_size: 256}\n"
      "eval: {ks: [10], metrics: [ndcg]}\n"
      "search:\n  method: grid\n  space:\n    train.lr: [0.01, 0.02, 0.03]\n  seeds: [1]\n  jobs: 1\n");
  const std::string out = t.file("study"), prog = t.file("rzoo-copy");
  fs::copy_file(RZOO_TEST_CLI, prog);
  fs::permissions(prog, fs::perms::owner_all);
  const std::string cmd = q(prog) + " tune " + q(exp) + " --config-dir " + q(config_dir()) +
                          " --set threads=1 --quiet --out " + q(out) + " > " + q(t.file("log")) + " 2>&1 & pid=$!; " +
                          "while [ ! -e " + q(out + "/logs") + " ]; do sleep 0.01; done; rm " + q(prog) + "; wait $pid";
  const auto r = run_shell(cmd);
  INFO(read_file(t.file("log")));
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(prog));
  const Json st = json_parse(read_file(out + "/study.json"), "study.json");
  REQUIRE(st["trials"].size() == 3);
  for (const auto& tr : st["trials"]) CHECK(tr["status"] == "done");
  CHECK(fs::exists(out + "/seed-1/metrics.json"));
}

TEST_CASE("tune: a halving study killed with SIGKILL mid-trial ends, rerun, like an uninterrupted one", "[tune][cli][resume]") {
  TempDir t;
  const std::string exp = t.write(
      "tune-h.yaml",
      "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 9, batch_size: 128, "
      "early_stop: {patience: 0}}\neval: {ks: [10], metrics: [ndcg]}\n"
      "search:\n  method: halving\n  trials: 6\n  eta: 3\n  space:\n    train.lr: {loguniform: [1.0e-4, 0.1]}\n"
      "  jobs: 2\n");
  const std::string common = " --config-dir " + q(config_dir()) + " --set threads=2 --quiet";
  auto r = run_cli("tune " + q(exp) + common + " --out " + q(t.file("full")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const Json full = json_parse(read_file(t.file("full/study.json")), "study.json");
  // Rungs at 1, 3 and 9 epochs: 6 trials, then 2, then 1 (eta 3).
  REQUIRE(full["rungs"].size() == 3);
  CHECK(full["rungs"][0]["members"].size() == 6);
  CHECK(full["rungs"][1]["members"].size() == 2);
  CHECK(full["rungs"][2]["members"].size() == 1);
  CHECK(full["total_epochs"].get<int64_t>() == 6 * 1 + 2 * 2 + 1 * 6);
  int stopped = 0;
  for (const auto& tr : full["trials"]) stopped += tr["status"] == "stopped";
  CHECK(stopped == 5);

  // The same study, killed (SIGKILL: no chance to clean up) once a trial of the second rung
  // has a checkpoint, then run again.
  const std::string part = t.file("part");
  std::vector<std::string> args = {RZOO_TEST_CLI, "tune", exp, "--config-dir", config_dir(), "--set", "threads=2",
                                   "--quiet", "--out", part};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  REQUIRE(posix_spawn(&pid, RZOO_TEST_CLI, nullptr, nullptr, argv.data(), environ) == 0);
  bool killed = false;
  for (int i = 0; i < 3000 && !killed; ++i) {
    if (fs::exists(part + "/rungs.json")) {
      // In rung 2: a promoted trial past its pause point has written a later epoch.
      const Json rungs = json_parse(read_file(part + "/rungs.json"), "rungs.json");
      if (!rungs.empty()) {
        ::kill(pid, SIGKILL);
        killed = true;
      }
    }
    if (!killed) ::usleep(2000);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    WARN("the study ended before the kill; nothing to resume");
    return;
  }
  CHECK(WIFSIGNALED(status));
  CHECK_FALSE(fs::exists(part + "/best.yaml"));
  ::usleep(200000);  // the children die with the study (PR_SET_PDEATHSIG)
  r = run_cli("tune " + q(exp) + common + " --out " + q(part));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(trials_without_seconds(part + "/trials.csv") == trials_without_seconds(t.file("full/trials.csv")));
  const auto body = [](const std::string& p) {  // best.yaml less its comments (they name the folder)
    std::istringstream in(read_file(p));
    std::string out;
    for (std::string l; std::getline(in, l);)
      if (l.rfind("#", 0) != 0) out += l + "\n";
    return out;
  };
  CHECK(body(part + "/best.yaml") == body(t.file("full/best.yaml")));
  CHECK(read_file(part + "/rungs.json") == read_file(t.file("full/rungs.json")));
}

TEST_CASE("tune: halving a closed-form model over search.resource (ials model.epochs), and refused without it", "[tune][cli]") {
  TempDir t;
  const std::string exp = t.write(
      "tune-i.yaml",
      "dataset: synthetic\nmodel: {name: ials, factors: 8, epochs: 9}\neval: {ks: [10], metrics: [ndcg]}\n"
      "search:\n  method: halving\n  trials: 6\n  resource: model.epochs\n  space:\n    model.l2: {loguniform: [1.0e-4, 10]}\n");
  const std::string common = " --config-dir " + q(config_dir()) + " --set threads=1 --quiet";
  auto r = run_cli("tune " + q(exp) + common + " --out " + q(t.file("s")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const Json st = json_parse(read_file(t.file("s/study.json")), "study.json");
  REQUIRE(st["rungs"].size() == 3);  // model.epochs 1, 3, then 9
  CHECK(st["rungs"][1]["members"].size() == 2);
  // Every rung trains afresh with its budget: 6 x 1 + 2 x 3 + 1 x 9 iterations.
  CHECK(st["total_epochs"].get<int64_t>() == 21);
  const int64_t best = st["best"]["trial"].get<int64_t>();
  CHECK(st["rungs"][2]["members"][0].get<int64_t>() == best);
  char name[32];
  std::snprintf(name, sizeof name, "s/trial-%04d-r2", static_cast<int>(best));
  CHECK(read_file(t.file(name) + "/config.yaml").find("epochs: 3") != std::string::npos);
  std::snprintf(name, sizeof name, "s/trial-%04d", static_cast<int>(best));
  CHECK(read_file(t.file(name) + "/config.yaml").find("epochs: 9") != std::string::npos);
  // Halving over train.epochs cannot stop a closed-form fit early: a clear error.
  r = run_cli("tune " + q(exp) + common + " --out " + q(t.file("s2")) + " --set search.resource=");
  require_clean_failure(r, "fits in one go (closed form)");
}

TEST_CASE("tune: {seed} in a string value is the run's seed, and search.* keeps it for each run", "[tune]") {
  ConfigSources s;
  s.config_dir = config_dir();
  s.experiment = parse_layer(
      "model: bpr\ndataset: synthetic\nseed: 7\ntrain:\n  init_from: /runs/gmf/seed-{seed}\n"
      "search: {space: {train.lr: [0.1]}, refit_sets: ['train.init_from=/runs/x/refit-{seed}']}\n",
      "t.yaml");
  s.sets = {"dataset.items.path=/data/{seed}/items-{seed}.csv"};
  const Config c = resolve_config(s);
  CHECK(c.get_string("train.init_from") == "/runs/gmf/seed-7");
  CHECK(c.get_string("dataset.items.path") == "/data/7/items-7.csv");
  CHECK(c.get_string_list("search.refit_sets") == std::vector<std::string>{"train.init_from=/runs/x/refit-{seed}"});
  // A saved config reads back as written (already substituted).
  TempDir t;
  const std::string saved = t.write("config.yaml", c.dump(true));
  CHECK(load_resolved_config(saved).get_string("train.init_from") == "/runs/gmf/seed-7");
}

TEST_CASE("tune: refit with {seed} templates, also_eval, and seed-S for every seed", "[tune][cli]") {
  TempDir t;
  const std::string out = t.file("study");
  // Each refit run warm-starts from its own seed's validated run (seed-S: for the study's own seed
  // a link to the best trial), and every final run is also evaluated with eval.ks=[5].
  const std::string exp = t.write(
      "tune-r.yaml",
      "dataset: {name: synthetic, split: {method: kfold, valid: random}}\nmodel: {name: bpr, embedding_size: 8}\n"
      "train: {epochs: 3, batch_size: 256}\neval: {ks: [10], metrics: [hr, ndcg]}\n"
      "search:\n  space: {train.lr: [0.0001, 0.05]}\n  seeds: [2020, 7]\n  refit: true\n"
      "  refit_sets: ['dataset.split.valid=none', 'train.init_from=" + out + "/seed-{seed}']\n"
      "  also_eval: ['eval.ks=[5]']\n");
  const std::string cmd = "tune " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet --out " + q(out);
  auto r = run_cli(cmd);
  INFO(r.output);
  REQUIRE(r.code == 0);
  const Json st = json_parse(read_file(out + "/study.json"), "study.json");
  const std::string best = st["best"]["run"].get<std::string>();
  REQUIRE(fs::is_symlink(out + "/seed-2020"));
  CHECK(fs::read_symlink(out + "/seed-2020").string() == best);
  CHECK(fs::exists(out + "/seed-7/metrics.json"));
  for (const std::string seed : {"2020", "7"}) {
    INFO(seed);
    const Config refit = load_resolved_config(out + "/refit-" + seed + "/config.yaml");
    CHECK(refit.get_string("train.init_from") == out + "/seed-" + seed);
    CHECK(refit.get_int("seed") == std::stoll(seed));
    // The validated run's best epoch is the refit's epoch count.
    const Json v = json_parse(read_file(out + "/seed-" + seed + "/metrics.json"), "metrics.json");
    CHECK(refit.get_int("train.epochs") == std::max<int64_t>(1, v["best_epoch"].get<int64_t>()));
  }
  // The tables: the refit runs, the validated runs, each also with eval.ks=[5], read from the runs' files.
  const Json& test = st["test"];
  CHECK(test["runs"] == Json::array({"refit-2020", "refit-7"}));
  CHECK(test["validated_runs"] == Json::array({best, "seed-7"}));
  const Json e7 = json_parse(read_file(out + "/refit-7/eval-ks--5-/eval.json"), "eval.json");
  CHECK(test["also_eval"]["folder"] == "eval-ks--5-");
  CHECK(test["also_eval"]["metrics"]["ndcg@5"]["values"][1].get<double>() == e7["test"]["metrics"]["ndcg@5"].get<double>());
  const Json v7 = json_parse(read_file(out + "/seed-7/metrics.json"), "metrics.json");
  CHECK(test["validated_metrics"]["ndcg@10"]["values"][1].get<double>() == v7["test"]["metrics"]["ndcg@10"].get<double>());
  CHECK(test["also_eval"]["validated_metrics"]["hr@5"]["values"].size() == 2);
  const std::string md = read_file(out + "/test.md");
  CHECK(md.find("## As validated, before the refit") != std::string::npos);
  CHECK(md.find("| ndcg@5 |") != std::string::npos);
  // A rerun finds everything done and changes nothing; also_eval is not part of the study's identity.
  r = run_cli(cmd + " --set 'search.also_eval=[]'");
  REQUIRE(r.code == 0);
  CHECK(json_parse(read_file(out + "/study.json"), "study.json")["test"].count("also_eval") == 0);
  // A bad also_eval entry fails before any trial.
  require_clean_failure(run_cli(cmd + " --set 'search.also_eval=[train.lr=1]'"), "search.also_eval");
  require_clean_failure(run_cli(cmd + " --set 'search.also_eval=[eval.bogus=1]'"), "eval.bogus");
}

TEST_CASE("tune: a study made before a key was added continues, one whose own settings differ is refused", "[tune][cli]") {
  TempDir t;
  const std::string out = t.file("study");
  const std::string exp = t.write("tune.yaml",
                                  "dataset: synthetic\nmodel: {name: bpr, embedding_size: 4}\ntrain: {epochs: 1}\n"
                                  "search: {space: {train.lr: [0.01]}}\n");
  const std::string cmd = "tune " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet --out " + q(out);
  auto r = run_cli(cmd);
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string id_file = out + "/study-config.yaml", identity = read_file(id_file);
  const std::string trials = read_file(out + "/trials.csv");
  auto without_line = [](std::string text, const std::string& line) {
    const auto at = text.find(line);
    REQUIRE(at != std::string::npos);
    REQUIRE(text.find(line, at + 1) == std::string::npos);  // the one line meant
    return text.erase(at, line.size());
  };
  // As an older rzoo wrote it: no search.also_eval (at its default here). The rerun continues the
  // study (nothing retrained) and brings study-config.yaml up to date.
  t.write("study/study-config.yaml", without_line(identity, "  also_eval: []\n"));
  r = run_cli(cmd);
  REQUIRE(r.code == 0);
  CHECK(read_file(out + "/trials.csv") == trials);
  CHECK(read_file(id_file) == identity);
  // A key the experiment sets is part of what the study is: missing, it is another study.
  t.write("study/study-config.yaml", without_line(identity, "  epochs: 1\n"));
  require_clean_failure(run_cli(cmd), "made by another config");
  CHECK(read_file(out + "/trials.csv") == trials);
}

TEST_CASE("tune: search.reuse copies the finished runs of the same configuration from another study, trains the rest", "[tune][cli]") {
  TempDir t;
  const std::string a = t.file("a"), b = t.file("b");
  const std::string exp = t.write("tune-reuse.yaml",
                                  "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 2, batch_size: 256}\n"
                                  "eval: {ks: [10], metrics: [ndcg]}\nsearch:\n  seeds: [2020, 7]\n");
  const std::string cmd = "tune " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet";
  // The earlier stage: one setting, its seed runs.
  auto r = run_cli(cmd + " --set threads=1 --set 'search.space.train.lr=[0.05]' --out " + q(a));
  INFO(r.output);
  REQUIRE(r.code == 0);
  // The next one: that setting again beside another, on other threads (which change no result).
  const std::string cmd_b = cmd + " --set threads=2 --set 'search.space.train.lr=[0.05, 0.0001]' --set 'search.reuse=[" + a +
                            "]' --out " + q(b);
  r = run_cli(cmd_b);
  REQUIRE(r.code == 0);
  const Json st = json_parse(read_file(b + "/study.json"), "study.json");
  REQUIRE(st["best"]["trial"] == 1);  // lr 0.0001 for 2 epochs stays near the random start
  const std::string from = fs::canonical(a + "/trial-0001").string();
  // Trial 1 is A's trial, copied: the same files, not trained here (no log of its own).
  CHECK(json_parse(read_file(b + "/trial-0001/reused.json"), "reused.json")["from"] == from);
  CHECK(st["trials"][0]["reused_from"] == from);
  CHECK(read_file(b + "/trial-0001/metrics.json") == read_file(a + "/trial-0001/metrics.json"));
  CHECK(read_file(b + "/trial-0001/best.pt") == read_file(a + "/trial-0001/best.pt"));
  CHECK_FALSE(fs::exists(b + "/logs/trial-0001.log"));
  // Trial 2's configuration is new: trained.
  CHECK_FALSE(fs::exists(b + "/trial-0002/reused.json"));
  CHECK(st["trials"][1].count("reused_from") == 0);
  CHECK(fs::exists(b + "/logs/trial-0002.log"));
  CHECK(read_file(b + "/trial-0002/config.yaml").find("threads: 2") != std::string::npos);
  // The seed run of the same setting is A's too; the test table is A's.
  CHECK(json_parse(read_file(b + "/seed-7/reused.json"), "reused.json")["from"] == fs::canonical(a + "/seed-7").string());
  CHECK(read_file(b + "/test.md") == read_file(a + "/test.md"));
  const std::string log = read_file(b + "/tune.log");
  CHECK(log.find("search.reuse: 2 finished runs") != std::string::npos);
  CHECK(log.find("trial   1/2 reused") != std::string::npos);
  CHECK(log.find("continuing") == std::string::npos);  // a new study: nothing of its own was done
  if (report_available()) CHECK(read_file(b + "/report.html").find("done (reused from " + from + ")") != std::string::npos);
  // Rerun: everything done, nothing changes; search.reuse is not part of the study's identity.
  const std::string trials = read_file(b + "/trials.csv");
  r = run_cli(cmd + " --set threads=2 --set 'search.space.train.lr=[0.05, 0.0001]' --out " + q(b));
  REQUIRE(r.code == 0);
  CHECK(read_file(b + "/trials.csv") == trials);
  // Another seed is another configuration: trained, not copied.
  const std::string c = t.file("c");
  r = run_cli(cmd + " --set threads=1 --set seed=3 --set 'search.seeds=[]' --set 'search.space.train.lr=[0.05]' --set "
              "'search.reuse=[" + a + "]' --out " + q(c));
  REQUIRE(r.code == 0);
  CHECK_FALSE(fs::exists(c + "/trial-0001/reused.json"));
  // A folder that is not there, or neither a run nor a study, fails before anything is written.
  const std::string d = t.file("d");
  require_clean_failure(run_cli(cmd + " --set 'search.space.train.lr=[0.05]' --set 'search.reuse=[" + t.file("nowhere") +
                                "]' --out " + q(d)),
                        "search.reuse");
  require_clean_failure(run_cli(cmd + " --set 'search.space.train.lr=[0.05]' --set 'search.reuse=[" + b + "/logs]' --out " + q(d)),
                        "neither a finished run");
  CHECK_FALSE(fs::exists(d));
}

TEST_CASE("tune: search.base fixes an earlier study's choices over --set, tunes further keys and reuses its runs", "[tune][cli]") {
  TempDir t;
  const std::string a = t.file("a"), b = t.file("b"), c = t.file("c");
  const std::string exp = t.write("tune-base.yaml",
                                  "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 2, batch_size: 256}\n"
                                  "eval: {ks: [10], metrics: [ndcg]}\n");
  const std::string cmd = "tune " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1";
  auto r = run_cli(cmd + " --set 'search.space.train.lr=[0.05, 0.0001]' --out " + q(a));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const Json sa = json_parse(read_file(a + "/study.json"), "study.json");
  REQUIRE(sa["best"]["trial"] == 1);  // lr 0.0001 for 2 epochs stays near the random start
  CHECK(sa["chosen"] == Json{{"train.lr", "0.05"}});
  // Stage 2: the dimension, from A's choice; A's lr wins over this command's --set.
  r = run_cli(cmd + " --set train.lr=0.001 --set 'search.space.model.embedding_size=[8, 4]' --set search.base=" + q(a) +
              " --out " + q(b));
  REQUIRE(r.code == 0);
  const Json sb = json_parse(read_file(b + "/study.json"), "study.json");
  for (const char* run : {"trial-0001", "trial-0002"}) {
    INFO(run);
    CHECK(load_resolved_config(b + "/" + run + "/config.yaml").get_double("train.lr") == Approx(0.05));
  }
  CHECK(load_resolved_config(b + "/trial-0002/config.yaml").get_int("model.embedding_size") == 4);
  // Its first trial is A's chosen run (the same configuration): copied, not trained.
  CHECK(json_parse(read_file(b + "/trial-0001/reused.json"), "reused.json")["from"] == fs::canonical(a + "/trial-0001").string());
  CHECK_FALSE(fs::exists(b + "/logs/trial-0001.log"));
  const std::string dim_b = load_resolved_config(b + "/" + sb["best"]["run"].get<std::string>() + "/config.yaml").get_string("model.embedding_size");
  CHECK(sb["chosen"] == Json{{"train.lr", "0.05"}, {"model.embedding_size", dim_b}});
  CHECK(sb["base"] == a);
  CHECK(read_file(b + "/tune.log").find("search.base " + a + ": its choices fixed: train.lr=0.05") != std::string::npos);
  // best.yaml trains the whole chosen setting on its own.
  const YAML::Node best = YAML::Load(read_file(b + "/best.yaml"));
  CHECK(best["train"]["lr"].as<double>() == Approx(0.05));
  CHECK(best["model"]["embedding_size"].as<std::string>() == dim_b);
  // Rerun: the same study, nothing trained again.
  const std::string trials = read_file(b + "/trials.csv");
  r = run_cli(cmd + " --set train.lr=0.001 --set 'search.space.model.embedding_size=[8, 4]' --set search.base=" + q(a) +
              " --out " + q(b));
  REQUIRE(r.code == 0);
  CHECK(read_file(b + "/trials.csv") == trials);
  // Stage 3 from B carries both choices; a key tuned again takes this study's values.
  r = run_cli(cmd + " --set 'search.space.train.lr=[0.05, 0.02]' --set search.base=" + q(b) + " --out " + q(c));
  REQUIRE(r.code == 0);
  const Json sc = json_parse(read_file(c + "/study.json"), "study.json");
  CHECK(load_resolved_config(c + "/trial-0002/config.yaml").get_double("train.lr") == Approx(0.02));
  CHECK(load_resolved_config(c + "/trial-0002/config.yaml").get_string("model.embedding_size") == dim_b);
  CHECK(fs::exists(c + "/trial-0001/reused.json"));
  CHECK(sc["chosen"]["model.embedding_size"] == dim_b);
  CHECK(sc["chosen"].size() == 2);
  // A space of `seed` alone (a one-setting study, as bench/tune_lib.sh makes it) chooses nothing.
  const std::string p = t.file("p");
  r = run_cli(cmd + " --set 'search.space.seed=[2020]' --out " + q(p));
  REQUIRE(r.code == 0);
  CHECK(json_parse(read_file(p + "/study.json"), "study.json")["chosen"] == Json::object());
  // Bad bases fail before anything is written, naming search.base.
  const std::string d = t.file("d");
  require_clean_failure(run_cli(cmd + " --set 'search.space.train.lr=[0.05]' --set search.base=" + q(t.file("nowhere")) + " --out " + q(d)),
                        "search.base");
  require_clean_failure(run_cli(cmd + " --set 'search.space.train.lr=[0.05]' --set search.base=" + q(a + "/trial-0001") + " --out " + q(d)),
                        "not a study folder");
  const std::string c_trials = read_file(c + "/trials.csv");
  require_clean_failure(run_cli(cmd + " --set 'search.space.train.lr=[0.05, 0.02]' --set search.base=" + q(c) + " --out " + q(c)),
                        "this study's own folder");
  CHECK(read_file(c + "/trials.csv") == c_trials);
  CHECK_FALSE(fs::exists(d));
}
