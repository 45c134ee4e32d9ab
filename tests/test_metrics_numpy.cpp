// An independent implementation checks the evaluator: scripts/check_metrics.py (numpy, Debian's
// /usr/bin/python3, or RZOO_TEST_PYTHON) recomputes every metric from a real run's saved rankings on the bundled
// ml-latest-small and must agree to 1e-6. Skipped with a message when numpy is missing.
#include "helpers.h"

#include <fstream>
#include <sstream>

using namespace rzoo::test;

namespace {

const std::string kPython = test_python();

bool have_numpy() { return std::system((kPython + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0; }

std::string q(const std::string& s) { return "'" + s + "'"; }

}  // namespace

TEST_CASE("numpy cross-check: metrics recomputed from a real ml-latest-small run agree to 1e-6", "[metrics][numpy]") {
  if (!have_numpy()) {
    WARN("skipped: numpy is missing for " << kPython << " (apt-get install python3-numpy)");
    return;
  }
  const std::string src = RZOO_TEST_SOURCE_DIR;
  const std::string script = src + "/scripts/check_metrics.py";
  for (const std::string protocol : {"full", "uni100", "pop100"}) {
    TempDir t;
    const auto r = run_cli("train " + q(src + "/configs/experiments/bpr.yaml") + " --quiet --set output_dir=" + q(t.file("runs")) +
                           " --set run_name=run --set train.epochs=2 --set threads=1 --set eval.save_rankings=true" +
                           " --set eval.protocol=" + protocol + " --set 'eval.ks=[1,5,10,50]'" +
                           " --set 'eval.metrics=[hr,recall,precision,ndcg,mrr,map,auc,gauc,coverage,gini,popularity,novelty,diversity]'");
    INFO(protocol << "\n" << r.output);
    REQUIRE(r.code == 0);
    const std::string run = t.file("runs/run");
    const auto c = run_shell(kPython + " " + q(script) + " " + q(run) + " --tol 1e-6");
    INFO(c.output);
    CHECK(c.code == 0);
    CHECK(c.output.find("test: 610 users") != std::string::npos);
    CHECK(c.output.find("valid: 610 users") != std::string::npos);
    if (protocol != "full") continue;
    // The check can fail: one per-user value changed by 1e-4 is caught.
    std::ifstream in(run + "/test.users.csv");
    std::stringstream all;
    all << in.rdbuf();
    std::string text = all.str();
    const auto line = text.find('\n', text.find('\n') + 1);  // end of the first user's row
    const auto comma = text.rfind(',', line);
    const double v = std::stod(text.substr(comma + 1, line - comma - 1));
    text.replace(comma + 1, line - comma - 1, std::to_string(v + 1e-4));
    std::ofstream(run + "/test.users.csv") << text;
    const auto bad = run_shell(kPython + " " + q(script) + " " + q(run) + " --split test");
    INFO(bad.output);
    CHECK(bad.code == 1);
  }
}

TEST_CASE("numpy cross-check: the checker's own hand-computed self-test", "[metrics][numpy]") {
  if (!have_numpy()) {
    WARN("skipped: numpy is missing for " << kPython);
    return;
  }
  const auto r = run_shell(kPython + " " + q(std::string(RZOO_TEST_SOURCE_DIR) + "/scripts/selftest_check_metrics.py"));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("all passed") != std::string::npos);
}
