// Feature models (models/context: fm, widedeep, deepfm, dcnv2) and their data: the field layout
// (datasets/fields.h) by hand, the models' logits against a direct transcription of their papers'
// formulas over explicit field vectors, labelled rows (dataset.label_threshold) and the labeled
// protocol's AUC / GAUC / log loss, end to end through the CLI, and the errors.
#include "helpers.h"
#include "model_checks.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/config.h"
#include "datasets/dataset.h"
#include "datasets/fields.h"
#include "datasets/sampler.h"
#include "models/context/ctr.h"
#include "models/registry.h"
#include "trainers/eval/labeled.h"
#include "trainers/evaluator.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// 3 users x 4 items. Users: "job" token (u0 a, u1 b, u2 missing), "age" float (10, 30, missing).
// Items: "tags" token sequence (i0 {x}, i1 {x, y}, i2 {}, i3 {y}).
TinyExample featured_example() {
  TinyExample e = make_tiny_example({0, 0, 1, 1, 2}, {0, 1, 1, 2, 3}, 3, 4, {5, 2, 4, 1, 5});
  FeatureBuilder job("job", Feature::Kind::Token), age("age", Feature::Kind::Float), tags("tags", Feature::Kind::TokenSeq);
  job.add(0, "a");
  job.add(1, "b");
  age.set_value(0, 10);
  age.set_value(1, 30);
  tags.add(0, "x");
  tags.add(1, "x");
  tags.add(1, "y");
  tags.add(3, "y");
  e.d.user_info.features.push_back(job.build(3));
  e.d.user_info.features.push_back(age.build(3));
  e.d.item_info.features.push_back(tags.build(4));
  return e;
}

Config fields_config(const std::string& model, const std::string& fields, std::vector<std::string> sets = {}) {
  sets.push_back("dataset.fields=" + fields);
  return synthetic_config(model, sets);
}

}  // namespace

TEST_CASE("fields: layout of ids, tokens, token sequences and floats by hand", "[context]") {
  const TinyExample e = featured_example();
  const Config cfg = fields_config("fm", "[user:job, user:age, item:tags]");
  // A training matrix without item 0: its id must get weight 0.
  const Csr train = Csr::from_pairs(3, 4, {0, 1, 2}, {1, 2, 3});
  const FieldLayout L = build_fields(e.d, &cfg, true, &train);
  REQUIRE(L.user.names == std::vector<std::string>{"user_id", "user:job", "user:age"});
  REQUIRE(L.item.names == std::vector<std::string>{"item_id", "item:tags"});
  // Rows: user_id 4 (missing + 3), job 3 (missing + a, b), age 2; item_id 5, tags 3.
  CHECK(L.user.rows == std::vector<int64_t>{4, 3, 2});
  CHECK(L.user.first_row == std::vector<int64_t>{0, 4, 7});
  CHECK(L.item.first_row == std::vector<int64_t>{9, 14});
  CHECK(L.table_rows == 17);
  // User slots: one each. u0: id row 1, job a (row 4 + 1), age (10 - 20) / sd 14.142 on row 8.
  REQUIRE(L.user.n_slots() == 3);
  CHECK(L.user.index[0] == 1);
  CHECK(L.user.index[1] == 5);
  CHECK(L.user.index[2] == 8);
  CHECK(L.user.weight[2] == Approx(-10.0 / std::sqrt(200.0)));
  // u2: job missing (row 4, weight 1), age missing (row 7, weight 1).
  CHECK(L.user.index[2 * 3 + 1] == 4);
  CHECK(L.user.weight[2 * 3 + 1] == 1.0F);
  CHECK(L.user.index[2 * 3 + 2] == 7);
  CHECK(L.user.weight[2 * 3 + 2] == 1.0F);
  // Item slots: id + 2 tag slots. i0 is cold: id weight 0. i1: tags x, y at 1/2 each; i2: missing.
  REQUIRE(L.item.n_slots() == 3);
  CHECK(L.item.weight[0] == 0.0F);
  CHECK(L.item.index[1 * 3 + 1] == 15);
  CHECK(L.item.index[1 * 3 + 2] == 16);
  CHECK(L.item.weight[1 * 3 + 1] == 0.5F);
  CHECK(L.item.weight[1 * 3 + 2] == 0.5F);
  CHECK(L.item.index[2 * 3 + 1] == 14);
  CHECK(L.item.weight[2 * 3 + 1] == 1.0F);
  CHECK(L.item.weight[2 * 3 + 2] == 0.0F);  // an unused slot
  // Buckets: two quantile buckets of age (10 | 30), missing its own token.
  const Config b = fields_config("fm", "[user:age]", {"dataset.field_buckets=2"});
  const FieldLayout LB = build_fields(e.d, &b, false, nullptr);
  REQUIRE(LB.user.kinds == std::vector<std::string>{"float_bucket"});
  CHECK(LB.user.index == std::vector<int64_t>{1, 2, 0});
  // auto: every side feature.
  const Config a = fields_config("fm", "[auto]");
  CHECK(build_fields(e.d, &a, false, nullptr).user.names == std::vector<std::string>{"user:job", "user:age"});
}

TEST_CASE("fields: unknown, malformed and repeated fields are errors naming the fields", "[context]") {
  const TinyExample e = featured_example();
  const Config bad = fields_config("fm", "[user:jobs]");
  CHECK_THROWS_WITH(build_fields(e.d, &bad, true, nullptr),
                    Contains("dataset.fields") && Contains("no field 'user:jobs'") && Contains("user:job, user:age, item:tags"));
  const Config twice = fields_config("fm", "[item:tags, item:tags]");
  CHECK_THROWS_WITH(build_fields(e.d, &twice, true, nullptr), Contains("'item:tags' is declared twice"));
  const Config side = fields_config("fm", "[tags]");
  CHECK_THROWS_WITH(build_fields(e.d, &side, true, nullptr), Contains("not SIDE:NAME"));
  const Config ids_only = fields_config("fm", "[]", {"model.use_ids=false"});
  CHECK_THROWS_WITH(FM(e.ctx(&ids_only)), Contains("every pair needs at least one user and one item field"));
}

namespace {

// Explicit field vectors of a pair: [F, D] (user fields then item fields) and first-order sum.
std::pair<at::Tensor, double> fields_of(const FeatureModelImpl& m, int64_t u, int64_t i) {
  std::vector<at::Tensor> v;
  double lin = 0;
  const auto add_side = [&](const FieldSide& s, int64_t e) {
    for (int64_t f = 0; f < s.n_fields(); ++f) {
      auto x = torch::zeros({m.table.size(1)});
      for (int64_t k = 0; k < s.n_slots(); ++k) {
        if (s.slot_field[static_cast<size_t>(k)] != f) continue;
        const auto at = static_cast<size_t>(e * s.n_slots() + k);
        x = x + s.weight[at] * m.table[s.index[at]];
        lin += s.weight[at] * m.linear[s.index[at]].item<double>();
      }
      v.push_back(x);
    }
  };
  add_side(m.layout().user, u);
  add_side(m.layout().item, i);
  return {torch::stack(v), lin};
}

void randomise(FeatureModelImpl& m) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.copy_(torch::randn_like(p) * 0.3);
}

}  // namespace

TEST_CASE("fm, widedeep, deepfm, dcnv2: logits equal the papers' formulas on explicit field vectors", "[context]") {
  const TinyExample e = featured_example();
  for (const std::string name : {"fm", "lr", "widedeep", "deepfm", "dcnv2", "dcnv2-parallel"}) {
    DYNAMIC_SECTION(name) {
      std::vector<std::string> sets = {"model.embedding_size=3"};
      std::string model = name;
      if (name == "lr") model = "fm", sets.push_back("model.pairwise=false");
      if (name == "dcnv2-parallel") model = "dcnv2", sets.push_back("model.structure=parallel");
      if (model != "fm") sets.push_back("model.mlp=[4]");
      const Config cfg = fields_config(model, "[user:job, user:age, item:tags]", sets);
      torch::manual_seed(3);
      Recommender r = make_model(model, e.ctx(&cfg));
      auto& m = dynamic_cast<FeatureModelImpl&>(*r);
      randomise(m);
      m.eval();
      torch::NoGradGuard g;
      const auto all = m.score_all(torch::arange(3));
      for (int64_t u = 0; u < 3; ++u)
        for (int64_t i = 0; i < 4; ++i) {
          const auto [v, lin] = fields_of(m, u, i);  // [F, D]
          const int64_t F = v.size(0);
          double want = 0;
          const auto mlp = [&](at::Tensor h) {
            for (auto& l : m.mlp) h = torch::relu(torch::mv(l->weight, h) + l->bias);
            return h;
          };
          if (model != "dcnv2") want = m.bias.item<double>() + lin;
          if (model == "fm" || model == "deepfm")
            if (name != "lr")
              for (int64_t f = 0; f < F; ++f)
                for (int64_t g2 = f + 1; g2 < F; ++g2) want += torch::dot(v[f], v[g2]).item<double>();
          if (model == "widedeep" || model == "deepfm")
            want += (torch::mv(m.mlp_out->weight, mlp(v.reshape({-1}))) + m.mlp_out->bias).item<double>();
          if (model == "dcnv2") {
            const auto x0 = v.reshape({-1});
            auto xl = x0;
            for (auto& c : m.cross) xl = x0 * (torch::mv(c->weight, xl) + c->bias) + xl;
            const auto h = name == "dcnv2" ? mlp(xl) : torch::cat({xl, mlp(x0)});
            want = (torch::mv(m.mlp_out->weight, h) + m.mlp_out->bias).item<double>();
          }
          INFO(name << " user " << u << " item " << i);
          CHECK(m.score(torch::tensor({u}), torch::tensor({i}))[0].item<double>() == Approx(want).epsilon(1e-4).margin(1e-5));
          CHECK(all[u][i].item<double>() == Approx(want).epsilon(1e-4).margin(1e-5));
        }
      // A score_all chunk of one user gives the same numbers.
      m.chunk_bytes = 1;
      CHECK(torch::allclose(m.score_all(torch::arange(3)), all, 1e-5, 1e-6));
    }
  }
}

TEST_CASE("fm: a cold item (no training interactions) is scored from its fields alone", "[context]") {
  TinyExample e = featured_example();
  const Config cfg = fields_config("fm", "[item:tags]");
  // Item 0 and item 1 share tag x; item 0 has no training row.
  e.s.train = Csr::from_pairs(3, 4, {0, 1, 2}, {1, 2, 3});
  Recommender r = make_model("fm", e.ctx(&cfg));
  auto& m = dynamic_cast<FeatureModelImpl&>(*r);
  randomise(m);
  CHECK(m.scores_cold_items());
  torch::NoGradGuard g;
  // Changing item 0's id row changes nothing: its id has weight 0.
  const auto before = m.score_all(torch::arange(3));
  m.table[m.layout().item.first_row[0] + 1].add_(5.0);
  CHECK(torch::equal(m.score_all(torch::arange(3)), before));
}

TEST_CASE("labelled rows: label_threshold keeps the rows below it as labelled negatives", "[context]") {
  // Synthetic ratings run from 5 down to 2 along each user's 20 items: >= 4 is the first half.
  const Config cfg = synthetic_config("fm", {"dataset.label_threshold=4", "dataset.split.ratios=[0.8, 0.1, 0.1]"});
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  REQUIRE(s.labeled());
  const int64_t all = s.train_labeled.size() + s.valid_labeled.size() + s.test_labeled.size();
  CHECK(all == d.n_interactions());
  int64_t pos = 0;
  for (const auto* L : {&s.train_labeled, &s.valid_labeled, &s.test_labeled})
    for (float y : L->label) pos += y > 0.5F;
  int64_t want = 0;
  for (size_t k = 0; k < d.rating.size(); ++k) want += d.rating[k] >= 4;
  CHECK(pos == want);
  // The positives' view: the CSR matrices hold exactly the rows labelled 1.
  CHECK(s.train.nnz() + s.valid.nnz() + s.test.nnz() == want);
  for (int64_t k = 0; k < s.train_labeled.size(); ++k)
    CHECK(s.train.contains(s.train_labeled.user[static_cast<size_t>(k)], s.train_labeled.item[static_cast<size_t>(k)]) ==
          (s.train_labeled.label[static_cast<size_t>(k)] > 0.5F));
  // Pointwise batches are the labelled training rows, each once per epoch.
  auto sampler = make_sampler("uniform", s.train);
  auto b = make_batcher(s, InputType::Pointwise, *sampler, 100, 4);
  CHECK(b->rows_per_epoch() == s.train_labeled.size());
  b->start_epoch(1, 0);
  Batch batch;
  double label_sum = 0;
  int64_t rows = 0;
  while (b->next(batch)) label_sum += batch.labels.sum().item<double>(), rows += batch.size();
  CHECK(rows == s.train_labeled.size());
  double want_sum = 0;
  for (float y : s.train_labeled.label) want_sum += y;
  CHECK(label_sum == want_sum);
  // Both threshold keys: an error.
  const Config both = synthetic_config("fm", {"dataset.label_threshold=4", "dataset.threshold=4"});
  CHECK_THROWS_WITH(split_dataset(load_dataset(both), both), Contains("not both"));
}

TEST_CASE("labeled protocol: AUC with ties, GAUC and log loss by hand", "[context][metrics]") {
  using eval_impl::auc_of;
  CHECK(auc_of({0.1F, 0.4F, 0.35F, 0.8F}, {0, 0, 1, 1}) == Approx(0.75));
  CHECK(auc_of({0.5F, 0.5F}, {0, 1}) == Approx(0.5));  // a tie counts one half
  CHECK(std::isnan(auc_of({0.1F, 0.2F}, {1, 1})));
  // Through the evaluator on a hand-made split: two users' labelled rows, scored by a model whose
  // scores we set.
  TinyExample e = featured_example();
  const Config cfg = fields_config("fm", "[]", {"eval.protocol=labeled", "eval.metrics=[auc, gauc, logloss]",
                                                "train.early_stop.metric=auc", "model.embedding_size=1"});
  Recommender r = make_model("fm", e.ctx(&cfg));
  auto& m = dynamic_cast<FeatureModelImpl&>(*r);
  {
    torch::NoGradGuard g;
    for (auto& p : m.parameters()) p.zero_();
    // score = linear[item_id row]: items 0..3 get 0, 1, 2, -1.
    const int64_t first = m.layout().item.first_row[0];
    for (int64_t i = 0; i < 4; ++i) m.linear[first + 1 + i].fill_(std::vector<double>{0, 1, 2, -1}[static_cast<size_t>(i)]);
  }
  e.s.test_labeled = LabeledRows{{0, 0, 0, 1, 1}, {0, 1, 2, 1, 3}, {0, 1, 1, 1, 0}};
  e.s.train_labeled = e.s.test_labeled;
  e.s.label_threshold = 4;
  const EvalOptions opts = EvalOptions::from_config(cfg);
  const EvalResult res = evaluate(*r, e.s, Target::Test, opts, torch::kCPU, &e.d);
  // Scores 0 1 2 | 1 -1 with labels 0 1 1 | 1 0: positives {1, 2, 1}, negatives {0, -1}: AUC 1.
  CHECK(res.get("auc") == Approx(1.0));
  CHECK(res.get("gauc") == Approx(1.0));
  const auto sp = [](double x) { return std::log1p(std::exp(x)); };
  const double ll = (sp(0) + sp(-1) + sp(-2) + sp(-1) + sp(-1)) / 5;
  CHECK(res.get("logloss") == Approx(ll));
  REQUIRE(res.users == std::vector<int64_t>{0, 1});
  CHECK(res.n_targets == std::vector<int64_t>{2, 1});
  CHECK(res.user_values("logloss")->at(1) == Approx((sp(-1) + sp(-1)) / 2));
  // Config errors: ranking metrics under labeled, logloss elsewhere.
  CHECK_THROWS_WITH(EvalOptions::from_config(synthetic_config("fm", {"eval.protocol=labeled"})),
                    Contains("eval.protocol labeled computes auc, gauc and logloss"));
  CHECK_THROWS_WITH(EvalOptions::from_config(synthetic_config("fm", {"eval.metrics=[logloss]"})),
                    Contains("logloss needs eval.protocol labeled"));
}

TEST_CASE("rzoo train: deepfm on labelled csv data with user and item files, chosen by validation AUC", "[context][cli]") {
  // 60 users in 3 groups rate 20 of 45 items each (3 genres): 5 when the user's group is the
  // item's genre, else 1, one rating in 8 flipped. Only the fields carry the rule.
  TempDir t;
  {
    std::ofstream r(t.path / "ratings.csv"), u(t.path / "users.csv"), i(t.path / "items.csv");
    r << "user,item,rating\n";
    u << "user,group\n";
    i << "item,title,genres\n";
    for (int64_t it = 0; it < 45; ++it) i << "i" << it << ",Item " << it << ",g" << it % 3 << "\n";
    for (int64_t us = 0; us < 60; ++us) {
      u << "u" << us << ",g" << us % 3 << "\n";
      for (int64_t k = 0; k < 20; ++k) {
        const int64_t it = (us * 7 + k * 11) % 45;
        const bool like = it % 3 == us % 3, flip = (us * 20 + k) % 8 == 0;
        r << "u" << us << ",i" << it << "," << ((like != flip) ? 5 : 1) << "\n";
      }
    }
  }
  const std::string exp = (t.path / "exp.yaml").string();
  std::ofstream(exp) << "dataset:\n"
                        "  name: labelled\n"
                        "  path: " << (t.path / "ratings.csv").string() << "\n"
                        "  columns: {user: user, item: item, rating: rating}\n"
                        "  items: {path: " << (t.path / "items.csv").string() << "}\n"
                        "  users: {path: " << (t.path / "users.csv").string() << ", columns: {id: user, features: [group]}}\n"
                        "  label_threshold: 4\n"
                        "  fields: [user:group, item:genres]\n"
                        "  split: {method: random, scope: global}\n"
                        "model: deepfm\n"
                        "threads: 1\n"
                        "train: {epochs: 40, lr: 0.01, batch_size: 64, progress: false, early_stop: {metric: auc, patience: 10}}\n"
                        "eval: {protocol: labeled, metrics: [auc, gauc, logloss]}\n";
  const CliResult r = run_cli(fmt::format("train {} --set output_dir={} --set run_name=ctr", exp, (t.path / "runs").string()));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Contains("field: user:group token") && Contains("field: item:genres token_seq"));
  const std::string fields = read_file((t.path / "runs/ctr/fields.txt").string());
  CHECK_THAT(fields, Contains("user_id id") && Contains("user:group token (3 tokens)"));
  // The rule is in the fields: far better than chance (7 in 8 labels follow it).
  const std::string metrics = read_file((t.path / "runs/ctr/metrics.json").string());
  const auto at = metrics.find("\"auc\"", metrics.find("\"test\""));
  REQUIRE(at != std::string::npos);
  const double auc = std::stod(metrics.substr(metrics.find(':', at) + 1));
  CHECK(auc > 0.75);
  // A field that does not exist: an error listing those that do.
  const CliResult bad = run_cli(fmt::format("train {} --set dataset.fields=[user:zip] --set output_dir={}", exp,
                                            (t.path / "runs").string()));
  require_clean_failure(bad, "no field 'user:zip'");
  CHECK_THAT(bad.output, Contains("user:group, item:title, item:genres"));
  // Context fields need timestamps, which this file lacks.
  require_clean_failure(run_cli(fmt::format("train {} --set dataset.fields=[context:hour] --set output_dir={}", exp, (t.path / "runs").string())), "needs interaction timestamps");
  // The run exports; once the items file gives another genre vocabulary, export and evaluate
  // refuse, naming fields.txt's line and both versions (the trained rows would mean other genres).
  const std::string run = (t.path / "runs/ctr").string();
  CHECK(run_cli(fmt::format("export {} --out {}", run, (t.path / "m.pt").string())).code == 0);
  {
    std::string items = read_file((t.path / "items.csv").string());
    items.replace(items.find("i0,Item 0,g0"), 12, "i0,Item 0,g9");  // a fourth genre
    std::ofstream(t.path / "items.csv") << items;
  }
  for (const std::string cmd : {"export " + run + " --out " + (t.path / "m2.pt").string(), "evaluate " + run}) {
    const CliResult drift = run_cli(cmd);
    require_clean_failure(drift, "fields.txt:");
    CHECK_THAT(drift.output, Contains("the data no longer gives the fields this run was trained with") &&
                                 Contains("item:genres token_seq (3 tokens") && Contains("item:genres token_seq (4 tokens"));
  }
  CHECK_FALSE(fs::exists(t.path / "m2.pt"));
}

TEST_CASE("feature models: the fused CPU field bag's gradients equal the tensor operations'", "[context]") {
  // float32 on the CPU takes the fused pass (FieldBag); float64 the gather / scale / index_add.
  const TinyExample e = featured_example();
  const Config cfg = fields_config("deepfm", "[user:job, user:age, item:tags]", {"model.embedding_size=3", "model.mlp=[4]"});
  torch::manual_seed(5);
  Recommender r = make_model("deepfm", e.ctx(&cfg));
  auto& m = dynamic_cast<FeatureModelImpl&>(*r);
  randomise(m);
  const Batch b{torch::tensor({0, 1, 2, 2, 0}), torch::tensor({1, 1, 2, 3, 0}), {}, torch::tensor({1.0F, 0.0F, 1.0F, 0.0F, 1.0F}), {}};
  const auto grads = [&] {
    m.zero_grad();
    m.loss(b).backward();
    std::vector<at::Tensor> g;
    for (auto& p : m.parameters()) g.push_back(p.grad().to(torch::kDouble).clone());
    return g;
  };
  const auto fused = grads();
  {
    // Every floating tensor to float64 (Module::to would also convert the index buffers).
    torch::NoGradGuard g;
    for (auto& p : m.parameters()) p.set_data(p.data().to(torch::kDouble));
    for (auto* t : {&m.u_weight, &m.i_weight}) t->set_data(t->to(torch::kDouble));
  }
  const auto plain = grads();
  REQUIRE(fused.size() == plain.size());
  for (size_t k = 0; k < fused.size(); ++k) {
    INFO("parameter " << k);
    CHECK(torch::allclose(fused[k], plain[k], 1e-4, 1e-6));
  }
  CHECK(fused[0].abs().sum().item<double>() > 0);  // the table's gradient is not trivially zero
}

TEST_CASE("eval.user_max_train: only users with at most N training interactions are evaluated", "[context][metrics]") {
  const Config cfg = synthetic_config("pop", {"dataset.split.ratios=[0.6, 0.2, 0.2]", "dataset.split.scope=global"});
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  Recommender m = make_model("pop", ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s});
  m->fit(s.train);
  EvalOptions all = EvalOptions::from_config(cfg);
  const EvalResult full = evaluate(*m, s, Target::Test, all, torch::kCPU, &d);
  // A cut in the middle of the users' training sizes (the split leaves them unequal).
  std::vector<int64_t> sizes;
  for (int64_t u = 0; u < s.train.n_rows; ++u) sizes.push_back(s.train.row_size(u));
  std::sort(sizes.begin(), sizes.end());
  const int64_t cut = sizes[sizes.size() / 2];
  EvalOptions few = all;
  few.user_max_train = cut;
  const EvalResult part = evaluate(*m, s, Target::Test, few, torch::kCPU, &d);
  std::vector<int64_t> want;
  for (int64_t u : full.users)
    if (s.train.row_size(u) <= cut) want.push_back(u);
  REQUIRE(!want.empty());
  REQUIRE(want.size() < full.users.size());
  CHECK(part.users == want);
  CHECK_THAT(part.protocol, Contains("only those with at most " + std::to_string(cut) + " training interactions"));
  // Each kept user's values are those of the full evaluation.
  const auto* a = full.user_values("ndcg@10");
  const auto* b = part.user_values("ndcg@10");
  for (size_t r = 0, k = 0; r < full.users.size(); ++r)
    if (k < want.size() && full.users[r] == want[k]) CHECK((*a)[r] == (*b)[k++]);
}

TEST_CASE("feature models: item-id dropout drops the item id of training pairs only", "[context]") {
  const TinyExample e = featured_example();
  const Batch b{torch::tensor({0, 1, 2}), torch::tensor({1, 2, 3}), {}, torch::tensor({1.0F, 0.0F, 1.0F}), {}};
  for (const double p : {0.0, 1.0}) {
    const Config cfg = fields_config("fm", "[item:tags]", {"model.id_dropout=" + std::to_string(p)});
    Recommender r = make_model("fm", e.ctx(&cfg));
    auto& m = dynamic_cast<FeatureModelImpl&>(*r);
    randomise(m);
    m.train();
    m.zero_grad();
    m.loss(b).backward();
    const int64_t first = m.layout().item.first_row[0];  // item_id rows
    const double g = m.table.grad().narrow(0, first, m.layout().item.rows[0]).abs().sum().item<double>();
    INFO("id_dropout " << p);
    if (p == 1.0) CHECK(g == 0.0);
    else CHECK(g > 0.0);
    // Scoring is never affected. (score and score_all take different float paths, FM's
    // factorised form in score_all: a relative tolerance alone fails for scores near 0.)
    m.eval();
    torch::NoGradGuard ng;
    CHECK(m.score(torch::tensor({0}), torch::tensor({1}))[0].item<double>() ==
          Approx(m.score_all(torch::tensor({0}))[0][1].item<double>()).epsilon(1e-5).margin(1e-6));
  }
}

TEST_CASE("context fields: hour, weekday and gap tokens by hand, and their place in the logits", "[context]") {
  // u0 at 1970-01-01 00:00 (a Thursday) and 1000 s later; u1 on Monday 1970-01-05 13:00.
  TinyExample e = make_tiny_example({0, 0, 1}, {0, 1, 2}, 2, 3, {5, 1, 4});
  const int64_t monday_13h = 4 * 86400 + 13 * 3600;
  e.d.timestamp = std::vector<int64_t>{0, 1000, monday_13h};
  const Config cfg = fields_config("fm", "[context:hour, context:weekday, context:gap]",
                                   {"model.embedding_size=2", "dataset.label_threshold=4"});
  const auto fields = context_fields(cfg);
  REQUIRE(fields == std::vector<std::string>{"context:hour", "context:weekday", "context:gap"});
  const auto tok = context_tokens(e.d, fields, cfg);
  // hour 0 -> token 1; Thursday -> 4 (Monday = 1); first interaction: gap token 0.
  CHECK(std::vector<int32_t>(tok.begin(), tok.begin() + 3) == std::vector<int32_t>{1, 4, 0});
  CHECK(std::vector<int32_t>(tok.begin() + 3, tok.begin() + 6) == std::vector<int32_t>{1, 4, 1 + 9});  // log2(1001)
  CHECK(std::vector<int32_t>(tok.begin() + 6, tok.end()) == std::vector<int32_t>{14, 1, 0});
  CHECK_THROWS_WITH(context_fields(fields_config("fm", "[context:month]")), Contains("unknown context field 'context:month'"));
  TinyExample no_time = make_tiny_example({0}, {0}, 1, 1);
  CHECK_THROWS_WITH(context_tokens(no_time.d, fields, cfg), Contains("needs interaction timestamps"));

  // FM with the context fields: score_labeled adds the context rows' first-order weights and
  // their pairwise terms; score (context unknown) leaves them out.
  Recommender r = make_model("fm", e.ctx(&cfg));
  auto& m = dynamic_cast<FeatureModelImpl&>(*r);
  randomise(m);
  m.eval();
  torch::NoGradGuard g;
  const auto ctx = torch::tensor({int64_t{14}, int64_t{1}, int64_t{0}}).view({1, 3});
  const auto [v, lin] = fields_of(m, 1, 2);  // user and item fields
  std::vector<at::Tensor> all = {v};
  double want = m.bias.item<double>() + lin;
  for (int64_t c = 0; c < 3; ++c) {
    const int64_t row = m.layout().context.first_row[static_cast<size_t>(c)] + ctx[0][c].item<int64_t>();
    all.push_back(m.table[row].unsqueeze(0));
    want += m.linear[row].item<double>();
  }
  const auto x = torch::cat(all, 0);
  for (int64_t f = 0; f < x.size(0); ++f)
    for (int64_t h = f + 1; h < x.size(0); ++h) want += torch::dot(x[f], x[h]).item<double>();
  CHECK(m.score_labeled(torch::tensor({1}), torch::tensor({2}), ctx)[0].item<double>() == Approx(want).epsilon(1e-4));
  CHECK(m.score_labeled(torch::tensor({1}), torch::tensor({2}), at::Tensor())[0].item<double>() ==
        Approx(m.score(torch::tensor({1}), torch::tensor({2}))[0].item<double>()));
  CHECK(m.score(torch::tensor({1}), torch::tensor({2}))[0].item<double>() ==
        Approx(m.score_all(torch::tensor({1}))[0][2].item<double>()).epsilon(1e-5));
}

TEST_CASE("feature models: model.loss bpr is -log sigmoid of the positive's logit minus the negative's, pairwise batches",
          "[context]") {
  const TinyExample e = featured_example();
  const Batch b{torch::tensor({0, 1, 2}), torch::tensor({1, 2, 3}), torch::tensor({0, 3, 1}), {}, {}};
  for (const std::string name : {"fm", "widedeep", "deepfm", "dcnv2"}) {
    INFO(name);
    const Config cfg = fields_config(name, "[item:tags]", {"model.loss=bpr", "model.l2=0.1"});
    Recommender r = make_model(name, e.ctx(&cfg));
    CHECK(r->input_type() == InputType::Pairwise);
    auto& m = dynamic_cast<FeatureModelImpl&>(*r);
    randomise(m);
    m.eval();  // no dropout: the loss is a function of the scores alone
    torch::NoGradGuard ng;
    const auto sp = m.score(b.users, b.items), sn = m.score(b.users, b.neg_items);
    // By hand: mean log(1 + exp(s_neg - s_pos)) ...
    double expect = 0.0;
    for (int64_t k = 0; k < 3; ++k) expect += std::log1p(std::exp(sn[k].item<double>() - sp[k].item<double>())) / 3.0;
    const double with_l2 = m.loss(b).item<double>();
    m.options.l2(0.0);
    CHECK(m.loss(b).item<double>() == Approx(expect).epsilon(1e-5));
    // ... plus l2 times the mean of the two pairs' squared field norms (bce's l2 term, which is l2
    // times one pair's, taken on the positives and on the negatives).
    const auto bce_l2_term = [&](const at::Tensor& items) {
      m.options.loss("bce");
      const Batch pb{b.users, items, {}, torch::tensor({1.0F, 0.0F, 1.0F}), {}};
      m.options.l2(0.1);
      const double a = m.loss(pb).item<double>();
      m.options.l2(0.0);
      const double z = m.loss(pb).item<double>();
      m.options.loss("bpr");
      return a - z;
    };
    CHECK(with_l2 - expect == Approx(0.5 * (bce_l2_term(b.items) + bce_l2_term(b.neg_items))).epsilon(1e-4));
    // The pointwise batch's labels are not what it reads.
    const Batch pointwise{b.users, b.items, {}, torch::tensor({1.0F, 0.0F, 1.0F}), {}};
    CHECK_THROWS_WITH(m.loss(pointwise), Contains("model.loss bpr needs pairwise batches"));
  }
  const Config hinge = fields_config("fm", "[item:tags]", {"model.loss=hinge"});
  CHECK_THROWS_WITH(make_model("fm", e.ctx(&hinge)), Contains("model.loss") && Contains("hinge"));
}

TEST_CASE("feature models: model.loss ce is the softmax over score_all, sampled over the target and drawn items",
          "[context]") {
  const TinyExample e = featured_example();
  const Batch b{torch::tensor({0, 1, 2, 0}), torch::tensor({1, 2, 3, 0}), torch::tensor({0, 3, 1, 2}), {}, {}};
  // log(sum_j exp(z_j)) - z_target over the candidate logits z.
  const auto nll = [](const std::vector<double>& z, size_t target) {
    double mx = z[0];
    for (double v : z) mx = std::max(mx, v);
    double sum = 0;
    for (double v : z) sum += std::exp(v - mx);
    return mx + std::log(sum) - z[target];
  };
  for (const std::string name : {"fm", "widedeep", "deepfm", "dcnv2"}) {
    INFO(name);
    const Config cfg = fields_config(name, "[item:tags]", {"model.loss=ce"});
    Recommender r = make_model(name, e.ctx(&cfg));
    CHECK(r->input_type() == InputType::Pairwise);  // positives; their negatives are not read
    auto& m = dynamic_cast<FeatureModelImpl&>(*r);
    randomise(m);
    m.eval();
    torch::NoGradGuard ng;
    const auto all = m.score_all(b.users);  // [4, 4]
    // The grid (Wide & Deep's and DeepFM's first layer from its user and item halves) against
    // each pair's own logits.
    for (int64_t i = 0; i < 4; ++i)
      CHECK(torch::allclose(all.select(1, i), m.score(b.users, torch::full({4}, i, torch::kLong)), 1e-5, 1e-6));
    double expect = 0;
    for (int64_t k = 0; k < 4; ++k) {
      std::vector<double> z;
      for (int64_t i = 0; i < 4; ++i) z.push_back(all[k][i].item<double>());
      expect += nll(z, static_cast<size_t>(b.items[k].item<int64_t>())) / 4.0;
    }
    CHECK(m.loss(b).item<double>() == Approx(expect).epsilon(1e-5));
    {  // In training without dropout, the same (the networks' split grid in training).
      m.train();
      CHECK(m.loss(b).item<double>() == Approx(expect).epsilon(1e-5));
      m.eval();
    }
    // sampled: the positive's logit, then the batch's drawn items (one set for all rows), a drawn
    // item that is the row's own left out.
    m.options.loss("sampled");
    m.options.neg_samples(5);
    torch::manual_seed(7);
    const double sampled = m.loss(b).item<double>();
    torch::manual_seed(7);
    const auto negs = torch::randint(4, {5}, torch::kLong);
    double want = 0;
    int64_t hits = 0;
    for (int64_t k = 0; k < 4; ++k) {
      const int64_t own = b.items[k].item<int64_t>();
      std::vector<double> z{all[k][own].item<double>()};
      for (int64_t j = 0; j < 5; ++j) {
        const int64_t n = negs[j].item<int64_t>();
        if (n == own) ++hits;
        else z.push_back(all[k][n].item<double>());
      }
      want += nll(z, 0) / 4.0;
    }
    CHECK(sampled == Approx(want).epsilon(1e-5));
    INFO("drawn items that were a row's own: " << hits);
    // l2: the same term as bce's on the positive pairs.
    for (const std::string loss : {"ce", "sampled"}) {
      m.options.loss(loss);
      m.options.l2(0.1);
      torch::manual_seed(7);
      const double with_l2 = m.loss(b).item<double>();
      m.options.l2(0.0);
      torch::manual_seed(7);
      const double without = m.loss(b).item<double>();
      m.options.loss("bce");
      const Batch pb{b.users, b.items, {}, torch::ones({4}), {}};
      m.options.l2(0.1);
      const double a = m.loss(pb).item<double>();
      m.options.l2(0.0);
      CHECK(with_l2 - without == Approx(a - m.loss(pb).item<double>()).epsilon(1e-4));
    }
  }
  const Config zero = fields_config("fm", "[item:tags]", {"model.loss=sampled", "model.neg_samples=0"});
  CHECK_THROWS_WITH(make_model("fm", e.ctx(&zero)), Contains("model.neg_samples"));
}

TEST_CASE("feature models: ce and sampled losses fall in training, the target out of user:history", "[context]") {
  // The target's own history row gets no gradient from its pair (as with bce).
  {
    TinyExample e = featured_example();
    e.s.train = Csr::from_pairs(3, 4, {0, 0, 1, 1, 2}, {0, 1, 1, 2, 3});
    const Config cfg = fields_config("fm", "[user:history, item:tags]", {"model.loss=ce"});
    Recommender r = make_model("fm", e.ctx(&cfg));
    auto& m = dynamic_cast<FeatureModelImpl&>(*r);
    randomise(m);
    m.train();
    m.zero_grad();
    m.loss(Batch{torch::tensor({0}), torch::tensor({0}), torch::tensor({2}), {}, {}}).backward();
    const int64_t h0 = m.layout().user.first_row[1] + 1;  // item 0's history row
    CHECK(m.table.grad()[h0].abs().sum().item<double>() == 0.0);
    CHECK(m.table.grad()[h0 + 1].abs().sum().item<double>() > 0.0);
  }
  for (const std::string name : {"fm", "deepfm"})
    for (const std::string loss : {"ce", "sampled"}) {
      INFO(name << " " << loss);
      const Config cfg = synthetic_config(name, {"model.loss=" + loss, "model.neg_samples=16", "dataset.fields=[auto]"});
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      torch::manual_seed(1);
      Recommender model = make_model(name, ModelContext{d.n_users(), d.n_items(), &cfg, &d, &split});
      model->before_training();
      auto sampler = make_sampler("uniform", split.train);
      auto batcher = make_batcher(split, model->input_type(), *sampler, 256, 1);
      auto opt = make_optimizer("adam", model->parameters(), 0.01, 0.0, 0.0);
      torch::manual_seed(2);
      const double before = epoch_loss(*model, *batcher, nullptr, 0);
      for (uint64_t ep = 0; ep < 10; ++ep) epoch_loss(*model, *batcher, opt.get(), ep);
      torch::manual_seed(2);
      const double after = epoch_loss(*model, *batcher, nullptr, 0);
      INFO("loss " << before << " -> " << after);
      CHECK(after < 0.9 * before);
    }
}

TEST_CASE("fields: user:history holds the user's training items averaged, capped by a seeded sample", "[context]") {
  TinyExample e = featured_example();
  const Config cfg = fields_config("fm", "[user:history]");
  // u0 {0, 1}, u1 {1, 2}, u2 none.
  const Csr train = Csr::from_pairs(3, 4, {0, 0, 1, 1}, {0, 1, 1, 2});
  const FieldLayout L = build_fields(e.d, &cfg, true, &train);
  REQUIRE(L.user.names == std::vector<std::string>{"user_id", "user:history"});
  CHECK(L.user.kinds == std::vector<std::string>{"id", "history"});
  CHECK(L.user.field_index(kHistoryField) == 1);
  CHECK(L.user.rows == std::vector<int64_t>{4, 5});  // missing + 4 items
  CHECK(L.user.first_row == std::vector<int64_t>{0, 4});
  REQUIRE(L.user.n_slots() == 3);  // id + the longest history (2)
  CHECK(L.user.index[1] == 5);     // u0: item 0 at row 4 + 1 + 0
  CHECK(L.user.index[2] == 6);
  CHECK(L.user.weight[1] == 0.5F);
  CHECK(L.user.weight[2] == 0.5F);
  CHECK(L.user.index[2 * 3 + 1] == 4);  // u2: no history, the missing row
  CHECK(L.user.weight[2 * 3 + 1] == 1.0F);
  CHECK(L.user.weight[2 * 3 + 2] == 0.0F);
  // auto is the data's own side features; user:history is asked for by name.
  const Config a = fields_config("fm", "[auto]");
  CHECK(build_fields(e.d, &a, false, &train).user.field_index(kHistoryField) == -1);
  // A cap of 1: each user keeps one of its items, the same one on every rebuild.
  const Config one = fields_config("fm", "[user:history]", {"dataset.history_max=1"});
  const FieldLayout L1 = build_fields(e.d, &one, false, &train);
  REQUIRE(L1.user.n_slots() == 1);
  CHECK((L1.user.index[0] == 1 || L1.user.index[0] == 2));  // u0: item 0 or 1
  CHECK((L1.user.index[1] == 2 || L1.user.index[1] == 3));  // u1: item 1 or 2
  CHECK(L1.user.weight[0] == 1.0F);
  CHECK(build_fields(e.d, &one, false, &train).user.index == L1.user.index);
  CHECK(L1.schema[0].find("1 user(s) above dataset.history_max") == std::string::npos);
  CHECK(L1.schema[0].find("2 user(s) above dataset.history_max") != std::string::npos);
  // Errors: no training split; a data feature of the same name.
  CHECK_THROWS_WITH(build_fields(e.d, &cfg, true, nullptr), Contains("user:history") && Contains("needs the training split"));
  FeatureBuilder clash("history", Feature::Kind::Token);
  clash.add(0, "x");
  e.d.user_info.features.push_back(clash.build(3));
  CHECK_THROWS_WITH(build_fields(e.d, &cfg, true, &train), Contains("feature named 'history'"));
  // bpr / mf's static side fields cannot leave a pair's item out: refused by name.
  const Config side = fields_config("bpr", "[user:history]", {"model.fields=true"});
  const TinyExample plain = featured_example();
  CHECK_THROWS_WITH(make_model("bpr", plain.ctx(&side)), Contains("user:history") && Contains("feature models"));
}

TEST_CASE("feature models: a training pair leaves its own item out of user:history, scoring keeps it", "[context]") {
  TinyExample e = featured_example();
  e.s.train = Csr::from_pairs(3, 4, {0, 0, 1, 1, 2}, {0, 1, 1, 2, 3});
  const Config cfg = fields_config("fm", "[user:history, item:tags]");
  Recommender r = make_model("fm", e.ctx(&cfg));
  auto& m = dynamic_cast<FeatureModelImpl&>(*r);
  randomise(m);
  // Slots: user_id, then 2 history slots. Pairs (u0, i0), (u0, i3), (u1, i2), (u2, i3).
  const auto users = torch::tensor({0, 0, 1, 2}), items = torch::tensor({0, 3, 2, 3});
  const auto rows = m.u_index.index_select(0, users), w = m.u_weight.index_select(0, users);
  const auto x = m.history_without_target(rows, w, items);
  const std::vector<std::vector<float>> want = {{1, 0, 1}, {1, 0.5, 0.5}, {1, 1, 0}, {1, 0, 0}};
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t s = 0; s < 3; ++s) {
      INFO("pair " << k << " slot " << s);
      CHECK(x[k][s].item<float>() == Approx(want[static_cast<size_t>(k)][static_cast<size_t>(s)]));
    }
  // In training the own item's history row gets no gradient; the user's other item's does.
  m.train();
  m.zero_grad();
  const Batch b{torch::tensor({0}), torch::tensor({0}), {}, torch::tensor({1.0F}), {}};
  m.loss(b).backward();
  const int64_t h0 = m.layout().user.first_row[1] + 1;  // item 0's history row
  CHECK(m.table.grad()[h0].abs().sum().item<double>() == 0.0);
  CHECK(m.table.grad()[h0 + 1].abs().sum().item<double>() > 0.0);
  // Scoring reads the whole history (the fields' formula, fields_of, has no exclusion), and the
  // export carries it.
  m.eval();
  torch::NoGradGuard g;
  const auto [v, lin] = fields_of(m, 0, 0);
  const auto s = v.sum(0);
  const double want00 = m.bias.item<double>() + lin + 0.5 * (s.dot(s).item<double>() - v.pow(2).sum().item<double>());
  CHECK(m.score(torch::tensor({0}), torch::tensor({0}))[0].item<double>() == Approx(want00).epsilon(1e-5).margin(1e-6));
  TempDir t;
  check_export_roundtrip(m, cfg, e.d, e.s, torch::arange(3), t.path.string());
}
