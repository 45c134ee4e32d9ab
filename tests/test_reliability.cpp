// Reliability of the real `rzoo` binary (issue 20): run folders that stay inside output_dir,
// no half-made run folder after a config error, empty evaluation splits, SIGTERM.
#include "helpers.h"

#include <csignal>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

#include <fmt/format.h>

using namespace rzoo::test;

namespace {
std::string q(const std::string& s) { return "'" + s + "'"; }
// Every path under `dir` (recursively), relative to it.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  if (fs::exists(dir))
    for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}
// The common options: the project's configs, one thread, output_dir = t/sub/runs (two levels
// below t, so that a name escaping output_dir by `../..` still lands inside t, where it is seen).
std::string common(const TempDir& t) {
  return " --config-dir " + q(config_dir()) + " --set threads=1 --set output_dir=" + q(t.file("sub/runs")) + " ";
}
}  // namespace

TEST_CASE("reliability: run_name must be one safe folder name under output_dir", "[cli][reliability]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: pop\n");
  // As the shell passes them to --set; the YAML double quotes make \n and \t real control characters.
  for (const std::string name : {"../x", "/abs", ".", "..", "\"a\\nb\"", "\"a\\tb\"", "../../escaped"}) {
    DYNAMIC_SECTION("run_name=" << name) {
      const auto r = run_cli("train " + q(exp) + common(t) + "--set " + q("run_name=" + name));
      require_clean_failure(r, "run_name: '");
      CHECK(r.code == 1);
      CHECK(r.output.find("one folder name under output_dir") != std::string::npos);
      // Nothing written at all: not in t (which holds output_dir), not at /abs.
      CHECK(tree(t.path) == std::vector<std::string>{"e.yaml"});
      CHECK_FALSE(fs::exists("/abs"));
    }
  }
  SECTION("a control character is shown escaped") {
    const auto r = run_cli("train " + q(exp) + common(t) + "--set 'run_name=\"a\\nb\"'");
    CHECK(r.output.find("run_name: 'a\\nb' (contains a control character)") != std::string::npos);
  }
}

TEST_CASE("reliability: the generated run folder name is sanitised", "[cli][reliability]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: pop\n");
  const auto r = run_cli("train " + q(exp) + common(t) +
                         "--quiet --set dataset.format=synthetic --set 'dataset.name=../../x'");
  INFO(r.output);
  REQUIRE(r.code == 0);
  // One run folder, directly under output_dir, its name's '/' replaced by '_'.
  std::vector<fs::path> runs;
  for (const auto& e : fs::directory_iterator(t.file("sub/runs"))) runs.push_back(e.path());
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].filename().string().rfind("pop-.._.._x-", 0) == 0);
  CHECK(fs::exists(runs[0] / "metrics.json"));
  // Nothing beside output_dir: t holds e.yaml and sub/runs/<run>/... only.
  for (const auto& p : tree(t.path)) CHECK((p == "e.yaml" || p == "sub" || p.rfind("sub/runs", 0) == 0));
  CHECK_FALSE(fs::exists(t.path / "x"));
}

TEST_CASE("reliability: a config error leaves no run folder and no -2 suffix", "[cli][reliability]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\n");
  const std::string opts = common(t) + "--quiet --set run_name=r --set train.epochs=1 ";
  for (const std::string bad : {"model.embedding_size=-1", "train.lr=-1", "eval.ks=[0]"}) {
    DYNAMIC_SECTION(bad) {
      const auto r = run_cli("train " + q(exp) + opts + "--set " + q(bad));
      require_clean_failure(r, bad.substr(0, bad.find('=')));
      CHECK(r.code == 1);
      CHECK_FALSE(fs::exists(t.file("sub/runs/r")));
      // The next good run gets the name itself, not r-2.
      const auto ok = run_cli("train " + q(exp) + opts);
      INFO(ok.output);
      CHECK(ok.code == 0);
      CHECK(fs::exists(t.file("sub/runs/r/best.pt")));
      CHECK_FALSE(fs::exists(t.file("sub/runs/r-2")));
    }
  }
}

TEST_CASE("reliability: an evaluation part without users is an error unless --allow-empty", "[cli][reliability]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: pop\n");
  // ratios [0.9, 0.1, 0]: no test interactions at all, so no test user.
  const std::string opts = common(t) + "--quiet --set run_name=r --set 'dataset.split.ratios=[0.9, 0.1, 0.0]' ";
  SECTION("train: an error naming the part, nothing written") {
    const auto r = run_cli("train " + q(exp) + opts);
    require_clean_failure(r, "the 'test' part of the split");
    CHECK(r.code == 1);
    CHECK(r.output.find("has no user with a target") != std::string::npos);
    CHECK(r.output.find("--allow-empty") != std::string::npos);
    CHECK_FALSE(fs::exists(t.file("sub/runs/r")));
  }
  SECTION("compare: the same error before the comparison's folder") {
    const std::string cmp = t.write("c.yaml", "dataset: synthetic\ncompare: [pop]\n");
    const auto r = run_cli("compare " + q(cmp) + opts);
    require_clean_failure(r, "the 'test' part of the split");
    CHECK(r.code == 1);
    CHECK(tree(t.file("sub/runs")).empty());
  }
  SECTION("--allow-empty: a warning on stderr (even with --quiet) and exit status 3") {
    const auto r = run_cli("train " + q(exp) + opts + "--allow-empty");
    INFO(r.output);
    CHECK(r.code == 3);
    CHECK(r.output.find("rzoo: WARNING: the 'test' part of the split") != std::string::npos);
    CHECK(fs::exists(t.file("sub/runs/r/metrics.json")));
    // evaluate: the same rule.
    const auto e = run_cli("evaluate " + q(t.file("sub/runs/r")) + " --quiet");
    require_clean_failure(e, "the 'test' part of the split");
    CHECK(e.code == 1);
    CHECK(run_cli("evaluate " + q(t.file("sub/runs/r")) + " --quiet --allow-empty").code == 3);
  }
  SECTION("a validation part asked for but empty is named too") {
    // Two interactions per user, leave_last valid_k 1 test_k 1: each user keeps one to train on,
    // so the test part gets the last one and validation none.
    std::string csv = "user,item\n";
    for (int u = 0; u < 30; ++u) csv += fmt::format("u{0},i{0}\nu{0},i{1}\n", u, u + 1);
    const std::string data = t.write("two.csv", csv);
    const auto r = run_cli("train " + q(exp) + common(t) + "--quiet --set run_name=v --set dataset.format=csv " +
                           "--set dataset.name=two --set dataset.path=" + q(data) +
                           " --set dataset.split.method=leave_last --set dataset.split.valid_k=1 --set dataset.split.test_k=1");
    require_clean_failure(r, "the 'valid' part of the split");
    CHECK(r.code == 1);
    CHECK_FALSE(fs::exists(t.file("sub/runs/v")));
  }
  SECTION("a split without validation asked for is fine; with both parts present, exit 0") {
    CHECK(run_cli("train " + q(exp) + common(t) + "--quiet --set run_name=nv --set 'dataset.split.ratios=[0.9, 0.0, 0.1]'").code == 0);
    CHECK(run_cli("train " + q(exp) + common(t) + "--quiet --set run_name=ok").code == 0);
  }
}

TEST_CASE("reliability: SIGTERM stops like Ctrl-C: message, exit 143, --resume completes", "[cli][reliability][resume]") {
  TempDir t;
  const std::string exp =
      t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 40, batch_size: 64, early_stop: {patience: 0}}\n");
  const std::string dir = t.file("runs/run"), out = t.file("out.txt");
  std::vector<std::string> args = {RZOO_TEST_CLI, "train", exp, "--config-dir", config_dir(), "--set", "threads=1",
                                   "--set", "output_dir=" + t.file("runs"), "--set", "run_name=run"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // stdout and stderr to a file, for the message.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  REQUIRE(posix_spawn(&pid, RZOO_TEST_CLI, &fa, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  // Once the first epoch is logged, terminate it as `kill` (or a scheduler) would.
  for (int i = 0; i < 3000 && read_file(dir + "/train.log").find("epoch    1/") == std::string::npos; ++i) ::usleep(10000);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::string output = read_file(out);
  INFO(output);
  REQUIRE(WIFEXITED(status));  // handled, not killed by the signal
  if (WEXITSTATUS(status) == 0) {
    WARN("the run finished before SIGTERM arrived; nothing to resume");
    return;
  }
  CHECK(WEXITSTATUS(status) == 143);
  CHECK(output.find("rzoo: stopped by SIGTERM (exit status 143)") != std::string::npos);
  CHECK(output.find("the last complete epoch is saved in") != std::string::npos);
  CHECK(fs::exists(dir + "/last.pt"));
  CHECK_FALSE(fs::exists(dir + "/metrics.json"));  // no partial result passed off as complete

  const auto r = run_cli("train --resume " + q(dir) + " --quiet");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(fs::exists(dir + "/metrics.json"));
  CHECK(read_file(dir + "/train.log").find("epoch   40/40") != std::string::npos);
}
