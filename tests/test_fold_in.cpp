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
#include "models/general/pop.h"
#include "model_checks.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// 60 users x 40 items with structure (two taste groups) and noise.
Csr grouped_csr(uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int64_t> rows, cols;
  for (int64_t u = 0; u < 60; ++u)
    for (int64_t i = 0; i < 40; ++i) {
      const bool same = (u % 2) == (i % 2);
      if (std::bernoulli_distribution(same ? 0.35 : 0.05)(gen)) rows.push_back(u), cols.push_back(i);
    }
  return Csr::from_pairs(60, 40, rows, cols);
}

at::Tensor items_of(const Csr& m, int64_t u) {
  return torch::tensor(std::vector<int64_t>(m.row_begin(u), m.row_end(u)), torch::kLong);
}

// The k best items, the user's own masked.
std::set<int64_t> top_k(at::Tensor scores, const Csr& m, int64_t u, int64_t k) {
  scores = scores.to(torch::kFloat).clone();
  for (const int64_t* p = m.row_begin(u); p != m.row_end(u); ++p) scores[*p] = -INFINITY;
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

TEST_CASE("fold-in: ItemKNN (ranking, both prunings) gives a known user's scores, UserKNN refuses", "[models][fold_in]") {
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
  UserKNN uk(ModelContext{60, 40, nullptr}, KNNOptions().neighbors(5));
  uk->fit(train);
  CHECK_FALSE(uk->folds_in());
  CHECK_THROWS_WITH(uk->score_fold_in(torch::tensor({1})), Contains("model 'userknn' cannot fold in") && Contains("training users"));
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
    for (const int64_t* p = train.row_begin(u); p != train.row_end(u); ++p) us.push_back(u), is.push_back(*p);
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
  const std::string exp = t.write("bpr.yaml", "dataset: synthetic\nmodel: bpr\nrun_name: bpr\ntrain: {epochs: 1}\n");
  REQUIRE(run_cli("train '" + exp + "'" + common + " --quiet").code == 0);
  REQUIRE(run_cli("export '" + t.file("runs/bpr") + "' --out '" + t.file("bpr.pt") + "'").code == 0);
  const auto r = run_cli("recommend --model '" + t.file("bpr.pt") + "' --history 1,2");
  CHECK(r.code == 1);
  CHECK(r.output.find("model 'bpr' ranks from known users only") != std::string::npos);
}
