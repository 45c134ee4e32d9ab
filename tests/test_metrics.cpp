#include "helpers.h"

#include <torch/torch.h>

#include <cmath>

#include "datasets/dataset.h"
#include "models/registry.h"
#include "trainers/evaluator.h"

using namespace rzoo;
using namespace rzoo::test;

namespace {

double value(const std::vector<std::pair<std::string, at::Tensor>>& m, const std::string& name, int64_t user) {
  for (const auto& [k, v] : m)
    if (k == name) return v[user].item<double>();
  FAIL("no metric " << name);
  return 0;
}

// A model whose scores are a fixed matrix: for checking the evaluator by hand.
class FixedScores : public RecommenderImpl {
 public:
  explicit FixedScores(at::Tensor s) : RecommenderImpl("fixed", ModelContext{s.size(0), s.size(1), nullptr}), s_(s) {}
  InputType input_type() const override { return InputType::None; }
  at::Tensor score(const at::Tensor& u, const at::Tensor& i) override { return s_.index({u, i}); }
  at::Tensor score_all(const at::Tensor& u) override { return s_.index_select(0, u); }

 private:
  at::Tensor s_;
};

const double l2(double x) { return std::log2(x); }

}  // namespace

TEST_CASE("ranking metrics against hand-computed values", "[metrics]") {
  // User 0: hits at ranks 2 and 4 of 5, 3 relevant items. User 1: hit at rank 1, 1 relevant.
  const auto hits = torch::tensor({0, 1, 0, 1, 0, 1, 0, 0, 0, 0}, torch::kFloat).view({2, 5});
  const auto n_rel = torch::tensor({3, 1}, torch::kLong);
  const auto m = ranking_metrics(hits, n_rel, {2, 5}, {"hr", "precision", "recall", "ndcg", "mrr", "map"});
  REQUIRE(m.size() == 12);
  CHECK(m[0].first == "hr@2");
  CHECK(m[1].first == "hr@5");
  // @5
  CHECK(value(m, "hr@5", 0) == Approx(1.0));
  CHECK(value(m, "precision@5", 0) == Approx(2.0 / 5));
  CHECK(value(m, "recall@5", 0) == Approx(2.0 / 3));
  CHECK(value(m, "ndcg@5", 0) == Approx((1 / l2(3) + 1 / l2(5)) / (1 + 1 / l2(3) + 1 / l2(4))));
  CHECK(value(m, "mrr@5", 0) == Approx(0.5));
  CHECK(value(m, "map@5", 0) == Approx((1.0 / 2 + 2.0 / 4) / 3));
  // @2: one hit, IDCG over min(3, 2) = 2 items
  CHECK(value(m, "precision@2", 0) == Approx(0.5));
  CHECK(value(m, "recall@2", 0) == Approx(1.0 / 3));
  CHECK(value(m, "ndcg@2", 0) == Approx((1 / l2(3)) / (1 + 1 / l2(3))));
  CHECK(value(m, "map@2", 0) == Approx(0.5 / 2));
  for (const char* k : {"@2", "@5"}) {
    CHECK(value(m, std::string("hr") + k, 1) == Approx(1.0));
    CHECK(value(m, std::string("recall") + k, 1) == Approx(1.0));
    CHECK(value(m, std::string("ndcg") + k, 1) == Approx(1.0));
    CHECK(value(m, std::string("mrr") + k, 1) == Approx(1.0));
    CHECK(value(m, std::string("map") + k, 1) == Approx(1.0));
  }
  CHECK(value(m, "precision@5", 1) == Approx(0.2));
  // No hit at all: every metric is 0.
  const auto none = ranking_metrics(torch::zeros({1, 3}), torch::tensor({2}), {3}, {"hr", "ndcg", "mrr", "map", "recall"});
  for (const auto& [k, v] : none) CHECK(v.item<double>() == 0.0);
}

TEST_CASE("evaluator: full ranking masks training (and at test, validation) items", "[metrics][eval]") {
  // 2 users x 6 items. The model ranks items 0 > 1 > 2 > 3 > 4 > 5 for both users.
  auto scores = torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({2, 1});
  FixedScores model(scores);
  Split s;
  s.train = Csr::from_pairs(2, 6, {0, 0, 1}, {0, 1, 5});  // user 0 trained on its two top items
  s.valid = Csr::from_pairs(2, 6, {0, 1}, {2, 0});
  s.test = Csr::from_pairs(2, 6, {0, 1}, {3, 4});
  EvalOptions o;
  o.ks = {1, 2};
  o.metrics = {"hr", "ndcg", "recall"};
  const auto test = evaluate(model, s, Target::Test, o, torch::kCPU);
  // user 0: masked 0, 1 (train), 2 (valid) -> ranking 3, 4, 5: test item 3 at rank 1.
  // user 1: masked 5 (train), 0 (valid) -> ranking 1, 2, 3, 4: test item 4 at rank 4.
  CHECK(test.n_users == 2);
  CHECK(test.get("hr@1") == Approx(0.5));
  CHECK(test.get("ndcg@2") == Approx(0.5));
  const auto valid = evaluate(model, s, Target::Valid, o, torch::kCPU);
  // user 0: masked 0, 1 -> valid item 2 at rank 1. user 1: masked 5 -> valid item 0 at rank 1.
  CHECK(valid.get("hr@1") == Approx(1.0));
  CHECK(valid.get("recall@2") == Approx(1.0));
  CHECK(test.protocol.find("training and validation items masked") != std::string::npos);
  CHECK(test.to_json().find("\"hr@1\": 0.5") != std::string::npos);

  // K beyond the 6-item catalogue keeps its name and its definition (precision = hits / K).
  o.ks = {2, 10};
  o.metrics = {"hr", "precision"};
  const auto wide = evaluate(model, s, Target::Test, o, torch::kCPU);
  CHECK(wide.get("hr@10") == Approx(1.0));
  CHECK(wide.get("precision@10") == Approx(0.1));

  // A split with no target user reports null (JSON has no NaN), never a made-up number.
  Split empty = s;
  empty.valid = Csr::from_pairs(2, 6, {}, {});
  const auto none = evaluate(model, empty, Target::Valid, o, torch::kCPU);
  CHECK(none.n_users == 0);
  CHECK(none.to_json().find("\"hr@10\": null") != std::string::npos);
}

TEST_CASE("evaluator: a model that ranks training items first is neither rewarded nor punished", "[metrics][eval]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  // A fixed arbitrary ranking, and the same ranking with every training item pushed to the top.
  auto base = torch::rand({d.n_users(), d.n_items()}, torch::TensorOptions().dtype(torch::kFloat));
  auto boosted = base.clone();
  for (int64_t u = 0; u < d.n_users(); ++u)
    for (const int64_t* p = s.train.row_begin(u); p != s.train.row_end(u); ++p) boosted[u][*p] = 10.0f;
  FixedScores a(base), b(boosted);
  EvalOptions o;
  const auto ra = evaluate(a, s, Target::Test, o, torch::kCPU);
  const auto rb = evaluate(b, s, Target::Test, o, torch::kCPU);
  // Masked, the training items leave the ranking, so both orders are the same list.
  for (size_t i = 0; i < ra.metrics.size(); ++i) CHECK(rb.metrics[i].second == Approx(ra.metrics[i].second));
  CHECK(ra.get("recall@20") > 0.0);
}

TEST_CASE("evaluator: results do not depend on the user chunk size", "[metrics][eval]") {
  const Config cfg = synthetic_config("bpr");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  torch::manual_seed(3);
  Recommender model = make_model("bpr", ModelContext{d.n_users(), d.n_items(), &cfg});
  EvalOptions o;
  o.ks = {5, 10, 50};
  std::vector<EvalResult> results;
  for (int64_t b : {int64_t{1}, int64_t{7}, int64_t{0}}) {
    o.batch_users = b;
    results.push_back(evaluate(*model, s, Target::Test, o, torch::kCPU));
  }
  o.batch_users = 0;
  o.memory_mb = 1;  // forces several chunks through the memory budget
  results.push_back(evaluate(*model, s, Target::Test, o, torch::kCPU));
  REQUIRE(results[0].metrics.size() == 18);
  for (size_t r = 1; r < results.size(); ++r)
    for (size_t i = 0; i < results[0].metrics.size(); ++i)
      CHECK(results[r].metrics[i].second == Approx(results[0].metrics[i].second).epsilon(1e-12));
}
