// `rzoo export` and `rzoo recommend` through the real binary: a trained run exported and served,
// and every bad input (damaged model files, wrong arguments, unknown users, out-of-range ids)
// answered by one clear message.
#include "helpers.h"

#include <torch/script.h>

#include <fstream>
#include <sstream>

using namespace rzoo::test;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// One trained BPR run on synthetic data with ml-like titles, exported once for every test.
struct Exported {
  TempDir t;
  std::string run, model;
  Exported() {
    const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: bpr, embedding_size: 8}\ntrain: {epochs: 2}\n");
    const auto r = run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
                           q(t.file("runs")) + " --set run_name=bpr");
    INFO(r.output);
    REQUIRE(r.code == 0);
    run = t.file("runs/bpr");
    model = t.file("bpr.pt");
    const auto e = run_cli("export " + q(run) + " --out " + q(model));
    INFO(e.output);
    REQUIRE(e.code == 0);
    REQUIRE(e.output.find("exported") != std::string::npos);
  }
};

}  // namespace

TEST_CASE("export: the file holds the model, its ids, config and metrics, recommend serves it", "[export][cli]") {
  Exported x;
  // Plain LibTorch loads it, with its extra files.
  torch::jit::ExtraFilesMap extra{{"config.yaml", ""}, {"users.txt", ""}, {"items.txt", ""}, {"metrics.json", ""}, {"rzoo.txt", ""}};
  torch::jit::Module m = torch::jit::load(x.model, torch::kCPU, extra);
  for (const auto& [name, text] : extra) {
    INFO(name);
    CHECK_FALSE(text.empty());
  }
  CHECK(extra["config.yaml"].find("bpr") != std::string::npos);
  CHECK(extra["metrics.json"].find("\"test\"") != std::string::npos);
  CHECK(m.attr("model_name").toStringRef() == "bpr");
  const int64_t n_users = m.attr("n_users").toInt();
  CHECK(n_users == 200);
  const std::string first_user = extra["users.txt"].substr(0, extra["users.txt"].find('\n'));

  // One user: ranked raw ids; never an item the user already has.
  auto r = run_cli("recommend --model " + q(x.model) + " --user " + q(first_user) + " -k 5");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("top 5 for user " + first_user) != std::string::npos);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 6);
  // Many users: CSV, written atomically.
  const std::string users = x.t.write("users.txt", first_user + "\nnobody\n");
  r = run_cli("recommend --model " + q(x.model) + " --users-file " + q(users) + " -k 3 --fallback popular --out " +
              q(x.t.file("recs.csv")));
  REQUIRE(r.code == 0);
  std::ifstream in(x.t.file("recs.csv"));
  std::string header, line;
  std::getline(in, header);
  CHECK(header == "user,rank,item,score,title,source");
  int rows = 0;
  while (std::getline(in, line)) ++rows;
  CHECK(rows == 6);
  // An unknown user: a clear message, or the most popular items with --fallback popular.
  require_clean_failure(run_cli("recommend --model " + q(x.model) + " --user nobody"), "unknown user 'nobody'");
  r = run_cli("recommend --model " + q(x.model) + " --user nobody --fallback popular -k 2");
  CHECK(r.code == 0);
  CHECK(r.output.find("most popular") != std::string::npos);
  require_clean_failure(run_cli("recommend --model " + q(x.model) + " --users-file " + q(users)), "users.txt:2: unknown user 'nobody'");
  CHECK_FALSE(fs::exists(x.t.file("none.csv")));
}

TEST_CASE("export: wrong arguments and damaged files are clear errors", "[export][cli][errors]") {
  Exported x;
  // Usage errors (exit 2).
  for (const auto& [args, msg] : std::vector<std::pair<std::string, std::string>>{
           {"recommend --user 1", "needs --model"},
           {"recommend --model " + q(x.model), "exactly one of --user RAW_ID, --users-file FILE or --history"},
           {"recommend --model " + q(x.model) + " --user 1 --history 1", "exactly one of"},
           {"recommend --model " + q(x.model) + " --user 1 --skip-unknown", "--skip-unknown goes with --history"},
           {"recommend --model " + q(x.model) + " --user 1 -k 0", "-k takes a whole number >= 1, got '0'"},
           {"recommend --model " + q(x.model) + " --user 1 -k ten", "got 'ten'"},
           {"recommend --model " + q(x.model) + " --user 1 --fallback random", "--fallback takes 'popular'"},
           {"export " + q(x.run), "export needs --out"},
           {"export --out " + q(x.t.file("a.pt")), "export takes one RUN_DIR"}}) {
    const auto r = run_cli(args);
    INFO(args << "\n" << r.output);
    CHECK(r.code == 2);
    CHECK(r.output.find(msg) != std::string::npos);
  }
  // Missing, truncated, corrupt, or not an rzoo model.
  require_clean_failure(run_cli("recommend --model " + q(x.t.file("nope.pt")) + " --user 1"), "no such model file");
  const auto size = fs::file_size(x.model);
  fs::copy_file(x.model, x.t.file("cut.pt"));
  fs::resize_file(x.t.file("cut.pt"), size / 2);
  require_clean_failure(run_cli("recommend --model " + q(x.t.file("cut.pt")) + " --user 1"), "not a readable TorchScript model");
  x.t.write("junk.pt", std::string(4096, 'x'));
  require_clean_failure(run_cli("recommend --model " + q(x.t.file("junk.pt")) + " --user 1"), "not a readable TorchScript model");
  torch::jit::Module other("other");
  other.register_buffer("w", torch::ones({2}));
  other.define("def forward(self, x: Tensor) -> Tensor:\n    return x * self.w\n");
  other.save(x.t.file("other.pt"));
  require_clean_failure(run_cli("recommend --model " + q(x.t.file("other.pt")) + " --user 1"), "not an rzoo model");
  // Exporting something that is not a finished run.
  require_clean_failure(run_cli("export " + q(x.t.file("nowhere")) + " --out " + q(x.t.file("b.pt"))), "no such run folder");
  CHECK_FALSE(fs::exists(x.t.file("b.pt")));
  // Out-of-range ids and bad shapes, called as a C++ client would: clear messages.
  torch::jit::Module m = torch::jit::load(x.model);
  auto message = [&](auto&& call) -> std::string {
    try {
      call();
    } catch (const std::exception& e) {  // torch::jit::JITException from an assert in the module
      return e.what();
    }
    return "";
  };
  CHECK(message([&] { m.run_method("score", torch::tensor({0, 200}), torch::tensor({0, 1})); }).find("user index out of range: 200 not in [0, 200)") !=
        std::string::npos);
  CHECK(message([&] { m.run_method("score", torch::tensor({0}), torch::tensor({-1})); }).find("item index out of range: -1") !=
        std::string::npos);
  CHECK(message([&] { m.run_method("score", torch::tensor({0, 1}), torch::tensor({0})); }).find("same length") != std::string::npos);
  CHECK(message([&] { m.run_method("recommend", torch::tensor({0}), int64_t{0}); }).find("k must be >= 1") != std::string::npos);
  CHECK(message([&] { m.run_method("recommend", torch::zeros({1, 1}, torch::kLong), int64_t{3}); }).find("1-D tensor") !=
        std::string::npos);
  // k beyond the catalogue: every item, known ones last with -inf.
  const auto all = m.run_method("recommend", torch::tensor({0}), int64_t{10000}).toTuple();
  CHECK(all->elements()[1].toTensor().size(1) == m.attr("n_items").toInt());
}

TEST_CASE("export: a sequential model serves a history of raw item ids (recommend --history)", "[export][cli][sasrec]") {
  TempDir t;
  const std::string exp = t.write("e.yaml",
                                  "dataset: {name: synthetic, split: {method: leave_last}}\n"
                                  "model: {name: sasrec, hidden_size: 8, inner_size: 16, max_len: 6}\n"
                                  "train: {epochs: 1, sequence: {max_len: 6}}\n");
  auto r = run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
                   q(t.file("runs")) + " --set run_name=s");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string model = t.file("s.pt");
  REQUIRE(run_cli("export " + q(t.file("runs/s")) + " --out " + q(model)).code == 0);
  torch::jit::ExtraFilesMap extra{{"items.txt", ""}};
  torch::jit::Module m = torch::jit::load(model, torch::kCPU, extra);
  CHECK(m.attr("history_len").toInt() == 6);
  std::vector<std::string> ids;
  std::istringstream in(extra["items.txt"]);
  for (std::string line; std::getline(in, line);) ids.push_back(line);
  REQUIRE(ids.size() > 10);
  const std::string hist = ids[3] + "," + ids[7] + ", " + ids[1];
  r = run_cli("recommend --model " + q(model) + " --history " + q(hist) + " -k 5");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("top 5 after a history of 3 items") != std::string::npos);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 6);
  // The history's own items are not recommended; the ranking is the module's recommend_history.
  c10::List<std::string> list;
  for (int j : {3, 7, 1}) list.push_back(ids[static_cast<size_t>(j)]);
  const auto rec = m.run_method("recommend_history", list, int64_t{5}).toTuple()->elements()[0].toList();
  REQUIRE(rec.size() == 5);
  for (size_t j = 0; j < rec.size(); ++j) {
    const std::string id = rec.get(j).toStringRef();
    CHECK(id != ids[3]);
    CHECK(id != ids[7]);
    CHECK(id != ids[1]);
    CHECK(r.output.find(" " + id + " ") != std::string::npos);
  }
  // Order matters for a sequence model: the reversed history ranks differently.
  c10::List<std::string> rev;
  for (int j : {1, 7, 3}) rev.push_back(ids[static_cast<size_t>(j)]);
  const auto s1 = m.run_method("score_history", m.run_method("history_indices", list).toTensor()).toTensor();
  const auto s2 = m.run_method("score_history", m.run_method("history_indices", rev).toTensor()).toTensor();
  CHECK_FALSE(torch::allclose(s1, s2));
  // Unknown ids: an error naming the id, or skipped; an empty history: an error. Exit 1.
  require_clean_failure(run_cli("recommend --model " + q(model) + " --history " + q(ids[3] + ",nosuch")), "unknown item id 'nosuch'");
  r = run_cli("recommend --model " + q(model) + " --history " + q(ids[3] + ",nosuch") + " --skip-unknown -k 2");
  CHECK(r.code == 0);
  CHECK(r.output.find("(1 unknown skipped)") != std::string::npos);
  require_clean_failure(run_cli("recommend --model " + q(model) + " --history nosuch --skip-unknown"), "every item id is unknown");
  require_clean_failure(run_cli("recommend --model " + q(model) + " --history ''"), "the history is empty");
  require_clean_failure(run_cli("recommend --model " + q(model) + " --history ' , '"), "the history is empty");
}

TEST_CASE("export: recommend --history on a model without histories is a clear error", "[export][cli][errors]") {
  // UserKNN with column pruning ranks from the training users' own neighbour lists: no fold-in.
  TempDir t;
  const std::string exp = t.write("e.yaml", "dataset: synthetic\nmodel: {name: userknn, prune: column}\n");
  REQUIRE(run_cli("train " + q(exp) + " --config-dir " + q(config_dir()) + " --quiet --set threads=1 --set output_dir=" +
                  q(t.file("runs")) + " --set run_name=m").code == 0);
  REQUIRE(run_cli("export " + q(t.file("runs/m")) + " --out " + q(t.file("m.pt"))).code == 0);
  require_clean_failure(run_cli("recommend --model " + q(t.file("m.pt")) + " --history 1,2"),
                        "model 'userknn' ranks from known users only");
}
