// Shared helpers of the unit tests: temporary folders, inline configs, the real CLI.
#pragma once
// LibTorch 2.x's c10/util/Logging.h defines a glog-style CHECK macro that would replace Catch's:
// include it first, drop its CHECK, then let Catch define its own (include guards keep it so).
#include <c10/util/Logging.h>
#undef CHECK
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "test_paths.h"

namespace rzoo::test {

namespace fs = std::filesystem;

// A fresh folder removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("rzoo-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return file(name);
  }
};

// The whole file ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The Python that checks exports and metrics: Debian's python3-torch by default (the real
// client of a LibTorch 1.13 build); RZOO_TEST_PYTHON picks another, e.g. PyTorch 2.x's own
// python3 beside a LibTorch 2.x build (scripts/cuda-check.sh).
inline std::string test_python() {
  const char* p = std::getenv("RZOO_TEST_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

inline std::string config_dir() { return std::string(RZOO_TEST_SOURCE_DIR) + "/configs"; }

// Resolves an inline experiment against the project's configs/.
inline Config make_config(const std::string& experiment_yaml, const std::vector<std::string>& sets = {}) {
  ConfigSources s;
  s.config_dir = config_dir();
  s.experiment = parse_layer(experiment_yaml, "test.yaml");
  s.sets = sets;
  return resolve_config(s);
}

// Synthetic data (200 users x 300 items), small epochs: the standard fixture of trainer tests.
inline Config synthetic_config(const std::string& model, const std::vector<std::string>& sets = {}) {
  std::vector<std::string> all = {"threads=1", "train.progress=false"};
  all.insert(all.end(), sets.begin(), sets.end());
  return make_config("dataset: synthetic\nmodel: " + model + "\n", all);
}

// A pid that no longer runs: a child that exited and was reaped (for stale-temp-file tests).
inline long dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return static_cast<long>(pid);
}

struct CliResult {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs a shell command, stdout and stderr together.
inline CliResult run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  CliResult r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Runs the real rzoo binary with `args` (already shell-quoted as needed).
inline CliResult run_cli(const std::string& args) { return run_shell(std::string(RZOO_TEST_CLI) + " " + args); }

// A failure must be one clear message: a non-zero exit, no crash, no C++ or LibTorch trace.
inline void require_clean_failure(const CliResult& r, const std::string& expected) {
  INFO(r.output);
  CHECK(r.code != 0);
  CHECK(r.code < 128);  // not killed by a signal
  CHECK(r.output.find(expected) != std::string::npos);
  CHECK(r.output.find("terminate called") == std::string::npos);
  CHECK(r.output.find("Exception raised from") == std::string::npos);
  CHECK(r.output.find("frame #") == std::string::npos);
}

}  // namespace rzoo::test
