// Explanations (RecommenderImpl::explain, rzoo recommend --explain): for ItemKNN, EASE, iALS and
// content the evidence weights add up to the history's fold-in score of the item; BPR, MF and GMF
// list cosines of item factors; hand-computed values; the CLI table, JSON and errors.
#include "helpers.h"
#include "model_checks.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/json.h"
#include "datasets/dataset.h"
#include "models/general/bpr.h"
#include "models/general/content.h"
#include "models/general/ease.h"
#include "models/general/ials.h"
#include "models/general/knn.h"
#include "models/general/ncf.h"
#include "models/general/pop.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

Csr grouped(uint32_t seed) { return grouped_csr(40, 30, seed); }

at::Tensor row_items(const Csr& m, int64_t u) {
  return torch::tensor(std::vector<int64_t>(m.row_begin(u), m.row_end(u)), torch::kLong);
}

// Every item's evidence adds up to its fold-in score, and the evidence lies in the history.
void check_adds_up(RecommenderImpl& m, const Csr& train) {
  torch::NoGradGuard no_grad;
  REQUIRE(m.explain_kind() == "items");
  for (int64_t u = 0; u < 40; u += 7) {
    if (train.row_size(u) == 0) continue;
    INFO("user " << u);
    const auto hist = row_items(train, u);
    const auto s = m.score_fold_in(hist).to(torch::kDouble);
    for (int64_t i = 0; i < 30; ++i) {
      INFO("item " << i);
      const auto [ev, w] = m.explain(hist, i);
      REQUIRE(ev.numel() == w.numel());
      CHECK(w.sum().item<double>() == Approx(s[i].item<double>()).epsilon(1e-4).margin(1e-5));
      for (int64_t j = 0; j < ev.numel(); ++j)
        CHECK(std::binary_search(train.row_begin(u), train.row_end(u), ev[j].item<int64_t>()));
    }
  }
}

}  // namespace

TEST_CASE("explain: ItemKNN, EASE and iALS evidence adds up to the fold-in score", "[models][explain]") {
  const Csr train = grouped(3);
  for (const std::string prune : {"row", "column"}) {
    INFO("itemknn, prune " << prune);
    ItemKNN m(ModelContext{40, 30, nullptr}, KNNOptions().neighbors(5).prune(prune));
    m->fit(train);
    check_adds_up(*m, train);
  }
  EASE ease(ModelContext{40, 30, nullptr}, EASEOptions().l2(5.0));
  ease->fit(train);
  check_adds_up(*ease, train);
  torch::manual_seed(1);
  IALS ials(ModelContext{40, 30, nullptr}, IALSOptions().factors(6).epochs(5).alpha(1.5));
  ials->fit(train);
  check_adds_up(*ials, train);
  // UserKNN and Pop do not explain: a clear refusal by name.
  UserKNN uk(ModelContext{40, 30, nullptr}, KNNOptions().neighbors(5));
  uk->fit(train);
  CHECK(uk->explain_kind().empty());
  CHECK_THROWS_WITH(uk->explain(torch::tensor({1}), 2), Contains("model 'userknn' does not explain"));
  Pop pop(ModelContext{40, 30, nullptr});
  CHECK_THROWS_WITH(pop->explain(torch::tensor({1}), 2), Contains("model 'pop' does not explain") && Contains("itemknn"));
}

TEST_CASE("explain: EASE and ItemKNN weights by hand", "[models][explain]") {
  torch::NoGradGuard no_grad;
  EASE ease(ModelContext{1, 3, nullptr});
  ease->item_weights.copy_(torch::tensor({{0.0f, 0.5f, -0.25f}, {0.125f, 0.0f, 0.75f}, {1.0f, 2.0f, 0.0f}}));
  // History {0, 1}, item 2: B[0, 2] = -0.25, B[1, 2] = 0.75.
  const auto [ev, w] = ease->explain(torch::tensor({0, 1}, torch::kLong), 2);
  CHECK(ev.equal(torch::tensor({0, 1}, torch::kLong)));
  CHECK(w[0].item<double>() == Approx(-0.25));
  CHECK(w[1].item<double>() == Approx(0.75));
}

TEST_CASE("explain: iALS shares are c h_i^T A^-1 h_j (Hu et al. 2008), by hand", "[models][explain]") {
  torch::NoGradGuard no_grad;
  // d = 1, alpha 1 (c = 2), alpha0 0, lambda 0.5, nu 0: A = 0.5 + 2 sum_j h_j^2.
  IALS m(ModelContext{1, 3, nullptr}, IALSOptions().factors(1).alpha(1.0).unobserved_weight(0.0).l2(0.5).nu(0.0));
  m->item_factors.copy_(torch::tensor({{1.0f}, {2.0f}, {-1.0f}}));
  const auto [ev, w] = m->explain(torch::tensor({0, 1}, torch::kLong), 2);
  const double a = 0.5 + 2.0 * (1.0 + 4.0);
  CHECK(w[0].item<double>() == Approx(2.0 * -1.0 * 1.0 / a));
  CHECK(w[1].item<double>() == Approx(2.0 * -1.0 * 2.0 / a));
  CHECK(w.sum().item<double>() == Approx(m->score_fold_in(torch::tensor({0, 1}, torch::kLong))[2].item<double>()));
}

TEST_CASE("explain: content lists the shared features, adding up to the cosine", "[models][explain]") {
  // 4 items; genres: 0 {a}, 1 {a, b}, 2 {b, c}, 3 {c}.
  const Dataset d = tiny_genre_dataset();
  Split s;
  s.train = Csr::from_pairs(2, 4, {0, 1, 1}, {0, 1, 2});
  s.train_rows = {0, 1, 2};
  Content m(ModelContext{2, 4, nullptr, &d, &s}, ContentOptions().weighting("binary"));
  m->fit(s.train);
  REQUIRE(m->explain_kind() == "features");
  // History {1} = (a + b)/sqrt2; item 2 = (b + c)/sqrt2: only b is shared, weight 1/2.
  torch::NoGradGuard no_grad;
  const auto [ev, w] = m->explain(torch::tensor({1}, torch::kLong), 2);
  REQUIRE(ev.numel() == 1);
  CHECK(m->explain_features().at(static_cast<size_t>(ev[0].item<int64_t>())) == "genres:b");
  CHECK(w[0].item<double>() == Approx(0.5));
  CHECK(w.sum().item<double>() == Approx(m->score_fold_in(torch::tensor({1}, torch::kLong))[2].item<double>()));
}

TEST_CASE("explain: BPR, MF and GMF give the cosine of item factors", "[models][explain]") {
  torch::NoGradGuard no_grad;
  BPR bpr(ModelContext{1, 3, nullptr}, BPROptions().embedding_size(2));
  bpr->item_emb->weight.copy_(torch::tensor({{1.0f, 0.0f}, {1.0f, 1.0f}, {0.0f, 2.0f}}));
  DotMF mf(ModelContext{1, 3, nullptr}, DotMFOptions().embedding_size(2));
  mf->item_emb->weight.copy_(bpr->item_emb->weight);
  GMF gmf(ModelContext{1, 3, nullptr}, GMFOptions().embedding_size(2));
  gmf->gmf_item_emb->weight.copy_(bpr->item_emb->weight);
  std::vector<RecommenderImpl*> models = {bpr.get(), mf.get(), gmf.get()};
  for (RecommenderImpl* m : models) {
    INFO(m->name());
    const auto [ev, w] = m->explain(torch::tensor({0, 1}, torch::kLong), 2);
    CHECK(w[0].item<double>() == Approx(0.0).margin(1e-12));          // (1, 0) vs (0, 2)
    CHECK(w[1].item<double>() == Approx(1.0 / std::sqrt(2.0)));      // (1, 1) vs (0, 2)
  }
}

TEST_CASE("explain: rzoo recommend --explain prints evidence, --json a document, bad uses are clear errors", "[explain][cli]") {
  TempDir t;
  const std::string common = " --config-dir '" + config_dir() + "' --set threads=1 --set output_dir='" + t.file("runs") + "' --quiet";
  for (const std::string model : {"itemknn", "pop"}) {
    const std::string exp = t.write(model + ".yaml", "dataset: synthetic\nmodel: " + model + "\nrun_name: " + model + "\n");
    REQUIRE(run_cli("train '" + exp + "'" + common).code == 0);
    REQUIRE(run_cli("export '" + t.file("runs/" + model) + "' --out '" + t.file(model + ".pt") + "'").code == 0);
  }
  const std::string pt = "--model '" + t.file("itemknn.pt") + "'";
  const auto users = read_file(t.file("runs/itemknn/users.txt"));
  const std::string user = users.substr(0, users.find('\n'));
  auto r = run_cli("recommend " + pt + " --user " + user + " -k 2 --explain --evidence 2");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("top 2 for user " + user) != std::string::npos);
  // Evidence lines: indented, a signed weight, then an item id; 2 per item.
  int evidence_lines = 0;
  for (size_t p = 0; (p = r.output.find("\n         ", p)) != std::string::npos; ++p)
    if (r.output.find_first_not_of(' ', p + 1) != std::string::npos && std::strchr("+-", r.output[r.output.find_first_not_of(' ', p + 1)]))
      ++evidence_lines;
  CHECK(evidence_lines == 4);

  r = run_cli("recommend " + pt + " --user " + user + " -k 3 --explain --json");
  REQUIRE(r.code == 0);
  const Json doc = json_parse(r.output, "stdout");
  CHECK(doc["model"] == "itemknn");
  CHECK(doc["user"] == user);
  CHECK(doc["evidence_kind"] == "items");
  REQUIRE(doc["recommendations"].size() == 3);
  for (const auto& rec : doc["recommendations"]) {
    REQUIRE(rec["evidence"].is_array());
    CHECK(rec["evidence"].size() <= 3);
    // Strongest first.
    for (size_t j = 1; j < rec["evidence"].size(); ++j)
      CHECK(rec["evidence"][j - 1]["weight"].get<double>() >= rec["evidence"][j]["weight"].get<double>());
  }
  // --history: the same evidence as the export's explain_history.
  const auto items = read_file(t.file("runs/itemknn/items.txt"));
  const std::string i0 = items.substr(0, items.find('\n'));
  r = run_cli("recommend " + pt + " --history " + i0 + " -k 1 --explain --json");
  REQUIRE(r.code == 0);
  const Json h = json_parse(r.output, "stdout");
  CHECK(h["history"][0] == i0);
  for (const auto& ev : h["recommendations"][0]["evidence"]) CHECK(ev["item"] == i0);

  require_clean_failure(run_cli("recommend --model '" + t.file("pop.pt") + "' --user " + user + " --explain"),
                        "model 'pop' does not explain its recommendations");
  require_clean_failure(run_cli("recommend " + pt + " --user " + user + " --explain --evidence 0"), "--evidence takes a whole number >= 1");
  require_clean_failure(run_cli("recommend " + pt + " --user " + user + " --evidence 2"), "--evidence goes with --explain");
  const std::string ufile = t.write("users.txt", user + "\n");
  require_clean_failure(run_cli("recommend " + pt + " --users-file '" + ufile + "' --explain"), "--explain and --json go with --user or --history");
}
