// Reliability, the rest of issue 20: messages that say what is wrong (a folder as the config, an
// unknown dataset name, `--out` naming a folder or a missing folder, a damaged export), negatives
// bounded by the busiest user's unseen items, and the memory estimate that refuses a run before
// anything is allocated.
#include "helpers.h"

#include <torch/script.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "core/config.h"
#include "datasets/dataset.h"
#include "trainers/eval/bounds.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

std::string opts(const TempDir& t) {
  return " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" + q(t.file("runs")) +
         " --set run_name=r ";
}

// Nothing but the inputs the test wrote: no run folder, no stray file.
// (output_dir itself may exist, empty: a run folder is reserved in it, then removed.)
void require_nothing_written(const TempDir& t) {
  CHECK((!fs::exists(t.file("runs")) || fs::is_empty(t.file("runs"))));
}

}  // namespace

TEST_CASE("reliability: a folder given as the config, and an unknown dataset name, are named as such",
          "[cli][reliability][config]") {
  TempDir t;
  fs::create_directories(t.file("cfgdir"));
  SECTION("a folder") {
    const auto r = run_cli("train " + q(t.file("cfgdir")) + opts(t));
    INFO(r.output);
    require_clean_failure(r, "cfgdir: is a folder, not a config file");
    CHECK(r.output.find("no model named") == std::string::npos);
    require_nothing_written(t);
  }
  SECTION("an unknown dataset: named, with the known ones") {
    const std::string exp = t.write("e.yaml", "dataset: no-such-data\nmodel: pop\n");
    const auto r = run_cli("train " + q(exp) + opts(t));
    INFO(r.output);
    require_clean_failure(r, "dataset.name: unknown dataset 'no-such-data'");
    CHECK(r.output.find("known datasets:") != std::string::npos);
    CHECK(r.output.find("ml-100k") != std::string::npos);
    CHECK(r.output.find("no interactions file given") == std::string::npos);
    require_nothing_written(t);
  }
  SECTION("an unknown dataset name with its own files is fine") {
    const std::string data = t.write("ratings.csv", "user,item\n1,10\n1,11\n2,10\n2,12\n3,11\n3,12\n4,10\n4,13\n");
    const std::string exp2 = t.write("e2.yaml", "dataset: {name: mine, path: " + data + "}\nmodel: pop\n");
    const auto r = run_cli("data stats " + q(exp2) + " --config-dir " + q(config_dir()) + " --no-split");
    INFO(r.output);
    CHECK(r.code == 0);
  }
}

TEST_CASE("reliability: --out must name a file in an existing folder, checked before any work",
          "[cli][reliability][export]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 4}\ntrain: {epochs: 1}\n");
  const auto tr = run_cli("train " + q(exp) + opts(t));
  INFO(tr.output);
  REQUIRE(tr.code == 0);
  const std::string run = t.file("runs/r");
  fs::create_directories(t.file("outdir"));
  SECTION("export --out a folder") {
    const auto r = run_cli("export " + q(run) + " --out " + q(t.file("outdir")));
    INFO(r.output);
    require_clean_failure(r, "is a folder; give a file name inside it");
    CHECK(r.output.find("Success") == std::string::npos);
    CHECK(fs::is_empty(t.file("outdir")));
  }
  SECTION("export --out in a missing folder: refused, nothing created") {
    const auto r = run_cli("export " + q(run) + " --out " + q(t.file("missing/sub/m.pt")));
    INFO(r.output);
    require_clean_failure(r, "does not exist (create it first");
    CHECK_FALSE(fs::exists(t.file("missing")));
  }
  SECTION("recommend --out: a folder, a missing folder, and --out without --users-file") {
    REQUIRE(run_cli("export " + q(run) + " --out " + q(t.file("m.pt"))).code == 0);
    const std::string users = t.write("users.txt", "1\n");
    auto r = run_cli("recommend --model " + q(t.file("m.pt")) + " --users-file " + q(users) + " --out " + q(t.file("outdir")));
    require_clean_failure(r, "is a folder; give a file name inside it");
    r = run_cli("recommend --model " + q(t.file("m.pt")) + " --users-file " + q(users) + " --out " +
                q(t.file("missing/r.csv")));
    require_clean_failure(r, "does not exist (create it first");
    CHECK_FALSE(fs::exists(t.file("missing")));
    r = run_cli("recommend --model " + q(t.file("m.pt")) + " --user 1 --out " + q(t.file("r.csv")));
    CHECK(r.code == 2);
    CHECK(r.output.find("--out goes with --users-file") != std::string::npos);
    CHECK_FALSE(fs::exists(t.file("r.csv")));
  }
}

TEST_CASE("reliability: an edited export is named as damaged, not a container's range error",
          "[cli][reliability][export]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 4}\ntrain: {epochs: 1}\n");
  REQUIRE(run_cli("train " + q(exp) + opts(t)).code == 0);
  const std::string model = t.file("m.pt");
  REQUIRE(run_cli("export " + q(t.file("runs/r")) + " --out " + q(model)).code == 0);
  torch::jit::Module m = torch::jit::load(model, torch::kCPU);
  const std::string user = m.attr("user_ids").toList().get(0).toStringRef();
  SECTION("item_ids shorter than n_items") {
    c10::List<std::string> ids;
    ids.push_back("only-one");
    m.setattr("item_ids", ids);
    m.save(t.file("edited.pt"));
    const auto r = run_cli("recommend --model " + q(t.file("edited.pt")) + " --user " + q(user) + " -k 5");
    INFO(r.output);
    require_clean_failure(r, "the export is damaged or was edited: 'item_ids' does not hold n_items");
    CHECK(r.output.find("_M_range_check") == std::string::npos);
  }
  SECTION("popularity of the wrong length") {
    m.setattr("popularity", torch::zeros({3}));
    m.save(t.file("edited.pt"));
    const auto r = run_cli("recommend --model " + q(t.file("edited.pt")) + " --user " + q(user));
    require_clean_failure(r, "'popularity' is not a vector of n_items");
  }
  SECTION("n_items larger than the ids") {
    m.setattr("n_items", m.attr("n_items").toInt() + 5);
    m.save(t.file("edited.pt"));
    const auto r = run_cli("recommend --model " + q(t.file("edited.pt")) + " --user " + q(user));
    require_clean_failure(r, "damaged or was edited");
    CHECK(r.output.find("_M_range_check") == std::string::npos);
  }
}

TEST_CASE("reliability: train.neg_per_pos is bounded by the items the busiest training user has not seen",
          "[cli][reliability][config]") {
  // The CLI's synthetic data, the same as the test config's (the defaults' synthetic block).
  const Config cfg = synthetic_config("bpr");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  int64_t max_seen = 0;
  for (int64_t u = 0; u < s.train.n_rows; ++u) max_seen = std::max(max_seen, s.train.row_size(u));
  REQUIRE(max_seen > 1);
  const int64_t bound = d.n_items() - max_seen;
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 1}\n");
  const auto over = run_cli("train " + q(exp) + opts(t) + "--set train.neg_per_pos=" + std::to_string(bound + 1));
  INFO(over.output);
  require_clean_failure(over, fmt::format("train.neg_per_pos: {} is more than the {} items the busiest training user "
                                          "has not seen ({} of the {} items",
                                          bound + 1, bound, max_seen, d.n_items()));
  require_nothing_written(t);
  const auto at = run_cli("train " + q(exp) + opts(t) + "--set train.neg_per_pos=" + std::to_string(bound));
  INFO(at.output);
  CHECK(at.code == 0);
}

TEST_CASE("reliability: the memory estimate by hand, and a run that cannot fit refused before allocating",
          "[reliability][config]") {
  SECTION("embedding tables: (users + items + 2) x d floats, with gradients") {
    const Config cfg = make_config("dataset: synthetic\nmodel: {name: bpr, embedding_size: 16}\n");
    const MemoryEstimate e = estimate_training_memory(cfg, 1000, 2000);
    CHECK(e.bytes == Approx(3002.0 * 16 * 4 * 2));
    CHECK(e.key == "model.embedding_size");
  }
  SECTION("EASE: two [I, I] float64 matrices") {
    const Config cfg = make_config("dataset: synthetic\nmodel: ease\n");
    const MemoryEstimate e = estimate_training_memory(cfg, 10, 1000);
    CHECK(e.bytes == Approx(1000.0 * 1000 * 8 * 2));
  }
  SECTION("a sequence model's full softmax: [B, L, I] with augment none, [B, I] with prefix") {
    const Config none = make_config("dataset: synthetic\nmodel: sasrec\n",
                                    {"dataset.split.method=leave_last", "train.sequence.augment=none",
                                     "train.batch_size=100", "model.max_len=20"});
    CHECK(estimate_training_memory(none, 10, 500).bytes == Approx(100.0 * 20 * 500 * 4 * 2));
    const Config prefix = make_config("dataset: synthetic\nmodel: sasrec\n",
                                      {"dataset.split.method=leave_last", "train.sequence.augment=prefix",
                                       "train.batch_size=100", "model.max_len=20"});
    CHECK(estimate_training_memory(prefix, 10, 500).bytes == Approx(100.0 * 500 * 4 * 2));
  }
  SECTION("beyond the machine: a config error naming the key, unless memory_check is false") {
    REQUIRE(available_memory_bytes() > 0);
    const Config cfg = make_config("dataset: synthetic\nmodel: {name: bpr, embedding_size: 65536}\n");
    CHECK_THROWS_WITH(check_memory_estimate(cfg, int64_t{1} << 30, 1000),
                      Contains("model.embedding_size") && Contains("more than the") &&
                          Contains("memory_check: false"));
    const Config off = make_config("dataset: synthetic\nmodel: {name: bpr, embedding_size: 65536}\nmemory_check: false\n");
    CHECK_NOTHROW(check_memory_estimate(off, int64_t{1} << 30, 1000));
    CHECK_NOTHROW(check_memory_estimate(synthetic_config("bpr"), 200, 300));
  }
  SECTION("through the CLI: fast, exit 1, no run folder") {
    TempDir t;
    const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: sasrec\n");
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_cli("train " + q(exp) + opts(t) + "--set dataset.split.method=leave_last --set train.batch_size=1000000000");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(r.output);
    require_clean_failure(r, "train.batch_size: this run needs at least");
    CHECK(secs < 10);
    require_nothing_written(t);
  }
}

TEST_CASE("reliability: temporary files of killed writes in a run folder and beside an export are removed",
          "[cli][reliability][io]") {
  const std::string dead = std::to_string(dead_pid());

  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 4}\ntrain: {epochs: 2}\n");
  REQUIRE(run_cli("train " + q(exp) + opts(t) + "--set train.epochs=1").code == 0);
  const std::string run = t.file("runs/r");
  // As a kill -9 during the checkpoint writes leaves them; and one of a running process (ours).
  t.write("runs/r/last.pt.tmp" + dead, "partial");
  t.write("runs/r/best.pt.tmp" + dead, "partial");
  t.write("runs/r/last.pt.tmp" + std::to_string(::getpid()), "in progress");
  fs::remove(run + "/metrics.json");  // so that --resume has something to do
  const auto r = run_cli("train --resume " + q(run) + " --quiet");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_FALSE(fs::exists(run + "/last.pt.tmp" + dead));
  CHECK_FALSE(fs::exists(run + "/best.pt.tmp" + dead));
  CHECK(fs::exists(run + "/last.pt.tmp" + std::to_string(::getpid())));  // a live writer's file is kept

  t.write("m.pt.tmp" + dead, "partial");
  t.write("other.pt.tmp" + dead, "not ours");
  REQUIRE(run_cli("export " + q(run) + " --out " + q(t.file("m.pt"))).code == 0);
  CHECK_FALSE(fs::exists(t.file("m.pt.tmp" + dead)));
  CHECK(fs::exists(t.file("other.pt.tmp" + dead)));  // only the temporary files of the file written
}
