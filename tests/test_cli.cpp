// The real `rzoo` binary: every bad input gives one clear message and a non-zero exit.
#include "helpers.h"

#include "core/json.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>

#include <sstream>

using namespace rzoo::test;

namespace {
std::string q(const std::string& s) { return "'" + s + "'"; }
std::string common(const TempDir& t) {
  return " --config-dir " + q(config_dir()) + " --set threads=1 --set output_dir=" + q(t.file("runs")) + " ";
}
// Paths of run folders under t/runs.
std::vector<fs::path> runs(const TempDir& t) {
  std::vector<fs::path> out;
  if (fs::exists(t.file("runs")))
    for (const auto& e : fs::directory_iterator(t.file("runs"))) out.push_back(e.path());
  return out;
}
}  // namespace

TEST_CASE("cli: help, models, usage errors", "[cli]") {
  auto r = run_cli("--help");
  CHECK(r.code == 0);
  CHECK(r.output.find("usage: rzoo") != std::string::npos);
  r = run_cli("models");
  CHECK(r.code == 0);
  CHECK(r.output.find("bpr") != std::string::npos);
  CHECK(r.output.find("pop") != std::string::npos);
  CHECK(r.output.find("Rendle") != std::string::npos);
  for (const char* c : {"train", "evaluate", "compare", "models"}) {
    r = run_cli(std::string(c) + " --help");
    CHECK(r.code == 0);
    CHECK(r.output.find(std::string("usage: rzoo ") + c) != std::string::npos);
  }
  CHECK(run_cli("").code == 2);
  r = run_cli("frobnicate");
  CHECK(r.code == 2);
  CHECK(r.output.find("unknown command 'frobnicate'") != std::string::npos);
  CHECK(run_cli("train --bogus x.yaml").code == 2);
  r = run_cli("--version");
  CHECK(r.code == 0);
  // The version names the commit the build came from: a short hash (with "-dirty" when tracked
  // files differed from it), or "unknown" outside a git checkout.
  CHECK(r.output.rfind(std::string("rzoo ") + rzoo::version() + " (git " + rzoo::git_id() + "; LibTorch ", 0) == 0);
  const std::string id = rzoo::git_id();
  CHECK((id == "unknown" || std::regex_match(id, std::regex("[0-9a-f]{7,}(-dirty)?"))));
  CHECK(rzoo::build_string() == std::string(rzoo::version()) + " (git " + id + ")");
}

// cmake/git_id.cmake, run as the build runs it, on a repository of its own: the short commit,
// "-dirty" once a tracked file changes (not for an untracked one), "unknown" outside git; the
// header is rewritten only when its text changes (what keeps version.cpp from recompiling).
TEST_CASE("build id: cmake/git_id.cmake names the commit, a dirty tree, or unknown", "[cli]") {
  if (run_shell("git --version").code != 0) {
    WARN("git is not installed: cmake/git_id.cmake's build id was not tested");
    return;
  }
  TempDir t;
  const std::string repo = t.file("repo"), header = t.file("id.h");
  fs::create_directories(repo);
  const auto id_of = [&](const std::string& dir) {
    // GIT_CEILING_DIRECTORIES: git never looks above the test's folder (were it inside a checkout).
    const auto r = run_shell("GIT_CEILING_DIRECTORIES=" + q(t.path.string()) + " cmake -DSRC=" + q(dir) + " -DOUT=" + q(header) + " -P " + q(RZOO_TEST_SOURCE_DIR "/cmake/git_id.cmake"));
    REQUIRE(r.code == 0);
    std::smatch m;
    const std::string text = read_file(header);
    REQUIRE(std::regex_search(text, m, std::regex("#define RZOO_GIT_ID \"([^\"]*)\"")));
    return m[1].str();
  };
  CHECK(id_of(repo) == "unknown");
  const std::string git = "git -C " + q(repo) + " -c user.name=t -c user.email=t@t ";
  t.write("repo/a.txt", "one\n");
  REQUIRE(run_shell(git + "init -q && " + git + "add a.txt && " + git + "commit -q -m one").code == 0);
  const auto head = run_shell(git + "rev-parse --short=7 HEAD");
  REQUIRE(head.code == 0);
  const std::string hash = head.output.substr(0, head.output.find_first_of("\r\n"));
  REQUIRE(hash.size() >= 7);
  CHECK(id_of(repo) == hash);
  const auto stamp = fs::last_write_time(header);
  CHECK(id_of(repo) == hash);
  CHECK(fs::last_write_time(header) == stamp);  // same text: the file is not rewritten
  t.write("repo/new.txt", "untracked\n");
  CHECK(id_of(repo) == hash);
  t.write("repo/a.txt", "two\n");
  CHECK(id_of(repo) == hash + "-dirty");
}

TEST_CASE("cli: train, evaluate and resume on synthetic data", "[cli]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 3}\n");
  auto r = run_cli("train " + q(exp) + common(t));
  INFO(r.output);
  REQUIRE(r.code == 0);
  // By default only the keys the experiment and --set chose are printed, each with its origin,
  // and a run starts within 30 lines.
  CHECK(r.output.find("resolved config") == std::string::npos);
  CHECK(r.output.find("config: the ") != std::string::npos);
  CHECK(r.output.find("  train.epochs: 3  # " + exp + ":3:17") != std::string::npos);
  CHECK(r.output.find("  model.name: bpr  # " + exp + ":2:8") != std::string::npos);
  CHECK(r.output.find("batch_size") == std::string::npos);  // a default, not printed
  CHECK(r.output.find("epoch    3/3") != std::string::npos);
  {
    const size_t first_epoch = r.output.find("epoch    1/3");
    REQUIRE(first_epoch != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.begin() + static_cast<std::ptrdiff_t>(first_epoch), '\n') <= 30);
  }
  // --show-config prints all of it; --quiet prints the results (the test table) and nothing else.
  const auto shown = run_cli("train " + q(exp) + common(t) + " --show-config --set run_name=shown --set output_dir=" + q(t.file("other")));
  CHECK(shown.output.find("resolved config") != std::string::npos);
  CHECK(shown.output.find("batch_size: ") != std::string::npos);
  const auto quiet = run_cli("train " + q(exp) + common(t) + " --quiet --set run_name=quiet --set output_dir=" + q(t.file("other")));
  REQUIRE(quiet.code == 0);
  CHECK(quiet.output.rfind("test (", 0) == 0);
  CHECK(quiet.output.find("@10") != std::string::npos);
  CHECK(quiet.output.find("epoch ") == std::string::npos);
  const auto dirs = runs(t);
  REQUIRE(dirs.size() == 1);
  const fs::path run = dirs[0];
  for (const char* f : {"config.yaml", "train.log", "last.pt", "best.pt", "metrics.json", "users.txt", "items.txt"})
    CHECK(fs::exists(run / f));
  // The run records the build that trained it.
  CHECK(rzoo::json_parse(read_file((run / "metrics.json").string()), "metrics.json")["rzoo"].get<std::string>() == rzoo::build_string());
  CHECK(read_file((run / "train.log").string()).find("\nrzoo " + rzoo::build_string() + "\n") != std::string::npos);
  r = run_cli("evaluate " + q(run.string()));
  CHECK(r.code == 0);
  CHECK(r.output.find("test (") != std::string::npos);
  // Re-evaluation under other eval settings goes to its own folder, next to the run's results.
  r = run_cli("evaluate " + q(run.string()) + " --set eval.protocol=uni20 --set eval.ks=[5]");
  INFO(r.output);
  CHECK(r.code == 0);
  const fs::path other = run / "eval-protocol-uni20-ks--5-";
  CHECK(fs::exists(other / "eval.json"));
  CHECK(fs::exists(other / "test.users.csv"));
  {
    std::ifstream in(other / "eval.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find("\"uni20\"") != std::string::npos);
    CHECK(text.find("ndcg@5") != std::string::npos);
    CHECK(text.find("ndcg@10") == std::string::npos);
  }
  require_clean_failure(run_cli("evaluate " + q(run.string()) + " --set train.lr=0.1"),
                        "only eval.* settings (and threads, device: where it runs) can change");
  // Where it runs is not an evaluation setting: no folder of its own, with or without eval.* beside it.
  r = run_cli("evaluate " + q(run.string()) + " --set threads=1 --set device=cpu");
  INFO(r.output);
  CHECK(r.code == 0);
  r = run_cli("evaluate " + q(run.string()) + " --set threads=1 --set eval.protocol=uni20 --set eval.ks=[5]");
  CHECK(r.code == 0);
  for (const auto& e : fs::directory_iterator(run))
    CHECK(e.path().filename().string().find("threads") == std::string::npos);
  require_clean_failure(run_cli("evaluate " + q(run.string()) + " --set eval.nosuch=1"), "unknown key 'eval.nosuch'");
  require_clean_failure(run_cli("evaluate " + q(run.string()) + " --set eval.protocol=uniform"), "eval.protocol");
  // Resuming a finished run re-evaluates it without training more; only the thread count may
  // change on resume.
  r = run_cli("train --resume " + q(run.string()) + " --set threads=1");
  CHECK(r.code == 0);
  CHECK(r.output.find("resumed from") != std::string::npos);
  CHECK(r.output.find("| 1 threads") != std::string::npos);
  CHECK(r.output.find("epoch    4") == std::string::npos);
  require_clean_failure(run_cli("train --resume " + q(run.string()) + " --set train.lr=0.1"),
                        "--set train.lr=0.1 refused");
}

TEST_CASE("cli: compare prints one table", "[cli]") {
  TempDir t;
  const std::string exp = t.write("cmp.yaml", "dataset: synthetic\ncompare: [pop, {model: {name: bpr, embedding_size: 8}, train: {epochs: 2}}]\n");
  const auto r = run_cli("compare " + q(exp) + common(t));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("model    K") != std::string::npos);
  CHECK(r.output.find("Against the baseline pop") != std::string::npos);
  CHECK(r.output.find("\npop ") != std::string::npos);
  CHECK(r.output.find("\nbpr ") != std::string::npos);
  REQUIRE(runs(t).size() == 1);
  CHECK(fs::exists(runs(t)[0] / "compare.md"));
  CHECK(fs::exists(runs(t)[0] / "compare.json"));
  CHECK(fs::exists(runs(t)[0] / "compare.csv"));
  CHECK(fs::exists(runs(t)[0] / "compare.tex"));
  CHECK(fs::exists(runs(t)[0] / "report.html"));  // written by compare itself (trainers/report.h)
  CHECK(fs::exists(runs(t)[0] / "bpr" / "test.users.csv"));
  // Entries evaluated differently would not be paired: refused.
  const std::string bad = t.write("bad.yaml", "dataset: synthetic\ncompare: [pop, {model: bpr, eval: {protocol: uni50}}]\n");
  require_clean_failure(run_cli("compare " + q(bad) + common(t)), "compare[1] changes eval settings");
  // Entries share the data and split; the fields a feature model reads may differ.
  const std::string data = t.write("data.yaml", "dataset: synthetic\ncompare: [pop, {model: bpr, dataset: {synthetic: {seed: 2}}}]\n");
  require_clean_failure(run_cli("compare " + q(data) + common(t)), "compare[1] changes dataset settings");
  const std::string fields = t.write("fields.yaml", "dataset: synthetic\ntrain: {epochs: 1}\ncompare: [fm, {model: fm, dataset: {fields: [user:history], history_max: 5}}]\n");
  const auto f = run_cli("compare " + q(fields) + common(t));
  INFO(f.output);
  CHECK(f.code == 0);
  CHECK(f.output.find("field: user:history history") != std::string::npos);
  CHECK(f.output.find("\nfm-2 ") != std::string::npos);
}

TEST_CASE("cli: bad inputs give one clear error", "[cli][errors]") {
  TempDir t;
  SECTION("missing config file") {
    require_clean_failure(run_cli("train " + q(t.file("nope.yaml")) + common(t)), "nope.yaml: cannot open config file");
  }
  SECTION("unknown key") {
    const auto exp = t.write("e.yaml", "model: bpr\ntrain:\n  epoch: 3\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t)), exp + ":3:3: unknown key 'train.epoch'");
  }
  SECTION("wrong type") {
    const auto exp = t.write("e.yaml", "model: bpr\ntrain:\n  epochs: many\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t)), "'train.epochs' must be an integer");
  }
  SECTION("unknown model") {
    const auto exp = t.write("e.yaml", "model: nosuch\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t)), "unknown model 'nosuch'");
  }
  SECTION("missing data file") {
    const auto exp = t.write("e.yaml", "model: pop\ndataset: {format: csv, path: no-such-ratings.csv}\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t)), "no-such-ratings.csv: ratings file not found");
  }
  SECTION("malformed data line") {
    const auto data = t.write("r.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n1,2,4,2\n2,1,x,3\n");
    const auto exp = t.write("e.yaml", "model: pop\ndataset: {format: csv, columns: {user: userId, item: movieId, rating: rating}}\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t) + "--set dataset.path=" + q(data)),
                          "r.csv:4:5: rating 'x' is not a finite number");
  }
  SECTION("empty dataset after filtering") {
    const auto exp = t.write("e.yaml", "model: pop\ndataset: {threshold: 6}\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t)), "no interactions left after cleaning");
  }
  SECTION("bad --set") {
    const auto exp = t.write("e.yaml", "model: pop\n");
    require_clean_failure(run_cli("train " + q(exp) + common(t) + "--set nokey"), "expected KEY=VALUE");
  }
  SECTION("resume from a missing run folder or checkpoint") {
    require_clean_failure(run_cli("train --resume " + q(t.file("nothing"))), "no such run folder");
    const auto exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 1}\n");
    REQUIRE(run_cli("train " + q(exp) + common(t)).code == 0);
    const fs::path run = runs(t).at(0);
    fs::remove(run / "last.pt");
    require_clean_failure(run_cli("train --resume " + q(run.string())), "last.pt: checkpoint not found");
  }
  SECTION("resume from a corrupt checkpoint") {
    const auto exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 1}\n");
    REQUIRE(run_cli("train " + q(exp) + common(t)).code == 0);
    const fs::path run = runs(t).at(0);
    std::ofstream(run / "last.pt", std::ios::binary | std::ios::trunc) << "garbage";
    require_clean_failure(run_cli("train --resume " + q(run.string())), "last.pt: checkpoint is corrupt");
  }
  SECTION("evaluate a folder that is not a run") {
    require_clean_failure(run_cli("evaluate " + q(t.path.string())), "not an rzoo run folder");
  }
  SECTION("cuda requested where there is none") {
    const auto exp = t.write("e.yaml", "dataset: synthetic\nmodel: pop\ndevice: cuda\n");
    const auto r = run_cli("train " + q(exp) + common(t));
    if (r.code != 0) require_clean_failure(r, "device");  // on a CUDA machine it trains instead
  }
}

#include <signal.h>
#include <spawn.h>

extern char** environ;

TEST_CASE("cli: Ctrl-C then --resume ends with the numbers of an uninterrupted run", "[cli][resume]") {
  TempDir t;
  const std::string exp =
      t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 30, batch_size: 64, early_stop: {patience: 0}}\n");
  const std::string base = "train " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet";
  REQUIRE(run_cli(base + " --set output_dir=" + q(t.file("full")) + " --set run_name=run").code == 0);

  // Start the same run, wait for its first checkpoint, interrupt it as Ctrl-C would.
  const std::string dir = t.file("part/run");
  std::vector<std::string> args = {RZOO_TEST_CLI, "train", exp, "--config-dir", config_dir(), "--set", "threads=1",
                                   "--quiet", "--set", "output_dir=" + t.file("part"), "--set", "run_name=run"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  REQUIRE(posix_spawn(&pid, RZOO_TEST_CLI, nullptr, nullptr, argv.data(), environ) == 0);
  for (int i = 0; i < 600 && !fs::exists(dir + "/last.pt"); ++i) ::usleep(10000);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 0) {
    WARN("the run finished before the interrupt arrived; nothing to resume");
    return;
  }
  CHECK(WEXITSTATUS(status) == 130);
  CHECK_FALSE(fs::exists(dir + "/metrics.json"));  // no partial result passed off as complete

  const auto r = run_cli("train --resume " + q(dir) + " --quiet");
  INFO(r.output);
  REQUIRE(r.code == 0);
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Drop timing fields: everything else must be identical.
    std::string out;
    std::istringstream lines(s);
    for (std::string l; std::getline(lines, l);)
      if (l.find("seconds") == std::string::npos) out += l + "\n";
    return out;
  };
  const std::string full = read(t.file("full/run/metrics.json")), resumed = read(dir + "/metrics.json");
  REQUIRE_FALSE(full.empty());
  CHECK(resumed == full);
}

TEST_CASE("cli: --resume of a run stopped before its first checkpoint starts it at epoch 0, as an uninterrupted run",
          "[cli][resume]") {
  // What a full disk during set-up leaves: config.yaml (and perhaps the id lists), no last.pt.
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 3, early_stop: {patience: 0}}\n");
  const std::string base = "train " + q(exp) + " --config-dir " + q(config_dir()) + " --set threads=1 --quiet";
  REQUIRE(run_cli(base + " --set output_dir=" + q(t.file("full")) + " --set run_name=run").code == 0);
  const std::string dir = t.file("part/run");
  fs::create_directories(dir);
  fs::copy_file(t.file("full/run/config.yaml"), dir + "/config.yaml");
  const auto r = run_cli("train --resume " + q(dir));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("no checkpoint yet") != std::string::npos);
  for (const char* f : {"users.txt", "items.txt", "last.pt", "best.pt", "metrics.json"}) CHECK(fs::exists(dir + "/" + f));
  auto without_times = [](const std::string& p) {
    std::string out;
    std::istringstream lines(read_file(p));
    for (std::string l; std::getline(lines, l);)
      if (l.find("seconds") == std::string::npos) out += l + "\n";
    return out;
  };
  CHECK(without_times(dir + "/metrics.json") == without_times(t.file("full/run/metrics.json")));
  CHECK(read_file(dir + "/users.txt") == read_file(t.file("full/run/users.txt")));
  // A run that has a best.pt but lost its last.pt is not one that never started: refused.
  fs::remove(dir + "/last.pt");
  require_clean_failure(run_cli("train --resume " + q(dir)), "last.pt: checkpoint not found");
}

TEST_CASE("cli: compare --runs compares stored runs as rzoo compare does, averages seeds, refuses unpaired runs", "[cli][compare]") {
  TempDir t;
  const std::string exp = t.write("cmp.yaml", "dataset: synthetic\ncompare: [pop, {model: {name: bpr, embedding_size: 8}, train: {epochs: 2}}]\n");
  const auto c = run_cli("compare " + q(exp) + common(t));
  INFO(c.output);
  REQUIRE(c.code == 0);
  REQUIRE(runs(t).size() == 1);
  const fs::path cmp = runs(t)[0];
  const std::string pop = (cmp / "pop").string(), bpr = (cmp / "bpr").string();

  // The same two runs from their stored files: the same numbers, intervals and tests, to the digit.
  const auto r = run_cli("compare --runs " + q(pop) + " " + q(bpr) + " --out " + q(t.file("cr")) + common(t));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("Against the baseline pop") != std::string::npos);
  CHECK(read_file(t.file("cr/compare.csv")) == read_file((cmp / "compare.csv").string()));
  CHECK(fs::exists(t.file("cr/report.html")));
  CHECK(read_file(t.file("cr/compare.md")).find(bpr) != std::string::npos);  // where each entry's runs are

  // An entry of several runs: per-user values and aggregates are the runs' means.
  const auto avg = run_cli("compare --runs " + q("both=" + pop + "," + bpr) + " " + q(bpr) + " --out " + q(t.file("avg")) +
                           common(t) + " --set compare_stats.baseline=bpr");
  INFO(avg.output);
  REQUIRE(avg.code == 0);
  const auto js = rzoo::json_parse(read_file(t.file("avg/compare.json")), "compare.json");
  const auto mp = rzoo::json_parse(read_file(pop + "/metrics.json"), "pop"), mb = rzoo::json_parse(read_file(bpr + "/metrics.json"), "bpr");
  REQUIRE(js.size() == 2);
  CHECK(js[0]["model"] == "both");
  CHECK(js[0]["runs"].size() == 2);
  for (const char* m : {"ndcg@10", "hr@10"}) {
    const double want = (mp["test"]["metrics"][m].get<double>() + mb["test"]["metrics"][m].get<double>()) / 2;
    CHECK(js[0]["test"]["metrics"][m].get<double>() == Approx(want).epsilon(1e-12));
    CHECK(js[1]["test"]["metrics"][m].get<double>() == mb["test"]["metrics"][m].get<double>());
  }
  CHECK(read_file(t.file("avg/compare.md")).find("the mean of 2 runs") != std::string::npos);

  // An rzoo tune study stands for the seed runs of its chosen setting.
  const std::string tune = t.write("tune.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 1}\n"
                                                "search: {method: grid, space: {train.lr: [0.01]}, seeds: [1, 2], also_eval: [eval.protocol=uni20]}\n");
  const auto st = run_cli("tune " + q(tune) + " --out " + q(t.file("study")) + common(t));
  INFO(st.output);
  REQUIRE(st.code == 0);
  const auto sr = run_cli("compare --runs " + q(t.file("study")) + " " + q(pop) + " --out " + q(t.file("fromstudy")) + common(t));
  INFO(sr.output);
  REQUIRE(sr.code == 0);
  const auto sj = rzoo::json_parse(read_file(t.file("fromstudy/compare.json")), "compare.json");
  CHECK(sj[0]["model"] == "study");
  CHECK(sj[0]["runs"].size() == 2);
  CHECK(read_file(t.file("fromstudy/compare.md")).find("the mean of 2 runs") != std::string::npos);
  // STUDY/eval-...: that evaluation of each of its test runs (here beside pop's own uni20 one, below).
  REQUIRE(run_cli("evaluate " + q(pop) + " --set eval.protocol=uni20 --config-dir " + q(config_dir())).code == 0);
  const auto se = run_cli("compare --runs " + q(t.file("study/eval-protocol-uni20")) + " " + q(pop + "/eval-protocol-uni20") +
                          " --out " + q(t.file("studyeval")) + common(t));
  INFO(se.output);
  REQUIRE(se.code == 0);
  const auto sej = rzoo::json_parse(read_file(t.file("studyeval/compare.json")), "compare.json");
  CHECK(sej[0]["model"] == "study");
  CHECK(sej[0]["runs"].size() == 2);
  CHECK(sej[0]["test"]["protocol_name"] == "uni20");

  // Unpaired runs are refused, naming what differs; nothing is written.
  require_clean_failure(run_cli("compare --runs " + q(pop + "/eval-protocol-uni20") + " " + q(bpr) + " --out " +
                                q(t.file("x1")) + common(t)),
                        "were evaluated under different protocols");
  CHECK_FALSE(fs::exists(t.file("x1")));
  const std::string other = t.write("other.yaml", "dataset: synthetic\nmodel: pop\n");
  REQUIRE(run_cli("train " + q(other) + common(t) + " --set run_name=other --set dataset.synthetic.seed=7").code == 0);
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(t.file("runs/other")) + " --out " + q(t.file("x2")) + common(t)),
                        "were trained on different data");
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(bpr) + common(t) + " --set train.epochs=3"),
                        "only compare_stats.*, output_dir, run_name and threads may be set here");
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(bpr) + " --out " + q(t.file("cr")) + common(t)),
                        "exists and is not an empty folder");
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(pop) + " --out " + q(t.file("x3")) + common(t)),
                        "two entries are named 'pop'");
  require_clean_failure(run_cli("compare --runs " + q(cmp.string()) + " " + q(pop) + " --out " + q(t.file("x4")) + common(t)),
                        "a comparison, not a run");
  require_clean_failure(run_cli("compare --runs " + q(pop) + common(t)), "at least two run folders");
  // A damaged per-user file: its line is named.
  fs::copy(bpr, t.file("bad"), fs::copy_options::recursive);
  {
    std::string text = read_file(t.file("bad/test.users.csv"));
    const size_t second = text.find('\n', text.find('\n') + 1);
    text.insert(second, ",9");  // line 2 gets a field too many
    std::ofstream(t.file("bad/test.users.csv"), std::ios::binary) << text;
  }
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(t.file("bad")) + " --out " + q(t.file("x5")) + common(t)),
                        "test.users.csv:2: ");
  fs::remove(t.file("bad/test.users.csv"));
  require_clean_failure(run_cli("compare --runs " + q(pop) + " " + q(t.file("bad")) + " --out " + q(t.file("x6")) + common(t)),
                        "test.users.csv: missing");
}
