// Side-feature fields in bpr and mf (model.fields, models/side_fields.h): the vectors and biases
// by hand, a cold item scored from its fields alone, gradients reaching the field table, fold-in
// of new users with fields, and the errors.
#include "helpers.h"
#include "model_checks.h"

#include <torch/torch.h>

#include "core/config.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/general/bpr.h"
#include "models/general/ncf.h"
#include "models/registry.h"
#include "models/side_fields.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// n_users (3 or 4) x 4 items. Users: "job" token (u0 a, u1 b, u2 missing, u3 a); items: "tags"
// token sequence (i0 {x}, i1 {x, y}, i2 {}, i3 {y}). Training: u0 {1}, u1 {1, 2}, u2 {3}, u3
// {1, 3}; item 0 has no training interaction (cold).
TinyExample with_users(int64_t n_users) {
  std::vector<int64_t> us = {0, 1, 1, 2}, is = {1, 1, 2, 3};
  if (n_users > 3) us.insert(us.end(), {3, 3}), is.insert(is.end(), {1, 3});
  TinyExample e = make_tiny_example(us, is, n_users, 4);
  FeatureBuilder job("job", Feature::Kind::Token), tags("tags", Feature::Kind::TokenSeq);
  job.add(0, "a");
  job.add(1, "b");
  if (n_users > 3) job.add(3, "a");
  tags.add(0, "x");
  tags.add(1, "x");
  tags.add(1, "y");
  tags.add(3, "y");
  e.d.user_info.features.push_back(job.build(n_users));
  e.d.item_info.features.push_back(tags.build(4));
  e.s.train = Csr::from_pairs(n_users, 4, us, is);
  return e;
}

Config fields_cfg(const std::string& model, std::vector<std::string> sets = {}) {
  sets.push_back("model.fields=true");
  sets.push_back("model.embedding_size=3");
  sets.push_back("dataset.fields=[user:job, item:tags]");
  return synthetic_config(model, sets);
}

// The fields' sum of entity e by hand from the layout's slots: sum_s weight[s] * table[index[s]].
at::Tensor field_sum(const FieldSide& side, const at::Tensor& table, int64_t e) {
  auto v = torch::zeros({table.size(1)});
  for (int64_t s = 0; s < side.n_slots(); ++s) {
    const auto k = static_cast<size_t>(e * side.n_slots() + s);
    v += side.weight[k] * table[side.index[k]];
  }
  return v;
}

}  // namespace

TEST_CASE("bpr with model.fields: p_u and q_i are the known id rows plus the fields, by hand", "[models][fields]") {
  const TinyExample e = with_users(3);
  const Config cfg = fields_cfg("bpr");
  torch::manual_seed(3);
  Recommender r = make_model("bpr", e.ctx(&cfg));
  auto& m = dynamic_cast<BPRImpl&>(*r);
  REQUIRE(m.side);
  torch::NoGradGuard g;
  m.side->table.normal_();  // not the small initial values: every term counts
  const auto& L = m.side->layout;
  REQUIRE(L.user.names == std::vector<std::string>{"user:job"});
  REQUIRE(L.item.names == std::vector<std::string>{"item:tags"});
  CHECK(m.side->i_known.equal(torch::tensor({0.F, 1.F, 1.F, 1.F})));
  CHECK(m.side->u_known.equal(torch::ones({3})));
  const auto T = m.side->table;
  const auto all = m.score_all(torch::arange(3));
  for (int64_t u = 0; u < 3; ++u)
    for (int64_t i = 0; i < 4; ++i) {
      const auto p = m.user_emb->weight[u] + field_sum(L.user, T, u);
      const auto q = (i == 0 ? 0.0 : 1.0) * m.item_emb->weight[i] + field_sum(L.item, T, i);
      CHECK(all[u][i].item<float>() == Approx((p * q).sum().item<float>()).margin(1e-5));
    }
  // Item 1's tags x and y weigh 1/2 each; item 2 has none: its tags field is the missing row.
  CHECK(torch::allclose(field_sum(L.item, T, 1), 0.5 * (T[L.item.first_row[0] + 1] + T[L.item.first_row[0] + 2])));
  CHECK(torch::allclose(field_sum(L.item, T, 2), T[L.item.first_row[0]]));
  // The cold item's id row does not count; its score comes from tag x.
  CHECK(m.scores_cold_items());
  m.item_emb->weight[0].add_(7.0);
  CHECK(torch::equal(m.score_all(torch::arange(3)), all));
  // score agrees with score_all.
  const auto users = torch::tensor({0, 1, 2, 2}, torch::kLong), items = torch::tensor({0, 3, 1, 2}, torch::kLong);
  CHECK(torch::allclose(m.score(users, items), all.index({users, items}), 1e-5, 1e-6));
  // The per-sample path is off with fields (it updates id rows only).
  CHECK_FALSE(m.has_per_sample_sgd());
  CHECK(m.describe() == std::vector<std::string>{"field: " + L.schema[0], "field: " + L.schema[1]});
}

TEST_CASE("mf with model.fields: vectors and biases by hand, the cold item's bias from its fields", "[models][fields]") {
  const TinyExample e = with_users(3);
  const Config cfg = fields_cfg("mf");
  torch::manual_seed(4);
  Recommender r = make_model("mf", e.ctx(&cfg));
  auto& m = dynamic_cast<DotMFImpl&>(*r);
  REQUIRE(m.side);
  torch::NoGradGuard g;
  m.side->table.normal_();
  m.user_bias.normal_();
  m.item_bias.normal_();
  m.global_bias.fill_(0.25);
  const auto& L = m.side->layout;
  const auto T = m.side->table;  // [R, D + 1]: column D is each row's bias
  REQUIRE(T.size(1) == 4);
  const auto all = m.score_all(torch::arange(3));
  for (int64_t u = 0; u < 3; ++u)
    for (int64_t i = 0; i < 4; ++i) {
      const auto fu = field_sum(L.user, T, u), fi = field_sum(L.item, T, i);
      const double known = i == 0 ? 0.0 : 1.0;
      const auto p = m.user_emb->weight[u] + fu.narrow(0, 0, 3);
      const auto q = known * m.item_emb->weight[i] + fi.narrow(0, 0, 3);
      const double bu = m.user_bias[u].item<double>() + fu[3].item<double>();
      const double bi = known * m.item_bias[i].item<double>() + fi[3].item<double>();
      CHECK(all[u][i].item<double>() == Approx((p * q).sum().item<double>() + bu + bi + 0.25).margin(1e-5));
    }
  const auto before = m.score_all(torch::arange(3));
  m.item_bias[0].add_(3.0);
  m.item_emb->weight[0].add_(3.0);
  CHECK(torch::equal(m.score_all(torch::arange(3)), before));
  CHECK_FALSE(m.has_per_sample_sgd());
}

TEST_CASE("bpr and mf with model.fields: gradients reach the field table, and the loss falls", "[models][fields]") {
  for (const std::string name : {"bpr", "mf"}) {
    INFO(name);
    const Config cfg = synthetic_config(name, {"model.fields=true"});
    const Dataset d = load_dataset(cfg);
    const Split s = split_dataset(d, cfg);
    torch::manual_seed(1);
    Recommender m = make_model(name, ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s});
    auto sampler = make_sampler("uniform", s.train);
    auto batcher = make_batcher(s, m->input_type(), *sampler, 256, 1);
    batcher->start_epoch(1, 0);
    Batch b;
    REQUIRE(batcher->next(b));
    m->zero_grad();
    m->loss(b).backward();
    at::Tensor table_grad;
    for (const auto& p : m->named_parameters())
      if (p.key() == "side.table") table_grad = p.value().grad();
    REQUIRE(table_grad.defined());
    CHECK(table_grad.abs().sum().item<double>() > 0.0);
    auto opt = make_optimizer("adam", m->parameters(), 0.01, 0.0, 0.0);
    torch::manual_seed(2);
    const double before = epoch_loss(*m, *batcher, nullptr, 0);
    for (uint64_t ep = 0; ep < 8; ++ep) epoch_loss(*m, *batcher, opt.get(), ep);
    torch::manual_seed(2);
    CHECK(epoch_loss(*m, *batcher, nullptr, 0) < 0.8 * before);
  }
}

TEST_CASE("bpr and mf with model.fields: a new user's scores are its fold-in (train.init_new_users)", "[models][fields]") {
  // As `rzoo update` grows a model: user 3 is new. Its scores after init_user_rows must be the
  // fold-in of its items against the old users' prior (fields included), as the old model
  // (users 0-2, the same parameters) computes it.
  const TinyExample big_e = with_users(4), small_e = with_users(3);
  for (const std::string name : {"bpr", "mf"}) {
    INFO(name);
    const Config cfg = fields_cfg(name);
    torch::manual_seed(5);
    Recommender big = make_model(name, big_e.ctx(&cfg));
    Recommender small = make_model(name, small_e.ctx(&cfg));
    torch::NoGradGuard g;
    for (auto& p : big->parameters()) p.normal_(0.0, 0.5);
    auto bp = big->named_parameters();
    for (auto& p : small->named_parameters()) {
      const at::Tensor& src = bp[p.key()];
      p.value().copy_(p.key().rfind("user_", 0) == 0 ? src.narrow(0, 0, 3) : src);
    }
    const auto before = big->score_all(torch::arange(3));
    REQUIRE(torch::allclose(small->score_all(torch::arange(3)), before, 1e-5, 1e-6));
    REQUIRE(big->init_user_rows(big_e.s.train, 3) == 1);
    CHECK(torch::equal(big->score_all(torch::arange(3)), before));
    const auto folded = small->score_fold_in(torch::tensor({1, 3}, torch::kLong));
    CHECK(torch::allclose(big->score_all(torch::tensor({3}, torch::kLong))[0], folded, 1e-4, 1e-5));
  }
}

TEST_CASE("model.fields errors: data without side features, context fields", "[models][fields]") {
  const TinyExample plain = make_tiny_example({0, 1}, {0, 1}, 2, 2);
  const Config cfg = synthetic_config("bpr", {"model.fields=true"});
  CHECK_THROWS_WITH(make_model("bpr", plain.ctx(&cfg)), Contains("model.fields is true but dataset.fields gives no user or item field"));
  const Config nodata = synthetic_config("mf", {"model.fields=true"});
  CHECK_THROWS_WITH(make_model("mf", ModelContext{2, 2, &nodata}), Contains("mf: model.fields needs the dataset"));
}
