// Distributed runs (core/distributed.h) through the real binary: 2 processes over Gloo on the
// loopback interface against 1 process, parameter for parameter and value for value.
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include <fmt/format.h>

#include "core/distributed.h"
#include "core/error.h"
#include "rzoo_build.h"

using namespace rzoo::test;

namespace {
std::string q(const std::string& s) { return "'" + s + "'"; }

std::string common(const TempDir& t) {
  return " --config-dir " + q(config_dir()) + " --set output_dir=" + q(t.file("runs")) +
         " --set distributed.timeout=60 --quiet ";
}

// Every parameter and buffer of a checkpoint's model, by dotted name.
void collect(torch::serialize::InputArchive& ar, const std::string& prefix, std::map<std::string, at::Tensor>& out) {
  for (const auto& k : ar.keys()) {
    at::Tensor t;
    if (ar.try_read(k, t)) {
      out[prefix + k] = t;
      continue;
    }
    torch::serialize::InputArchive sub;
    if (ar.try_read(k, sub)) collect(sub, prefix + k + ".", out);
  }
}

std::map<std::string, at::Tensor> model_of(const std::string& checkpoint) {
  torch::serialize::InputArchive ar, m;
  ar.load_from(checkpoint);
  REQUIRE(ar.try_read("model", m));
  std::map<std::string, at::Tensor> out;
  collect(m, "", out);
  return out;
}

// The largest absolute difference over all tensors (both models must have the same names and shapes).
double max_diff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (const auto& [k, t] : a) {
    INFO(k);
    REQUIRE(b.count(k) == 1);
    REQUIRE(b.at(k).sizes() == t.sizes());
    if (t.numel() > 0) d = std::max(d, (t.to(torch::kDouble) - b.at(k).to(torch::kDouble)).abs().max().item<double>());
  }
  return d;
}

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// history.csv without its seconds column (the time an epoch took differs from run to run).
std::string history_without_time(const std::string& run) {
  std::stringstream in(read(run + "/history.csv"));
  std::string line, out;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string c;
    while (std::getline(ls, c, ',')) cells.push_back(c);
    for (size_t i = 0; i < cells.size(); ++i)
      if (i != 2) out += cells[i] + ",";
    out += "\n";
  }
  return out;
}

// `rzoo train exp sets` once in one process (run one-NAME, with `one`) and once in two (run
// two-NAME, with `two` and --nproc 2), 1 thread each; their run folders.
std::pair<std::string, std::string> one_and_two(const TempDir& t, const std::string& exp, const std::string& sets,
                                                const std::string& name, const std::string& one = "",
                                                const std::string& two = "") {
  const std::string args = "train " + q(exp) + common(t) + sets + " --set threads=1 ";
  const auto a = run_cli(args + one + " --set run_name=one-" + name);
  INFO(a.output);
  REQUIRE(a.code == 0);
  const auto b = run_cli(args + two + " --set run_name=two-" + name + " --nproc 2");
  INFO(b.output);
  REQUIRE(b.code == 0);
  return {t.file("runs/one-" + name), t.file("runs/two-" + name)};
}
}  // namespace

// The choice of process group, by build (Gloo / NCCL compiled in), device and GPUs per process.
// Only the choice: no machine here has the 2 GPUs an NCCL run needs (scripts/cuda-check.sh runs one).
TEST_CASE("distributed: the backend auto / gloo / nccl is chosen by the build, the device and the GPUs per process",
          "[distributed]") {
  using rzoo::Distributed;
  const auto pick = [](const std::string& b, bool cuda, int gpus, int local, bool gloo, bool nccl) {
    return Distributed::resolve_backend(b, cuda, gpus, local, gloo, nccl);
  };
  const auto refused = [&](const std::string& b, bool cuda, int gpus, int local, bool gloo, bool nccl) {
    try {
      pick(b, cuda, gpus, local, gloo, nccl);
    } catch (const rzoo::Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  // auto: NCCL where it can run (CUDA, built, a GPU per local process), Gloo otherwise.
  CHECK(pick("auto", true, 2, 2, true, true) == "nccl");
  CHECK(pick("auto", true, 8, 4, false, true) == "nccl");
  CHECK(pick("auto", true, 1, 2, true, true) == "gloo");   // two processes on one GPU: NCCL refuses that
  CHECK(pick("auto", false, 2, 2, true, true) == "gloo");  // a CPU run
  CHECK(pick("auto", true, 2, 2, true, false) == "gloo");  // no NCCL in this build (Debian's LibTorch)
  CHECK(pick("gloo", true, 2, 2, true, true) == "gloo");
  CHECK(pick("nccl", true, 4, 2, false, true) == "nccl");
  // Each refusal says why and what to do instead.
  CHECK_THAT(refused("nccl", true, 2, 2, true, false), Catch::Contains("nccl is not available in this rzoo build"));
  CHECK_THAT(refused("nccl", false, 2, 2, true, true), Catch::Contains("this run's device is the CPU"));
  CHECK_THAT(refused("nccl", true, 1, 2, true, true),
             Catch::Contains("runs 2 processes on 1 GPU(s)") && Catch::Contains("distributed.backend: gloo"));
  CHECK_THAT(refused("gloo", true, 2, 2, false, true), Catch::Contains("without LibTorch's Gloo process group"));
  CHECK_THAT(refused("auto", false, 0, 2, false, true), Catch::Contains("this run's device is the CPU"));
  CHECK_THAT(refused("auto", false, 0, 2, false, false), Catch::Contains("apt-get install libgloo-dev"));
  CHECK_THAT(refused("mpi", false, 0, 2, true, false), Catch::Contains("'mpi' is not one of auto, gloo, nccl"));
}

#if RZOO_HAVE_GLOO

TEST_CASE("distributed: 2 processes with batch B/2 train the parameters of 1 process with batch B", "[distributed]") {
  TempDir t;
  const std::string data = "dataset: synthetic\ntrain: {epochs: 3, early_stop: {patience: 0}}\n";
  struct Case {
    const char* name;
    std::string model, sets;
  };
  const std::vector<Case> cases = {
      {"bpr adam (dense gradients)", "model: bpr\n", "--set train.optimizer=adam --set train.lr=0.01"},
      {"bpr sgd (sparse embedding gradients)", "model: bpr\n", "--set train.optimizer=sgd --set train.lr=0.5"},
      {"bpr lazy_adam (sparse)", "model: bpr\n", "--set train.optimizer=lazy_adam --set train.lr=0.01"},
      {"mf adam (pointwise)", "model: mf\n", "--set train.optimizer=adam --set train.lr=0.01"},
      {"mf sgd", "model: mf\n", "--set train.optimizer=sgd --set train.lr=0.5"},
      {"sasrec adam (all positions, ce)", "model: {name: sasrec, hidden_size: 16, layers: 1, inner_size: 32, dropout: 0, "
                                          "attn_dropout: 0, max_len: 10}\n",
       "--set train.optimizer=adam --set train.lr=0.001 --set train.sequence.augment=none --set dataset.split.method=leave_last"},
      {"sasrec sgd, micro-batches of 10 rows (each process's block in pieces)",
       "model: {name: sasrec, hidden_size: 16, layers: 1, inner_size: 32, dropout: 0, attn_dropout: 0, max_len: 10}\n",
       "--set train.optimizer=sgd --set train.lr=0.5 --set train.micro_batch_size=10 --set train.sequence.augment=none "
       "--set dataset.split.method=leave_last"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      const std::string exp = t.write("exp.yaml", data + c.model);
      const auto [a, b] = one_and_two(t, exp, c.sets, "run", "--set train.batch_size=64", "--set train.batch_size=32");
      // Adam divides by sqrt(v): the rounding of gradients summed in another order grows over the
      // steps (3 epochs at lr 0.01: 8e-6 with torch::optim::Adam, 2.5e-5 with rzoo's fused pass);
      // a wrong share of the batch or a missed all-reduce changes the gradients themselves.
      for (const char* f : {"/best.pt", "/last.pt"}) CHECK(max_diff(model_of(a + f), model_of(b + f)) < 1e-4);
      // Losses and every validation metric of every epoch, to the digits history.csv keeps.
      const std::string ha = history_without_time(a), hb = history_without_time(b);
      CHECK(ha.size() > 40);
      // Losses may differ in the last float digits (sums in another order): compare the metrics.
      std::stringstream sa(ha), sb(hb);
      std::string la, lb;
      while (std::getline(sa, la) && std::getline(sb, lb)) {
        const auto metrics = [](const std::string& l) {
          size_t c = 0, at = 0;
          while (c < 3 && (at = l.find(',', at) + 1) != 0) ++c;  // epoch, loss, lr
          return l.substr(at);
        };
        CHECK(metrics(la) == metrics(lb));
      }
      // Only rank 0 wrote the run folder; the other rank wrote nothing else anywhere.
      CHECK(fs::exists(b + "/metrics.json"));
      std::vector<std::string> folders;
      for (const auto& e : fs::directory_iterator(t.file("runs"))) folders.push_back(e.path().filename().string());
      CHECK(folders.size() == 2);
    }
  }
}

TEST_CASE("distributed: iALS with its rows split across 2 processes equals iALS in one", "[distributed]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\nmodel: {name: ials, factors: 8, epochs: 4}\n");
  for (const std::string solver : {"cg", "cholesky"}) {
    INFO(solver);
    const auto [a, b] = one_and_two(t, exp, "--set model.solver=" + solver, solver);
    CHECK(max_diff(model_of(a + "/best.pt"), model_of(b + "/best.pt")) < 1e-4);
    CHECK(read(a + "/test.users.csv") == read(b + "/test.users.csv"));
    CHECK(read(a + "/valid.users.csv") == read(b + "/valid.users.csv"));
  }
}

TEST_CASE("distributed: ItemKNN and UserKNN with their similarity rows split across 2 processes equal one process",
          "[distributed]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\n");
  for (const std::string sets : {"--set model=itemknn --set model.neighbors=20",
                                 "--set model=itemknn --set model.prune=column --set model.neighbors=20",
                                 "--set model=userknn --set model.neighbors=20",
                                 "--set model=itemknn --set model.mode=rating --set eval.metrics=[rmse,ndcg]"}) {
    INFO(sets);
    const auto [a, b] = one_and_two(t, exp, sets, std::to_string(std::hash<std::string>{}(sets) % 100000));
    CHECK(max_diff(model_of(a + "/best.pt"), model_of(b + "/best.pt")) == 0);
    CHECK(read(a + "/test.users.csv") == read(b + "/test.users.csv"));
  }
}

TEST_CASE("distributed: evaluation in 2 processes equals one process, value for value", "[distributed]") {
  TempDir t;
  const std::string exp =
      t.write("exp.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 2}\neval: {save_rankings: true}\n");
  const auto r = run_cli("train " + q(exp) + common(t) + " --set threads=1 --set run_name=r");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string run = t.file("runs/r");
  // One process, then two (eval.protocol uni50 too: sampled candidates per user).
  for (const std::string set : {"", "--set eval.protocol=uni50"}) {
    INFO(set);
    auto e1 = run_cli("evaluate " + q(run) + " " + set + " --quiet");
    REQUIRE(e1.code == 0);
    const std::string out = set.empty() ? run : run + "/eval-protocol-uni50";
    const std::string v1 = read(out + "/valid.users.csv"), t1 = read(out + "/test.users.csv"),
                      k1 = read(out + "/test.rankings.tsv");
    REQUIRE(fs::remove(out + "/test.users.csv"));
    auto e2 = run_cli("evaluate " + q(run) + " " + set + " --quiet --nproc 2");
    INFO(e2.output);
    REQUIRE(e2.code == 0);
    CHECK(e1.output == e2.output);  // the same tables
    CHECK(read(out + "/valid.users.csv") == v1);
    CHECK(read(out + "/test.users.csv") == t1);
    CHECK(read(out + "/test.rankings.tsv") == k1);
    CHECK(t1.size() > 1000);
  }
}

TEST_CASE("distributed: a comparison in 2 processes gives the per-user values of one process", "[distributed]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\ncompare: [pop, ease, bpr]\ntrain: {epochs: 2}\n");
  // train.batch_size is per process: 2 x 32 rows per step against 1 x 64.
  const auto one = run_cli("compare " + q(exp) + common(t) + " --set threads=1 --set run_name=one --set train.batch_size=64");
  REQUIRE(one.code == 0);
  const auto two =
      run_cli("compare " + q(exp) + common(t) + " --set threads=1 --set run_name=two --set train.batch_size=32 --nproc 2");
  INFO(two.output);
  REQUIRE(two.code == 0);
  CHECK(two.output.find("comparison on synthetic") != std::string::npos);
  for (const char* m : {"pop", "ease", "bpr"}) {
    INFO(m);
    const std::string a = read(t.file("runs/one/") + m + "/test.users.csv");
    CHECK(a.size() > 1000);
    CHECK(a == read(t.file("runs/two/") + m + "/test.users.csv"));
  }
  CHECK(fs::exists(t.file("runs/two/compare.md")));
}

TEST_CASE("distributed: rzoo tune --nproc 2 trains each trial in 2 processes, as one process with twice the batch",
          "[distributed]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 2}\n"
                                              "search: {method: grid, space: {train.lr: [0.01, 0.03]}}\n");
  const auto one = run_cli("tune " + q(exp) + common(t) + " --set threads=1 --set train.batch_size=64 --out " +
                           q(t.file("one")));
  INFO(one.output);
  REQUIRE(one.code == 0);
  const auto two = run_cli("tune " + q(exp) + common(t) + " --set threads=1 --set train.batch_size=32 --out " +
                           q(t.file("two")) + " --nproc 2");
  INFO(two.output);
  REQUIRE(two.code == 0);
  for (const char* trial : {"trial-0001", "trial-0002"}) {
    INFO(trial);
    CHECK(read(t.file("two/") + trial + "/train.log").find("| 2 processes (distributed)") != std::string::npos);
    const std::string v = read(t.file("one/") + trial + "/valid.users.csv");
    CHECK(v.size() > 1000);
    CHECK(v == read(t.file("two/") + trial + "/valid.users.csv"));
  }
}

TEST_CASE("distributed: started by torchrun (python3-torch's launcher)", "[distributed]") {
  if (run_shell("/usr/bin/python3 -c 'import torch.distributed.run'").code != 0) {
    WARN("no /usr/bin/python3 with torch.distributed.run: the launcher test did not run");
    return;
  }
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 2, batch_size: 32}\n");
  const auto ours = run_cli("train " + q(exp) + common(t) + " --set threads=1 --set run_name=ours --nproc 2");
  REQUIRE(ours.code == 0);
  // --redirects 1 --tee 1: torchrun 1.13 under Python 3.11 fails on its default "0" (its Std
  // flag enum no longer lists the zero member), so ranks' stdout goes to files and the terminal.
  const auto tr = run_shell("/usr/bin/python3 -m torch.distributed.run --standalone --nproc_per_node 2 --no_python "
                            "--redirects 1 --tee 1 --log_dir " + q(t.file("torchrun-logs")) + " " +
                            std::string(RZOO_TEST_CLI) + " train " + q(exp) + common(t) +
                            " --set threads=1 --set run_name=torchrun");
  INFO(tr.output);
  REQUIRE(tr.code == 0);
  CHECK(max_diff(model_of(t.file("runs/ours/best.pt")), model_of(t.file("runs/torchrun/best.pt"))) == 0);
  CHECK(read(t.file("runs/ours/test.users.csv")) == read(t.file("runs/torchrun/test.users.csv")));

  // Two machines' launch, both agents on this host: torchrun --nnodes 2 --node_rank 0|1 with one
  // process each (static rendezvous at MASTER_ADDR:MASTER_PORT). Each rank is LOCAL_RANK 0 of its
  // node; rank 0 (node 0) writes the run. The same model as --nproc 2.
  const int port = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    if (fd >= 0) ::close(fd);
    return ok ? static_cast<int>(ntohs(a.sin_port)) : 29500;
  }();
  std::string nodes;
  for (int node = 0; node < 2; ++node)
    nodes += fmt::format("/usr/bin/python3 -m torch.distributed.run --nnodes 2 --node_rank {} --nproc_per_node 1 "
                         "--master_addr 127.0.0.1 --master_port {} --no_python --redirects 1 --tee 1 --log_dir {} {} train {}{} "
                         "--set threads=1 --set run_name=nodes > {} 2>&1 & p{}=$!; ",
                         node, port, q(t.file(fmt::format("node{}-logs", node))), RZOO_TEST_CLI, q(exp), common(t),
                         q(t.file(fmt::format("node{}.out", node))), node);
  const auto mn = run_shell("(" + nodes + "wait $p0; a=$?; wait $p1; b=$?; exit $((a | b)))");
  INFO(read(t.file("node0.out")) + read(t.file("node1.out")));
  REQUIRE(mn.code == 0);
  CHECK(max_diff(model_of(t.file("runs/ours/best.pt")), model_of(t.file("runs/nodes/best.pt"))) == 0);
  CHECK(read(t.file("runs/ours/test.users.csv")) == read(t.file("runs/nodes/test.users.csv")));
  CHECK(read(t.file("runs/nodes/train.log")).find("| 2 processes (distributed)") != std::string::npos);
}

namespace {
// A 2-process BPR run (24 short epochs, about 1 s each) trained once uninterrupted (runs/whole), and once in the
// background (runs/NAME) whose rank 1 alone gets `sig` once epoch `at` is logged. Returns that
// run's output ending in STATUS=<exit status>, and the seconds from the signal to the end.
std::pair<std::string, double> interrupted_run(const TempDir& t, const std::string& name, int sig, int at) {
  const std::string exp = t.write("exp.yaml",
                                  "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 24, batch_size: 16, valid_every: 100, "
                                  "early_stop: {patience: 0}}\n");
  const std::string args = "train " + q(exp) + common(t) + " --set threads=1 --set distributed.timeout=30 --nproc 2";
  const auto whole = run_cli(args + " --set run_name=whole");
  INFO(whole.output);
  REQUIRE(whole.code == 0);
  const std::string log = t.file(name + ".out");
  // Not holding run_shell's pipe, so that it returns at once.
  run_shell("(" + std::string(RZOO_TEST_CLI) + " " + args + " --set run_name=" + name + " > " + q(log) +
            " 2>&1; echo \"STATUS=$?\" >> " + q(log) + ") > /dev/null 2>&1 &");
  const std::string mark = fmt::format("epoch {:>4}/24", at);
  bool sent = false;
  for (int i = 0; i < 600 && !sent; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (read(t.file("runs/" + name + "/train.log")).find(mark) == std::string::npos) continue;
    for (const auto& e : fs::directory_iterator("/proc")) {  // rank 1, found by its command line and environment
      if (read(e.path().string() + "/cmdline").find("run_name=" + name) == std::string::npos) continue;
      if (read(e.path().string() + "/environ").find("LOCAL_RANK=1") == std::string::npos) continue;
      ::kill(std::stoi(e.path().filename().string()), sig);
      sent = true;
    }
  }
  REQUIRE(sent);
  const auto sent_at = std::chrono::steady_clock::now();
  std::string out;
  for (int i = 0; i < 900 && out.find("STATUS=") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    out = read(log);
  }
  return {out, std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at).count()};
}

// --resume of runs/NAME with 2 processes ends as the uninterrupted runs/whole.
void check_resume_ends_as_whole(const TempDir& t, const std::string& name) {
  const auto resumed = run_cli("train --resume " + q(t.file("runs/" + name)) + " --quiet --nproc 2");
  INFO(resumed.output);
  REQUIRE(resumed.code == 0);
  CHECK(max_diff(model_of(t.file("runs/whole/best.pt")), model_of(t.file("runs/" + name + "/best.pt"))) < 1e-6);
  CHECK(read(t.file("runs/whole/test.users.csv")) == read(t.file("runs/" + name + "/test.users.csv")));
}
}  // namespace

TEST_CASE("distributed: a rank killed mid-run stops the others with its number, and --resume ends as an uninterrupted run",
          "[distributed]") {
  TempDir t;
  const auto [out, waited] = interrupted_run(t, "killed", SIGKILL, 8);
  INFO(out);
  CHECK(waited < 30);  // within distributed.timeout
  CHECK(out.find("STATUS=0") == std::string::npos);
  CHECK(out.find("STATUS=") != std::string::npos);
  CHECK(out.find("rank 0") != std::string::npos);
  CHECK(out.find("rank(s) 1 stopped answering") != std::string::npos);
  CHECK(out.find("terminate called") == std::string::npos);
  // The last checkpoint is valid.
  check_resume_ends_as_whole(t, "killed");
  // Another number of processes is refused by name.
  require_clean_failure(run_cli("train --resume " + q(t.file("runs/killed")) + " --quiet"), "trained by 2 process(es)");
}

TEST_CASE("distributed: Ctrl-C on one rank stops every rank at the same batch, and --resume finishes the run",
          "[distributed]") {
  TempDir t;
  const auto [out, waited] = interrupted_run(t, "stopped", SIGINT, 4);
  INFO(out);
  CHECK(out.find("STATUS=130") != std::string::npos);
  // Both ranks left at the same batch with the agreed message; neither lost the other.
  CHECK(out.find("rank 0: error: interrupted during epoch") != std::string::npos);
  CHECK(out.find("rank 1: error: interrupted during epoch") != std::string::npos);
  CHECK(out.find("stopped answering") == std::string::npos);
  check_resume_ends_as_whole(t, "stopped");
}

TEST_CASE("distributed: bad launches are clear errors, never a hang", "[distributed]") {
  TempDir t;
  const std::string exp = t.write("exp.yaml", "dataset: synthetic\nmodel: bpr\ntrain: {epochs: 1}\n");
  const std::string train = std::string(RZOO_TEST_CLI) + " train " + q(exp) + common(t) + " --set threads=1 ";
  require_clean_failure(run_shell("env WORLD_SIZE=2 RANK=0 MASTER_PORT=29999 " + train), "MASTER_ADDR is not set");
  require_clean_failure(run_shell("env WORLD_SIZE=2 RANK=5 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 " + train),
                        "RANK=5 is not an integer in [0, 1]");
  auto r = run_cli("train " + q(exp) + common(t) + " --nproc 0");
  CHECK(r.code == 2);
  CHECK(r.output.find("--nproc 0: expected a number of processes") != std::string::npos);
  CHECK(run_cli("report " + q(t.path.string()) + " --nproc 2").code == 2);
  // A port in use: rank 0 cannot serve the rendezvous store there.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string port = std::to_string(ntohs(a.sin_port));
  require_clean_failure(run_shell("env WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " + train),
                        "cannot serve the rendezvous store");
  ::close(fd);
  // Ranks started with different settings: refused by every rank, naming the key.
  const std::string env = "env WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " ";
  const auto both = run_shell("(" + env + "RANK=0 " + train + " --set train.lr=0.01 & " + env + "RANK=1 " + train +
                              " --set train.lr=0.02; wait)");
  INFO(both.output);
  CHECK(both.output.find("rank 1's resolved config differs from rank 0's at 'train.lr'") != std::string::npos);
  CHECK(both.output.find("terminate called") == std::string::npos);
  // The same config, different data: /proc/self/cwd/data.csv is each rank's own working directory's file.
  const std::string csv_exp = t.write("csv.yaml", "dataset: {name: mine, path: /proc/self/cwd/data.csv, header: false, columns: {user: 0, "
                                                  "item: 1}}\nmodel: pop\n");
  std::string a_rows, b_rows;
  for (int u = 0; u < 40; ++u)
    for (int i = 0; i < 12; ++i) {
      a_rows += std::to_string(u) + "," + std::to_string((u * 7 + i * 3) % 50) + "\n";
      b_rows += std::to_string(u) + "," + std::to_string((u * 5 + i * 3) % 50) + "\n";
    }
  fs::create_directories(t.file("a"));
  fs::create_directories(t.file("b"));
  t.write("a/data.csv", a_rows);
  t.write("b/data.csv", b_rows);
  const std::string csv_train = std::string(RZOO_TEST_CLI) + " train " + q(csv_exp) + common(t) + " --set threads=1 ";
  const auto data_differs = run_shell("(cd " + q(t.file("a")) + " && " + env + "RANK=0 " + csv_train + " & cd " +
                                      q(t.file("b")) + " && " + env + "RANK=1 " + csv_train + "; wait)");
  INFO(data_differs.output);
  CHECK(data_differs.output.find("rank 1's data differ from rank 0's: items checksum") != std::string::npos);
  // nccl asked for in a build without it (Debian's LibTorch has no CUDA): refused before any rendezvous.
  require_clean_failure(run_shell(env + "RANK=0 " + train + " --set distributed.backend=nccl"),
                        RZOO_HAVE_NCCL ? "this run's device is the CPU" : "nccl is not available in this rzoo build");
  // A peer that never comes: rank 0 gives up within distributed.timeout.
  const auto alone = run_shell(env + "RANK=0 " + train + " --set distributed.timeout=3");
  INFO(alone.output);
  CHECK(alone.code == 1);
  CHECK(alone.output.find("could not join the 2 ranks") != std::string::npos);
}

#endif
