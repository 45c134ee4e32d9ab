#include "helpers.h"

#include <torch/torch.h>

#include <cmath>

#include "datasets/dataset.h"
#include "models/registry.h"
#include "trainers/compare_report.h"
#include "trainers/evaluator.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

double value(const std::vector<std::pair<std::string, double>>& m, const std::string& name) {
  for (const auto& [k, v] : m)
    if (k == name) return v;
  FAIL("no metric " << name);
  return 0;
}

// A model whose scores are a fixed matrix: for checking the evaluator by hand.
class FixedScores : public RecommenderImpl {
 public:
  explicit FixedScores(at::Tensor s, bool pairs = false)
      : RecommenderImpl("fixed", ModelContext{s.size(0), s.size(1), nullptr}), s_(s), pairs_(pairs) {}
  InputType input_type() const override { return InputType::None; }
  at::Tensor score(const at::Tensor& u, const at::Tensor& i) override {
    ++pair_calls;
    return s_.index({u, i});
  }
  at::Tensor score_all(const at::Tensor& u) override { return s_.index_select(0, u); }
  bool pair_scoring_cheaper() const override { return pairs_; }
  int pair_calls = 0;

 private:
  at::Tensor s_;
  bool pairs_;
};

double l2(double x) { return std::log2(x); }

Split small_split() {
  Split s;
  s.train = Csr::from_pairs(2, 6, {0, 0, 1}, {0, 1, 5});  // user 0 trained on its two top items
  s.valid = Csr::from_pairs(2, 6, {0, 1}, {2, 0});
  s.test = Csr::from_pairs(2, 6, {0, 1}, {3, 4});
  return s;
}

double binom(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  return std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0));
}

}  // namespace

TEST_CASE("ranking metrics from target ranks, against hand-computed values", "[metrics]") {
  // User 0: 3 targets at ranks 2, 4 and 7 among 10 candidates.
  const auto m = rank_metrics({4, 2, 7}, 10, {2, 5}, {"hr", "precision", "recall", "ndcg", "mrr", "map", "auc", "gauc"});
  REQUIRE(m.size() == 14);
  CHECK(m[0].first == "hr@2");
  CHECK(m[1].first == "hr@5");
  CHECK(value(m, "hr@5") == Approx(1.0));
  CHECK(value(m, "precision@5") == Approx(2.0 / 5));
  CHECK(value(m, "recall@5") == Approx(2.0 / 3));
  CHECK(value(m, "ndcg@5") == Approx((1 / l2(3) + 1 / l2(5)) / (1 + 1 / l2(3) + 1 / l2(4))));
  CHECK(value(m, "mrr@5") == Approx(0.5));
  CHECK(value(m, "map@5") == Approx((1.0 / 2 + 2.0 / 4) / 3));
  // @2: one hit; IDCG and MAP over min(3, 2) = 2 items.
  CHECK(value(m, "precision@2") == Approx(0.5));
  CHECK(value(m, "recall@2") == Approx(1.0 / 3));
  CHECK(value(m, "ndcg@2") == Approx((1 / l2(3)) / (1 + 1 / l2(3))));
  CHECK(value(m, "map@2") == Approx(0.5 / 2));
  // AUC: 7 non-targets; below rank 2: 6, below rank 4: 5, below rank 7: 3 -> 14 / 21.
  CHECK(value(m, "auc") == Approx(14.0 / 21));
  CHECK(value(m, "gauc") == Approx(14.0 / 21));
  // One target at rank 1 of 5.
  const auto one = rank_metrics({1}, 5, {2}, {"hr", "recall", "ndcg", "mrr", "map", "precision", "auc"});
  for (const char* k : {"hr@2", "recall@2", "ndcg@2", "mrr@2", "map@2", "auc"}) CHECK(value(one, k) == Approx(1.0));
  CHECK(value(one, "precision@2") == Approx(0.5));
  // No hit within K: every metric is 0; AUC of a user without non-targets is undefined (NaN).
  const auto none = rank_metrics({4, 5}, 5, {3}, {"hr", "ndcg", "mrr", "map", "recall", "auc"});
  for (const auto& [k, v] : none)
    if (k != "auc") CHECK(v == 0.0);
  CHECK(std::isnan(value(rank_metrics({1, 2}, 2, {1}, {"auc"}), "auc")));
}

TEST_CASE("evaluator: full ranking masks training (and at test, validation) items", "[metrics][eval]") {
  // 2 users x 6 items. The model ranks items 0 > 1 > 2 > 3 > 4 > 5 for both users.
  auto scores = torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({2, 1});
  FixedScores model(scores);
  const Split s = small_split();
  EvalOptions o;
  o.ks = {1, 2};
  o.metrics = {"hr", "ndcg", "recall", "auc"};
  const auto test = evaluate(model, s, Target::Test, o, torch::kCPU);
  // user 0: masked 0, 1 (train), 2 (valid) -> ranking 3, 4, 5: test item 3 at rank 1 of 3.
  // user 1: masked 5 (train), 0 (valid) -> ranking 1, 2, 3, 4: test item 4 at rank 4 of 4.
  CHECK(test.n_users == 2);
  CHECK(test.get("hr@1") == Approx(0.5));
  CHECK(test.get("ndcg@2") == Approx(0.5));
  CHECK(test.get("auc") == Approx(0.5));  // user 0: 1, user 1: 0
  CHECK(test.n_candidates == std::vector<int64_t>{3, 4});
  CHECK(*test.user_values("auc") == std::vector<double>{1.0, 0.0});
  const auto valid = evaluate(model, s, Target::Valid, o, torch::kCPU);
  // user 0: masked 0, 1 -> valid item 2 at rank 1. user 1: masked 5 -> valid item 0 at rank 1.
  CHECK(valid.get("hr@1") == Approx(1.0));
  CHECK(valid.get("recall@2") == Approx(1.0));
  CHECK_THAT(test.protocol, Contains("training and validation items masked"));
  CHECK(test.protocol_name == "full");
  CHECK_THAT(test.to_json(), Contains("\"hr@1\": 0.5"));

  // A target that is also a training item (a repeat) is never masked.
  Split rep = s;
  rep.test = Csr::from_pairs(2, 6, {0, 1}, {0, 4});
  const auto r = evaluate(model, rep, Target::Test, o, torch::kCPU);
  CHECK(*r.user_values("hr@1") == std::vector<double>{1.0, 0.0});  // item 0 at rank 1 for user 0

  // K beyond the 6-item catalogue keeps its name and its definition (precision = hits / K).
  o.ks = {2, 10};
  o.metrics = {"hr", "precision"};
  const auto wide = evaluate(model, s, Target::Test, o, torch::kCPU);
  CHECK(wide.get("hr@10") == Approx(1.0));
  CHECK(wide.get("precision@10") == Approx(0.1));

  // GAUC weights each user's AUC by its number of targets; AUC does not. User 0: targets 3
  // and 4 among {3, 4, 5}: ranks 1, 2 -> AUC 1. User 1: target 4 among {1, 2, 3, 4}: AUC 0.
  Split two = s;
  two.test = Csr::from_pairs(2, 6, {0, 0, 1}, {3, 4, 4});
  o.ks = {1};
  o.metrics = {"auc", "gauc"};
  const auto g = evaluate(model, two, Target::Test, o, torch::kCPU);
  CHECK(g.get("auc") == Approx(0.5));
  CHECK(g.get("gauc") == Approx(2.0 / 3));

  // Cold targets only (eval.target_max_train = 1): user 0's test items 3 (no training
  // interaction) and 5 (one, by user 1): 5 leaves the ranking, 3 is ranked among {3, 4}.
  Split cold = s;
  cold.test = Csr::from_pairs(2, 6, {0, 0, 1}, {3, 5, 4});
  o.metrics = {"hr", "auc"};
  o.target_max_train = 1;
  const auto c = evaluate(model, cold, Target::Test, o, torch::kCPU);
  CHECK(c.n_targets == std::vector<int64_t>{1, 1});
  CHECK(c.n_candidates == std::vector<int64_t>{2, 4});
  CHECK(*c.user_values("hr@1") == std::vector<double>{1.0, 0.0});
  CHECK_THAT(c.protocol, Contains("fewer than 1 training interactions"));
  o.target_max_train = 0;
  o.metrics = {"auc", "gauc"};

  // A split with no target user reports null (JSON has no NaN), never a made-up number.
  Split empty = s;
  empty.valid = Csr::from_pairs(2, 6, {}, {});
  const auto none = evaluate(model, empty, Target::Valid, o, torch::kCPU);
  CHECK(none.n_users == 0);
  CHECK_THAT(none.to_json(), Contains("\"gauc\": null"));
}

TEST_CASE("evaluator: a model that ranks training items first is neither rewarded nor punished", "[metrics][eval]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  // A fixed arbitrary ranking, and the same ranking with every training item pushed to the top.
  torch::manual_seed(5);
  auto base = torch::rand({d.n_users(), d.n_items()}, torch::TensorOptions().dtype(torch::kFloat));
  auto boosted = base.clone();
  for (int64_t u = 0; u < d.n_users(); ++u)
    for (const Csr::Index* p = s.train.row_begin(u); p != s.train.row_end(u); ++p) boosted[u][*p] = 10.0f;
  FixedScores a(base), b(boosted);
  EvalOptions o;
  o.metrics = {"hr", "recall", "ndcg", "mrr", "map", "auc", "gauc", "coverage", "gini", "popularity", "novelty"};
  for (const std::string protocol : {"full", "uni50", "pop50"}) {
    o.protocol = protocol;
    const auto ra = evaluate(a, s, Target::Test, o, torch::kCPU);
    const auto rb = evaluate(b, s, Target::Test, o, torch::kCPU);
    INFO(protocol);
    // Masked (full) or never candidates (sampled), the training items leave the ranking.
    for (size_t i = 0; i < ra.metrics.size(); ++i) CHECK(rb.metrics[i].second == ra.metrics[i].second);
    CHECK(ra.get("recall@20") > 0.0);
  }
}

TEST_CASE("evaluator: results do not depend on the user chunk size or thread count", "[metrics][eval]") {
  const Config cfg = synthetic_config("bpr");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  torch::manual_seed(3);
  Recommender model = make_model("bpr", ModelContext{d.n_users(), d.n_items(), &cfg});
  for (const std::string protocol : {"full", "uni20"}) {
    EvalOptions o;
    o.ks = {5, 10, 50};
    o.protocol = protocol;
    o.metrics = {"hr", "recall", "precision", "ndcg", "mrr", "map", "auc", "gauc", "coverage", "gini", "popularity", "novelty"};
    std::vector<EvalResult> results;
    for (int64_t b : {int64_t{1}, int64_t{7}, int64_t{0}}) {
      o.batch_users = b;
      results.push_back(evaluate(*model, s, Target::Test, o, torch::kCPU));
    }
    o.batch_users = 0;
    o.memory_mb = 1;  // several chunks through the memory budget
    results.push_back(evaluate(*model, s, Target::Test, o, torch::kCPU));
    const int threads = at::get_num_threads();
    at::set_num_threads(2);
    results.push_back(evaluate(*model, s, Target::Test, o, torch::kCPU));
    at::set_num_threads(threads);
    REQUIRE(results[0].metrics.size() == 32);
    INFO(protocol);
    for (size_t r = 1; r < results.size(); ++r) {
      for (size_t i = 0; i < results[0].metrics.size(); ++i) CHECK(results[r].metrics[i].second == results[0].metrics[i].second);
      CHECK(results[r].per_user == results[0].per_user);
      CHECK(results[r].n_candidates == results[0].n_candidates);
    }
  }
}

TEST_CASE("evaluator: a constant scorer gets the random-ranking expectation", "[metrics][eval]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  FixedScores constant(torch::zeros({d.n_users(), d.n_items()}));
  EvalOptions o;
  o.ks = {10};
  o.metrics = {"hr", "recall", "precision", "auc"};
  // Exact expectations under a uniformly random order of each user's candidates.
  const auto r0 = evaluate(constant, s, Target::Test, o, torch::kCPU);
  double e_hr = 0, e_recall = 0, e_precision = 0;
  for (size_t i = 0; i < r0.users.size(); ++i) {
    const int64_t n = r0.n_candidates[i], t = r0.n_targets[i];
    e_hr += 1 - binom(n - t, 10) / binom(n, 10);
    e_recall += 10.0 / static_cast<double>(n);
    e_precision += static_cast<double>(t) / static_cast<double>(n);
  }
  const auto nu = static_cast<double>(r0.users.size());
  e_hr /= nu, e_recall /= nu, e_precision /= nu;
  // Averaged over 20 tie orders (eval.seed), the mean is within a few standard errors.
  double hr = 0, recall = 0, precision = 0, auc = 0;
  const int seeds = 20;
  for (int k = 0; k < seeds; ++k) {
    o.seed = static_cast<uint64_t>(k + 1);
    const auto r = evaluate(constant, s, Target::Test, o, torch::kCPU);
    CHECK(r.get("hr@10") < 0.5);  // never a perfect score
    hr += r.get("hr@10") / seeds, recall += r.get("recall@10") / seeds, precision += r.get("precision@10") / seeds;
    auc += r.get("auc") / seeds;
  }
  // Standard errors over 200 users x 20 seeds: hr ~ sqrt(0.3 * 0.7 / 4000) ~ 0.007.
  CHECK(hr == Approx(e_hr).margin(0.025));
  CHECK(recall == Approx(e_recall).margin(0.02));
  CHECK(precision == Approx(e_precision).margin(0.005));
  CHECK(auc == Approx(0.5).margin(0.02));
  // Ties do not depend on the order items are stored in: a monotone transform of the scores
  // (which keeps every tie) gives identical per-user values.
  o.seed = 7;
  FixedScores scaled(torch::zeros({d.n_users(), d.n_items()}) * 3 - 1);
  CHECK(evaluate(constant, s, Target::Test, o, torch::kCPU).per_user == evaluate(scaled, s, Target::Test, o, torch::kCPU).per_user);
}

TEST_CASE("evaluator: sampled candidates scored as pairs or as rows give the same results", "[metrics][eval]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  torch::manual_seed(11);
  const auto table = torch::rand({d.n_users(), d.n_items()});
  FixedScores rows(table), pairs(table, true);
  EvalOptions o;
  o.metrics = {"hr", "ndcg", "mrr", "auc"};
  for (const std::string protocol : {"uni30", "pop20"}) {
    o.protocol = protocol;
    for (const int64_t b : {int64_t{0}, int64_t{7}}) {
      o.batch_users = b;
      const auto a = evaluate(rows, s, Target::Test, o, torch::kCPU), p = evaluate(pairs, s, Target::Test, o, torch::kCPU);
      INFO(protocol << " batch_users " << b);
      CHECK(a.per_user == p.per_user);
      CHECK(a.n_candidates == p.n_candidates);
    }
  }
  CHECK(rows.pair_calls == 0);
  CHECK(pairs.pair_calls > 0);
}

TEST_CASE("evaluator: sampled and given protocols", "[metrics][eval]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  torch::manual_seed(9);
  FixedScores a(torch::rand({d.n_users(), d.n_items()})), b(torch::rand({d.n_users(), d.n_items()}));
  EvalOptions o;
  o.protocol = "uni30";
  o.save_rankings = true;
  const auto ra = evaluate(a, s, Target::Test, o, torch::kCPU), rb = evaluate(b, s, Target::Test, o, torch::kCPU);
  CHECK(ra.protocol_name == "uni30");
  CHECK_THAT(ra.protocol, Contains("30 uniform negatives per target item"));
  // Every user: its targets plus 30 negatives per target, the same count for every model.
  for (size_t i = 0; i < ra.users.size(); ++i) CHECK(ra.n_candidates[i] == ra.n_targets[i] * 31);
  CHECK(ra.n_candidates == rb.n_candidates);
  // The same candidates for both models: an oracle that knows them ranks the targets first,
  // and its top-10 contains only candidates.
  auto oracle = torch::zeros({d.n_users(), d.n_items()});
  for (int64_t u = 0; u < d.n_users(); ++u)
    for (const Csr::Index* p = s.test.row_begin(u); p != s.test.row_end(u); ++p) oracle[u][*p] = 1.0f;
  FixedScores perfect(oracle);
  CHECK(evaluate(perfect, s, Target::Test, o, torch::kCPU).get("recall@10") == Approx(1.0).epsilon(0.02));
  // Every item in a user's ranked top list is a target or was never interacted with.
  for (size_t i = 0; i < ra.users.size(); ++i) {
    const int64_t u = ra.users[i];
    for (int64_t item : ra.top[i]) {
      const bool target = s.test.contains(u, item);
      CHECK((target || !(s.train.contains(u, item) || s.valid.contains(u, item))));
    }
  }
  // Popularity-proportional negatives are harder for a popularity scorer than uniform ones.
  auto pop = torch::zeros({d.n_items()});
  for (int64_t i : s.train.indices) pop[i] += 1;
  FixedScores by_pop(pop.unsqueeze(0).repeat({d.n_users(), 1}));
  o.protocol = "uni50";
  const double uni = evaluate(by_pop, s, Target::Test, o, torch::kCPU).get("ndcg@10");
  o.protocol = "pop50";
  const double popn = evaluate(by_pop, s, Target::Test, o, torch::kCPU).get("ndcg@10");
  CHECK(popn < uni);

  // A small catalogue: every unknown item (pop5: user 0 wants 5 of 2, user 1 5 of 3) or most
  // of them (pop1 and uni1: 1 of 2 or 3, drawn from the enumerated complement); deterministic.
  {
    const Split sm = small_split();
    FixedScores fixed(torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({2, 1}));
    EvalOptions so;
    so.metrics = {"hr"};
    for (const std::string p : {"pop5", "pop1", "uni1"}) {
      so.protocol = p;
      const auto r1 = evaluate(fixed, sm, Target::Test, so, torch::kCPU), r2 = evaluate(fixed, sm, Target::Test, so, torch::kCPU);
      INFO(p);
      CHECK(r1.n_candidates == std::vector<int64_t>{p == "pop5" ? 3 : 2, p == "pop5" ? 4 : 2});  // user 1 knows 3 items
      CHECK(r1.per_user == r2.per_user);
    }
  }

  // given: candidates from the data.
  Split g = small_split();
  g.test_negatives = Csr::from_pairs(2, 6, {0, 0, 1, 1, 1}, {4, 5, 1, 2, 4});  // user 1's 4 is its target
  auto scores = torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({2, 1});
  FixedScores m(scores);
  o.protocol = "given";
  o.ks = {1, 2};
  o.metrics = {"hr", "mrr"};
  const auto rg = evaluate(m, g, Target::Test, o, torch::kCPU);
  // user 0: target 3 among {3, 4, 5}: rank 1. user 1: target 4 among {4, 1, 2}: rank 3.
  CHECK(rg.n_candidates == std::vector<int64_t>{3, 3});
  CHECK(rg.get("hr@1") == Approx(0.5));
  CHECK(rg.get("mrr@2") == Approx(0.5));
  // Validation has no given candidates: uniform negatives, as many as given on average (2 or 3).
  const auto vg = evaluate(m, g, Target::Valid, o, torch::kCPU);
  CHECK_THAT(vg.protocol, Contains("given candidates exist only for test"));
  // A user with test items but no given candidates is an error, not a perfect score.
  g.test_negatives = Csr::from_pairs(2, 6, {0}, {4});
  CHECK_THROWS_WITH(evaluate(m, g, Target::Test, o, torch::kCPU), Contains("user index 1 has evaluation items but no given candidates"));
  g.test_negatives = Csr::from_pairs(2, 6, {}, {});
  CHECK_THROWS_WITH(evaluate(m, g, Target::Test, o, torch::kCPU), Contains("no given candidates"));
}

TEST_CASE("evaluator: beyond-accuracy metrics against hand-computed values", "[metrics][eval]") {
  // 3 users x 6 items. Both test users rank 0 > 1 > 2 > ...; user 1's item 0 is masked.
  Split s;
  s.train = Csr::from_pairs(3, 6, {1, 2, 2, 2}, {0, 0, 1, 3});
  s.valid = Csr::from_pairs(3, 6, {}, {});
  s.test = Csr::from_pairs(3, 6, {0, 1}, {1, 2});
  FixedScores model(torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({3, 1}));
  Dataset d;
  for (const char* i : {"0", "1", "2", "3", "4", "5"}) d.items.add(i);
  Feature genres;
  genres.name = "genres";
  genres.kind = Feature::Kind::TokenSeq;
  genres.vocab = {"a", "b", "c"};
  genres.offsets = {0, 2, 3, 5, 5, 6, 6};  // item 0 {a, b}, 1 {a}, 2 {b, c}, 3 {}, 4 {c}, 5 {}
  genres.tokens = {0, 1, 0, 1, 2, 2};
  d.item_info.features.push_back(genres);
  EvalOptions o;
  o.ks = {2};
  o.metrics = {"coverage", "gini", "popularity", "novelty", "diversity"};
  const auto r = evaluate(model, s, Target::Test, o, torch::kCPU, &d);
  // Top-2: user 0 {0, 1}, user 1 {1, 2}. Training popularity: item 0: 2, 1: 1, 2: 0, 3: 1.
  CHECK(r.get("coverage@2") == Approx(3.0 / 6));
  // Counts over 6 items sorted: 0 0 0 1 1 2 -> sum (2i - 7) c_i / (6 * 4) = (1 + 3 + 10) / 24.
  CHECK(r.get("gini@2") == Approx(14.0 / 24));
  CHECK(r.get("popularity@2") == Approx(((2 + 1) / 2.0 + (1 + 0) / 2.0) / 2));
  const double nov0 = (-l2(2.0 / 3) - l2(1.0 / 3)) / 2, nov1 = (-l2(1.0 / 3) - l2(1.0 / 3)) / 2;
  CHECK(r.get("novelty@2") == Approx((nov0 + nov1) / 2));
  // cos({a,b},{a}) = 1/sqrt(2); cos({a},{b,c}) = 0.
  CHECK(r.get("diversity@2") == Approx(((1 - 1 / std::sqrt(2.0)) + 1.0) / 2));
  CHECK(r.user_values("coverage@2") == nullptr);  // no per-user value
  REQUIRE(r.user_values("diversity@2") != nullptr);
  // A feature the data does not have: a clear error naming the key and what exists.
  o.diversity_features = {"tags"};
  CHECK_THROWS_WITH(evaluate(model, s, Target::Test, o, torch::kCPU, &d), Contains("eval.diversity_features") && Contains("genres"));
}

TEST_CASE("evaluator: rating prediction RMSE and MAE", "[metrics][eval]") {
  Dataset d;
  for (const char* u : {"u0", "u1"}) d.users.add(u);
  for (const char* i : {"i0", "i1", "i2"}) d.items.add(i);
  d.user = {0, 0, 1, 1};
  d.item = {0, 1, 1, 2};
  d.rating = {4, 2, 5, 1};
  Split s;
  s.train = Csr::from_pairs(2, 3, {0, 1}, {0, 1});
  s.train_rows = {0, 2};
  s.valid = Csr::from_pairs(2, 3, {}, {});
  s.test = Csr::from_pairs(2, 3, {0, 1}, {1, 2});
  s.test_rows = {1, 3};
  // Predictions: user 0 item 1 -> 3 (error 1); user 1 item 2 -> 4 (error 3).
  FixedScores model(torch::tensor({0, 3, 0, 0, 0, 4}, torch::kFloat).view({2, 3}));
  EvalOptions o;
  o.metrics = {"rmse", "mae"};
  const auto r = evaluate(model, s, Target::Test, o, torch::kCPU, &d);
  CHECK(r.get("rmse") == Approx(std::sqrt((1.0 + 9.0) / 2)));
  CHECK(r.get("mae") == Approx(2.0));
  CHECK(*r.user_values("rmse") == std::vector<double>{1.0, 3.0});
  CHECK_FALSE(metric_higher_is_better("rmse"));
  CHECK(metric_higher_is_better("ndcg@10"));
  Dataset unrated = d;
  unrated.rating.clear();
  CHECK_THROWS_WITH(evaluate(model, s, Target::Test, o, torch::kCPU, &unrated), Contains("rmse and mae need ratings"));
}

TEST_CASE("evaluator: NaN scores are a clear error", "[metrics][eval]") {
  auto scores = torch::tensor({6, 5, 4, 3, 2, 1}, torch::kFloat).repeat({2, 1});
  scores[1][3] = std::numeric_limits<float>::quiet_NaN();
  FixedScores model(scores);
  EvalOptions o;
  CHECK_THROWS_WITH(evaluate(model, small_split(), Target::Test, o, torch::kCPU), Contains("NaN score (user index 1, item index 3)"));
}

TEST_CASE("evaluator: options are checked with the key named", "[metrics][config]") {
  CHECK_THROWS_WITH(EvalOptions::from_config(make_config("model: pop\n", {"eval.protocol=uni0"})), Contains("eval.protocol") && Contains("uni<N>"));
  CHECK_THROWS_WITH(EvalOptions::from_config(make_config("model: pop\n", {"eval.protocol=sampled"})), Contains("eval.protocol"));
  CHECK_THROWS_WITH(EvalOptions::from_config(make_config("model: pop\n", {"eval.metrics=[ndcg, ncdg]"})), Contains("unknown metric 'ncdg'"));
  CHECK_THROWS_WITH(EvalOptions::from_config(make_config("model: pop\n", {"eval.metrics=[ndcg, ndcg]"})), Contains("listed twice"));
  CHECK_THROWS_WITH(EvalOptions::from_config(make_config("model: pop\n", {"eval.ks=[10, 20, 10]"})), Contains("K = 10 is listed twice"));
  CHECK(EvalOptions::from_config(make_config("model: pop\n", {"eval.protocol=pop100"})).protocol == "pop100");
}

TEST_CASE("compare report: intervals, paired tests with Holm, tables", "[metrics][compare]") {
  // Three models on the same 60 users: b is clearly better than the baseline a, c equals a.
  auto result = [](double shift) {
    EvalResult r;
    r.split = "test";
    r.protocol = "full ranking";
    r.n_users = 60;
    std::vector<double> v;
    for (int i = 0; i < 60; ++i) {
      r.users.push_back(i);
      v.push_back(0.3 + 0.2 * std::sin(i * 1.7) + shift + (shift > 0 ? 0.01 * (i % 3) : 0.0));
    }
    double mean = 0;
    for (double x : v) mean += x / 60;
    r.metrics = {{"ndcg@10", mean}, {"coverage@10", 0.5}};
    r.per_user = {{"ndcg@10", v}};
    return r;
  };
  const EvalResult a = result(0), b = result(0.1), c = result(0);
  CompareOptions o;
  const auto rep = compare_report({"a", "b", "c"}, {&a, &b, &c}, {1, 2, 3}, {0.1, 0.2, 0.3}, o);
  CHECK(rep.baseline == "a");
  CHECK(std::isnan(rep.at(0, 0).p_t));  // the baseline is not tested against itself
  CHECK(rep.at(1, 0).sig_t);
  CHECK(rep.at(1, 0).sig_w);
  CHECK_FALSE(rep.at(2, 0).sig_t);
  CHECK(rep.at(1, 0).p_t_holm >= rep.at(1, 0).p_t);
  CHECK(rep.at(1, 0).low < rep.at(1, 0).value);
  CHECK(rep.at(1, 0).high > rep.at(1, 0).value);
  CHECK(std::isnan(rep.at(1, 1).low));  // coverage: no interval
  CHECK(rep.at(1, 0).dir_t == 1);
  CHECK(rep.at(1, 0).dir_w == 1);
  const std::string text = report_text(rep);
  CHECK_THAT(text, Contains("ndcg") && Contains("*†↑") && Contains("baseline a") && Contains("↓ below"));
  CHECK_THAT(report_markdown(rep), Contains("| model"));
  const std::string csv = report_csv(rep);
  CHECK_THAT(csv, Contains("model,metric,value,ci_low,ci_high"));
  CHECK_THAT(csv, Contains("\nb,ndcg@10,") && Contains(",baseline,direction_ttest,direction_wilcoxon\n"));
  CHECK_THAT(csv, Contains(",1,1,a,1,1\n"));  // b: both tests significant, both above a
  const std::string tex = report_latex(rep);
  CHECK_THAT(tex, Contains("\\begin{tabular}") && Contains("^{*\\dagger \\uparrow}") && Contains("\\bottomrule"));
  o.baseline = "zz";
  CHECK_THROWS_WITH(compare_report({"a", "b"}, {&a, &b}, {1, 1}, {0, 0}, o), Contains("compare_stats.baseline: 'zz'") && Contains("a, b"));
}

TEST_CASE("compare report: each significant test's direction, also when the two tests disagree", "[metrics][compare]") {
  // 200 users. d below: model minus baseline per user.
  auto result = [](const std::vector<double>& v) {
    EvalResult r;
    r.split = "test";
    r.protocol = "full ranking";
    r.n_users = static_cast<int64_t>(v.size());
    double mean = 0;
    for (size_t i = 0; i < v.size(); ++i) r.users.push_back(static_cast<int64_t>(i)), mean += v[i] / v.size();
    r.metrics = {{"ndcg@10", mean}};
    r.per_user = {{"ndcg@10", v}};
    return r;
  };
  std::vector<double> base(200), worse(200), mixed(200);
  for (int i = 0; i < 200; ++i) {
    base[i] = 0.5 + 0.001 * (i % 7);
    worse[i] = base[i] - 0.05 - 0.001 * (i % 5);  // every user lower: both tests, both down
    // 180 users a little higher, 20 far lower: the mean falls (-0.03 a user), the signed ranks rise
    // (T+ = 180 small ranks, T- = 20 large ones: 16290 against 3810).
    mixed[i] = base[i] + (i < 180 ? 0.01 + 0.0001 * i : -0.4);
  }
  const EvalResult a = result(base), w = result(worse), m = result(mixed);
  const auto rep = compare_report({"a", "w", "m"}, {&a, &w, &m}, {1, 1, 1}, {0, 0, 0}, CompareOptions{});
  const MetricStat &sw = rep.at(1, 0), &sm = rep.at(2, 0);
  CHECK((sw.sig_t && sw.sig_w && sw.dir_t == -1 && sw.dir_w == -1));
  CHECK(sm.value < rep.at(0, 0).value);
  CHECK(sm.dir_t == -1);
  CHECK(sm.dir_w == 1);
  REQUIRE(sm.sig_w);
  CHECK(significance_marks(true, true, -1, -1) == "*†↓");
  CHECK(significance_marks(false, true, -1, 1) == "†↑");
  CHECK(significance_marks(true, true, -1, 1) == "*↓†↑");
  CHECK(significance_marks(false, false, 1, 1) == "");
  const std::string text = report_text(rep);
  CHECK_THAT(text, Contains("*†↓") && Contains(sm.sig_t ? "*↓†↑" : "†↑"));
}

TEST_CASE("evaluator: target ranks equal a brute-force count, for few and many targets, with ties", "[metrics][eval]") {
  // 3 users x 400 items: user 0 has 5 targets, user 1 has 60 (the two rank paths), user 2 has 40.
  torch::manual_seed(11);
  auto distinct = torch::randperm(1200, torch::kFloat).view({3, 400});
  auto tied = torch::floor(torch::rand({3, 400}) * 7);  // 7 distinct values: ties everywhere
  std::vector<int64_t> tu, ti, ru, ri;
  for (int64_t u = 0; u < 3; ++u) {
    const int64_t nt = u == 0 ? 5 : (u == 1 ? 60 : 40);
    for (int64_t i = 0; i < nt; ++i) tu.push_back(u), ti.push_back(i * 6 + u);
    for (int64_t i = 0; i < 30; ++i) ru.push_back(u), ri.push_back(i * 6 + 3);  // training items, masked
  }
  Split s;
  s.test = Csr::from_pairs(3, 400, tu, ti);
  s.train = Csr::from_pairs(3, 400, ru, ri);
  s.valid = Csr::from_pairs(3, 400, {}, {});
  EvalOptions o;
  o.ks = {10};
  o.metrics = {"ndcg"};
  o.save_rankings = true;
  for (const auto& scores : {distinct, tied}) {
    FixedScores m(scores);
    const auto r = evaluate(m, s, Target::Test, o, torch::kCPU);
    for (size_t k = 0; k < r.users.size(); ++k) {
      const int64_t u = r.users[k];
      CHECK(r.n_candidates[k] == 370);
      std::vector<int64_t> seen(r.ranks[k]);
      std::sort(seen.begin(), seen.end());
      CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // ranks are distinct
      for (size_t t = 0; t < r.targets[k].size(); ++t) {
        const float st = scores[u][r.targets[k][t]].item<float>();
        int64_t greater = 0, equal = 0;
        for (int64_t i = 0; i < 400; ++i) {
          if (s.train.contains(u, i)) continue;
          const float x = scores[u][i].item<float>();
          greater += x > st, equal += x == st;
        }
        // The rank lies within the block of equal scores, and exactly after the greater ones
        // when there is no tie.
        CHECK(r.ranks[k][t] >= greater + 1);
        CHECK(r.ranks[k][t] <= greater + equal);
      }
      // The top list is in score order and agrees with the ranks.
      for (size_t j = 1; j < r.top[k].size(); ++j)
        CHECK(scores[u][r.top[k][j - 1]].item<float>() >= scores[u][r.top[k][j]].item<float>());
      for (size_t t = 0; t < r.targets[k].size(); ++t)
        if (r.ranks[k][t] <= static_cast<int64_t>(r.top[k].size()))
          CHECK(r.top[k][static_cast<size_t>(r.ranks[k][t] - 1)] == r.targets[k][t]);
    }
  }
}
