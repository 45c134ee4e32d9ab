// Reliability of file writes and of size-like settings (issue 20): durable atomic writes whose
// I/O errors are clean (a full disk, a file size limit), never a LibTorch abort nor a leftover
// temporary file; eval.ks and train.neg_per_pos bounded by the data; `recommend` marking and
// counting its fallback rows.
#include "helpers.h"

#include <torch/torch.h>

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/registry.h"
#include "trainers/evaluator.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// Every file under `dir` whose name holds ".tmp" (a temporary file left behind).
std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename().string().find(".tmp") != std::string::npos) out.push_back(it->path().string());
  return out;
}


// A tmpfs of `size` mounted on `dir` while in scope (root only; `ok` says whether it is).
struct Tmpfs {
  std::string dir;
  bool ok = false;
  Tmpfs(std::string d, const std::string& size) : dir(std::move(d)) {
    fs::create_directories(dir);
    if (::geteuid() != 0) return;
    ok = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  // Grows (or shrinks) it in place, keeping its files: the disk after space was freed.
  bool resize(const std::string& size) const {
    return ::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
  }
  ~Tmpfs() {
    if (ok && ::umount(dir.c_str()) != 0) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

bool skip_without_tmpfs(const Tmpfs& m) {
  if (m.ok) return false;
  WARN("skipped: mounting a small tmpfs needs root (euid " << ::geteuid() << "); the full-disk checks did not run");
  return true;
}

// The training of the issue's repro: BPR on synthetic data with 512-dimensional embeddings, so
// that each checkpoint is MBs (best.pt ~1 MB, last.pt ~1 MB at epoch 0, ~3 MB with Adam's state).
std::string bpr_512(const TempDir& t, const std::string& output_dir, int epochs) {
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\n");
  return "train " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
         q(output_dir) + " --set run_name=r --set model.embedding_size=512 --set train.epochs=" +
         std::to_string(epochs) + " --set train.early_stop.patience=0";
}

// What a full disk must give: exit 1, one message naming the file and the system's text.
void check_disk_error(const CliResult& r, const std::string& dir, const std::string& errno_text) {
  require_clean_failure(r, errno_text);
  CHECK(r.code == 1);
  CHECK(r.output.find(dir) != std::string::npos);
  CHECK((r.output.find(".pt: cannot write: " + errno_text) != std::string::npos));
  CHECK(r.output.find("c10::Error") == std::string::npos);
}

// The checkpoints a failed write left must still be whole: last.pt (if any) gives its progress,
// best.pt (if any) loads.
void check_previous_checkpoints_load(const std::string& run, int64_t min_epoch) {
  if (fs::exists(run + "/last.pt")) {
    const auto progress = read_run_progress(run + "/last.pt");
    REQUIRE(progress.has_value());
    CHECK(progress->epoch >= min_epoch);
    CHECK_FALSE(progress->done);
  }
  if (fs::exists(run + "/best.pt")) {
    torch::serialize::InputArchive ar;
    CHECK_NOTHROW(load_archive(ar, run + "/best.pt", torch::kCPU));
  }
}

// Runs `write` with this process's file size limit at `bytes` and SIGXFSZ ignored (a write past
// it then fails with EFBIG, as a full disk fails with ENOSPC); returns the rzoo::Error's message,
// or "" when none was thrown. The limit and the handler are restored.
std::string error_under_file_size_limit(rlim_t bytes, const std::function<void()>& write) {
  struct rlimit old {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = bytes;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string error;
  try {
    write();
  } catch (const Error& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  return error;
}
}  // namespace

TEST_CASE("reliability: atomic writes replace the file whole, through a per-process temporary file", "[reliability][io]") {
  TempDir t;
  const std::string f = t.file("a.txt");
  write_file_atomic(f, "one");
  CHECK(read_file(f) == "one");
  write_file_atomic(f, "two, longer");
  CHECK(read_file(f) == "two, longer");
  write_file_atomic(f, "");  // empty: no write at all, still a file
  CHECK(fs::exists(f));
  CHECK(read_file(f).empty());
  std::string big(3u << 20, 'x');  // beyond the writer's buffer
  big[12345] = 'y';
  write_bytes_atomic(f, big.data(), big.size());
  CHECK(read_file(f) == big);
  CHECK(temp_files(t.path).empty());

  SECTION("streaming writes: committed whole, or (destroyed before commit) not at all") {
    {
      AtomicFile a(f);
      CHECK(a.temp_path() == f + ".tmp" + std::to_string(::getpid()));
      for (int i = 0; i < 1000; ++i) a.write("0123456789", 10);
      CHECK(fs::exists(a.temp_path()));
      // no commit: an exception or an error path
    }
    CHECK(read_file(f) == big);
    CHECK(temp_files(t.path).empty());
    AtomicFile b(f);
    for (int i = 0; i < 1000; ++i) b.write("0123456789", 10);
    b.commit();
    CHECK(read_file(f).size() == 10000);
    CHECK(temp_files(t.path).empty());
  }
  SECTION("a leftover temporary file of an earlier process with this pid is replaced") {
    t.write("a.txt.tmp" + std::to_string(::getpid()), "stale");
    write_file_atomic(f, "three");
    CHECK(read_file(f) == "three");
    CHECK(temp_files(t.path).empty());
  }
  SECTION("a folder that does not exist: an error naming the file, nothing written") {
    const std::string g = t.file("no/such/dir/b.txt");
    CHECK_THROWS_WITH(write_file_atomic(g, "x"), Contains(g) && Contains("No such file or directory"));
    CHECK_FALSE(fs::exists(t.file("no")));
  }
  SECTION("the target is a folder: the error says so, the folder is untouched") {
    fs::create_directories(t.file("d"));
    CHECK_THROWS_WITH(write_file_atomic(t.file("d"), "x"), Contains(t.file("d")) && Contains("Is a directory"));
    CHECK(fs::is_directory(t.file("d")));
    CHECK(temp_files(t.path).empty());
  }
  SECTION("a file size limit (EFBIG, as any write error): clean error, previous file intact, no temporary file") {
    write_file_atomic(f, "previous");
    const std::string error = error_under_file_size_limit(64 * 1024, [&] { write_bytes_atomic(f, big.data(), big.size()); });
    INFO(error);
    CHECK(error.find(f + ": cannot write: File too large") == 0);
    CHECK(error.find("previous file, if any, is unchanged") != std::string::npos);
    CHECK(read_file(f) == "previous");
    CHECK(temp_files(t.path).empty());
  }
  SECTION("stale temporary files of dead processes are removed, those of live ones kept") {
    const long dead = dead_pid();
    const std::string mine = "a.txt.tmp" + std::to_string(::getpid());
    for (const std::string n : {"a.txt.tmp" + std::to_string(dead), "b.rzc.tmp" + std::to_string(dead), mine,
                                std::string("a.txt.tmp1"), std::string("a.txt.tmpx"), std::string("a.txt.tmp")})
      t.write(n, "x");
    const int removed = remove_stale_temps(t.path.string(), [](const std::string& name) { return name == "a.txt"; });
    CHECK(removed == 1);
    CHECK_FALSE(fs::exists(t.file("a.txt.tmp" + std::to_string(dead))));
    for (const std::string n : {"b.rzc.tmp" + std::to_string(dead), mine, std::string("a.txt.tmp1"), std::string("a.txt.tmpx"),
                                std::string("a.txt.tmp")})
      CHECK(fs::exists(t.file(n)));  // another name, this process, pid 1 (alive), not a pid
  }
}

TEST_CASE("reliability: a checkpoint is streamed into an atomic file, a write error mid-archive is a clean error",
          "[reliability][io]") {
  TempDir t;
  torch::serialize::OutputArchive out;
  out.write("w", torch::arange(10).to(torch::kFloat));
  save_archive_atomic(out, t.file("c.pt"));
  torch::serialize::InputArchive in;
  load_archive(in, t.file("c.pt"), torch::kCPU);
  at::Tensor w;
  REQUIRE(in.try_read("w", w));
  CHECK(w.equal(torch::arange(10).to(torch::kFloat)));
  CHECK(temp_files(t.path).empty());
  // Where it cannot be written: rzoo's error (not LibTorch's, not an abort), the file named.
  const std::string bad = t.file("missing/c.pt");
  CHECK_THROWS_WITH(save_archive_atomic(out, bad), Contains(bad + ": cannot create the temporary file"));
  // A write that fails while LibTorch is still writing the archive (an 8 MB tensor, a 1 MB file
  // size limit: EFBIG, as a full disk gives ENOSPC): LibTorch finishes without seeing it, then
  // rzoo's error names the file; the previous checkpoint and the folder are as they were.
  torch::serialize::OutputArchive big;
  big.write("w", torch::ones({2 * 1024 * 1024}));
  const std::string error = error_under_file_size_limit(1024 * 1024, [&] { save_archive_atomic(big, t.file("c.pt")); });
  INFO(error);
  CHECK(error.find(t.file("c.pt") + ": cannot write: File too large") == 0);
  CHECK(temp_files(t.path).empty());
  torch::serialize::InputArchive again;
  load_archive(again, t.file("c.pt"), torch::kCPU);
  REQUIRE(again.try_read("w", w));
  CHECK(w.equal(torch::arange(10).to(torch::kFloat)));
}

TEST_CASE("reliability: a file size limit while training is a clean error, the checkpoints stay whole", "[cli][reliability][io]") {
  // Any user can run this one (no mount): writes beyond `ulimit -f` fail with EFBIG, as writes to
  // a full disk fail with ENOSPC. 2048 KiB: last.pt at epoch 0 (~1 MB) and best.pt fit; last.pt
  // with Adam's state (~3 MB) does not.
  TempDir t;
  const std::string runs = t.file("runs");
  // SIGXFSZ ignored (kept so across exec): the write fails with EFBIG instead of killing rzoo.
  const std::string inner = "ulimit -f 2048; trap '' XFSZ; exec " + std::string(RZOO_TEST_CLI) + " " + bpr_512(t, runs, 3);
  std::string quoted;  // inside single quotes: ' -> '\''
  for (const char c : inner) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const auto r = run_shell("bash -c '" + quoted + "'");
  INFO(r.output);
  check_disk_error(r, runs + "/r/", "File too large");
  CHECK(temp_files(t.path).empty());
  check_previous_checkpoints_load(runs + "/r", 0);
  CHECK(fs::exists(runs + "/r/last.pt"));
  CHECK_FALSE(fs::exists(runs + "/r/metrics.json"));
  // Without the limit, --resume completes the run.
  const auto resumed = run_cli("train --resume " + q(runs + "/r") + " --quiet");
  INFO(resumed.output);
  CHECK(resumed.code == 0);
  CHECK(fs::exists(runs + "/r/metrics.json"));
  CHECK(temp_files(t.path).empty());
}

TEST_CASE("reliability: a full disk (1 MB tmpfs) during training: exit 1, the file and ENOSPC named, --resume after",
          "[cli][reliability][io][tmpfs]") {
  TempDir t;
  Tmpfs disk(t.file("disk"), "1m");
  if (skip_without_tmpfs(disk)) return;
  const std::string runs = disk.dir + "/runs";
  const auto r = run_cli(bpr_512(t, runs, 3));
  INFO(r.output);
  check_disk_error(r, runs + "/r/", "No space left on device");
  CHECK(temp_files(disk.dir).empty());
  check_previous_checkpoints_load(runs + "/r", 0);
  CHECK_FALSE(fs::exists(runs + "/r/metrics.json"));
  // Space freed: the run resumes from what it had saved and completes.
  REQUIRE(disk.resize("64m"));
  const auto resumed = run_cli("train --resume " + q(runs + "/r") + " --quiet");
  INFO(resumed.output);
  CHECK(resumed.code == 0);
  CHECK(fs::exists(runs + "/r/metrics.json"));
  CHECK(temp_files(disk.dir).empty());
}

TEST_CASE("reliability: a disk that fills up later (6 MB tmpfs): the previous best.pt and last.pt still load",
          "[cli][reliability][io][tmpfs]") {
  TempDir t;
  Tmpfs disk(t.file("disk"), "6m");
  if (skip_without_tmpfs(disk)) return;
  const std::string runs = disk.dir + "/runs";
  const auto r = run_cli(bpr_512(t, runs, 6));
  INFO(r.output);
  check_disk_error(r, runs + "/r/", "No space left on device");
  CHECK(temp_files(disk.dir).empty());
  REQUIRE(fs::exists(runs + "/r/last.pt"));
  REQUIRE(fs::exists(runs + "/r/best.pt"));
  check_previous_checkpoints_load(runs + "/r", 1);  // a complete epoch, with its optimizer state
  REQUIRE(disk.resize("64m"));
  const auto resumed = run_cli("train --resume " + q(runs + "/r") + " --quiet");
  INFO(resumed.output);
  CHECK(resumed.code == 0);
  CHECK(fs::exists(runs + "/r/metrics.json"));
  CHECK(read_file(runs + "/r/train.log").find("epoch    6/6") != std::string::npos);
}

TEST_CASE("reliability: an export to a full disk is a clean error, the previous export is kept", "[cli][reliability][io][tmpfs]") {
  TempDir t;
  Tmpfs disk(t.file("disk"), "1m");
  if (skip_without_tmpfs(disk)) return;
  const auto trained = run_cli(bpr_512(t, t.file("runs"), 1));
  INFO(trained.output);
  REQUIRE(trained.code == 0);
  const std::string out = disk.dir + "/model.pt";
  std::ofstream(out) << "the previous export";
  const auto r = run_cli("export " + q(t.file("runs/r")) + " --out " + q(out));
  INFO(r.output);
  require_clean_failure(r, out + ": cannot write: No space left on device");
  CHECK(r.code == 1);
  CHECK(read_file(out) == "the previous export");
  CHECK(temp_files(disk.dir).empty());
  // With room, the same export works.
  REQUIRE(disk.resize("64m"));
  const auto ok = run_cli("export " + q(t.file("runs/r")) + " --out " + q(out));
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(fs::file_size(out) > 1000000);
  CHECK(temp_files(disk.dir).empty());
}

TEST_CASE("reliability: eval.ks and train.neg_per_pos beyond the items fail fast, before any run folder",
          "[cli][reliability][config]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: bpr\n");
  const std::string opts = " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
                           q(t.file("runs")) + " --set run_name=r ";
  struct Case {
    std::string set, key, message;
  };
  // Synthetic data: 296 items once cleaned.
  for (const Case& c : {Case{"eval.ks=[10,1000000000]", "eval.ks", "K = 1000000000 is larger than the number of items of the data (296)"},
                        Case{"train.neg_per_pos=1000000000", "train.neg_per_pos",
                             "1000000000 is more than the 295 items a user could have as negatives (the data has 296 items)"}}) {
    DYNAMIC_SECTION(c.set) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = run_cli("train " + q(exp) + opts + "--set " + q(c.set));
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      INFO(r.output);
      require_clean_failure(r, c.key + ": " + c.message);
      CHECK(r.code == 1);
      CHECK(r.output.find("--set " + c.set) != std::string::npos);  // where the value came from
      CHECK(secs < 10);
      CHECK_FALSE(fs::exists(t.file("runs/r")));
    }
  }
  // (train.neg_per_pos's exact bound, the busiest user's unseen items, is tested in
  // test_reliability_msgs.cpp.)
  SECTION("at the K bound itself, and many negatives: trains") {
    const auto r = run_cli("train " + q(exp) + opts + "--set train.epochs=1 --set 'eval.ks=[10,296]' --set train.neg_per_pos=250");
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(read_file(t.file("runs/r/metrics.json")).find("\"hr@296\"") != std::string::npos);
  }
  SECTION("a model without sampled negatives ignores train.neg_per_pos") {
    const auto r = run_cli("train " + q(exp) + opts + "--set model=pop --set train.neg_per_pos=1000000000");
    INFO(r.output);
    CHECK(r.code == 0);
  }
  SECTION("evaluate: an overridden eval.ks is checked too, before any file") {
    REQUIRE(run_cli("train " + q(exp) + opts + "--set model=pop").code == 0);
    const auto r = run_cli("evaluate " + q(t.file("runs/r")) + " --quiet --set 'eval.ks=[10,1000000000]'");
    require_clean_failure(r, "eval.ks: K = 1000000000 is larger than the number of items of the data (296)");
    CHECK(r.code == 1);
    for (const auto& e : fs::directory_iterator(t.file("runs/r"))) CHECK(e.path().filename().string().rfind("eval", 0) != 0);
  }
  SECTION("compare: refused before the comparison's folder") {
    const std::string cmp = t.write("c.yaml", "dataset: synthetic\ncompare: [pop, bpr]\n");
    const auto r = run_cli("compare " + q(cmp) + opts + "--set 'eval.ks=[1000000000]'");
    require_clean_failure(r, "eval.ks: K = 1000000000");
    CHECK_FALSE(fs::exists(t.file("runs")));
  }
}

TEST_CASE("reliability: the evaluator's memory does not grow with K beyond the catalogue", "[reliability][eval]") {
  const Config cfg = synthetic_config("bpr");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  torch::manual_seed(3);
  Recommender model = make_model("bpr", ModelContext{d.n_users(), d.n_items(), &cfg});
  const int64_t n = d.n_items();
  const int64_t huge = 50'000'000;  // 8-byte tables of K entries: 400 MB each
  // The peak resident memory of this process from now on (Linux: "5" resets VmHWM).
  auto peak_kb = [] {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1L;
  };
  auto rss_kb = [] {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1L;
  };
  for (const std::string protocol : {"full", "uni20"}) {
    INFO(protocol);
    EvalOptions o;
    o.protocol = protocol;
    o.metrics = {"hr", "recall", "precision", "ndcg", "mrr", "map", "coverage", "novelty"};
    o.ks = {n};
    const EvalResult at_n = evaluate(*model, s, Target::Test, o, torch::kCPU);
    o.ks = {n, huge};
    const bool reset = static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5");
    const long before = rss_kb();
    const auto t0 = std::chrono::steady_clock::now();
    const EvalResult big = evaluate(*model, s, Target::Test, o, torch::kCPU);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (reset && before > 0) {
      const long grew_mb = (peak_kb() - before) / 1024;
      INFO("peak memory grew by " << grew_mb << " MB");
      CHECK(grew_mb < 100);
    }
    CHECK(secs < 5);
    // K beyond the catalogue ranks the whole catalogue: the same numbers as K = n_items, except
    // precision (hits / K).
    for (const std::string m : {"hr", "recall", "ndcg", "mrr", "map", "coverage", "novelty"}) {
      INFO(m);
      CHECK(big.get(m + "@" + std::to_string(huge)) == Approx(at_n.get(m + "@" + std::to_string(n))));
    }
    CHECK(big.get("precision@" + std::to_string(huge)) ==
          Approx(at_n.get("precision@" + std::to_string(n)) * static_cast<double>(n) / static_cast<double>(huge)));
  }
  // rank_metrics alike: tables by the candidates, not by K.
  const auto a = rank_metrics({1, 3}, 5, {5}, {"ndcg", "map", "recall"});
  const auto b = rank_metrics({1, 3}, 5, {2'000'000'000}, {"ndcg", "map", "recall"});
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i].second == Approx(a[i].second));
}

TEST_CASE("reliability: the batchers refuse more negatives per positive than items", "[reliability][data][sampler]") {
  const Csr pos = Csr::from_pairs(2, 4, {0, 1}, {1, 2});
  UniformSampler s(pos);
  CHECK_NOTHROW(Batcher(pos, InputType::Pairwise, s, 8, 3));
  CHECK_THROWS_WITH(Batcher(pos, InputType::Pairwise, s, 8, 4),
                    Contains("train.neg_per_pos: 4 is more than the 3 items a user could have as negatives"));
  CHECK_THROWS_WITH(Batcher(pos, InputType::Pointwise, s, 8, 1000000000, Batcher::Shuffle::Samples),
                    Contains("train.neg_per_pos: 1000000000"));
  Sequences seq;
  seq.n_rows = 1;
  seq.n_cols = 4;
  seq.indptr = {0, 3};
  seq.items = {0, 1, 2};
  CHECK_THROWS_WITH(SequenceBatcher(seq, s, SequenceOptions{3, true}, 8, 4), Contains("train.neg_per_pos: 4"));
}

TEST_CASE("reliability: recommend marks fallback rows (source column), counts them, caps top-N at the catalogue",
          "[cli][reliability][export]") {
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 1}\n");
  const auto tr = run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
                          q(t.file("runs")) + " --set run_name=r");
  INFO(tr.output);
  REQUIRE(tr.code == 0);
  const std::string model = t.file("m.pt");
  REQUIRE(run_cli("export " + q(t.file("runs/r")) + " --out " + q(model)).code == 0);
  const std::string users_txt = read_file(t.file("runs/r/users.txt"));
  const std::string first = users_txt.substr(0, users_txt.find('\n'));
  const std::string users = t.write("u.txt", first + "\nnobody\nnobody-else\n");
  const auto r = run_cli("recommend --model " + q(model) + " --users-file " + q(users) + " -k 3 --fallback popular --out " +
                         q(t.file("recs.csv")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("2 of 3 users unknown to the model: 6 rows served by --fallback popular") != std::string::npos);
  std::ifstream in(t.file("recs.csv"));
  std::string line;
  std::getline(in, line);
  CHECK(line == "user,rank,item,score,title,source");
  int model_rows = 0, popular_rows = 0;
  while (std::getline(in, line)) {
    const std::string source = line.substr(line.rfind(',') + 1);
    if (line.rfind(first + ",", 0) == 0) {
      CHECK(source == "model");
      ++model_rows;
    } else {
      CHECK(line.rfind("nobody", 0) == 0);
      CHECK(source == "popular");
      ++popular_rows;
    }
  }
  CHECK(model_rows == 3);
  CHECK(popular_rows == 6);
  // The CSV on stdout: the count still on stderr; none when every user is known.
  const std::string known = t.write("k.txt", first + "\n");
  const auto k = run_cli("recommend --model " + q(model) + " --users-file " + q(known) + " -k 2 --fallback popular");
  CHECK(k.code == 0);
  CHECK(k.output.find("unknown to the model") == std::string::npos);
  CHECK(k.output.find(",model\n") != std::string::npos);
  // -k beyond the catalogue: "top <items>", not "top 1000000000000".
  const auto big = run_cli("recommend --model " + q(model) + " --user " + q(first) + " -k 1000000000000");
  INFO(big.output);
  CHECK(big.code == 0);
  CHECK(big.output.find("top 296 for user " + first) != std::string::npos);
  CHECK(big.output.find("1000000000000") == std::string::npos);
}
