// Biased MF and SVD++ (models/mf_rating): SGD steps and predictions by hand, training, scoring,
// clipping, checkpoints, export and errors.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "core/random.h"
#include "datasets/dataset.h"
#include "models/general/mf_rating.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// A hand-made rating dataset whose every row is training data (ids are indices; no id maps).
struct RatingData {
  int64_t n_users, n_items;
  Dataset data;
  Split split;
  RatingData(int64_t u, int64_t i, const std::vector<std::tuple<int32_t, int32_t, float>>& ratings)
      : n_users(u), n_items(i) {
    std::vector<int32_t> users, items;
    std::vector<float> values;
    std::vector<int64_t> rows, cols;
    for (const auto& [uu, ii, r] : ratings) {
      users.push_back(uu);
      items.push_back(ii);
      values.push_back(r);
      rows.push_back(uu);
      cols.push_back(ii);
    }
    data.name = "hand";
    data.user = users;
    data.item = items;
    data.rating = values;
    split.train = Csr::from_pairs(u, i, rows, cols);
    split.train_rows.resize(ratings.size());
    std::iota(split.train_rows.begin(), split.train_rows.end(), int64_t{0});
  }
  ModelContext ctx() const { return ModelContext{n_users, n_items, nullptr, &data, &split}; }
};

// Ratings 1..5 from a rank-2 structure plus item biases: something for SGD to learn.
std::vector<std::tuple<int32_t, int32_t, float>> low_rank_ratings(int32_t n_users, int32_t n_items, int32_t per_user) {
  Rng rng(5);
  auto uni = [&] { return 2.0 * rng.uniform01() - 1.0; };
  std::vector<double> a(static_cast<size_t>(n_users) * 2), b(static_cast<size_t>(n_items) * 3);
  for (auto& x : a) x = uni();
  for (auto& x : b) x = uni();
  std::vector<std::tuple<int32_t, int32_t, float>> out;
  std::vector<int32_t> items(static_cast<size_t>(n_items));
  std::iota(items.begin(), items.end(), 0);
  for (int32_t u = 0; u < n_users; ++u) {
    rng.shuffle(items.begin(), items.end());
    for (int32_t k = 0; k < per_user; ++k) {
      const auto i = static_cast<size_t>(items[static_cast<size_t>(k)]);
      const double v = 3.0 + 1.5 * (a[2 * u] * b[3 * i] + a[2 * u + 1] * b[3 * i + 1]) + 0.8 * b[3 * i + 2];
      out.emplace_back(u, static_cast<int32_t>(i), static_cast<float>(std::clamp(std::round(v), 1.0, 5.0)));
    }
  }
  return out;
}

at::Tensor idx(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

double at2(const at::Tensor& t, int64_t r, int64_t c) { return t[r][c].item<double>(); }

}  // namespace

TEST_CASE("biasedmf: SGD steps on one rating by hand, lr decay, users and items without ratings", "[models]") {
  const RatingData d(3, 4, {{1, 2, 4.0f}});
  auto o = BiasedMFOptions().factors(2).epochs(1).lr(0.1).reg(0.02).lr_bias(0.2).reg_bias(0.1).lr_decay(0.5)
               .init_mean(0.5).init_std(0.0).clip(false);
  // Epoch 1: mu = 4, b = 0, p = q = (0.5, 0.5): r_hat = 4 + 0.5, e = -0.5.
  const double e1 = 4.0 - (4.0 + 0.0 + 0.0 + 2 * 0.5 * 0.5);
  const double b1 = 0.0 + 0.2 * (e1 - 0.1 * 0.0);           // b_u and b_i alike
  const double f1 = 0.5 + 0.1 * (e1 * 0.5 - 0.02 * 0.5);    // p_u from the old q_i and q_i from the old p_u
  // Epoch 2 at half the step sizes (lr_decay 0.5).
  const double e2 = 4.0 - (4.0 + b1 + b1 + 2 * f1 * f1);
  const double b2 = b1 + 0.1 * (e2 - 0.1 * b1);
  const double f2 = f1 + 0.05 * (e2 * f1 - 0.02 * f1);
  {
    BiasedMF m(d.ctx(), o);
    m->fit(d.split.train);
    CHECK(m->global_mean.item<double>() == Approx(4.0));
    CHECK(m->user_bias[1].item<double>() == Approx(b1));
    CHECK(m->item_bias[2].item<double>() == Approx(b1));
    for (int64_t k = 0; k < 2; ++k) {
      CHECK(at2(m->user_factors, 1, k) == Approx(f1));
      CHECK(at2(m->item_factors, 2, k) == Approx(f1));
    }
    REQUIRE(m->train_rmse.size() == 1);
    CHECK(m->train_rmse[0] == Approx(0.5));
  }
  BiasedMF m(d.ctx(), o.epochs(2));
  m->fit(d.split.train);
  CHECK(m->user_bias[1].item<double>() == Approx(b2));
  CHECK(m->item_bias[2].item<double>() == Approx(b2));
  for (int64_t k = 0; k < 2; ++k) {
    CHECK(at2(m->user_factors, 1, k) == Approx(f2));
    CHECK(at2(m->item_factors, 2, k) == Approx(f2));
  }
  REQUIRE(m->train_rmse.size() == 2);
  CHECK(m->train_rmse[1] == Approx(std::abs(e2)));
  // Users 0, 2 and items 0, 1, 3 have no ratings: zero factors and biases, so a user without
  // ratings is predicted mu + b_i and an item without ratings mu + b_u.
  CHECK(m->user_factors[0].abs().sum().item<double>() == 0.0);
  CHECK(m->item_factors[3].abs().sum().item<double>() == 0.0);
  const auto s = m->score(idx({1, 0, 1, 0}), idx({2, 2, 3, 3}));
  CHECK(s[0].item<double>() == Approx(4.0 + b2 + b2 + 2 * f2 * f2));
  CHECK(s[1].item<double>() == Approx(4.0 + b2));
  CHECK(s[2].item<double>() == Approx(4.0 + b2));
  CHECK(s[3].item<double>() == Approx(4.0));
  CHECK(m->input_type() == InputType::None);
}

TEST_CASE("svdpp: prediction formula and implicit sums on a hand-built state", "[models]") {
  SVDpp m(ModelContext{2, 3, nullptr}, SVDppOptions().factors(2).clip(false));
  {
    torch::NoGradGuard g;
    m->global_mean.fill_(3.5);
    m->user_bias.copy_(torch::tensor({0.1f, -0.2f}));
    m->item_bias.copy_(torch::tensor({0.3f, 0.0f, -0.4f}));
    m->user_factors.copy_(torch::tensor({{1.0f, 0.0f}, {0.5f, -1.0f}}));
    m->item_factors.copy_(torch::tensor({{0.2f, 0.4f}, {-0.3f, 0.1f}, {1.0f, 1.0f}}));
    m->implicit_factors.copy_(torch::tensor({{0.4f, 0.0f}, {0.0f, 0.8f}, {1.0f, -1.0f}}));
  }
  // N(0) = {0, 2}, N(1) = {}.
  m->update_user_implicit(Csr::from_pairs(2, 3, {0, 0}, {0, 2}));
  const double r2 = std::sqrt(2.0);
  const double z0 = (0.4 + 1.0) / r2, z1 = (0.0 - 1.0) / r2;  // z_0 = (y_0 + y_2) / sqrt(2)
  CHECK(at2(m->user_implicit, 0, 0) == Approx(z0));
  CHECK(at2(m->user_implicit, 0, 1) == Approx(z1));
  CHECK(m->user_implicit[1].abs().sum().item<double>() == 0.0);
  // r_hat(u, i) = mu + b_u + b_i + <q_i, p_u + z_u>
  const double s01 = 3.5 + 0.1 + 0.0 + (-0.3 * (1.0 + z0) + 0.1 * (0.0 + z1));
  const double s00 = 3.5 + 0.1 + 0.3 + (0.2 * (1.0 + z0) + 0.4 * (0.0 + z1));
  const double s12 = 3.5 - 0.2 - 0.4 + (1.0 * 0.5 + 1.0 * -1.0);  // user 1: no implicit term
  const auto s = m->score(idx({0, 0, 1}), idx({1, 0, 2}));
  CHECK(s[0].item<double>() == Approx(s01));
  CHECK(s[1].item<double>() == Approx(s00));
  CHECK(s[2].item<double>() == Approx(s12));
  const auto all = m->score_all(idx({0, 1}));
  CHECK(at2(all, 0, 1) == Approx(s01));
  CHECK(at2(all, 0, 0) == Approx(s00));
  CHECK(at2(all, 1, 2) == Approx(s12));
}

TEST_CASE("svdpp: one SGD step by hand (y_j of every implicit item), in both visiting orders", "[models]") {
  RatingData d(2, 3, {{0, 1, 3.0f}});                            // user 1 has no ratings
  d.split.train = Csr::from_pairs(2, 3, {0, 0, 0}, {0, 1, 2});  // N(0) = {0, 1, 2}: more than the rated item
  const double z = 3 * 0.5 / std::sqrt(3.0);                    // |N|^-1/2 sum y_j, per factor
  const double e = 3.0 - (3.0 + 0.0 + 0.0 + 2 * 0.5 * (0.5 + z));
  const double b = 0.2 * e;
  const double p = 0.5 + 0.1 * (e * 0.5 - 0.02 * 0.5);
  const double q = 0.5 + 0.1 * (e * (0.5 + z) - 0.02 * 0.5);
  const double y = 0.5 + 0.05 * (e * 0.5 / std::sqrt(3.0) - 0.3 * 0.5);
  for (const std::string order : {"user", "rating"}) {
    INFO(order);
    SVDpp m(d.ctx(), SVDppOptions().factors(2).epochs(1).lr(0.1).reg(0.02).lr_bias(0.2).reg_bias(0.1)
                         .lr_implicit(0.05).reg_implicit(0.3).init_mean(0.5).init_std(0.0).clip(false).order(order));
    m->fit(d.split.train);
    CHECK(m->user_bias[0].item<double>() == Approx(b));
    CHECK(m->item_bias[1].item<double>() == Approx(b));
    for (int64_t k = 0; k < 2; ++k) {
      CHECK(at2(m->user_factors, 0, k) == Approx(p));
      CHECK(at2(m->item_factors, 1, k) == Approx(q));
      for (int64_t j = 0; j < 3; ++j) CHECK(at2(m->implicit_factors, j, k) == Approx(y));
      CHECK(at2(m->user_implicit, 0, k) == Approx(3 * y / std::sqrt(3.0)));
      // Items 0 and 2 have no ratings: zero factors (their y_j still feed z_u).
      CHECK(at2(m->item_factors, 0, k) == 0.0);
      CHECK(at2(m->item_factors, 2, k) == 0.0);
    }
    REQUIRE(m->train_rmse.size() == 1);
    CHECK(m->train_rmse[0] == Approx(std::abs(e)));
    // A user without ratings (nor implicit feedback) is predicted mu + b_i.
    CHECK(m->user_factors[1].abs().sum().item<double>() == 0.0);
    CHECK(m->user_implicit[1].abs().sum().item<double>() == 0.0);
    CHECK(m->score(idx({1}), idx({1})).item<double>() == Approx(3.0 + b));
    CHECK(m->score_all(idx({1}))[0][1].item<double>() == Approx(3.0 + b));
  }
}

TEST_CASE("svdpp: the per-user application of the y_j updates equals the per-rating updates", "[models]") {
  // One user: both orders visit the same random permutation of the ratings, so "user" (y_j
  // updates composed and applied once per user) must reproduce "rating" (every y_j at every
  // rating) up to rounding, over several epochs.
  RatingData d(1, 8, {{0, 0, 5.0f}, {0, 2, 1.0f}, {0, 3, 4.0f}, {0, 5, 2.0f}, {0, 6, 3.0f}, {0, 7, 5.0f}});
  auto o = SVDppOptions().factors(3).epochs(6).lr(0.05).reg(0.05).reg_implicit(0.5).seed(3);
  SVDpp by_user(d.ctx(), o.order("user"));
  SVDpp by_rating(d.ctx(), o.order("rating"));
  by_user->fit(d.split.train);
  by_rating->fit(d.split.train);
  const auto other = by_rating->named_buffers();
  for (const auto& b : by_user->named_buffers()) {
    INFO(b.key());
    CHECK(torch::allclose(b.value(), other[b.key()], 1e-5, 1e-6));
  }
  REQUIRE(by_user->train_rmse.size() == 6);
  for (size_t k = 0; k < 6; ++k) CHECK(by_user->train_rmse[k] == Approx(by_rating->train_rmse[k]).epsilon(1e-5));
}

TEST_CASE("biasedmf, svdpp: training RMSE falls, score and score_all agree, fresh tensors, determinism", "[models]") {
  const RatingData d(60, 50, low_rank_ratings(60, 50, 20));
  auto check = [&](RatingMFImpl& m, RatingMFImpl& again) {
    m.fit(d.split.train);
    const auto& r = m.train_rmse;
    REQUIRE(r.size() == 40);
    CHECK(r.back() < 0.6 * r.front());
    for (size_t k = 1; k < r.size(); ++k) CHECK(r[k] < r[k - 1] * 1.001);  // (near) monotone
    const auto users = idx({0, 5, 5, 59}), items = idx({0, 1, 7, 49});
    const auto all = m.score_all(users);
    REQUIRE(all.sizes() == torch::IntArrayRef({4, 50}));
    CHECK(torch::allclose(m.score(users, items), all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
    CHECK(all.min().item<double>() >= 1.0);  // clipped to the training range
    CHECK(all.max().item<double>() <= 5.0);
    all.fill_(-1);  // score_all's result is the caller's to mask
    CHECK(m.score_all(users).min().item<double>() >= 1.0);
    // The same seed gives the same model.
    again.fit(d.split.train);
    CHECK(again.train_rmse == m.train_rmse);
    CHECK(torch::equal(again.score_all(users), m.score_all(users)));
  };
  auto ob = BiasedMFOptions().factors(8).epochs(40).lr(0.01).seed(11);
  BiasedMF b1(d.ctx(), ob), b2(d.ctx(), ob);
  check(*b1, *b2);
  auto os = SVDppOptions().factors(8).epochs(40).lr(0.01).seed(11);
  SVDpp s1(d.ctx(), os), s2(d.ctx(), os);
  check(*s1, *s2);
  // Another seed, another initialisation.
  BiasedMF b3(d.ctx(), ob.seed(12));
  b3->fit(d.split.train);
  CHECK_FALSE(torch::equal(b3->user_factors, b1->user_factors));
}

TEST_CASE("biasedmf, svdpp: from their YAML on synthetic ratings, checkpoint, export and clipping", "[models]") {
  for (const std::string name : {"biasedmf", "svdpp"}) {
    DYNAMIC_SECTION(name) {
      const Config cfg = synthetic_config(name, {"model.epochs=5", "seed=7"});
      const Dataset d = load_dataset(cfg);
      REQUIRE(d.has_ratings());
      const Split split = split_dataset(d, cfg);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      auto make = [&]() -> std::shared_ptr<RatingMFImpl> {
        if (name == "biasedmf") return std::make_shared<BiasedMFImpl>(ctx);
        return std::make_shared<SVDppImpl>(ctx);
      };
      auto model = make();
      CHECK(model->name() == name);
      model->fit(split.train);
      REQUIRE(model->train_rmse.size() == 5);
      float lo = INFINITY, hi = -INFINITY;
      for (const int64_t r : split.train_rows) lo = std::min(lo, d.rating[static_cast<size_t>(r)]), hi = std::max(hi, d.rating[static_cast<size_t>(r)]);
      CHECK(model->rating_min.item<float>() == lo);
      CHECK(model->rating_max.item<float>() == hi);

      torch::NoGradGuard no_grad;
      const auto users = idx({0, 3, 3, 7}), items = idx({0, 1, 5, d.n_items() - 1});
      const auto all = model->score_all(users);
      CHECK(torch::allclose(model->score(users, items), all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
      CHECK(torch::isfinite(all).all().item<bool>());

      // Checkpoint into a freshly built model.
      TempDir t;
      check_checkpoint_roundtrip(*model, [&] { return std::shared_ptr<RecommenderImpl>(make()); }, users, t.path.string());

      // TorchScript export reproduces score and score_all; then again with clipping at work
      // (mu raised by 10: every prediction is the training maximum).
      for (const double shift : {0.0, 10.0}) {
        INFO("shift " << shift);
        model->global_mean.add_(shift);
        torch::jit::Module jm = check_export_roundtrip(*model, cfg, d, split, users, t.path.string());
        const auto jall = jm.run_method("_score_all", users).toTensor();
        if (shift > 0) {
          CHECK(torch::all(model->score_all(users) == hi).item<bool>());
          CHECK(torch::all(jall == hi).item<bool>());
        }
      }
      // clip: false leaves the predictions unclipped.
      const Config raw = synthetic_config(name, {"model.epochs=5", "model.clip=false"});
      const ModelContext raw_ctx{d.n_users(), d.n_items(), &raw, &d, &split};
      std::shared_ptr<RatingMFImpl> unclipped;
      if (name == "biasedmf") unclipped = std::make_shared<BiasedMFImpl>(raw_ctx);
      else unclipped = std::make_shared<SVDppImpl>(raw_ctx);
      unclipped->fit(split.train);
      CHECK(std::isinf(unclipped->rating_max.item<float>()));
      unclipped->global_mean.add_(10.0);
      CHECK(unclipped->score_all(users).min().item<double>() > hi);
    }
  }
}

TEST_CASE("biasedmf, svdpp: refuse to fit without ratings", "[models]") {
  const Csr train = Csr::from_pairs(3, 4, {0, 1, 2}, {1, 2, 3});
  BiasedMF b(ModelContext{3, 4, nullptr});
  CHECK_THROWS_WITH(b->fit(train), Contains("biasedmf: predicts ratings and needs the training ratings"));
  SVDpp s(ModelContext{3, 4, nullptr});
  CHECK_THROWS_WITH(s->fit(train), Contains("svdpp: predicts ratings and needs the training ratings"));
  RatingData d(3, 4, {{0, 1, 4.0f}, {1, 2, 3.0f}, {2, 3, 5.0f}});
  d.data.rating = std::vector<float>{};  // implicit-feedback data
  BiasedMF b2(d.ctx());
  CHECK_THROWS_WITH(b2->fit(d.split.train), Contains("the dataset 'hand' has none (set dataset.columns.rating"));
  SVDpp s2(d.ctx());
  CHECK_THROWS_WITH(s2->fit(d.split.train), Contains("svdpp: predicts ratings, and the dataset 'hand' has none"));
  // A training matrix of another shape.
  const RatingData ok(3, 4, {{0, 1, 4.0f}});
  BiasedMF b3(ok.ctx());
  CHECK_THROWS_WITH(b3->fit(Csr::from_pairs(2, 4, {0}, {1})), Contains("training matrix is 2 x 4, model has 3 users x 4 items"));
}

TEST_CASE("biasedmf, svdpp: options from the config, bad options name the key", "[models]") {
  {
    const Config cfg = synthetic_config("biasedmf", {"seed=7", "model.lr_bias=0.01"});
    const auto o = BiasedMFOptions::from_config(&cfg);
    CHECK(o.factors() == 100);
    CHECK(o.epochs() == 20);
    CHECK(o.lr() == 0.005);
    CHECK(o.reg() == 0.02);
    CHECK(o.lr_bias() == std::optional<double>(0.01));
    CHECK_FALSE(o.reg_bias().has_value());
    CHECK(o.init_std() == 0.1);
    CHECK(o.clip());
    CHECK(o.seed() == 7);
  }
  {
    const Config cfg = synthetic_config("svdpp");
    const auto o = SVDppOptions::from_config(&cfg);
    CHECK(o.factors() == 20);
    CHECK(o.lr() == 0.007);
    CHECK(o.reg() == 0.02);
    CHECK_FALSE(o.lr_implicit().has_value());
    CHECK(o.order() == "user");
    CHECK(o.seed() == 2020);
  }
  auto bad_b = [](const std::string& set) {
    const Config cfg = synthetic_config("biasedmf", {set});
    BiasedMFOptions::from_config(&cfg);
  };
  auto bad_s = [](const std::string& set) {
    const Config cfg = synthetic_config("svdpp", {set});
    SVDppOptions::from_config(&cfg);
  };
  CHECK_THROWS_WITH(bad_b("model.factors=0"), Contains("model.factors: must be in [1, 65536], got 0"));
  CHECK_THROWS_WITH(bad_b("model.lr=0"), Contains("model.lr: must be > 0, got 0"));
  CHECK_THROWS_WITH(bad_b("model.lr=-0.1"), Contains("model.lr: must be > 0, got -0.1"));
  CHECK_THROWS_WITH(bad_b("model.reg=-1"), Contains("model.reg: must be >= 0"));
  CHECK_THROWS_WITH(bad_b("model.lr_decay=0"), Contains("model.lr_decay: must be in (0, 1], got 0"));
  CHECK_THROWS_WITH(bad_b("model.reg_bias=-0.5"), Contains("model.reg_bias: must be >= 0, got -0.5"));
  CHECK_THROWS_WITH(bad_b("model.epochs=0"), Contains("model.epochs"));
  CHECK_THROWS_WITH(bad_s("model.order=users"), Contains("model.order"));
  CHECK_THROWS_WITH(bad_s("model.lr=0"), Contains("model.lr: must be > 0"));
  CHECK_THROWS_WITH(bad_s("model.lr_implicit=-1"), Contains("model.lr_implicit: must be >= 0"));
  // Options given directly are checked too.
  const ModelContext ctx{3, 4, nullptr};
  CHECK_THROWS_WITH(BiasedMF(ctx, BiasedMFOptions().factors(0)), Contains("biasedmf: model.factors must be >= 1, got 0"));
  CHECK_THROWS_WITH(BiasedMF(ctx, BiasedMFOptions().lr(0)), Contains("biasedmf: model.lr must be > 0, got 0"));
  CHECK_THROWS_WITH(SVDpp(ctx, SVDppOptions().lr(-1)), Contains("svdpp: model.lr must be > 0, got -1"));
  CHECK_THROWS_WITH(SVDpp(ctx, SVDppOptions().reg_implicit(-1)), Contains("svdpp: model.reg_implicit must be >= 0"));
  CHECK_THROWS_WITH(SVDpp(ctx, SVDppOptions().order("x")), Contains("svdpp: model.order must be \"user\" or \"rating\""));
  // Divergence is reported, not returned as NaN scores.
  const RatingData d(20, 20, low_rank_ratings(20, 20, 10));
  BiasedMF wild(d.ctx(), BiasedMFOptions().lr(50).epochs(20));
  CHECK_THROWS_WITH(wild->fit(d.split.train), Contains("biasedmf: SGD diverged in epoch"));
}
