// Fold-in (RecommenderImpl::score_fold_in): a new user's history scored without retraining. A
// known user's own training items must give back that user's trained scores: exactly for EASE
// and Pop, and for iALS the user half-step training takes (exactly), whose ranking agrees with
// the trained user's to a stated tolerance.
#include "helpers.h"

#include <torch/torch.h>

#include <algorithm>
#include <random>
#include <set>

#include "datasets/dataset.h"
#include "models/general/ease.h"
#include "models/general/ials.h"
#include "models/general/knn.h"
#include "models/general/mf_rating.h"
#include "models/general/autoencoder.h"
#include "models/general/bpr.h"
#include "models/general/fold_in_linear.h"
#include "models/general/ncf.h"
#include "models/general/pop.h"
#include "model_checks.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// 60 users x 40 items with structure (two taste groups) and noise.
Csr grouped_csr(uint32_t seed) { return rzoo::test::grouped_csr(60, 40, seed); }

at::Tensor items_of(const Csr& m, int64_t u) {
  return torch::tensor(std::vector<int64_t>(m.row_begin(u), m.row_end(u)), torch::kLong);
}

// The k best items, the user's own masked.
std::set<int64_t> top_k(at::Tensor scores, const Csr& m, int64_t u, int64_t k) {
  scores = scores.to(torch::kFloat).clone();
  for (const Csr::Index* p = m.row_begin(u); p != m.row_end(u); ++p) scores[*p] = -INFINITY;
  const auto idx = std::get<1>(scores.topk(k));
  std::set<int64_t> out;
  for (int64_t j = 0; j < k; ++j) out.insert(idx[j].item<int64_t>());
  return out;
}

}  // namespace

TEST_CASE("fold-in: a known user's own items give its trained scores (EASE, Pop)", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  const Csr train = grouped_csr(7);
  EASE ease(ModelContext{60, 40, nullptr}, EASEOptions().l2(5.0));
  ease->fit(train);
  const auto all = ease->score_all(torch::arange(60, torch::kLong));
  for (int64_t u = 0; u < 60; ++u) {
    if (train.row_size(u) == 0) continue;
    INFO("user " << u);
    CHECK(torch::allclose(ease->score_fold_in(items_of(train, u)), all[u], 1e-5, 1e-6));
  }
  // Order and repeats do not matter (a set of items); B's rows at {0, 3} by hand.
  const auto two = ease->score_fold_in(torch::tensor({3, 0}, torch::kLong));
  CHECK(torch::allclose(two, ease->item_weights[0] + ease->item_weights[3]));

  Pop pop(ModelContext{60, 40, nullptr});
  pop->fit(train);
  CHECK(torch::equal(pop->score_fold_in(torch::tensor({1, 2}, torch::kLong)), pop->score_all(torch::tensor({0}))[0]));
}

TEST_CASE("fold-in: ItemKNN (ranking, both prunings) and UserKNN (ranking, row) give a known user's scores", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  const Csr train = grouped_csr(9);
  for (const std::string prune : {"row", "column"}) {
    INFO("prune " << prune);
    ItemKNN m(ModelContext{60, 40, nullptr}, KNNOptions().neighbors(5).prune(prune));
    m->fit(train);
    REQUIRE(m->folds_in());
    const auto all = m->score_all(torch::arange(60, torch::kLong));
    for (int64_t u = 0; u < 60; ++u)
      if (train.row_size(u) > 0) CHECK(torch::allclose(m->score_fold_in(items_of(train, u)), all[u], 1e-5, 1e-6));
  }
  // UserKNN: the history compared with every training user as fit() compares users; a known
  // user's own items give exactly its trained scores (it is not its own neighbour).
  for (const std::string sim : {"cosine", "jaccard", "asymmetric_cosine"}) {
    for (const bool idf : {false, true}) {
      INFO("userknn " << sim << (idf ? " idf" : ""));
      UserKNN uk(ModelContext{60, 40, nullptr}, KNNOptions().neighbors(5).similarity(sim).idf(idf).asymmetric_alpha(0.3).shrinkage(3));
      uk->fit(train);
      REQUIRE(uk->folds_in());
      const auto all = uk->score_all(torch::arange(60, torch::kLong));
      for (int64_t u = 0; u < 60; ++u)
        if (train.row_size(u) > 0) CHECK(torch::equal(uk->score_fold_in(items_of(train, u)), all[u]));
    }
  }
  // By hand: users 0 {0, 1}, 1 {1, 2}, 2 {3}; history {1}: cosine to user 0 = 1 / sqrt(2) shrunk
  // by 1 / (1 + 1), the same for user 1, 0 for user 2; k = 1 keeps user 0 (the lower index on a tie).
  UserKNN small(ModelContext{3, 4, nullptr}, KNNOptions().neighbors(1).shrinkage(1));
  small->fit(Csr::from_pairs(3, 4, {0, 0, 1, 1, 2}, {0, 1, 1, 2, 3}));
  const double s = 1 / std::sqrt(2.0) * 0.5;
  const auto f = small->score_fold_in(torch::tensor({1}, torch::kLong));
  CHECK(f[0].item<double>() == Approx(s));
  CHECK(f[1].item<double>() == Approx(s));
  CHECK(f[2].item<double>() == 0.0);
  CHECK(f[3].item<double>() == 0.0);
  // Refusal by name: column pruning (the new user would change the training users' k-lists).
  UserKNN col(ModelContext{60, 40, nullptr}, KNNOptions().neighbors(5).prune("column"));
  col->fit(train);
  CHECK_FALSE(col->folds_in());
  CHECK_THROWS_WITH(col->score_fold_in(torch::tensor({1})), Contains("model 'userknn' cannot fold in") && Contains("prune column"));
}

TEST_CASE("fold-in: SVD++ from its implicit part, by hand", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  SVDpp m(ModelContext{2, 3, nullptr}, SVDppOptions().factors(2).clip(false));
  m->global_mean.fill_(3.5);
  m->user_bias.copy_(torch::tensor({0.1f, -0.2f}));
  m->item_bias.copy_(torch::tensor({0.3f, 0.0f, -0.4f}));
  m->user_factors.copy_(torch::tensor({{1.0f, 0.0f}, {0.5f, -1.0f}}));
  m->item_factors.copy_(torch::tensor({{0.2f, 0.4f}, {-0.3f, 0.1f}, {1.0f, 1.0f}}));
  m->implicit_factors.copy_(torch::tensor({{0.4f, 0.0f}, {0.0f, 0.8f}, {1.0f, -1.0f}}));
  // A history {0, 2}: z = (y_0 + y_2) / sqrt(2); no p_u, no b_u.
  const double z0 = (0.4 + 1.0) / std::sqrt(2.0), z1 = (0.0 - 1.0) / std::sqrt(2.0);
  const auto s = m->score_fold_in(torch::tensor({2, 0}, torch::kLong));
  CHECK(s[0].item<double>() == Approx(3.5 + 0.3 + 0.2 * z0 + 0.4 * z1));
  CHECK(s[1].item<double>() == Approx(3.5 + 0.0 - 0.3 * z0 + 0.1 * z1));
  CHECK(s[2].item<double>() == Approx(3.5 - 0.4 + 1.0 * z0 + 1.0 * z1));
  // A known user with p_u = b_u = 0: exactly its prediction.
  m->update_user_implicit(Csr::from_pairs(2, 3, {0, 0}, {0, 2}));
  m->user_factors[0].zero_();
  m->user_bias[0] = 0.0f;
  CHECK(torch::allclose(m->score_fold_in(torch::tensor({0, 2}, torch::kLong)), m->score_all(torch::tensor({0}))[0]));
}

TEST_CASE("fold-in: the autoencoders and the MLP run the network on the history's vector", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  const Csr train = grouped_csr(5);
  std::vector<int64_t> us, is;
  for (int64_t u = 0; u < 60; ++u)
    for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p) us.push_back(u), is.push_back(*p);
  const TinyExample e = make_tiny_example(us, is, 60, 40);
  torch::manual_seed(1);
  MultDAE dae(e.ctx(), MultDAEOptions().hidden({16}).latent(8));
  MultVAE vae(e.ctx(), MultVAEOptions().hidden({16}).latent(8));
  MLPRec mlp(e.ctx(), MLPRecOptions().hidden({16}));
  std::vector<AutoencoderBaseImpl*> models = {dae.get(), vae.get(), mlp.get()};
  for (AutoencoderBaseImpl* m : models) {
    INFO(m->name());
    m->eval();
    REQUIRE(m->folds_in());
    const auto all = m->score_all(torch::arange(60, torch::kLong));
    for (int64_t u = 0; u < 60; ++u)
      if (train.row_size(u) > 0) CHECK(torch::allclose(m->score_fold_in(items_of(train, u)), all[u], 1e-5, 1e-6));
  }
}

TEST_CASE("fold-in: iALS solves the user half-step of training for the history", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  const Csr train = grouped_csr(11);
  for (const std::string solver : {"cholesky", "cg"}) {
    INFO("solver " << solver);
    torch::manual_seed(3);
    IALS m(ModelContext{60, 40, nullptr}, IALSOptions().factors(8).epochs(10).solver(solver).alpha(2.0));
    m->fit(train);
    // Exactly the exact user half-step against the trained item factors (what training would
    // compute next), user by user.
    const auto w_next = m->solve(train, m->item_factors);  // [U, d]
    int agree = 0, total = 0;
    for (int64_t u = 0; u < 60; ++u) {
      if (train.row_size(u) == 0) continue;
      INFO("user " << u);
      const auto folded = m->score_fold_in(items_of(train, u));
      CHECK(torch::allclose(folded, torch::matmul(m->item_factors, w_next[u]), 1e-4, 1e-5));
      // Against the trained user: the top 5 mostly agree (the trained factors predate the last
      // item half-step). Tolerance: 80% of the top-5 items over all users.
      const auto a = top_k(folded, train, u, 5), b = top_k(m->score_all(torch::tensor({u}))[0], train, u, 5);
      for (int64_t i : a) agree += int(b.count(i));
      total += 5;
    }
    INFO(agree << " of " << total);
    CHECK(agree >= 0.8 * total);
  }
  // A new user with one item of group 0 gets group 0's items first.
  torch::manual_seed(3);
  IALS m(ModelContext{60, 40, nullptr}, IALSOptions().factors(8).epochs(10));
  m->fit(train);
  const auto s = m->score_fold_in(torch::tensor({4}, torch::kLong));
  const auto top = std::get<1>(s.topk(6));
  int even = 0;
  for (int64_t j = 0; j < 6; ++j) even += int(top[j].item<int64_t>() % 2 == 0);
  CHECK(even >= 5);
}

TEST_CASE("fold-in: rzoo recommend --history on exported EASE and iALS", "[models][fold_in][cli]") {
  TempDir t;
  const std::string common = " --config-dir '" + config_dir() + "' --set threads=1 --set output_dir='" + t.file("runs") + "'";
  for (const std::string model : {"ease", "ials"}) {
    INFO(model);
    const std::string exp = t.write(model + ".yaml", "dataset: synthetic\nmodel: " + model + "\nrun_name: " + model + "\n");
    auto r = run_cli("train '" + exp + "'" + common + " --quiet");
    INFO(r.output);
    REQUIRE(r.code == 0);
    const std::string pt = t.file(model + ".pt");
    REQUIRE(run_cli("export '" + t.file("runs/" + model) + "' --out '" + pt + "'").code == 0);
    // Raw item ids of the synthetic data, e.g. the first three items.
    const auto items = read_file(t.file("runs/" + model + "/items.txt"));
    std::vector<std::string> ids;
    for (size_t s = 0, e; (e = items.find('\n', s)) != std::string::npos && ids.size() < 3; s = e + 1)
      ids.push_back(items.substr(s, e - s));
    REQUIRE(ids.size() == 3);
    r = run_cli("recommend --model '" + pt + "' --history " + ids[0] + "," + ids[1] + "," + ids[2] + " -k 5");
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("top 5 after a history of 3 items") != std::string::npos);
    for (const auto& id : ids) CHECK(r.output.find("\n  " + id + " ") == std::string::npos);  // not recommended back
  }
  // A model that cannot fold in says so by name.
  const std::string exp = t.write("userknn.yaml", "dataset: synthetic\nmodel: {name: userknn, prune: column}\nrun_name: userknn\n");
  REQUIRE(run_cli("train '" + exp + "'" + common + " --quiet").code == 0);
  REQUIRE(run_cli("export '" + t.file("runs/userknn") + "' --out '" + t.file("userknn.pt") + "'").code == 0);
  const auto r = run_cli("recommend --model '" + t.file("userknn.pt") + "' --history 1,2");
  CHECK(r.code == 1);
  CHECK(r.output.find("model 'userknn' ranks from known users only") != std::string::npos);
}

namespace {

// Trains a pairwise or pointwise model on every training pair for `steps` full-batch Adam steps
// (fresh uniform negatives outside the user's items each step, neg_per_pos 1).
void train_full_batch(RecommenderImpl& m, const Csr& train, int steps, double lr) {
  std::vector<int64_t> us, is;
  for (int64_t u = 0; u < train.n_rows; ++u)
    for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p) us.push_back(u), is.push_back(*p);
  std::mt19937 gen(5);
  torch::optim::Adam opt(m.parameters(), torch::optim::AdamOptions(lr));
  const bool pairwise = m.input_type() == InputType::Pairwise;
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> neg(us.size());
    for (size_t r = 0; r < us.size(); ++r) {
      int64_t j;
      do j = std::uniform_int_distribution<int64_t>(0, train.n_cols - 1)(gen);
      while (std::binary_search(train.row_begin(us[r]), train.row_end(us[r]), j));
      neg[r] = j;
    }
    Batch b;
    const auto users = torch::tensor(us, torch::kLong), pos = torch::tensor(is, torch::kLong), negs = torch::tensor(neg, torch::kLong);
    if (pairwise) {
      b.users = users, b.items = pos, b.neg_items = negs;
    } else {
      b.users = torch::cat({users, users});
      b.items = torch::cat({pos, negs});
      b.labels = torch::cat({torch::ones({users.size(0)}), torch::zeros({users.size(0)})});
    }
    opt.zero_grad();
    m.loss(b).backward();
    opt.step();
  }
}

}  // namespace

namespace {
double fold_in_linear_objective_or(const LinearFoldIn& f, const FoldInScores& fn, const at::Tensor& items, const at::Tensor& u) {
  return fold_in_objective_at(f, fn, items, u).item<double>();
}
}  // namespace

TEST_CASE("fold-in: the linear MAP solve minimises its objective, by hand on two items", "[models][fold_in]") {
  torch::NoGradGuard no_grad;
  // One dimension, two items x = [2, -1], offsets c = [0.5, 0], prior N(0.25, 1/4): history {0}.
  LinearFoldIn f;
  f.prior_mean = torch::tensor({0.25}, torch::kDouble);
  f.prior_prec = torch::tensor({4.0}, torch::kDouble);
  f.neg_per_pos = 3.0;
  const auto x = torch::tensor({{2.0}, {-1.0}}, torch::kDouble), c = torch::tensor({0.5, 0.0}, torch::kDouble);
  const auto items = torch::tensor({0}, torch::kLong);
  auto sp = [](double v) { return std::log1p(std::exp(v)); };
  for (const bool pairwise : {false, true}) {
    INFO("pairwise " << pairwise);
    f.pairwise = pairwise;
    // The objective at u = 1 by hand: pointwise softplus(-s0) + 3 * 1 / 1 * softplus(s1), pairwise
    // 3 / 1 * softplus(-(s0 - s1)), plus 4 / 2 (1 - 0.25)^2; s = (2.5, -1).
    const double want = (pairwise ? 3.0 * sp(-3.5) : sp(-2.5) + 3.0 * sp(-1.0)) + 2.0 * 0.75 * 0.75;
    CHECK(fold_in_linear_objective(f, x, c, items, torch::tensor({1.0}, torch::kDouble)).item<double>() == Approx(want).epsilon(1e-12));
    // The solution: the derivative (autograd, independent of the solver's own gradient) is zero.
    const auto u = fold_in_linear(f, x, c, items);
    torch::AutoGradMode grad_on(true);
    auto v = u.clone().requires_grad_(true);
    fold_in_linear_objective(f, x, c, items, v).backward();
    CHECK(std::abs(v.grad().item<double>()) < 1e-9);
  }
  // More dimensions and items: still a stationary point; repeats in the history change nothing.
  torch::manual_seed(4);
  const auto xs = torch::randn({30, 5}, torch::kDouble), cs = torch::randn({30}, torch::kDouble);
  f.prior_mean = torch::randn({5}, torch::kDouble) * 0.1;
  f.prior_prec = torch::rand({5}, torch::kDouble) + 0.5;
  const auto hist = torch::tensor({3, 7, 11, 20}, torch::kLong);
  for (const bool pairwise : {false, true}) {
    INFO("pairwise " << pairwise);
    f.pairwise = pairwise;
    const auto u = fold_in_linear(f, xs, cs, hist);
    CHECK(torch::allclose(u, fold_in_linear(f, xs, cs, torch::tensor({20, 3, 7, 11, 3}, torch::kLong)), 1e-12, 1e-12));
    // Pairwise terms in slices of history rows (a budget of 30 entries: one row of 26 at a time)
    // give the same solution.
    LinearFoldIn sliced = f;
    sliced.pair_budget = 30;
    CHECK(torch::allclose(u, fold_in_linear(sliced, xs, cs, hist), 1e-10, 1e-12));
    torch::AutoGradMode grad_on(true);
    auto v = u.clone().requires_grad_(true);
    fold_in_linear_objective(f, xs, cs, hist, v).backward();
    CHECK(v.grad().abs().max().item<double>() < 1e-8);
  }
}

TEST_CASE("fold-in: BPR, MF and GMF fit a new user's vector with the item side fixed", "[models][fold_in]") {
  const Csr train = grouped_csr(13);
  torch::manual_seed(2);
  BPR bpr(ModelContext{60, 40, nullptr}, BPROptions().embedding_size(8).init_std(0.1));
  DotMF mf(ModelContext{60, 40, nullptr}, DotMFOptions().embedding_size(8).l2(0.0025));
  GMF gmf(ModelContext{60, 40, nullptr}, GMFOptions().embedding_size(8).init_std(0.1));
  std::vector<RecommenderImpl*> models = {bpr.get(), mf.get(), gmf.get()};
  for (RecommenderImpl* m : models) {
    INFO(m->name());
    train_full_batch(*m, train, 300, 0.05);
    torch::NoGradGuard no_grad;
    REQUIRE(m->folds_in());
    // Against the trained user: the top 5 mostly agree (training stopped at a finite step count
    // with its own regularisation; fold-in is the MAP estimate under the trained users' prior).
    // Tolerance: 65% of the top-5 items over all users (measured 2026-12-04: bpr 80%, mf 76%,
    // gmf 68%; ranking the trained user's group first and the rest at random would give ~40%).
    int agree = 0, total = 0;
    for (int64_t u = 0; u < 60; ++u) {
      if (train.row_size(u) == 0) continue;
      const auto folded = m->score_fold_in(items_of(train, u));
      REQUIRE(folded.sizes() == torch::IntArrayRef{40});
      const auto a = top_k(folded, train, u, 5), b = top_k(m->score_all(torch::tensor({u}))[0], train, u, 5);
      for (int64_t i : a) agree += int(b.count(i));
      total += 5;
    }
    INFO(agree << " of " << total);
    CHECK(agree >= 0.65 * total);
    // A new user with two items of group 1 gets group 1's items first.
    const auto s = m->score_fold_in(torch::tensor({5, 9}, torch::kLong));
    const auto top = std::get<1>(s.topk(8));
    int odd = 0;
    for (int64_t j = 0; j < 8; ++j) odd += int(top[j].item<int64_t>() % 2 == 1);
    CHECK(odd >= 7);
    // The empty history: the prior mean's scores (no crash, finite).
    CHECK(torch::isfinite(m->score_fold_in(torch::zeros({0}, torch::kLong))).all().item<bool>());
  }
}

TEST_CASE("fold-in: NeuMF and NCF-MLP by Gauss-Newton: exact Jacobian, a stationary point, the trained ranking", "[models][fold_in]") {
  const Csr train = grouped_csr(17);
  torch::manual_seed(6);
  NeuMF neumf(ModelContext{60, 40, nullptr}, NeuMFOptions().embedding_size(4).layers({8, 8, 4}).init_std(0.1));
  NCFMLP mlp(ModelContext{60, 40, nullptr}, NCFMLPOptions().layers({8, 8, 4}).init_std(0.1));
  NCFMLP mlp0(ModelContext{60, 40, nullptr}, NCFMLPOptions().layers({8}).init_std(0.1));  // no hidden layer
  std::vector<NCFBaseImpl*> models = {neumf.get(), mlp.get(), mlp0.get()};
  for (NCFBaseImpl* m : models) {
    INFO(m->name() << " with " << m->mlp.size() << " hidden layers");
    train_full_batch(*m, train, 300, 0.02);
    torch::NoGradGuard no_grad;
    REQUIRE(m->folds_in());
    const int64_t D = (m->gmf_user_emb ? 4 : 0) + m->mlp_user_emb->weight.size(1);
    // fold_in_scores at a trained user's vector: the model's own scores, and J by finite differences.
    const int64_t user = 3;
    std::vector<at::Tensor> parts;
    if (m->gmf_user_emb) parts.push_back(m->gmf_user_emb->weight[user]);
    parts.push_back(m->mlp_user_emb->weight[user]);
    const auto u0 = torch::cat(parts).to(torch::kDouble);
    REQUIRE(u0.numel() == D);
    const auto [s0, J] = m->fold_in_scores(u0);
    CHECK(torch::allclose(s0.to(torch::kFloat), m->score_all(torch::tensor({user}))[0], 1e-4, 1e-5));
    for (int64_t d = 0; d < D; ++d) {
      auto up = u0.clone(), dn = u0.clone();
      up[d] += 1e-6;
      dn[d] -= 1e-6;
      const auto fd = (m->fold_in_scores(up).first - m->fold_in_scores(dn).first) / 2e-6;
      CHECK(torch::allclose(fd, J.select(1, d), 1e-4, 1e-6));
    }
    // Without hidden layers the objective is convex and smooth: the result is its minimum (no
    // small step along a coordinate lowers it). With ReLU layers it is piecewise smooth and
    // Gauss-Newton can end on a kink after its step cap, short of a local minimum: the result
    // must then lower the objective below its value at the prior mean (the start; measured here:
    // 6.7 -> 3.4 for NCF-MLP, 40.3 -> 10.4 for NeuMF).
    LinearFoldIn f;
    std::vector<at::Tensor> users;
    if (m->gmf_user_emb) users.push_back(m->gmf_user_emb->weight);
    users.push_back(m->mlp_user_emb->weight);
    fit_fold_in_prior(f, torch::cat(users, 1));
    const auto fn = [m](const at::Tensor& v, bool jac) { return m->fold_in_scores(v, jac); };
    const auto hist = items_of(train, user);
    const auto u = fold_in_gauss_newton(f, fn, hist);
    const double f0 = fold_in_linear_objective_or(f, fn, hist, u);
    if (m->mlp.empty()) {
      for (int64_t d = 0; d < D; ++d)
        for (const double h : {1e-3, -1e-3, 1e-5, -1e-5}) {
          auto v = u.clone();
          v[d] += h;
          CHECK(fold_in_linear_objective_or(f, fn, hist, v) >= f0 - 1e-9 * (1.0 + std::abs(f0)));
        }
    } else {
      CHECK(f0 < fold_in_linear_objective_or(f, fn, hist, f.prior_mean) - 1.0);
    }
    CHECK(torch::allclose(m->score_fold_in(hist), fn(u, false).first.to(torch::kFloat)));
    // Against the trained users: top-5 agreement, tolerance 60% (measured 2026-12-04: NeuMF and
    // NCF-MLP with two hidden layers 70%, NCF-MLP without hidden layers 100%).
    int agree = 0, total = 0;
    for (int64_t v = 0; v < 60; ++v) {
      if (train.row_size(v) == 0) continue;
      const auto a = top_k(m->score_fold_in(items_of(train, v)), train, v, 5), b = top_k(m->score_all(torch::tensor({v}))[0], train, v, 5);
      for (int64_t i : a) agree += int(b.count(i));
      total += 5;
    }
    INFO(agree << " of " << total);
    CHECK(agree >= 0.6 * total);
  }
}
