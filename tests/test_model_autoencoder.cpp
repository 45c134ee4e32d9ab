// mlp, multdae, multvae (models/general/autoencoder.h): the multi-hot input built from the history
// buffers, the maths on tiny hand-computed examples (forward, BCE, multinomial likelihood, KL and
// the annealing schedule), user side features, bad options, and the model contract (the loss
// falls on the synthetic data, score vs score_all, checkpoint and TorchScript round trips).
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/general/autoencoder.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // [out][in], as a Linear's weight

using Example = TinyExample;

// 4 users x 5 items: u0 {0, 2}, u1 {1, 3, 4}, u2 {} (no training items), u3 {4}.
Example example_a() { return make_tiny_example({0, 0, 1, 1, 1, 3}, {2, 0, 4, 1, 3, 4}, 4, 5); }

// 3 users x 3 items: u0 {0, 2}, u1 {1}, u2 {0, 1, 2}.
Example example_b() { return make_tiny_example({0, 0, 1, 2, 2, 2}, {0, 2, 1, 0, 1, 2}, 3, 3); }
const Mat kHistB = {{1, 0, 1}, {0, 1, 0}, {1, 1, 1}};

at::Tensor longs(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

void set_layer(torch::nn::Linear& l, const Mat& w, const Vec& b) {
  torch::NoGradGuard g;
  REQUIRE(l->weight.size(0) == static_cast<int64_t>(w.size()));
  for (size_t r = 0; r < w.size(); ++r) {
    REQUIRE(l->weight.size(1) == static_cast<int64_t>(w[r].size()));
    l->weight[static_cast<int64_t>(r)].copy_(torch::tensor(w[r], torch::kDouble).to(torch::kFloat));
  }
  l->bias.copy_(torch::tensor(b, torch::kDouble).to(torch::kFloat));
}

// W x + b, then `act` (identity when empty).
Vec affine(const Mat& w, const Vec& b, const Vec& x, const std::function<double(double)>& act = {}) {
  Vec y(w.size());
  for (size_t r = 0; r < w.size(); ++r) {
    double s = b[r];
    for (size_t c = 0; c < x.size(); ++c) s += w[r][c] * x[c];
    y[r] = act ? act(s) : s;
  }
  return y;
}
double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double th(double v) { return std::tanh(v); }
Vec l2n(const Vec& x) {
  double s = 0;
  for (double v : x) s += v * v;
  Vec y = x;
  for (double& v : y) v /= std::max(std::sqrt(s), 1e-12);
  return y;
}
// -sum_i log_softmax(z)_i x_i
double mult_nll(const Vec& z, const Vec& x) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  double se = 0;
  for (double v : z) se += std::exp(v - m);
  const double lse = m + std::log(se);
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) s -= (z[i] - lse) * x[i];
  return s;
}

void check_rows(const at::Tensor& got, const Mat& want, double tol = 1e-5) {
  REQUIRE(got.dim() == 2);
  REQUIRE(got.size(0) == static_cast<int64_t>(want.size()));
  const auto g = got.to(torch::kDouble).contiguous();
  for (size_t r = 0; r < want.size(); ++r) {
    REQUIRE(g.size(1) == static_cast<int64_t>(want[r].size()));
    for (size_t c = 0; c < want[r].size(); ++c) {
      INFO("row " << r << " col " << c);
      CHECK(g[static_cast<int64_t>(r)][static_cast<int64_t>(c)].item<double>() == Approx(want[r][c]).epsilon(1e-5).margin(tol));
    }
  }
}

Batch users_batch(std::vector<int64_t> u) { Batch b; b.users = longs(std::move(u)); return b; }

// The registry contract (tests/test_models.cpp) for a model built by `make`: the loss is finite
// and falls over a few epochs of user batches, score agrees with score_all, and the checkpoint
// and TorchScript round trips give the same scores.
void check_contract(const std::string& name, const std::function<std::shared_ptr<AutoencoderBaseImpl>(const ModelContext&)>& make,
                    int64_t batch_users = 256, double lr = 0.01, uint64_t epochs = 5) {
  const Config cfg = synthetic_config(name);
  CHECK(cfg.get_string("model.name") == name);
  const Dataset d = load_dataset(cfg);
  const Split split = split_dataset(d, cfg);
  torch::manual_seed(1);
  const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
  auto model = make(ctx);
  CHECK(model->name() == name);
  REQUIRE(model->input_type() == InputType::Users);

  model->before_training();
  auto sampler = make_sampler("uniform", split.train);
  auto batcher_ptr = make_batcher(split, model->input_type(), *sampler, batch_users, 1);
  BatchSource& batcher = *batcher_ptr;
  auto opt = make_optimizer("adam", model->parameters(), lr, 0.0, 0.0);
  const auto per_user = [](const Batch& b) { REQUIRE(b.users.dim() == 1); };
  int64_t with_items = 0, rows = 0;
  for (int64_t u = 0; u < split.train.n_rows; ++u) with_items += split.train.row_size(u) > 0;
  const double before = epoch_loss(*model, batcher, nullptr, 0, per_user, &rows);
  REQUIRE(rows == with_items);  // every user with training items, once
  for (uint64_t e = 0; e < epochs; ++e) epoch_loss(*model, batcher, opt.get(), e, per_user);
  const double after = epoch_loss(*model, batcher, nullptr, 0, per_user);
  INFO(name << ": loss " << before << " -> " << after);
  CHECK(after < 0.8 * before);

  torch::NoGradGuard no_grad;
  model->eval();
  const auto users = longs({0, 3, 3, 7});
  const auto items = longs({0, 1, 5, d.n_items() - 1});
  const auto s = model->score(users, items);
  const auto all = model->score_all(users);
  REQUIRE(s.sizes() == torch::IntArrayRef({4}));
  REQUIRE(all.sizes() == torch::IntArrayRef({4, d.n_items()}));
  CHECK(torch::allclose(s, all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
  CHECK(torch::isfinite(all).all().item<bool>());
  // Deterministic in eval mode, and also when the module is left in training mode.
  CHECK(torch::equal(model->score_all(users), all));
  model->train();
  CHECK(torch::equal(model->score_all(users), all));
  model->eval();
  // A fresh tensor: masking it leaves the model alone.
  all.fill_(0.0f);
  CHECK(model->score_all(users).abs().sum().item<float>() > 0.0f);

  TempDir t;
  check_checkpoint_roundtrip(*model, [&] { torch::manual_seed(99); return std::shared_ptr<RecommenderImpl>(make(ctx)); }, users,
                             t.path.string());
  check_export_roundtrip(*model, cfg, d, split, users, t.path.string());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The input

TEST_CASE("autoencoders: the history buffers and the multi-hot input on a hand-made split", "[models]") {
  const Example e = example_a();
  MultDAE m(e.ctx(), MultDAEOptions().hidden({3}).latent(2));
  CHECK(m->input_type() == InputType::Users);
  CHECK(torch::equal(m->train_indptr, longs({0, 2, 5, 5, 6})));
  CHECK(torch::equal(m->train_items, longs({0, 2, 1, 3, 4, 4})));
  // Any order, repeats, a user without items.
  const auto x = m->history(longs({3, 0, 2, 1, 0}));
  REQUIRE(x.scalar_type() == torch::kFloat);
  const auto want = torch::tensor({{0, 0, 0, 0, 1}, {1, 0, 1, 0, 0}, {0, 0, 0, 0, 0}, {0, 1, 0, 1, 1}, {1, 0, 1, 0, 0}}, torch::kFloat);
  CHECK(torch::equal(x, want));
  CHECK(m->history(longs({})).sizes() == torch::IntArrayRef({0, 5}));
  CHECK_THROWS_WITH(m->history(longs({4})), Contains("user index 4 out of range"));
  // The same input for every model.
  MLPRec mlp(e.ctx(), MLPRecOptions().hidden({2}));
  MultVAE vae(e.ctx(), MultVAEOptions().hidden({}).latent(2));
  CHECK(torch::equal(mlp->history(longs({3, 0, 2, 1, 0})), want));
  CHECK(torch::equal(vae->history(longs({3, 0, 2, 1, 0})), want));
  // The user without training items still scores (finite) in every model.
  torch::NoGradGuard g;
  for (AutoencoderBaseImpl* model : {static_cast<AutoencoderBaseImpl*>(m.get()), static_cast<AutoencoderBaseImpl*>(mlp.get()),
                                     static_cast<AutoencoderBaseImpl*>(vae.get())})
    CHECK(torch::isfinite(model->score_all(longs({2}))).all().item<bool>());
}

TEST_CASE("autoencoders: refuse without a split, naming the model", "[models]") {
  const ModelContext bare{4, 5, nullptr};
  CHECK_THROWS_WITH(MLPRec(bare), Contains("mlp: needs the training split"));
  CHECK_THROWS_WITH(MultDAE(bare), Contains("multdae: needs the training split"));
  CHECK_THROWS_WITH(MultVAE(bare), Contains("multvae: needs the training split"));
  const Example e = example_a();
  CHECK_THROWS_WITH(MultVAE(ModelContext{4, 6, nullptr, &e.d, &e.s}), Contains("4 x 5") && Contains("4 x 6"));
}

// ---------------------------------------------------------------------------------------------
// Maths by hand

TEST_CASE("mlp: forward and BCE loss by hand", "[models]") {
  const Example e = example_b();
  MLPRec m(e.ctx(), MLPRecOptions().hidden({2}).activation("sigmoid").input_dropout(0.5));
  REQUIRE(m->hidden.size() == 1);
  const Mat w1 = {{0.5, -1.0, 0.25}, {1.0, 0.5, -0.5}};
  const Vec b1 = {0.1, -0.2};
  const Mat wo = {{1.0, -1.0}, {0.5, 0.5}, {-1.0, 2.0}};
  const Vec bo = {0.0, 0.1, -0.1};
  set_layer(m->hidden[0], w1, b1);
  set_layer(m->out, wo, bo);

  Mat z(3);
  double loss = 0;
  for (size_t u = 0; u < 3; ++u) {
    z[u] = affine(wo, bo, affine(w1, b1, kHistB[u], sigm));
    // BCE with logits: log(1 + e^z) - x z
    for (size_t i = 0; i < 3; ++i) loss += std::log1p(std::exp(z[u][i])) - kHistB[u][i] * z[u][i];
  }
  loss /= 3;
  m->eval();
  check_rows(m->score_all(longs({0, 1, 2})), z);
  CHECK(m->loss(users_batch({0, 1, 2})).item<double>() == Approx(loss).epsilon(1e-6));
  // score picks score_all's entries.
  CHECK(m->score(longs({2, 0, 2}), longs({1, 2, 0})).to(torch::kDouble).allclose(
      torch::tensor({z[2][1], z[0][2], z[2][0]}, torch::kDouble), 1e-5, 1e-6));

  // Other activations.
  for (const std::string act : {"relu", "tanh"}) {
    MLPRec a(e.ctx(), MLPRecOptions().hidden({2}).activation(act));
    set_layer(a->hidden[0], w1, b1);
    set_layer(a->out, wo, bo);
    auto f = act == "relu" ? std::function<double(double)>([](double v) { return std::max(v, 0.0); }) : th;
    Mat za(3);
    for (size_t u = 0; u < 3; ++u) za[u] = affine(wo, bo, affine(w1, b1, kHistB[u], f));
    check_rows(a->score_all(longs({0, 1, 2})), za);
  }

  // Training mode drops inputs: the loss varies from call to call; input_dropout 0 does not.
  m->train();
  torch::manual_seed(5);
  std::vector<double> seen;
  for (int r = 0; r < 8; ++r) seen.push_back(m->loss(users_batch({0, 1, 2})).item<double>());
  CHECK(*std::max_element(seen.begin(), seen.end()) - *std::min_element(seen.begin(), seen.end()) > 1e-6);
  MLPRec nodrop(e.ctx(), MLPRecOptions().hidden({2}).input_dropout(0.0));
  set_layer(nodrop->hidden[0], w1, b1);
  set_layer(nodrop->out, wo, bo);
  nodrop->train();
  CHECK(nodrop->loss(users_batch({0, 1, 2})).item<double>() == Approx(loss).epsilon(1e-6));
}

TEST_CASE("multdae: forward and multinomial loss by hand", "[models]") {
  const Example e = example_b();
  MultDAE m(e.ctx(), MultDAEOptions().hidden({2}).latent(1));
  REQUIRE(m->layers.size() == 4);  // [3 -> 2 -> 1 -> 2 -> 3]
  const Mat w0 = {{0.5, -1.0, 0.25}, {1.0, 0.5, -0.5}}, w1 = {{0.7, -0.3}}, w2 = {{1.5}, {-0.5}}, w3 = {{1.0, -1.0}, {0.5, 0.5}, {-1.0, 2.0}};
  const Vec b0 = {0.1, -0.2}, b1 = {0.05}, b2 = {0.0, 0.3}, b3 = {0.0, 0.1, -0.1};
  set_layer(m->layers[0], w0, b0);
  set_layer(m->layers[1], w1, b1);
  set_layer(m->layers[2], w2, b2);
  set_layer(m->layers[3], w3, b3);
  Mat z(3);
  double loss = 0;
  for (size_t u = 0; u < 3; ++u) {
    const Vec h = affine(w2, b2, affine(w1, b1, affine(w0, b0, l2n(kHistB[u]), th), th), th);
    z[u] = affine(w3, b3, h);  // no activation on the output
    loss += mult_nll(z[u], kHistB[u]);
  }
  loss /= 3;
  m->eval();
  check_rows(m->score_all(longs({0, 1, 2})), z);
  CHECK(m->loss(users_batch({0, 1, 2})).item<double>() == Approx(loss).epsilon(1e-6));
  // A batch of one user: the mean is that user's term.
  CHECK(m->loss(users_batch({1})).item<double>() == Approx(mult_nll(z[1], kHistB[1])).epsilon(1e-6));
  // Eval scores are deterministic; training-mode logits are not (dropout).
  CHECK(torch::equal(m->score_all(longs({0, 1, 2})), m->score_all(longs({0, 1, 2}))));
  torch::manual_seed(3);
  torch::NoGradGuard g;
  CHECK_FALSE(torch::equal(m->logits(longs({0, 2}), true), m->logits(longs({0, 2}), true)));
}

TEST_CASE("multvae: forward, KL term and the annealing schedule by hand", "[models]") {
  const Example e = example_b();
  MultVAE m(e.ctx(), MultVAEOptions().hidden({2}).latent(1).anneal_cap(0.6).total_anneal_steps(4));
  REQUIRE(m->encoder.size() == 2);  // [3 -> 2 -> 2 (mu, logvar)]
  REQUIRE(m->decoder.size() == 2);  // [1 -> 2 -> 3]
  REQUIRE(m->encoder[1]->weight.size(0) == 2);
  const Mat e0 = {{0.5, -1.0, 0.25}, {1.0, 0.5, -0.5}}, e1 = {{0.7, -0.3}, {0.4, 0.9}}, d0 = {{1.5}, {-0.5}},
            d1 = {{1.0, -1.0}, {0.5, 0.5}, {-1.0, 2.0}};
  const Vec c0 = {0.1, -0.2}, c1 = {0.05, -0.4}, g0 = {0.0, 0.3}, g1 = {0.0, 0.1, -0.1};
  set_layer(m->encoder[0], e0, c0);
  set_layer(m->encoder[1], e1, c1);
  set_layer(m->decoder[0], d0, g0);
  set_layer(m->decoder[1], d1, g1);
  Mat z(3);
  double nll = 0, kl = 0;
  for (size_t u = 0; u < 3; ++u) {
    const Vec q = affine(e1, c1, affine(e0, c0, l2n(kHistB[u]), th));
    const double mu = q[0], logvar = q[1];
    z[u] = affine(d1, g1, affine(d0, g0, {mu}, th));  // z = mu in eval mode
    nll += mult_nll(z[u], kHistB[u]);
    kl += -0.5 * (1 + logvar - mu * mu - std::exp(logvar));
  }
  nll /= 3, kl /= 3;
  CHECK(kl > 0.01);

  m->eval();
  check_rows(m->score_all(longs({0, 1, 2})), z);
  {
    torch::NoGradGuard g;
    const auto enc = m->encode(m->history(longs({0})), false);
    CHECK(enc.mu.sizes() == torch::IntArrayRef({1, 1}));
    CHECK(enc.logvar.sizes() == torch::IntArrayRef({1, 1}));
  }
  // step 0: beta 0; eval-mode calls never advance the step.
  CHECK(m->step() == 0);
  CHECK(m->beta() == 0.0);
  CHECK(m->loss(users_batch({0, 1, 2})).item<double>() == Approx(nll).epsilon(1e-6));
  CHECK(m->step() == 0);
  // beta = min(cap, step / total): 1/4, 2/4, then capped at 0.6.
  {
    torch::NoGradGuard g;
    m->anneal_step.fill_(2);
  }
  CHECK(m->beta() == Approx(0.5));
  CHECK(m->loss(users_batch({0, 1, 2})).item<double>() == Approx(nll + 0.5 * kl).epsilon(1e-6));
  CHECK(m->step() == 2);
  {
    torch::NoGradGuard g;
    m->anneal_step.fill_(0);
  }
  m->train();
  const std::vector<double> want_beta = {0.0, 0.25, 0.5, 0.6, 0.6, 0.6};
  for (size_t s = 0; s < want_beta.size(); ++s) {
    INFO("step " << s);
    CHECK(m->step() == static_cast<int64_t>(s));
    CHECK(m->beta() == Approx(want_beta[s]));
    m->loss(users_batch({0, 1}));  // uses beta(step), then step + 1
  }
  CHECK(m->step() == 6);
  // Training mode samples z: logits differ between calls; eval scores do not.
  torch::manual_seed(4);
  {
    torch::NoGradGuard g;
    CHECK_FALSE(torch::equal(m->logits(longs({0, 2}), true), m->logits(longs({0, 2}), true)));
  }
  check_rows(m->score_all(longs({0, 1, 2})), z);  // still the eval forward, though in training mode
  m->eval();
  CHECK(m->loss(users_batch({0, 1, 2})).item<double>() == Approx(nll + 0.6 * kl).epsilon(1e-6));
  CHECK(m->step() == 6);

  // total_anneal_steps 0: beta is the cap from the first step.
  MultVAE fixed(e.ctx(), MultVAEOptions().hidden({2}).latent(1).anneal_cap(0.3).total_anneal_steps(0));
  CHECK(fixed->beta() == Approx(0.3));
  fixed->train();
  fixed->loss(users_batch({0}));
  CHECK(fixed->beta() == Approx(0.3));
  CHECK(fixed->step() == 1);
}

TEST_CASE("multvae: the step counter survives a checkpoint", "[models]") {
  const Example e = example_b();
  MultVAE m(e.ctx(), MultVAEOptions().hidden({4}).latent(2).total_anneal_steps(10));
  m->train();
  for (int s = 0; s < 3; ++s) m->loss(users_batch({0, 1, 2}));
  REQUIRE(m->step() == 3);
  TempDir t;
  m->eval();
  check_checkpoint_roundtrip(*m, [&] { return std::make_shared<MultVAEImpl>(e.ctx(), MultVAEOptions().hidden({4}).latent(2).total_anneal_steps(10)); },
                             longs({0, 1, 2}), t.path.string());
  MultVAE fresh(e.ctx(), MultVAEOptions().hidden({4}).latent(2).total_anneal_steps(10));
  torch::serialize::InputArchive in;
  in.load_from(t.file("m.pt"));
  fresh->load(in);
  CHECK(fresh->step() == 3);
  CHECK(fresh->beta() == Approx(0.2));  // min(0.2, 3 / 10)
  CHECK(fresh->beta() == m->beta());
}

// ---------------------------------------------------------------------------------------------
// User side features

namespace {

// example_a with user features: gender (token; u3 none), hobbies (token set; u1, u2 none), age
// (float; u1 missing).
Example example_features() {
  Example e = example_a();
  FeatureBuilder gender("gender", Feature::Kind::Token), hobbies("hobbies", Feature::Kind::TokenSeq), age("age", Feature::Kind::Float);
  gender.add(0, "F"), gender.add(1, "M"), gender.add(2, "F");
  hobbies.add(0, "chess"), hobbies.add(0, "go"), hobbies.add(3, "go");
  age.set_value(0, 20), age.set_value(2, 40), age.set_value(3, 30);
  e.d.user_info.features = {gender.build(4), hobbies.build(4), age.build(4)};
  return e;
}

}  // namespace

TEST_CASE("mlp: user side features widen the input, unknown names list the known ones", "[models]") {
  const Example e = example_features();
  MLPRec plain(e.ctx(), MLPRecOptions().hidden({3}));
  CHECK(plain->input_width() == 5);
  CHECK(plain->hidden[0]->weight.size(1) == 5);

  MLPRec m(e.ctx(), MLPRecOptions().hidden({3}).user_features({"gender", "age", "hobbies"}));
  CHECK(m->input_width() == 5 + 2 + 1 + 2);
  CHECK(m->hidden[0]->weight.size(1) == 10);
  CHECK(m->side_columns == std::vector<std::string>{"gender:F", "gender:M", "age", "hobbies:chess", "hobbies:go"});
  // age: mean 30, population std sqrt(200 / 3) over the three users with a value; missing -> 0.
  const double sd = std::sqrt(200.0 / 3);
  const auto want = torch::tensor({{1.0, 0.0, -10 / sd, 1.0, 1.0},
                                   {0.0, 1.0, 0.0, 0.0, 0.0},
                                   {1.0, 0.0, 10 / sd, 0.0, 0.0},
                                   {0.0, 0.0, 0.0, 0.0, 1.0}},
                                  torch::kDouble);
  CHECK(torch::allclose(m->user_side.to(torch::kDouble), want, 1e-6, 1e-6));
  // The network's input: the history, then the user's features.
  torch::NoGradGuard g;
  const auto users = longs({3, 0});
  const auto in = m->input(users, m->history(users), false);
  CHECK(torch::allclose(in, torch::cat({m->history(users), m->user_side.index_select(0, users)}, 1)));
  // In training, dropout touches the history part only.
  torch::manual_seed(2);
  const auto tr = m->input(users, m->history(users), true);
  CHECK(torch::equal(tr.narrow(1, 5, 5), in.narrow(1, 5, 5)));
  // The side features enter the scores.
  const auto all = m->score_all(longs({0, 1, 2, 3}));
  CHECK(torch::isfinite(all).all().item<bool>());
  m->user_side.zero_();
  CHECK_FALSE(torch::allclose(m->score_all(longs({0, 1, 2, 3})), all));

  // Unknown names: a clear error listing the dataset's user features.
  CHECK_THROWS_WITH(MLPRec(e.ctx(), MLPRecOptions().user_features({"gender", "nosuch"})),
                    Contains("mlp: model.user_features") && Contains("no user feature 'nosuch'") &&
                        Contains("it has: gender, hobbies, age"));
  CHECK_THROWS_WITH(MLPRec(e.ctx(), MLPRecOptions().user_features({"age", "age"})), Contains("'age' twice"));
  // Through the config: the key and where it was set; the synthetic data has group and taste.
  const Config cfg = synthetic_config("mlp", {"model.user_features=[age]"});
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  CHECK_THROWS_WITH(MLPRec(ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s}),
                    Contains("model.user_features") && Contains("no user feature 'age'") && Contains("it has: group, taste"));
  CHECK_THROWS_WITH(MLPRec(ModelContext{4, 5, nullptr, nullptr, &e.s}, MLPRecOptions().user_features({"age"})),
                    Contains("without its dataset"));
}

TEST_CASE("mlp: with user features, score agrees and the export reproduces it", "[models]") {
  const Example e = example_features();
  const Config cfg = make_config("dataset: synthetic\nmodel: mlp\n");
  torch::manual_seed(7);
  MLPRec m(e.ctx(&cfg), MLPRecOptions().hidden({6, 4}).activation("tanh").user_features({"hobbies", "age"}));
  m->eval();
  torch::NoGradGuard g;
  const auto users = longs({0, 1, 2, 3, 3});
  const auto all = m->score_all(users);
  const auto u = users.repeat_interleave(5), i = torch::arange(5, torch::kLong).repeat({5});
  CHECK(torch::allclose(m->score(u, i), all.reshape(-1), 1e-6, 1e-6));
  TempDir t;
  check_checkpoint_roundtrip(*m, [&] { return std::make_shared<MLPRecImpl>(e.ctx(), MLPRecOptions().hidden({6, 4}).activation("tanh").user_features({"hobbies", "age"})); },
                             users, t.path.string());
  check_export_roundtrip(*m, cfg, e.d, e.s, users, t.path.string());
}

// ---------------------------------------------------------------------------------------------
// Options

TEST_CASE("autoencoders: bad options are clear errors naming the key", "[models]") {
  auto mlp_with = [](const std::string& set) {
    const Config cfg = make_config("dataset: synthetic\nmodel: mlp\n", {set});
    return MLPRecOptions::from_config(&cfg);
  };
  CHECK_THROWS_WITH(mlp_with("model.hidden=[]"), Contains("model.hidden") && Contains("at least one"));
  CHECK_THROWS_WITH(mlp_with("model.hidden=[64, 0]"), Contains("model.hidden") && Contains(">= 1"));
  CHECK_THROWS_WITH(mlp_with("model.activation=gelu"), Contains("model.activation") && Contains("sigmoid, relu, tanh"));
  CHECK_THROWS_WITH(mlp_with("model.input_dropout=1"), Contains("model.input_dropout") && Contains("[0, 1)"));
  CHECK_THROWS_WITH(mlp_with("model.input_dropout=-0.1"), Contains("model.input_dropout"));

  auto dae_with = [](const std::string& set) {
    const Config cfg = make_config("dataset: synthetic\nmodel: multdae\n", {set});
    return MultDAEOptions::from_config(&cfg);
  };
  CHECK_THROWS_WITH(dae_with("model.dropout=1.5"), Contains("model.dropout") && Contains("[0, 1)"));
  CHECK_THROWS_WITH(dae_with("model.latent=0"), Contains("model.latent"));
  CHECK_THROWS_WITH(dae_with("model.hidden=[-3]"), Contains("model.hidden"));
  CHECK(dae_with("model.hidden=[]").hidden().empty());  // [I -> latent -> I] is allowed

  auto vae_with = [](const std::string& set) {
    const Config cfg = make_config("dataset: synthetic\nmodel: multvae\n", {set});
    return MultVAEOptions::from_config(&cfg);
  };
  CHECK_THROWS_WITH(vae_with("model.anneal_cap=-0.1"), Contains("model.anneal_cap") && Contains(">= 0"));
  CHECK_THROWS_WITH(vae_with("model.total_anneal_steps=-1"), Contains("model.total_anneal_steps"));
  CHECK_THROWS_WITH(vae_with("model.dropout=1"), Contains("model.dropout"));
  CHECK_THROWS_WITH(vae_with("model.latent=0"), Contains("model.latent"));

  // The YAML defaults are the structs' defaults.
  {
    const Config c = make_config("dataset: synthetic\nmodel: mlp\n");
    const auto o = MLPRecOptions::from_config(&c), d = MLPRecOptions();
    CHECK(o.hidden() == d.hidden());
    CHECK(o.activation() == d.activation());
    CHECK(o.input_dropout() == d.input_dropout());
    CHECK(o.user_features() == d.user_features());
    CHECK(c.get_int("train.log_every") == 100);
  }
  {
    const Config c = make_config("dataset: synthetic\nmodel: multdae\n");
    const auto o = MultDAEOptions::from_config(&c), d = MultDAEOptions();
    CHECK(o.hidden() == d.hidden());
    CHECK(o.latent() == d.latent());
    CHECK(o.dropout() == d.dropout());
  }
  {
    const Config c = make_config("dataset: synthetic\nmodel: multvae\n");
    const auto o = MultVAEOptions::from_config(&c), d = MultVAEOptions();
    CHECK(o.hidden() == d.hidden());
    CHECK(o.latent() == d.latent());
    CHECK(o.dropout() == d.dropout());
    CHECK(o.anneal_cap() == d.anneal_cap());
    CHECK(o.total_anneal_steps() == d.total_anneal_steps());
    CHECK(c.get_int("train.batch_size") == 500);
  }

  // Options given directly are checked too.
  const Example e = example_a();
  CHECK_THROWS_WITH(MLPRec(e.ctx(), MLPRecOptions().hidden({})), Contains("mlp: model.hidden"));
  CHECK_THROWS_WITH(MLPRec(e.ctx(), MLPRecOptions().activation("gelu")), Contains("'gelu' is not one of: sigmoid, relu, tanh"));
  CHECK_THROWS_WITH(MLPRec(e.ctx(), MLPRecOptions().input_dropout(1.0)), Contains("mlp: model.input_dropout must be in [0, 1)"));
  CHECK_THROWS_WITH(MultDAE(e.ctx(), MultDAEOptions().dropout(-0.5)), Contains("multdae: model.dropout"));
  CHECK_THROWS_WITH(MultDAE(e.ctx(), MultDAEOptions().latent(0)), Contains("multdae: model.latent"));
  CHECK_THROWS_WITH(MultVAE(e.ctx(), MultVAEOptions().anneal_cap(-1.0)), Contains("multvae: model.anneal_cap must be >= 0"));
  CHECK_THROWS_WITH(MultVAE(e.ctx(), MultVAEOptions().total_anneal_steps(-5)), Contains("multvae: model.total_anneal_steps"));
  CHECK_THROWS_WITH(MultVAE(e.ctx(), MultVAEOptions().hidden({600, 0})), Contains("multvae: model.hidden[1] must be >= 1"));
}

// ---------------------------------------------------------------------------------------------
// The contract on the synthetic data (as tests/test_models.cpp runs it for registered models)

TEST_CASE("mlp: contract on the synthetic data", "[models][contract]") {
  check_contract("mlp", [](const ModelContext& c) { return std::make_shared<MLPRecImpl>(c); });
}

TEST_CASE("multdae: contract on the synthetic data", "[models][contract]") {
  check_contract("multdae", [](const ModelContext& c) { return std::make_shared<MultDAEImpl>(c); });
}

TEST_CASE("multvae: contract on the synthetic data", "[models][contract]") {
  // Not the registry contract's settings (batches of 256 users, Adam lr 0.01, 5 epochs): with
  // 200 synthetic users that is five steps, too few for the VAE, whose decoder first sees
  // z = mu + eps * sigma with sigma ~ 1 (the loss falls ~15%, not 20%), and lr 0.01 is unstable
  // for it (more epochs at 0.01 do not help). The paper's lr 0.001 with 32-user batches for 20
  // epochs (140 steps) takes the loss from ~94 to ~68.
  check_contract("multvae", [](const ModelContext& c) { return std::make_shared<MultVAEImpl>(c); }, 32, 0.001, 20);
}
