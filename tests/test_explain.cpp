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
#include "models/sequential/bert4rec.h"
#include "models/sequential/caser.h"
#include "models/sequential/gru4rec.h"
#include "models/sequential/sasrec.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

Csr grouped(uint32_t seed) { return grouped_csr(40, 30, seed); }

at::Tensor row_items(const Csr& m, int64_t u) {
  return torch::tensor(std::vector<int64_t>(m.row_begin(u), m.row_end(u)), torch::kLong);
}

// Every item's evidence adds up to its fold-in score, and the evidence lies in the history.
void check_adds_up(RecommenderImpl& m, const Csr& train, const std::string& kind = "items") {
  torch::NoGradGuard no_grad;
  REQUIRE(m.explain_kind() == kind);
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
      for (int64_t j = 0; j < ev.numel(); ++j) {
        const int64_t e = ev[j].item<int64_t>();
        // Items: in the history; users (UserKNN's neighbours): they have the item.
        if (kind == "items") CHECK(std::binary_search(train.row_begin(u), train.row_end(u), e));
        else CHECK(std::binary_search(train.row_begin(e), train.row_end(e), i));
      }
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
  // UserKNN: the history's neighbours that have the item, with their similarities.
  UserKNN uk(ModelContext{40, 30, nullptr}, KNNOptions().neighbors(5));
  uk->fit(train);
  check_adds_up(*uk, train, "users");
  // UserKNN with column pruning and Pop do not explain: a clear refusal by name.
  UserKNN ukc(ModelContext{40, 30, nullptr}, KNNOptions().neighbors(5).prune("column"));
  ukc->fit(train);
  CHECK(ukc->explain_kind().empty());
  CHECK_THROWS_WITH(ukc->explain(torch::tensor({1}), 2), Contains("model 'userknn' does not explain"));
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

TEST_CASE("explain: SASRec and BERT4Rec give the last block's attention over the history's positions", "[models][explain]") {
  torch::NoGradGuard no_grad;
  // Two users with sequences of 6 items out of 10.
  TinyExample e = make_tiny_example({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, {0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 0}, 2, 10);
  e.s.method = "leave last 1 (valid 0) by file order";  // all training rows, in file order
  torch::manual_seed(3);
  SASRec sas(e.ctx(), SASRecOptions().hidden_size(8).heads(2).layers(2).max_len(4).init_std(0.3));
  sas->eval();
  REQUIRE(sas->explain_kind() == "items");
  // A history longer than the window: its last 4 items, in order, one weight each, summing to 1.
  const auto hist = torch::tensor({9, 1, 2, 3, 2, 7}, torch::kLong);
  const auto [ev, w] = sas->explain(hist, 5);
  REQUIRE(ev.numel() == 4);
  CHECK(torch::equal(ev, torch::tensor({2, 3, 2, 7}, torch::kLong)));
  CHECK(w.sum().item<double>() == Approx(1.0).margin(1e-6));
  CHECK((w >= 0).all().item<bool>());
  // The same for every item (attention does not depend on the candidate), and not uniform.
  CHECK(torch::equal(sas->explain(hist, 0).second, w));
  CHECK((w.max() - w.min()).item<double>() > 1e-4);
  // One layer, by hand: the softmax of the scaled dot products of the last position's query with
  // every key, averaged over the 2 heads.
  SASRec one(e.ctx(), SASRecOptions().hidden_size(4).heads(2).layers(1).max_len(3).init_std(0.5));
  one->eval();
  const auto h3 = torch::tensor({4, 1, 6}, torch::kLong);
  auto* b = (*one->blocks)[0]->as<SASRecBlock>();
  const auto x = one->item_emb(h3) * 2.0 + one->pos_emb(torch::arange(3, torch::kLong));  // sqrt(4) = 2
  const auto y = b->ln1(x);                                                                 // [3, 4]
  const auto qkv = torch::linear(y, b->attn->in_proj_weight, b->attn->in_proj_bias).chunk(3, -1);
  at::Tensor expect = torch::zeros({3}, torch::kDouble);
  for (int64_t head = 0; head < 2; ++head) {
    const auto q = qkv[0][2].narrow(0, 2 * head, 2), k = qkv[1].narrow(1, 2 * head, 2);
    expect += torch::softmax(torch::mv(k, q) / std::sqrt(2.0), 0).to(torch::kDouble) / 2;
  }
  CHECK(torch::allclose(one->explain(h3, 0).second, expect, 1e-5, 1e-6));

  BERT4Rec bert(e.ctx(), BERT4RecOptions().hidden_size(8).heads(2).layers(2).max_len(4).init_std(0.3));
  bert->eval();
  const auto [bev, bw] = bert->explain(hist, 5);
  // The last L - 1 = 3 items; the mask token's attention to itself is the rest of the mass.
  CHECK(torch::equal(bev, torch::tensor({3, 2, 7}, torch::kLong)));
  CHECK(bw.sum().item<double>() < 1.0);
  CHECK(bw.sum().item<double>() > 0.0);
}

TEST_CASE("explain: GRU4Rec and Caser give each window position's occlusion, by hand", "[models][explain]") {
  torch::NoGradGuard no_grad;
  TinyExample e = make_tiny_example({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, {0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 0}, 2, 10);
  e.s.method = "leave last 1 (valid 0) by file order";
  torch::manual_seed(4);
  GRU4Rec gru(e.ctx(), GRU4RecOptions().embedding_size(6).hidden_size(5).max_len(4).init_std(0.5));
  Caser caser(e.ctx(), CaserOptions().embedding_size(6).max_len(4).n_h(2).n_v(2));
  const auto hist = torch::tensor({9, 1, 2, 3, 2, 7}, torch::kLong);  // window: the last 4
  const int64_t P = 10;                                               // padding index (n_items)
  for (RecommenderImpl* m : {static_cast<RecommenderImpl*>(gru.get()), static_cast<RecommenderImpl*>(caser.get())}) {
    INFO(m->name());
    m->train();  // explain scores in eval mode (no dropout) and restores the mode
    REQUIRE(m->explain_kind() == "items");
    const auto [ev, w] = m->explain(hist, 5);
    CHECK(m->is_training());
    CHECK(torch::equal(ev, torch::tensor({2, 3, 2, 7}, torch::kLong)));
    m->eval();
    // score(5 | window) - score(5 | window without position p), each window left-padded.
    const auto full = m->score_history(torch::tensor({{2, 3, 2, 7}}, torch::kLong))[0][5].item<double>();
    const std::vector<std::vector<int64_t>> without = {{P, 3, 2, 7}, {P, 2, 2, 7}, {P, 2, 3, 7}, {P, 2, 3, 2}};
    for (size_t p = 0; p < without.size(); ++p) {
      const auto s = m->score_history(torch::tensor(without[p], torch::kLong).unsqueeze(0))[0][5].item<double>();
      CHECK(w[static_cast<int64_t>(p)].item<double>() == Approx(full - s).margin(1e-5));
    }
    CHECK(w.abs().max().item<double>() > 0.0);
  }
}
