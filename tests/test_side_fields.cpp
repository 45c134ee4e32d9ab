// Side-feature fields in bpr, mf and the sequence models (model.fields, models/side_fields.h): the vectors and biases
// by hand, a cold item scored from its fields alone, gradients reaching the field table, fold-in
// of new users with fields, and the errors.
#include "helpers.h"
#include "model_checks.h"

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/general/bpr.h"
#include "models/general/ncf.h"
#include "models/registry.h"
#include "models/sequential/bert4rec.h"
#include "models/sequential/caser.h"
#include "models/sequential/gru4rec.h"
#include "models/sequential/sasrec.h"
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

namespace {

// A sequence model on the synthetic data's leave-one-out split, small, without dropout; `sets`
// add to (and may repeat) those keys.
struct SeqFields {
  Config cfg;
  Dataset d;
  Split s;
  SeqFields(const std::string& model, std::vector<std::string> sets)
      : cfg([&] {
          std::vector<std::string> all = {"dataset.split.method=leave_last", "model.max_len=8", "model.dropout=0"};
          if (model == "sasrec") all.insert(all.end(), {"model.hidden_size=16", "model.inner_size=32", "model.attn_dropout=0"});
          if (model == "bert4rec") all.insert(all.end(), {"model.hidden_size=16", "model.inner_size=32"});
          if (model == "gru4rec") all.insert(all.end(), {"model.embedding_size=16", "model.hidden_size=24"});
          if (model == "caser") all.insert(all.end(), {"model.embedding_size=16", "model.max_len=4"});
          all.insert(all.end(), sets.begin(), sets.end());
          return synthetic_config(model, all);
        }()),
        d(load_dataset(cfg)),
        s(split_dataset(d, cfg)) {}
  ModelContext ctx() const { return ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s}; }
};

const std::vector<std::string> kSeqModels = {"sasrec", "gru4rec", "bert4rec", "caser"};
const std::vector<std::string> kItemFields = {"model.fields=true", "dataset.fields=[\"item:*\"]"};

// The model's item tables as read and scored, each with the id parameter it adds the fields to
// (Caser: the input table, then the output table [I + 1, 2D + 1] against out_emb and out_bias).
struct ItemTables {
  std::vector<at::Tensor> tables;                           // with the fields
  std::vector<std::function<void(const at::Tensor&)>> set;  // write a table into the id parameters
  std::vector<SideFields> sides;
};
ItemTables item_tables(RecommenderImpl& m) {
  ItemTables t;
  auto one = [&](const at::Tensor& table, torch::nn::Embedding& emb, const SideFields& side) {
    t.tables.push_back(table);
    t.set.push_back([&emb](const at::Tensor& v) { emb->weight.copy_(v); });
    t.sides.push_back(side);
  };
  if (auto* a = dynamic_cast<SASRecImpl*>(&m)) one(a->item_table(), a->item_emb, a->side);
  if (auto* g = dynamic_cast<GRU4RecImpl*>(&m)) one(g->item_table(), g->item_emb, g->side);
  if (auto* b = dynamic_cast<BERT4RecImpl*>(&m)) one(b->item_table(), b->item_emb, b->side);
  if (auto* c = dynamic_cast<CaserImpl*>(&m)) {
    one(c->input_table(), c->item_emb, c->side);
    const int64_t D2 = c->out_emb->weight.size(1);
    t.tables.push_back(c->output_table());
    t.set.push_back([c, D2](const at::Tensor& v) {
      c->out_emb->weight.copy_(v.narrow(1, 0, D2));
      c->out_bias->weight.copy_(v.narrow(1, D2, 1));
    });
    t.sides.push_back(c->out_side);
  }
  REQUIRE(!t.tables.empty());
  return t;
}

// Drops the model's field modules (the tables then are the id parameters alone).
void drop_fields(RecommenderImpl& m) {
  if (auto* a = dynamic_cast<SASRecImpl*>(&m)) a->side = nullptr;
  if (auto* g = dynamic_cast<GRU4RecImpl*>(&m)) g->side = nullptr;
  if (auto* b = dynamic_cast<BERT4RecImpl*>(&m)) b->side = nullptr;
  if (auto* c = dynamic_cast<CaserImpl*>(&m)) c->side = nullptr, c->out_side = nullptr;
}

}  // namespace

TEST_CASE("sequence models with model.fields: the item tables are the known id rows plus the item fields, read and scored",
          "[models][fields][sasrec][gru4rec][bert4rec][caser]") {
  for (const auto& name : kSeqModels) {
    INFO(name);
    SeqFields f(name, kItemFields);
    torch::manual_seed(3);
    Recommender m = make_model(name, f.ctx());
    m->eval();
    torch::NoGradGuard g;
    ItemTables t = item_tables(*m);
    const int64_t I = f.d.n_items();
    const SeenInTraining seen = seen_in_training(f.s.train, f.d.n_users(), I);
    for (auto& side : t.sides) {
      REQUIRE(side);
      REQUIRE(side->layout.user.n_fields() == 0);
      REQUIRE(side->layout.item.n_fields() == 1);
      side->table.normal_();  // not the small initial values: the fields must move the scores
      // Which items count their id row: those with training interactions.
      for (int64_t i = 0; i < I; ++i)
        CHECK(side->i_known[i].item<float>() == (seen.items[static_cast<size_t>(i)] ? 1.F : 0.F));
    }
    t = item_tables(*m);
    // By hand: row i = known(i) * id row + the item's field vectors; rows past I (padding, the
    // mask token) are the id table's.
    for (size_t k = 0; k < t.tables.size(); ++k) {
      const auto& side = t.sides[k];
      const auto E = t.tables[k];
      at::Tensor id;
      for (const auto& p : m->named_parameters()) {
        const std::string& n = p.key();
        if ((k == 0 && n == "item_emb.weight") || (k == 1 && n == "out_emb.weight")) id = p.value();
      }
      REQUIRE(id.defined());
      if (k == 1) {  // caser's output table: W with b as its last column
        at::Tensor b;
        for (const auto& p : m->named_parameters())
          if (p.key() == "out_bias.weight") b = p.value();
        id = torch::cat({id, b}, 1);
      }
      REQUIRE(E.sizes() == id.sizes());
      for (int64_t i = 0; i < I; ++i)
        CHECK(torch::allclose(E[i], side->i_known[i] * id[i] + field_sum(side->layout.item, side->table, i), 1e-5, 1e-6));
      CHECK(torch::equal(E.narrow(0, I, E.size(0) - I), id.narrow(0, I, id.size(0) - I)));
    }
    // The encoder reads the same tables that score: a copy without fields whose id parameters
    // hold the tables gives the same scores.
    Recommender plain = make_model(name, f.ctx());
    plain->eval();
    for (const auto& kv : m->named_parameters())
      if (kv.key().find("side.") == std::string::npos) plain->named_parameters()[kv.key()].copy_(kv.value());
    drop_fields(*plain);
    ItemTables pt = item_tables(*plain);
    for (size_t k = 0; k < t.tables.size(); ++k) pt.set[k](t.tables[k]);
    const int64_t L = m->history_len();
    auto seq = torch::full({2, L}, I, torch::kLong);
    seq[0].narrow(0, L - 3, 3).copy_(torch::tensor({3, 17, 5}, torch::kLong));
    seq[1].copy_(torch::arange(1, L + 1, torch::kLong));
    CHECK(torch::allclose(m->score_history(seq), plain->score_history(seq), 1e-5, 1e-5));
    const auto users = torch::tensor({0, 5, 9}, torch::kLong);
    const auto all = m->score_all(users);
    CHECK(torch::allclose(all, plain->score_all(users), 1e-5, 1e-5));
    const auto items = torch::tensor({0, 7, 11}, torch::kLong);
    CHECK(torch::allclose(m->score(users, items), all.index({torch::arange(3), items}), 1e-5, 1e-5));
    // An item whose id does not count is read and ranked by its fields alone: its id rows
    // change nothing.
    for (auto& side : t.sides) side->i_known[7] = 0.F;
    const auto before = m->score_all(users);
    for (const auto& p : m->named_parameters())
      if (p.key() == "item_emb.weight" || p.key() == "out_emb.weight" || p.key() == "out_bias.weight") p.value()[7].add_(5.0);
    CHECK(torch::equal(m->score_all(users), before));
    auto seq7 = seq.clone();
    seq7[0][L - 1] = 7;
    const auto h7 = m->score_history(seq7);
    for (const auto& p : m->named_parameters())
      if (p.key() == "item_emb.weight") p.value()[7].add_(5.0);
    CHECK(torch::equal(m->score_history(seq7), h7));
    CHECK(m->scores_cold_items());
    CHECK(m->describe() == std::vector<std::string>{"field: " + t.sides[0]->layout.schema[0]});
  }
}

TEST_CASE("sequence models with model.fields: gradients reach the field tables, the loss falls, the export scores as the model",
          "[models][fields][sasrec][gru4rec][bert4rec][caser][export]") {
  for (const auto& name : kSeqModels) {
    INFO(name);
    SeqFields f(name, kItemFields);
    torch::manual_seed(1);
    Recommender m = make_model(name, f.ctx());
    auto sampler = make_sampler("uniform", f.s.train);
    auto batcher = make_batcher(f.s, InputType::Sequence, *sampler, 64, 1, SequenceOptions{8, false});
    batcher->start_epoch(1, 0);
    Batch b;
    REQUIRE(batcher->next(b));
    m->zero_grad();
    m->loss(b).backward();
    int64_t with_grad = 0;
    for (const auto& p : m->named_parameters())
      if (p.key().find("side.table") != std::string::npos) {
        INFO(p.key());
        REQUIRE(p.value().grad().defined());
        CHECK(p.value().grad().abs().sum().item<double>() > 0.0);
        ++with_grad;
      }
    CHECK(with_grad == (name == "caser" ? 2 : 1));
    auto opt = make_optimizer("adam", m->parameters(), 0.01, 0.0, 0.0);
    torch::manual_seed(2);
    const double before = epoch_loss(*m, *batcher, nullptr, 0);
    for (uint64_t ep = 0; ep < 8; ++ep) epoch_loss(*m, *batcher, opt.get(), ep);
    torch::manual_seed(2);
    // From about log(300) (uniform over the synthetic items), which little data lets fall far.
    CHECK(epoch_loss(*m, *batcher, nullptr, 0) < 0.97 * before);
    // The export stores the tables as scored: its scores and a served history match.
    m->eval();
    TempDir t;
    auto jm = check_export_roundtrip(*m, f.cfg, f.d, f.s, torch::tensor({0, 3, 199}, torch::kLong), t.path.string());
    check_history_serving(*m, jm, f.d, 3, 5);
  }
}

TEST_CASE("sequence models: model.fields off keeps the id tables, user fields or no field at all are refused",
          "[models][fields][sasrec][gru4rec][bert4rec][caser]") {
  for (const auto& name : kSeqModels) {
    INFO(name);
    {
      SeqFields f(name, {});
      Recommender m = make_model(name, f.ctx());
      const ItemTables t = item_tables(*m);
      for (const auto& side : t.sides) CHECK_FALSE(side);
      CHECK_FALSE(m->scores_cold_items());
      CHECK(m->describe().empty());
      if (auto* a = m->as<SASRecImpl>()) CHECK(t.tables[0].is_same(a->item_emb->weight));
    }
    {
      SeqFields f(name, {"model.fields=true"});  // dataset.fields: [auto] has the synthetic users' fields
      CHECK_THROWS_WITH(make_model(name, f.ctx()), Contains(name + ": model.fields adds item fields only") && Contains("user:"));
    }
    {
      SeqFields f(name, {"model.fields=true", "dataset.fields=[]"});
      CHECK_THROWS_WITH(make_model(name, f.ctx()), Contains(name + ": model.fields"));
    }
  }
}
