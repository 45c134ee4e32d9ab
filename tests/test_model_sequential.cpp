// sasrec and gru4rec (models/sequential/): causality, padding, the losses against hand-computed
// values, the loss falling in both batch layouts, the history each evaluation may see (no
// leakage of valid or test targets), bad options and splits, and TorchScript export of
// non-default shapes. The registry-wide contract (tests/test_models.cpp) covers the defaults.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/registry.h"
#include "models/sequential/attention.h"
#include "models/sequential/gru4rec.h"
#include "models/sequential/history.h"
#include "models/dropout.h"
#include "models/sequential/sasrec.h"
#include "trainers/evaluator.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// Synthetic data (200 users x 300 items, 20 interactions each, file order = time order) on the
// leave-one-out split, with small models.
struct SeqSetup {
  Config cfg;
  Dataset d;
  Split split;
  explicit SeqSetup(const std::string& model, std::vector<std::string> sets = {})
      : cfg([&] {
          std::vector<std::string> all = {"dataset.split.method=leave_last", "model.max_len=8", "model.dropout=0"};
          if (model == "sasrec") {
            all.insert(all.end(), {"model.hidden_size=16", "model.inner_size=32", "model.attn_dropout=0"});
          } else {
            all.insert(all.end(), {"model.embedding_size=16", "model.hidden_size=24"});
          }
          all.insert(all.end(), sets.begin(), sets.end());
          return synthetic_config(model, all);
        }()),
        d(load_dataset(cfg)),
        split(split_dataset(d, cfg)) {}
  ModelContext ctx() const { return ModelContext{d.n_users(), d.n_items(), &cfg, &d, &split}; }
};

// encode() of either model, in eval mode.
using Encode = std::function<at::Tensor(const at::Tensor&)>;

struct Built {
  Recommender model;
  Encode encode;
  at::Tensor item_weight;  // [I + 1, D]
};

Built build(const std::string& name, const ModelContext& ctx) {
  torch::manual_seed(3);
  Recommender m = make_model(name, ctx);
  m->eval();
  if (name == "sasrec") {
    auto* s = m->as<SASRecImpl>();
    return {m, [s](const at::Tensor& x) { return s->encode(x); }, s->item_emb->weight};
  }
  auto* g = m->as<GRU4RecImpl>();
  return {m, [g](const at::Tensor& x) { return g->encode(x); }, g->item_emb->weight};
}

at::Tensor seq_of(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong).unsqueeze(0); }

}  // namespace

TEST_CASE("sequential: a position's output ignores later items and padding", "[sasrec][gru4rec]") {
  for (const std::string name : {"sasrec", "gru4rec"}) {
    DYNAMIC_SECTION(name) {
      SeqSetup s(name);
      Built b = build(name, s.ctx());
      torch::NoGradGuard no_grad;
      const int64_t P = s.d.n_items();  // padding index
      // Causal: changing the last two items leaves the outputs after the first four unchanged.
      const auto h1 = b.encode(seq_of({P, P, 1, 2, 3, 4, 5, 6}));
      const auto h2 = b.encode(seq_of({P, P, 1, 2, 3, 4, 9, 8}));
      CHECK(torch::allclose(h1.narrow(1, 2, 4), h2.narrow(1, 2, 4), 1e-5, 1e-6));
      CHECK_FALSE(torch::allclose(h1.select(1, 7), h2.select(1, 7), 1e-3, 1e-4));
      // Padding: the same items with no padding (a 6-wide window), with more padding (the
      // first items cut, compared from there on), and in a batch beside a longer row.
      const auto h_nopad = b.encode(seq_of({1, 2, 3, 4, 5, 6}));
      CHECK(torch::allclose(h1.narrow(1, 2, 6), h_nopad, 1e-5, 1e-6));
      const auto batch = torch::cat({seq_of({P, P, 1, 2, 3, 4, 5, 6}), seq_of({7, 8, 9, 10, 11, 12, 13, 14})});
      CHECK(torch::allclose(b.encode(batch).select(0, 0).narrow(0, 2, 6), h_nopad.squeeze(0), 1e-5, 1e-6));
      // Whatever the padding row holds (it is zero and never trained), real positions do not read it.
      b.item_weight[P].normal_();
      CHECK(torch::allclose(b.encode(seq_of({P, P, 1, 2, 3, 4, 5, 6})).narrow(1, 2, 6), h_nopad, 1e-5, 1e-6));
    }
  }
}

TEST_CASE("sequential: sasrec's last-position encoder equals the full encoder's last column, gradients too", "[sasrec]") {
  SeqSetup s("sasrec", {"model.heads=2"});
  Built b = build("sasrec", s.ctx());
  auto* m = b.model->as<SASRecImpl>();
  const int64_t P = s.d.n_items();
  std::vector<int64_t> rows = {P, P, P, P, P, P, 1, 2, 3, 4};  // 4 items, left-padded
  for (int64_t i = 1; i <= 10; ++i) rows.push_back(i);            // 10 items, the last 8 read
  for (int64_t i = 0; i < 9; ++i) rows.push_back(P);
  rows.push_back(7);                                               // one item
  for (int64_t i = 0; i < 10; ++i) rows.push_back(P);              // none
  for (int64_t i = 20; i < 30; ++i) rows.push_back(i);
  const auto seq = torch::tensor(rows, torch::kLong).view({5, 10});
  {
    torch::NoGradGuard no_grad;
    const auto full = m->encode(seq).select(1, -1), last = m->encode_last(seq);  // [5, D]
    REQUIRE(last.sizes() == full.sizes());
    CHECK(torch::allclose(last, full, 1e-5, 1e-6));
  }
  // In training (dropout 0 here): the same loss and the same gradient of every parameter.
  m->train();
  const auto W = m->item_emb->weight.narrow(0, 0, P);
  const auto tgt = torch::tensor({3, 4, 5, 6, 7}, torch::kLong);
  auto grads = [&](bool use_last) {
    m->zero_grad();
    const auto h = use_last ? m->encode_last(seq) : m->encode(seq).select(1, -1);
    torch::nn::functional::cross_entropy(torch::matmul(h, W.t()), tgt).backward();
    std::vector<at::Tensor> g;
    for (const auto& p : m->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return g;
  };
  const auto g_full = grads(false), g_last = grads(true);
  REQUIRE(g_full.size() == g_last.size());
  for (size_t i = 0; i < g_full.size(); ++i) CHECK(torch::allclose(g_last[i], g_full[i], 1e-4, 1e-7));
  CHECK(g_full[0].abs().sum().item<double>() > 0);
}

TEST_CASE("sequential: ce and bce losses equal hand-computed values", "[sasrec][gru4rec]") {
  for (const std::string name : {"sasrec", "gru4rec"}) {
    for (const std::string loss : {"ce", "bce"}) {
      DYNAMIC_SECTION(name << " " << loss) {
        SeqSetup s(name, {"model.loss=" + loss});
        Built b = build(name, s.ctx());
        torch::NoGradGuard no_grad;
        const int64_t P = s.d.n_items(), I = s.d.n_items();
        // augment none: targets at every real position (P where none); one negative each.
        Batch all;
        all.users = torch::tensor({0, 1}, torch::kLong);
        all.seq = torch::tensor(std::vector<int64_t>{P, P, P, P, P, 5, 6, 7, P, P, 1, 2, 3, 4, 5, 6}, torch::kLong).view({2, 8});
        all.items = torch::tensor(std::vector<int64_t>{P, P, P, P, P, 6, 7, 8, P, P, 2, 3, 4, 5, 6, 9}, torch::kLong).view({2, 8});
        all.neg_items = torch::tensor(std::vector<int64_t>{P, P, P, P, P, 40, 41, 42, P, P, 50, 51, 52, 53, 54, 55}, torch::kLong).view({2, 8});
        // augment prefix: the window's last output predicts one item.
        Batch pre{all.users, torch::tensor({8, 9}, torch::kLong), torch::tensor({42, 55}, torch::kLong), {}, all.seq};
        const auto h = b.encode(all.seq).to(torch::kDouble);  // [2, 8, D]
        const auto W = b.item_weight.to(torch::kDouble);
        auto score = [&](int64_t r, int64_t j, int64_t i) { return (h[r][j] * W[i]).sum().item<double>(); };
        auto term = [&](int64_t r, int64_t j, int64_t tgt, int64_t neg) {
          return hand_item_term(loss, [&](int64_t i) { return score(r, j, i); }, I, tgt, neg);
        };
        int64_t n = 0;
        const double hand = hand_sequence_loss(loss, score, all.items, all.neg_items, P, I, &n);
        REQUIRE(n == 9);
        CHECK(b.model->loss(all).item<double>() == Approx(hand).epsilon(1e-5));
        const double pre_hand = (term(0, 7, 8, 42) + term(1, 7, 9, 55)) / 2;
        CHECK(b.model->loss(pre).item<double>() == Approx(pre_hand).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("sequential: sampled softmax and bce with drawn negatives equal hand-computed values", "[sasrec][gru4rec][bert4rec][caser]") {
  // item_loss directly, as every sequential model calls it: 6 targets over 5 items with 20 shared
  // negatives (so some negatives equal a row's own target and must be masked), with and without
  // an output bias (BERT4Rec has one).
  torch::manual_seed(5);
  const int64_t N = 6, I = 5, D = 4, K = 20;
  const auto hs = torch::randn({N, D}, torch::kDouble), W = torch::randn({I + 2, D}, torch::kDouble);
  const auto bias = torch::randn({I}, torch::kDouble);
  const auto tgt = torch::tensor({0, 1, 2, 3, 4, 2}, torch::kLong);
  for (const bool with_bias : {false, true}) {
    DYNAMIC_SECTION("bias " << with_bias) {
      const at::Tensor b = with_bias ? bias : at::Tensor();
      auto s = [&](int64_t r, int64_t i) { return (hs[r] * W[i]).sum().item<double>() + (with_bias ? bias[i].item<double>() : 0.0); };
      // sampled: the negatives are the first draw of the generator after the seed.
      torch::manual_seed(42);
      const double got = item_loss(hs, tgt, at::Tensor(), W, b, I, "sampled", K).item<double>();
      torch::manual_seed(42);
      const auto negs = torch::randint(I, {K}, torch::kLong);
      double total = 0;
      int64_t collisions = 0;
      for (int64_t r = 0; r < N; ++r) {
        const int64_t t = tgt[r].item<int64_t>();
        std::vector<double> z = {s(r, t)};
        for (int64_t k = 0; k < K; ++k) {
          const int64_t j = negs[k].item<int64_t>();
          if (j == t) { ++collisions; continue; }  // masked: not a negative
          z.push_back(s(r, j));
        }
        double se = 0;
        for (double v : z) se += std::exp(v);
        total += std::log(se) - z[0];
      }
      REQUIRE(collisions > 0);
      CHECK(got == Approx(total / N).epsilon(1e-9));
      // bce without the batch's negatives: one uniform draw per target.
      torch::manual_seed(43);
      const double got_bce = item_loss(hs, tgt, at::Tensor(), W, b, I, "bce", K).item<double>();
      torch::manual_seed(43);
      const auto neg1 = torch::randint(I, {N}, torch::kLong);
      double bce = 0;
      for (int64_t r = 0; r < N; ++r)
        bce += std::log1p(std::exp(-s(r, tgt[r].item<int64_t>()))) + std::log1p(std::exp(s(r, neg1[r].item<int64_t>())));
      CHECK(got_bce == Approx(bce / N).epsilon(1e-9));
      // ce: over the I items only (rows past I, padding and mask, are never candidates).
      double ce = 0;
      for (int64_t r = 0; r < N; ++r) {
        double se = 0;
        for (int64_t i = 0; i < I; ++i) se += std::exp(s(r, i));
        ce += std::log(se) - s(r, tgt[r].item<int64_t>());
      }
      CHECK(item_loss(hs, tgt, at::Tensor(), W, b, I, "ce", K).item<double>() == Approx(ce / N).epsilon(1e-9));
    }
  }
}

TEST_CASE("sequential: the loss falls in both batch layouts and with every loss", "[sasrec][gru4rec]") {
  // next_item_chain(): the next item follows from the last one, which a sequence model learns quickly.
  for (const std::string name : {"sasrec", "gru4rec"}) {
    for (const bool prefix : {false, true}) {
      for (const std::string loss : {"ce", "sampled", "bce"}) {
        DYNAMIC_SECTION(name << " augment " << (prefix ? "prefix" : "none") << " loss " << loss) {
          SeqSetup s(name, {"model.loss=" + loss, "model.neg_samples=10"});
          const LossChange c = sequence_loss_change(name, s.cfg, prefix, 0.01, 10);
          INFO(c.before << " -> " << c.after);
          CHECK(c.after < 0.5 * c.before);
        }
      }
    }
  }
}

namespace {
// Scores 1 for the most recent item of the user's history in its scope, 0 elsewhere: a model
// that ranks the next item perfectly whenever its history contains that item as its last one.
// `fixed` pins the scope (ignoring the evaluator), the control that shows the test can fail.
class LastItemOracle : public RecommenderImpl {
 public:
  LastItemOracle(const ModelContext& ctx, std::optional<HistoryScope> fixed)
      : RecommenderImpl("oracle", ctx), hist_(ctx, 4, "oracle"), fixed_(fixed) {
    if (fixed) scope_ = *fixed;
  }
  InputType input_type() const override { return InputType::None; }
  void fit(const Csr&) override {}
  void set_history_scope(HistoryScope s) override {
    seen.push_back(s);
    if (!fixed_) scope_ = s;
  }
  at::Tensor score_all(const at::Tensor& users) override {
    const auto last = hist_.windows(users, scope_, torch::kCPU).select(1, -1);  // [B]
    auto out = torch::zeros({users.size(0), n_items_ + 1});
    out.scatter_(1, last.unsqueeze(1), 1.0);
    return out.narrow(1, 0, n_items_).clone();
  }
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override {
    return score_all(users).gather(1, items.unsqueeze(1)).squeeze(1);
  }
  std::vector<HistoryScope> seen;

 private:
  UserHistories hist_;
  std::optional<HistoryScope> fixed_;
  HistoryScope scope_ = HistoryScope::All;
};
}  // namespace

TEST_CASE("sequential: evaluation reads the history without the targets (no leakage)", "[sasrec][gru4rec][leakage]") {
  SeqSetup s("sasrec");
  EvalOptions eo;
  eo.ks = {1};
  eo.metrics = {"hr"};
  // The evaluator's scopes: validation from train only, test from train + valid, All after.
  auto oracle = std::make_shared<LastItemOracle>(s.ctx(), std::nullopt);
  const double valid_hr = evaluate(*oracle, s.split, Target::Valid, eo, torch::kCPU, &s.d).get("hr@1");
  auto names = [&] {
    std::vector<std::string> v;
    for (HistoryScope h : oracle->seen) v.push_back(to_string(h));
    return v;
  };
  REQUIRE(names() == std::vector<std::string>{"train", "all"});
  const double test_hr = evaluate(*oracle, s.split, Target::Test, eo, torch::kCPU, &s.d).get("hr@1");
  CHECK(names() == std::vector<std::string>{"train", "all", "train+valid", "all"});
  // The oracle would rank the target first if its history ended with it; it must not (the last
  // history item is a masked training/validation item, so the target ties with ~280 others).
  INFO("hr@1 valid " << valid_hr << ", test " << test_hr);
  CHECK(valid_hr < 0.05);
  CHECK(test_hr < 0.05);
  // Controls: the same oracle pinned to the scope one step ahead finds every target.
  auto peek_valid = std::make_shared<LastItemOracle>(s.ctx(), HistoryScope::TrainValid);
  CHECK(evaluate(*peek_valid, s.split, Target::Valid, eo, torch::kCPU, &s.d).get("hr@1") == Approx(1.0));
  auto peek_test = std::make_shared<LastItemOracle>(s.ctx(), HistoryScope::All);
  CHECK(evaluate(*peek_test, s.split, Target::Test, eo, torch::kCPU, &s.d).get("hr@1") == Approx(1.0));

  // The models' own windows: at validation the training sequence (no valid item); at test the
  // training sequence plus the valid item last (no test item); outside evaluation all of it.
  for (const std::string name : {"sasrec", "gru4rec"}) {
    const SeqSetup sm(name);  // the same data and split, the model's own config
    Recommender m = make_model(name, sm.ctx());
    auto window = [&](HistoryScope sc, int64_t u) {
      m->set_history_scope(sc);
      const auto w = name == "sasrec" ? m->as<SASRecImpl>()->history(torch::tensor({u}, torch::kLong))
                                      : m->as<GRU4RecImpl>()->history(torch::tensor({u}, torch::kLong));
      return std::vector<int64_t>(w.data_ptr<int64_t>(), w.data_ptr<int64_t>() + w.numel());
    };
    for (int64_t u : {0, 5, 199}) {
      std::vector<int64_t> train(s.split.train_seq.begin(u), s.split.train_seq.begin(u) + s.split.train_seq.size(u));
      REQUIRE(s.split.valid.row_size(u) == 1);
      REQUIRE(s.split.test.row_size(u) == 1);
      const int64_t v = *s.split.valid.row_begin(u), t = *s.split.test.row_begin(u);
      auto expect = [&](std::vector<int64_t> seq) {
        std::vector<int64_t> out(8, s.d.n_items());
        const size_t n = std::min<size_t>(8, seq.size());
        std::copy(seq.end() - static_cast<std::ptrdiff_t>(n), seq.end(), out.end() - static_cast<std::ptrdiff_t>(n));
        return out;
      };
      CHECK(window(HistoryScope::Train, u) == expect(train));
      train.push_back(v);
      CHECK(window(HistoryScope::TrainValid, u) == expect(train));
      train.push_back(t);
      CHECK(window(HistoryScope::All, u) == expect(train));
    }
  }
}

TEST_CASE("sequential: bad options and splits are refused with the key and the value", "[sasrec][gru4rec]") {
  {
    const Config cfg = synthetic_config("sasrec");  // the default random split
    const Dataset d = load_dataset(cfg);
    const Split split = split_dataset(d, cfg);
    for (const std::string name : {"sasrec", "gru4rec"}) {
      const Config c = synthetic_config(name);
      CHECK_THROWS_WITH(make_model(name, ModelContext{d.n_users(), d.n_items(), &c, &d, &split}),
                        Contains("dataset.split.method") && Contains("time-ordered split") && Contains("random"));
    }
  }
  SeqSetup ok("sasrec");
  auto refuses = [&](const std::string& name, const std::string& set, const std::string& msg) {
    const Config c = synthetic_config(name, {"dataset.split.method=leave_last", set});
    INFO(name << " " << set);
    CHECK_THROWS_WITH(make_model(name, ModelContext{ok.d.n_users(), ok.d.n_items(), &c, &ok.d, &ok.split}), Contains(msg));
  };
  refuses("sasrec", "model.heads=3", "model.heads");
  refuses("sasrec", "model.heads=3", "must divide model.hidden_size (64), got 3");
  refuses("sasrec", "model.max_len=0", "model.max_len");
  refuses("sasrec", "model.dropout=1.5", "model.dropout");
  refuses("sasrec", "model.loss=bpr", "model.loss");
  refuses("gru4rec", "model.max_len=-1", "model.max_len");
  refuses("gru4rec", "model.hidden_size=0", "model.hidden_size");
  // Options built in code: the same rules.
  CHECK_THROWS_WITH(SASRec(ok.ctx(), SASRecOptions().hidden_size(10).heads(4)), Contains("model.heads must divide model.hidden_size (10), got 4"));
  CHECK_THROWS_WITH(GRU4Rec(ok.ctx(), GRU4RecOptions().max_len(0)), Contains("model.max_len must be >= 1, got 0"));
  // No data in the context: a clear refusal rather than empty histories.
  CHECK_THROWS_WITH(SASRec(ModelContext{3, 4, nullptr}, SASRecOptions()), Contains("reads each user's history"));
}

TEST_CASE("sequential: TorchScript export of other shapes matches the C++ scores", "[sasrec][gru4rec][export]") {
  for (const auto& [name, sets] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"sasrec", {"model.layers=1", "model.heads=4", "model.max_len=5"}},
           {"sasrec", {"model.layers=3", "model.heads=1"}},
           {"gru4rec", {"model.layers=2", "model.max_len=12"}}}) {
    DYNAMIC_SECTION(name << " " << sets[0] << " " << sets[1]) {
      SeqSetup s(name, sets);
      Built b = build(name, s.ctx());
      TempDir t;
      const auto users = torch::tensor({0, 3, 3, 7, 199}, torch::kLong);
      check_export_roundtrip(*b.model, s.cfg, s.d, s.split, users, t.path.string());
    }
  }
}

TEST_CASE("sequential: trains through the Trainer with its YAML's train.sequence keys, best.pt restores", "[sasrec][gru4rec][caser][bert4rec][trainer]") {
  for (const std::string name : {"sasrec", "gru4rec", "caser", "bert4rec"}) {
    DYNAMIC_SECTION(name) {
      const Config cfg = synthetic_config(name, {"dataset.split.method=leave_last", "train.epochs=3", "model.max_len=10",
                                                 "train.sequence.max_len=12"});
      // The model's YAML asks for all-positions batches (one row per user).
      CHECK(cfg.get_string("train.sequence.augment") == "none");
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      torch::manual_seed(1);
      Recommender model = make_model(name, ctx);
      TempDir t;
      Logger log{true};
      Trainer trainer(model, split, TrainOptions::from_config(cfg), EvalOptions::from_config(cfg), torch::kCPU, t.file("run"),
                      log, &d);
      REQUIRE(trainer.fit());
      REQUIRE(trainer.history().size() == 3);
      for (const auto& h : trainer.history()) {
        CHECK(std::isfinite(h.loss));
        CHECK(std::isfinite(h.valid));
      }
      CHECK(trainer.history().back().loss < trainer.history().front().loss);
      trainer.restore_best();
      torch::NoGradGuard no_grad;
      model->eval();
      const auto users = torch::arange(d.n_users(), torch::kLong);
      const auto all = model->score_all(users);
      torch::manual_seed(99);
      Recommender fresh = make_model(name, ctx);
      load_model_checkpoint(t.file("run/best.pt"), *fresh, name, torch::kCPU);
      fresh->eval();
      CHECK(torch::equal(fresh->score_all(users), all));
      const EvalOptions eo = EvalOptions::from_config(cfg);
      // Evaluation leaves the model in scope All: the same scores as before it.
      const double ndcg = evaluate(*model, split, Target::Test, eo, torch::kCPU, &d).get("ndcg@10");
      CHECK(std::isfinite(ndcg));
      CHECK(torch::equal(model->score_all(users), all));
    }
  }
}

TEST_CASE("sequential: the written-out self-attention equals LibTorch's MultiheadAttention (causal mask, padding keys)",
          "[sasrec][bert4rec]") {
  torch::manual_seed(3);
  const int64_t B = 5, L = 7, D = 12;
  for (const int64_t H : {1, 2, 3}) {
    INFO("heads " << H);
    torch::nn::MultiheadAttention attn(torch::nn::MultiheadAttentionOptions(D, H).dropout(0.3));
    attn->eval();
    {
      torch::NoGradGuard no_grad;
      attn->in_proj_bias.normal_(0.0, 0.1);  // LibTorch starts it at zero
      attn->out_proj->bias.normal_(0.0, 0.1);
    }
    const auto x = torch::randn({B, L, D});
    const auto causal = torch::full({L, L}, -std::numeric_limits<float>::infinity()).triu(1);
    auto pad = torch::zeros({B, L}, torch::kBool);
    pad.index_put_({torch::indexing::Slice(), torch::indexing::Slice(L - 2, L)}, true);  // the last 2 keys of every row
    pad[0].fill_(false);
    const auto xt = x.transpose(0, 1);  // [L, B, D], LibTorch 1.13's layout
    const auto ref_causal = std::get<0>(attn->forward(xt, xt, xt, at::Tensor(), false, causal)).transpose(0, 1);
    const auto ref_pad = std::get<0>(attn->forward(xt, xt, xt, pad, false)).transpose(0, 1);
    CHECK(torch::allclose(rzoo::self_attention(attn, x, causal, at::Tensor(), false), ref_causal, 1e-5, 1e-6));
    CHECK(torch::allclose(rzoo::self_attention(attn, x, at::Tensor(), pad, false), ref_pad, 1e-5, 1e-6));
    // Training: the attention weights' dropout changes the output, reproducibly under a seed.
    torch::manual_seed(11);
    const auto d1 = rzoo::self_attention(attn, x, causal, at::Tensor(), true);
    torch::manual_seed(11);
    const auto d2 = rzoo::self_attention(attn, x, causal, at::Tensor(), true);
    CHECK(torch::equal(d1, d2));
    CHECK(!torch::allclose(d1, ref_causal, 1e-3, 1e-3));
  }
}

TEST_CASE("sequential: the fused causal attention equals the written-out one, dropout masks and gradients included",
          "[sasrec]") {
  torch::manual_seed(5);
  const int64_t B = 4;
  // Head widths 16, 32 and 64 (compiled with the width fixed), 8 and 5 (at run time).
  for (const auto& [D, H] : std::vector<std::pair<int64_t, int64_t>>{{16, 1}, {64, 2}, {64, 1}, {16, 2}, {15, 3}}) {
    for (const int64_t L : {1, 7, 50}) {
      for (const bool training : {false, true}) {
        INFO("hidden " << D << ", heads " << H << ", L " << L << ", training " << training);
        torch::nn::MultiheadAttention attn(torch::nn::MultiheadAttentionOptions(D, H).dropout(0.3));
        {
          torch::NoGradGuard no_grad;
          attn->in_proj_bias.normal_(0.0, 0.1);
          attn->out_proj->bias.normal_(0.0, 0.1);
        }
        const auto causal = torch::full({L, L}, -std::numeric_limits<float>::infinity()).triu(1);
        const auto x0 = torch::randn({B, L, D});
        const auto gout = torch::randn({B, L, D});
        auto run = [&](bool fused) {
          attn->zero_grad();
          const auto x = x0.clone().requires_grad_(true);
          torch::manual_seed(17);
          const auto y = fused ? rzoo::causal_self_attention(attn, x, causal, training)
                               : rzoo::self_attention(attn, x, causal, at::Tensor(), training);
          (y * gout).sum().backward();
          std::vector<at::Tensor> out = {y.detach(), x.grad().clone()};
          for (const auto& p : attn->parameters()) out.push_back(p.grad().clone());
          // The generator's state afterwards: both paths draw the same number of seeds.
          out.push_back(torch::randint(1 << 30, {1}, torch::kLong));
          return out;
        };
        const auto ref = run(false), got = run(true);
        REQUIRE(ref.size() == got.size());
        for (size_t i = 0; i + 1 < ref.size(); ++i) {
          INFO("tensor " << i);
          CHECK(torch::allclose(got[i], ref[i], 1e-4, 1e-5));
        }
        CHECK(torch::equal(got.back(), ref.back()));
      }
    }
  }
}

TEST_CASE("sequential: the one-query attention equals a written-out reference, dropout mask and gradients included",
          "[sasrec]") {
  torch::manual_seed(6);
  const int64_t B = 5, L = 9;
  for (const auto& [D, H] : std::vector<std::pair<int64_t, int64_t>>{{16, 2}, {64, 2}, {15, 3}}) {
    for (const bool training : {false, true}) {
      INFO("hidden " << D << ", heads " << H << ", training " << training);
      const int64_t dh = D / H;
      const double p = 0.3;
      torch::nn::MultiheadAttention attn(torch::nn::MultiheadAttentionOptions(D, H).dropout(p));
      {
        torch::NoGradGuard no_grad;
        attn->in_proj_bias.normal_(0.0, 0.1);
        attn->out_proj->bias.normal_(0.0, 0.1);
      }
      const auto x0 = torch::randn({B, L, D}), xq0 = torch::randn({B, D}), gout = torch::randn({B, D});
      const auto idx = torch::tensor({0, 3, 8, 8, 5}, torch::kLong);  // the query's position per row
      auto run = [&](bool fused) {
        attn->zero_grad();
        const auto x = x0.clone().requires_grad_(true), xq = xq0.clone().requires_grad_(true);
        torch::manual_seed(23);
        at::Tensor y;
        if (fused) {
          y = rzoo::last_query_attention(attn, x, xq, idx, training);
        } else {
          const auto& W = attn->in_proj_weight;
          const auto& bias = attn->in_proj_bias;
          const auto k = torch::linear(x, W.narrow(0, D, D), bias.narrow(0, D, D)).view({B, L, H, dh});
          const auto v = torch::linear(x, W.narrow(0, 2 * D, D), bias.narrow(0, 2 * D, D)).view({B, L, H, dh});
          const auto q = torch::linear(xq, W.narrow(0, 0, D), bias.narrow(0, 0, D)).view({B, 1, H, dh});
          auto s = ((q * k).sum(-1) * std::pow(static_cast<double>(dh), -0.5)).permute({0, 2, 1});  // [B, H, L]
          const auto later = torch::arange(L).unsqueeze(0) > idx.unsqueeze(1);
          s = s.masked_fill(later.unsqueeze(1), -std::numeric_limits<float>::infinity());
          auto w = torch::softmax(s, -1);
          if (training) {
            // The mask fast_dropout would draw for [B, H, L] weights (element (b, h, j) at (b H + h) L + j).
            auto m = torch::empty({B, H, L});
            rzoo::dropout_mask(m.data_ptr<float>(), m.numel(), p, rzoo::dropout_seed());
            w = w * m;
          }
          y = attn->out_proj((w.permute({0, 2, 1}).unsqueeze(3) * v).sum(1).reshape({B, D}));
        }
        (y * gout).sum().backward();
        std::vector<at::Tensor> out = {y.detach(), x.grad().clone(), xq.grad().clone()};
        for (const auto& prm : attn->parameters()) out.push_back(prm.grad().clone());
        return out;
      };
      const auto ref = run(false), got = run(true);
      REQUIRE(ref.size() == got.size());
      for (size_t i = 0; i < ref.size(); ++i) {
        INFO("tensor " << i);
        CHECK(torch::allclose(got[i], ref[i], 1e-4, 1e-5));
      }
      // Keys after the query get no gradient: row 0 reads only position 0.
      CHECK(got[1][0].narrow(0, 1, L - 1).abs().sum().item<double>() == 0.0);
    }
  }
}
