// markov (models/sequential/markov.h): transition probabilities, window weighting, several
// voting items with decay and the popularity term against hand-computed values on a tiny
// leave-one-out dataset; the history each evaluation may see (no leakage), end to end through
// the evaluator; bad options and splits; checkpoint and TorchScript export of non-default
// options. The registry-wide contract (tests/test_models.cpp) covers the defaults.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "models/registry.h"
#include "models/sequential/markov.h"
#include "trainers/evaluator.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// 4 users x 5 items, split leave-one-out by time (the last item test, the one before valid):
//   u0: 0 1 2 | valid 3 | test 4
//   u1: 0 1 3 | valid 2 | test 4
//   u2: 0 2 1 | valid 0 | test 3   (its rows in the file in reverse: time order from timestamps)
//   u3: 1 2   | valid 4 | test 0
// Training transitions (window 1): 0->1 (u0, u1), 1->2 (u0, u3), 1->3 (u1), 0->2 (u2), 2->1 (u2):
//   P(.|0) = {1: 2/3, 2: 1/3}, P(.|1) = {2: 2/3, 3: 1/3}, P(.|2) = {1: 1}; rows 3 and 4 empty
// (2->3, 3->4, ... cross into valid and test and are never counted).
// Training popularity (users per item) 3, 4, 3, 1, 0; divided by the largest: .75, 1, .75, .25, 0.
struct Tiny {
  TinyExample e;
  Config cfg;
  Split split;
  explicit Tiny(std::vector<std::string> sets = {})
      : e([] {
          TinyExample t = make_tiny_example({0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3},
                                            {0, 1, 2, 3, 4, 0, 1, 3, 2, 4, 3, 0, 1, 2, 0, 1, 2, 4, 0}, 4, 5);
          t.d.timestamp = std::vector<int64_t>{10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 14, 13, 12, 11, 10, 10, 11, 12, 13};
          return t;
        }()),
        cfg([&] {
          std::vector<std::string> all = {"dataset.split.method=leave_last"};
          all.insert(all.end(), sets.begin(), sets.end());
          return synthetic_config("markov", all);
        }()),
        split(split_dataset(e.d, cfg)) {}
  ModelContext ctx() const { return ModelContext{4, 5, &cfg, &e.d, &split}; }
  Markov fitted() const {
    Markov m(ctx());
    m->fit(split.train);
    return m;
  }
};

const std::vector<float> kPop = {0.75f, 1.0f, 0.75f, 0.25f, 0.0f};

// Rows of expected scores: transitions + pop_weight * kPop.
at::Tensor expected(const std::vector<std::vector<double>>& trans, double pop_weight = 1e-6) {
  std::vector<float> v;
  for (const auto& row : trans)
    for (size_t i = 0; i < row.size(); ++i) v.push_back(static_cast<float>(row[i] + pop_weight * kPop[i]));
  return torch::tensor(v).view({static_cast<int64_t>(trans.size()), 5});
}

at::Tensor users_all() { return torch::arange(4, torch::kLong); }

}  // namespace

TEST_CASE("markov: transition probabilities by hand, training part only, in time order", "[markov]") {
  Tiny t;
  REQUIRE(t.split.method == "leave last 1 (valid 1) by time");
  Markov m = t.fitted();
  CHECK(m->input_type() == InputType::None);
  CHECK(m->history_len() == 1);
  // The CSR itself: rows sorted by successor.
  CHECK(torch::equal(m->trans_indptr, torch::tensor({0, 2, 4, 5, 5, 5}, torch::kLong)));
  CHECK(torch::equal(m->trans_indices, torch::tensor({1, 2, 2, 3, 1}, torch::kLong)));
  CHECK(torch::allclose(m->trans_values, torch::tensor({2.f / 3, 1.f / 3, 2.f / 3, 1.f / 3, 1.f}), 1e-6, 1e-9));
  CHECK(torch::allclose(m->pop_term, torch::tensor(kPop) * 1e-6, 0, 1e-12));

  // Outside an evaluation (scope All) the last known items are 4, 4, 3, 0.
  torch::NoGradGuard no_grad;
  const auto all = m->score_all(users_all());
  CHECK(torch::allclose(all, expected({{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 2. / 3, 1. / 3, 0, 0}}), 1e-6, 1e-9));
  // score() of every pair equals score_all's entry exactly.
  const auto u = users_all().repeat_interleave(5), i = torch::arange(5, torch::kLong).repeat({4});
  CHECK(torch::equal(m->score(u, i), all.view(-1)));
}

TEST_CASE("markov: evaluation scopes read the history without the targets (no leakage)", "[markov][leakage]") {
  Tiny t;
  Markov m = t.fitted();
  torch::NoGradGuard no_grad;
  // Validation (scope Train): the last training items 2, 3, 1, 2 -- never the valid item.
  m->set_history_scope(HistoryScope::Train);
  CHECK(torch::allclose(m->score_all(users_all()),
                        expected({{0, 1, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 2. / 3, 1. / 3, 0}, {0, 1, 0, 0, 0}}), 1e-6, 1e-9));
  CHECK(m->history(users_all()).select(1, -1).equal(torch::tensor({2, 3, 1, 2}, torch::kLong)));
  // Test (scope TrainValid): the valid items 3, 2, 0, 4 are the last -- never the test item.
  m->set_history_scope(HistoryScope::TrainValid);
  CHECK(torch::allclose(m->score_all(users_all()),
                        expected({{0, 0, 0, 0, 0}, {0, 1, 0, 0, 0}, {0, 2. / 3, 1. / 3, 0, 0}, {0, 0, 0, 0, 0}}), 1e-6, 1e-9));
  m->set_history_scope(HistoryScope::All);
  CHECK(m->history(users_all()).select(1, -1).equal(torch::tensor({4, 4, 3, 0}, torch::kLong)));

  // End to end through the evaluator: user u's sequence u, u+1, ..., u+11 (mod 30), so the next
  // item always follows from the last one. Ranked from the right history every target is first
  // (hr@1 = 1); a model reading the whole history (the target included) would predict the item
  // after the target and miss every one.
  const TinyExample e = next_item_chain();
  const Split split = split_dataset(e.d, t.cfg);  // leave_last by file order
  Markov chain(ModelContext{60, 30, &t.cfg, &e.d, &split});
  chain->fit(split.train);
  EvalOptions eo;
  eo.ks = {1};
  eo.metrics = {"hr"};
  CHECK(evaluate(*chain, split, Target::Valid, eo, torch::kCPU, &e.d).get("hr@1") == Approx(1.0));
  CHECK(evaluate(*chain, split, Target::Test, eo, torch::kCPU, &e.d).get("hr@1") == Approx(1.0));
  // Control: pinned to scope All (what a leaking evaluation would read), no target is found.
  struct Pinned : MarkovImpl {
    using MarkovImpl::MarkovImpl;
    void set_history_scope(HistoryScope) override {}
  };
  auto pinned = std::make_shared<Pinned>(ModelContext{60, 30, &t.cfg, &e.d, &split});
  pinned->fit(split.train);
  CHECK(evaluate(*pinned, split, Target::Valid, eo, torch::kCPU, &e.d).get("hr@1") == Approx(0.0));
}

TEST_CASE("markov: window 2 weighs the item after next by 1/2", "[markov]") {
  // Added pairs at distance 2: 0->2 (u0), 0->3 (u1), 0->1 (u2), each 1/2.
  //   C[0] = {1: 1 + 1 + 1/2, 2: 1 + 1/2, 3: 1/2} / 4.5 -> {5/9, 3/9, 1/9}; rows 1, 2 unchanged.
  Tiny t({"model.window=2"});
  Markov m = t.fitted();
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(m->trans_indptr, torch::tensor({0, 3, 5, 6, 6, 6}, torch::kLong)));
  CHECK(torch::allclose(m->trans_values, torch::tensor({5.f / 9, 3.f / 9, 1.f / 9, 2.f / 3, 1.f / 3, 1.f}), 1e-6, 1e-9));
  m->set_history_scope(HistoryScope::TrainValid);
  CHECK(torch::allclose(m->score_all(torch::tensor({2}, torch::kLong)), expected({{0, 5. / 9, 3. / 9, 1. / 9, 0}}), 1e-6, 1e-9));
  // A window wider than every sequence counts each pair once, at its distance.
  Tiny wide({"model.window=50"});
  CHECK(torch::allclose(wide.fitted()->trans_values, m->trans_values, 1e-6, 1e-9));
}

TEST_CASE("markov: history_items vote with weights decay^(r - 1)", "[markov]") {
  Tiny t({"model.history_items=2", "model.decay=0.25"});
  Markov m = t.fitted();
  CHECK(m->history_len() == 2);
  torch::NoGradGuard no_grad;
  // Validation: u2's last training items are 2 then 1 (most recent): P(.|1) + 0.25 P(.|2);
  // u3's are 1 then 2: P(.|2) + 0.25 P(.|1).
  m->set_history_scope(HistoryScope::Train);
  CHECK(torch::allclose(m->score_all(torch::tensor({2, 3}, torch::kLong)),
                        expected({{0, 0.25, 2. / 3, 1. / 3, 0}, {0, 1, 0.25 * 2 / 3, 0.25 / 3, 0}}), 1e-6, 1e-9));
  // Any history, padding skipped when counting r: [P, 0] is item 0 alone at weight 1; a repeated
  // item votes twice; wider windows are cut to the last history_items columns.
  const int64_t P = 5;
  const auto seq = torch::tensor(std::vector<int64_t>{P, 0, 0, 0, P, P, 3, 1, 2, 1}, torch::kLong).view({5, 2});
  const auto hand = expected({{0, 2. / 3, 1. / 3, 0, 0},
                              {0, 1.25 * 2 / 3, 1.25 / 3, 0, 0},
                              {0, 0, 0, 0, 0},
                              {0, 0, 2. / 3, 1. / 3, 0},
                              {0, 0.25, 2. / 3, 1. / 3, 0}});
  const auto got = m->score_history(seq);
  CHECK(torch::allclose(got.narrow(0, 0, 3), hand.narrow(0, 0, 3), 1e-6, 1e-9));
  CHECK(torch::allclose(got[3], hand[3], 1e-6, 1e-9));  // [3, 1]: P(.|1) + 0.25 P(.|3), row 3 empty
  CHECK(torch::allclose(got[4], hand[4], 1e-6, 1e-9));  // [2, 1]: P(.|1) + 0.25 P(.|2)
  const auto wide = torch::tensor(std::vector<int64_t>{4, 4, P, 0}, torch::kLong).view({1, 4});
  CHECK(torch::equal(m->score_history(wide), m->score_history(seq.narrow(0, 0, 1))));
  // decay 1: equal votes.
  Tiny flat({"model.history_items=3", "model.decay=1"});
  CHECK(torch::allclose(flat.fitted()->score_history(torch::tensor({{0, 1, 2}}, torch::kLong)),
                        expected({{0, 2. / 3 + 1, 1. / 3 + 2. / 3, 1. / 3, 0}}), 0, 1e-6));
  // Items outside [0, n_items] are refused by name.
  CHECK_THROWS_WITH(m->score_history(torch::tensor({{0, 6}}, torch::kLong)), Contains("history item index out of range: 6"));
}

TEST_CASE("markov: popularity breaks ties and ranks items without a transition", "[markov]") {
  torch::NoGradGuard no_grad;
  {
    Tiny t;
    Markov m = t.fitted();
    m->set_history_scope(HistoryScope::Train);
    // u1's last training item 3 has no successor: the ranking is Pop's (item 1 first, 0 and 2
    // tied behind it, then 3, then 4).
    const auto s = m->score_all(torch::tensor({1}, torch::kLong))[0];
    CHECK(torch::allclose(s, torch::tensor(kPop) * 1e-6, 0, 1e-12));
    CHECK(s.argmax().item<int64_t>() == 1);
    CHECK(s[0].item<float>() == s[2].item<float>());
    CHECK(s[2].item<float>() > s[3].item<float>());
    CHECK(s[3].item<float>() > s[4].item<float>());
    // Transition probabilities always dominate the default popularity term.
    const auto v = m->score_all(torch::tensor({2}, torch::kLong))[0];  // P(.|1): 2 then 3
    CHECK(v[2].item<float>() > v[3].item<float>());
    CHECK(v[3].item<float>() > v[1].item<float>());
  }
  {
    // pop_weight 0: no transitions, all ties; a large weight blends in Pop.
    Tiny t({"model.pop_weight=0"});
    Markov m = t.fitted();
    m->set_history_scope(HistoryScope::Train);
    CHECK(torch::equal(m->score_all(torch::tensor({1}, torch::kLong)), torch::zeros({1, 5})));
    Tiny big({"model.pop_weight=2"});
    Markov b = big.fitted();
    b->set_history_scope(HistoryScope::Train);
    CHECK(torch::allclose(b->score_all(torch::tensor({2}, torch::kLong)), expected({{0, 0, 2. / 3, 1. / 3, 0}}, 2.0), 0, 1e-6));
  }
}

TEST_CASE("markov: bad options and splits are refused with the key and the value", "[markov]") {
  {
    const Config cfg = synthetic_config("markov");  // the default random split
    const Dataset d = load_dataset(cfg);
    const Split split = split_dataset(d, cfg);
    CHECK_THROWS_WITH(make_model("markov", ModelContext{d.n_users(), d.n_items(), &cfg, &d, &split}),
                      Contains("dataset.split.method") && Contains("time-ordered split") && Contains("random"));
  }
  Tiny ok;
  auto refuses = [&](const std::string& set, const std::string& msg) {
    const Config c = synthetic_config("markov", {"dataset.split.method=leave_last", set});
    INFO(set);
    CHECK_THROWS_WITH(make_model("markov", ModelContext{4, 5, &c, &ok.e.d, &ok.split}), Contains(msg));
  };
  refuses("model.window=0", "model.window");
  refuses("model.window=0", "must be in [1, 65536], got 0");
  refuses("model.history_items=0", "model.history_items");
  refuses("model.decay=0", "model.decay");
  refuses("model.decay=0", "must be in (0, 1], got 0");
  refuses("model.decay=1.5", "model.decay");
  refuses("model.pop_weight=-1", "model.pop_weight");
  // Options built in code: the same rules.
  CHECK_THROWS_WITH(Markov(ok.ctx(), MarkovOptions().decay(1.5)), Contains("model.decay must be in (0, 1], got 1.5"));
  CHECK_THROWS_WITH(Markov(ok.ctx(), MarkovOptions().history_items(0)), Contains("model.history_items must be >= 1, got 0"));
  CHECK_THROWS_WITH(Markov(ok.ctx(), MarkovOptions().window(-2)), Contains("model.window must be >= 1, got -2"));
  CHECK_THROWS_WITH(Markov(ok.ctx(), MarkovOptions().pop_weight(-0.5)), Contains("model.pop_weight must be >= 0, got -0.5"));
  // No data in the context: a clear refusal rather than empty histories.
  CHECK_THROWS_WITH(Markov(ModelContext{3, 4, nullptr}, MarkovOptions()), Contains("reads each user's history"));
}

TEST_CASE("markov: checkpoint and TorchScript export of other options match the C++ scores", "[markov][export]") {
  for (const auto& sets : std::vector<std::vector<std::string>>{
           {"model.window=3", "model.history_items=4", "model.decay=0.7"},
           {"model.window=1", "model.history_items=2", "model.decay=1", "model.pop_weight=0.01"}}) {
    DYNAMIC_SECTION(sets[0] << " " << sets[1]) {
      std::vector<std::string> all = {"dataset.split.method=leave_last"};
      all.insert(all.end(), sets.begin(), sets.end());
      const Config cfg = synthetic_config("markov", all);
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      Recommender m = make_model("markov", ctx);
      m->fit(split.train);
      m->eval();
      TempDir t;
      const auto users = torch::tensor({0, 3, 3, 7, 199}, torch::kLong);
      // A fresh (unfitted) model has no popularity term: loading restores it.
      check_checkpoint_roundtrip(*m, [&] { return make_model("markov", ctx).ptr(); }, users, t.path.string());
      torch::jit::Module jm = check_export_roundtrip(*m, cfg, d, split, users, t.path.string());
      torch::NoGradGuard no_grad;
      // _score_seq on histories outside the data: padding, repeats, unseen orders, wider windows.
      const int64_t P = d.n_items(), L = m->history_len();
      const auto seq = torch::randint(P, {16, L + 2}, torch::kLong);
      seq.narrow(0, 0, 4).narrow(1, 0, L + 1).fill_(P);
      seq[5].fill_(P);
      CHECK(torch::allclose(jm.run_method("_score_seq", seq).toTensor(), m->score_history(seq), 1e-5, 1e-6));
      CHECK(torch::allclose(jm.run_method("_score_all", users).toTensor(), m->score_all(users), 1e-5, 1e-6));
    }
  }
}

TEST_CASE("markov: fits through the Trainer, evaluates, best.pt restores", "[markov][trainer]") {
  const Config cfg = synthetic_config("markov", {"dataset.split.method=leave_last", "model.history_items=3"});
  const Dataset d = load_dataset(cfg);
  const Split split = split_dataset(d, cfg);
  const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
  Recommender model = make_model("markov", ctx);
  TempDir t;
  Logger log{true};
  Trainer trainer(model, split, TrainOptions::from_config(cfg), EvalOptions::from_config(cfg), torch::kCPU, t.file("run"), log, &d);
  REQUIRE(trainer.fit());
  trainer.restore_best();
  torch::NoGradGuard no_grad;
  const auto users = torch::arange(d.n_users(), torch::kLong);
  const auto all = model->score_all(users);
  Recommender fresh = make_model("markov", ctx);
  load_model_checkpoint(t.file("run/best.pt"), *fresh, "markov", torch::kCPU);
  CHECK(torch::equal(fresh->score_all(users), all));
  const double ndcg = evaluate(*model, split, Target::Test, EvalOptions::from_config(cfg), torch::kCPU, &d).get("ndcg@10");
  CHECK(std::isfinite(ndcg));
  // Evaluation leaves the model in scope All: the same scores as before it.
  CHECK(torch::equal(model->score_all(users), all));
}

TEST_CASE("markov: inside a hybrid it sees the evaluator's history scope and exports", "[markov][hybrid]") {
  // The hybrid passes set_history_scope on to its parts: a blend of markov alone (no
  // normalisation) ranks exactly as markov, leakage-free (hr@1 = 1 on the chain data, see above).
  const TinyExample e = next_item_chain();
  const Config cfg = synthetic_config("hybrid", {"dataset.split.method=leave_last", "model.models=[markov]",
                                                 "model.normalize=none"});
  const Split split = split_dataset(e.d, cfg);
  Recommender h = make_model("hybrid", ModelContext{60, 30, &cfg, &e.d, &split});
  h->fit(split.train);
  EvalOptions eo;
  eo.ks = {1};
  eo.metrics = {"hr"};
  CHECK(evaluate(*h, split, Target::Valid, eo, torch::kCPU, &e.d).get("hr@1") == Approx(1.0));
  CHECK(evaluate(*h, split, Target::Test, eo, torch::kCPU, &e.d).get("hr@1") == Approx(1.0));

  // Its TorchScript (the part's code with every self.x renamed) compiles and matches.
  const Config pc = synthetic_config("hybrid", {"dataset.split.method=leave_last", "model.models=[pop, {name: markov, history_items: 2}]"});
  const Dataset d = load_dataset(pc);
  const Split ps = split_dataset(d, pc);
  Recommender p = make_model("hybrid", ModelContext{d.n_users(), d.n_items(), &pc, &d, &ps});
  p->fit(ps.train);
  TempDir t;
  check_export_roundtrip(*p, pc, d, ps, torch::tensor({0, 3, 3, 7, 199}, torch::kLong), t.path.string());
}
