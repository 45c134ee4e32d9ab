// Per-model maths of EASE and iALS on tiny problems solved independently in the tests.
#include "helpers.h"

#include <torch/torch.h>

#include <cmath>
#include <random>

#include "datasets/dataset.h"
#include "models/general/ease.h"
#include "models/general/ials.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

const at::Tensor kAll4 = torch::arange(4, torch::kLong);

// The dense float [rows, cols] matrix of a CSR.
at::Tensor dense(const Csr& m) {
  auto x = torch::zeros({m.n_rows, m.n_cols});
  for (int64_t r = 0; r < m.n_rows; ++r)
    for (const Csr::Index* p = m.row_begin(r); p != m.row_end(r); ++p) x[r][*p] = 1.0f;
  return x;
}

// A random 0/1 matrix with about `density` of its entries set.
Csr random_csr(int64_t n_rows, int64_t n_cols, double density, uint32_t seed) {
  std::mt19937 gen(seed);
  std::bernoulli_distribution coin(density);
  std::vector<int64_t> rows, cols;
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < n_cols; ++c)
      if (coin(gen)) rows.push_back(r), cols.push_back(c);
  return Csr::from_pairs(n_rows, n_cols, rows, cols);
}

}  // namespace

TEST_CASE("ease: B by hand on a 4 x 3 matrix", "[models]") {
  // X = [[1,1,0],[1,1,1],[0,1,0],[1,0,1]]: X^T X = [[3,2,2],[2,3,1],[2,1,2]]; with lambda = 1,
  // G = [[4,2,2],[2,4,1],[2,1,3]], det G = 24 and P = G^-1 = adj(G) / 24 with
  // adj(G) = [[11,-4,-6],[-4,8,0],[-6,0,12]]. B_ij = -P_ij / P_jj:
  //   B_01 = 4/8, B_02 = 6/12, B_10 = 4/11, B_12 = 0/12, B_20 = 6/11, B_21 = 0/8.
  const Csr train = Csr::from_pairs(4, 3, {0, 0, 1, 1, 1, 2, 3, 3}, {0, 1, 0, 1, 2, 1, 0, 2});
  EASE model(ModelContext{4, 3, nullptr}, EASEOptions().l2(1.0));
  CHECK(model->input_type() == InputType::None);
  model->fit(train);
  const auto expected = torch::tensor({{0.0, 0.5, 0.5}, {4.0 / 11, 0.0, 0.0}, {6.0 / 11, 0.0, 0.0}}, torch::kFloat);
  INFO(model->item_weights);
  CHECK(torch::allclose(model->item_weights, expected, 1e-6, 1e-7));
  CHECK(torch::all(model->item_weights.diagonal() == 0).item<bool>());
  // Items 0 and 1 co-occur for two users: each gets a positive weight from the other.
  CHECK(model->item_weights[0][1].item<float>() > 0.0f);
  CHECK(model->item_weights[1][0].item<float>() > 0.0f);

  // score_all = X B; score picks the same entries.
  torch::NoGradGuard no_grad;
  const auto all = model->score_all(kAll4);
  CHECK(torch::allclose(all, torch::matmul(dense(train), expected), 1e-6, 1e-6));
  const auto users = torch::tensor({0, 1, 2, 3, 3}, torch::kLong), items = torch::tensor({2, 0, 1, 1, 2}, torch::kLong);
  CHECK(torch::allclose(model->score(users, items), all.index({users, items}), 1e-6, 1e-7));
  // score_all is a fresh tensor: masking it leaves the model alone.
  all.fill_(0.0f);
  CHECK(model->score_all(kAll4).abs().sum().item<float>() > 0.0f);
}

TEST_CASE("ease: model.precision float32 and float64 agree, auto keeps float64 for a near-singular G", "[models]") {
  const Csr train = Csr::from_pairs(4, 3, {0, 0, 1, 1, 1, 2, 3, 3}, {0, 1, 0, 1, 2, 1, 0, 2});
  EASE f32(ModelContext{4, 3, nullptr}, EASEOptions().l2(1.0).precision("float32"));
  EASE f64(ModelContext{4, 3, nullptr}, EASEOptions().l2(1.0).precision("float64"));
  f32->fit(train);
  f64->fit(train);
  CHECK(torch::allclose(f32->item_weights, f64->item_weights, 1e-6, 1e-7));
  // Items 0 and 1 always together: G = [[2, 2], [2, 2]] + 1e-9 I is positive definite, but
  // 2 + 1e-9 is 2 in float32: there the factorisation runs on rounding noise. auto sees the
  // bound (4 + 1e-9) / 1e-9 and stays in float64: B_01 = -P_01 / P_11 = 2 / (2 + 1e-9) ~ 1.
  const Csr twins = Csr::from_pairs(2, 2, {0, 0, 1, 1}, {0, 1, 0, 1});
  EASE a(ModelContext{2, 2, nullptr}, EASEOptions().l2(1e-9));
  EASE b(ModelContext{2, 2, nullptr}, EASEOptions().l2(1e-9).precision("float64"));
  a->fit(twins);
  b->fit(twins);
  CHECK(torch::equal(a->item_weights, b->item_weights));
  CHECK(a->item_weights[0][1].item<float>() == Approx(1.0).epsilon(1e-6));
  // With a large lambda auto takes float32: the float32 result, bit for bit.
  EASE c(ModelContext{4, 3, nullptr}, EASEOptions().l2(1000.0));
  EASE d(ModelContext{4, 3, nullptr}, EASEOptions().l2(1000.0).precision("float32"));
  c->fit(train);
  d->fit(train);
  CHECK(torch::equal(c->item_weights, d->item_weights));
  const Config bad = make_config("dataset: synthetic\nmodel: ease\n", {"model.precision=half"});
  CHECK_THROWS_WITH(EASEOptions::from_config(&bad), Contains("model.precision") && Contains("half"));
}

TEST_CASE("ease: an item nobody interacted with and a user with no items score zero", "[models]") {
  // Item 3 has no interactions, user 2 none either.
  const Csr train = Csr::from_pairs(4, 4, {0, 0, 1, 1, 3}, {0, 1, 1, 2, 0});
  EASE model(ModelContext{4, 4, nullptr}, EASEOptions().l2(0.5));
  model->fit(train);
  const auto b = model->item_weights;
  CHECK(torch::isfinite(b).all().item<bool>());
  // G is block diagonal with lambda alone for item 3: P's row and column are e_3 / lambda, so
  // B_33 = -1 before zeroing and every other entry of its row and column is 0.
  CHECK(b.select(0, 3).abs().max().item<float>() == 0.0f);
  CHECK(b.select(1, 3).abs().max().item<float>() == 0.0f);
  torch::NoGradGuard no_grad;
  const auto all = model->score_all(kAll4);
  CHECK(torch::isfinite(all).all().item<bool>());
  CHECK(all.select(1, 3).abs().max().item<float>() == 0.0f);
  CHECK(all[2].abs().max().item<float>() == 0.0f);
}

TEST_CASE("ease: bad options name the key", "[models]") {
  for (const char* v : {"model.l2=0", "model.l2=-3"}) {
    const Config cfg = make_config("dataset: synthetic\nmodel: ease\n", {v});
    CHECK_THROWS_WITH(EASEOptions::from_config(&cfg), Contains("model.l2") && Contains("must be > 0"));
  }
  CHECK(EASEOptions::from_config(nullptr).l2() == 500.0);
  const Config ok = make_config("dataset: synthetic\nmodel: ease\n");
  CHECK(EASEOptions::from_config(&ok).l2() == 500.0);  // the YAML's documented default
  CHECK_THROWS_WITH(EASE(ModelContext{2, 2, nullptr}, EASEOptions().l2(0.0)), Contains("model.l2"));
  EASE model(ModelContext{2, 3, nullptr}, EASEOptions());
  CHECK_THROWS_WITH(model->fit(Csr::from_pairs(2, 2, {0}, {1})), Contains("2 x 2"));
}

TEST_CASE("ials: one user half-step is the closed-form minimiser", "[models]") {
  // 3 users x 4 items; user 2 has no items.
  const Csr train = Csr::from_pairs(3, 4, {0, 0, 1, 1, 1}, {0, 2, 1, 2, 3});
  const auto opts = IALSOptions().factors(2).alpha(0.5).unobserved_weight(0.2).l2(0.1).nu(1.0);
  IALS model(ModelContext{3, 4, nullptr}, opts);
  const auto h = torch::tensor({{0.3, -0.2}, {0.5, 0.1}, {-0.4, 0.6}, {0.2, 0.2}}, torch::kFloat);  // [I, d]
  const auto w = model->solve(train, h);                                                           // [U, d]
  REQUIRE(w.sizes() == torch::IntArrayRef({3, 2}));

  const auto hd = h.to(torch::kDouble);
  const double c = 1.5, alpha0 = 0.2;
  for (int64_t u = 0; u < 3; ++u) {
    // The normal equations written out item by item: A = alpha0 sum_i h_i h_i^T (all items)
    // + c sum_{i in I_u} h_i h_i^T + lambda_u I, b = c sum_{i in I_u} h_i,
    // lambda_u = 0.1 * (n_u + alpha0 * 4)^1.
    auto a = torch::zeros({2, 2}, torch::kDouble), b = torch::zeros({2}, torch::kDouble);
    for (int64_t i = 0; i < 4; ++i) a += alpha0 * torch::outer(hd[i], hd[i]);
    for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p) {
      a += c * torch::outer(hd[*p], hd[*p]);
      b += c * hd[*p];
    }
    a += 0.1 * (static_cast<double>(train.row_size(u)) + alpha0 * 4) * torch::eye(2, torch::kDouble);
    const auto expect = torch::linalg_solve(a, b);
    INFO("user " << u << ": " << w[u] << " vs " << expect);
    CHECK(torch::allclose(w[u].to(torch::kDouble), expect, 1e-5, 1e-7));

    // And the gradient of user u's part of the loss, written from its definition over every
    // (u, i) pair, vanishes there.
    auto wu = w[u].to(torch::kDouble).clone().requires_grad_(true);
    auto lu = torch::zeros({}, torch::kDouble);
    for (int64_t i = 0; i < 4; ++i) {
      const auto s = (wu * hd[i]).sum();
      lu = lu + alpha0 * s * s;
      if (train.contains(u, i)) lu = lu + c * (1 - s) * (1 - s);
    }
    lu = lu + 0.1 * (static_cast<double>(train.row_size(u)) + alpha0 * 4) * (wu * wu).sum();
    lu.backward();
    CHECK(wu.grad().abs().max().item<double>() < 1e-6);
  }
  CHECK(w[2].abs().max().item<float>() == 0.0f);  // no items: pulled to 0 only
}

TEST_CASE("ials: a conjugate-gradient step by hand, d steps reach the closed-form solve, any thread count",
          "[models]") {
  const Csr train = Csr::from_pairs(3, 4, {0, 0, 1, 1, 1}, {0, 2, 1, 2, 3});
  const auto h = torch::tensor({{0.3, -0.2}, {0.5, 0.1}, {-0.4, 0.6}, {0.2, 0.2}}, torch::kFloat);  // [I, d]
  const auto start = torch::tensor({{0.1, 0.4}, {-0.3, 0.2}, {0.5, 0.5}}, torch::kFloat);          // [U, d]
  const bool batched = GENERATE(false, true);
  INFO((batched ? "batched tensors (other devices)" : "CPU row loop"));
  const auto opts = IALSOptions().factors(2).alpha(0.5).unobserved_weight(0.2).l2(0.1).nu(1.0);
  SECTION("one step: x1 = x0 + (r'r / r'Ar) r, r = b - A x0") {
    IALS model(ModelContext{3, 4, nullptr}, IALSOptions(opts).cg_steps(1));
    const auto w = model->solve_cg(train, h, start, batched);
    const auto hd = h.to(torch::kDouble);
    for (int64_t u = 0; u < 2; ++u) {
      auto a = torch::zeros({2, 2}, torch::kDouble), b = torch::zeros({2}, torch::kDouble);
      for (int64_t i = 0; i < 4; ++i) a += 0.2 * torch::outer(hd[i], hd[i]);
      for (const Csr::Index* p = train.row_begin(u); p != train.row_end(u); ++p) {
        a += 1.5 * torch::outer(hd[*p], hd[*p]);
        b += 1.5 * hd[*p];
      }
      a += 0.1 * (static_cast<double>(train.row_size(u)) + 0.2 * 4) * torch::eye(2, torch::kDouble);
      const auto x0 = start[u].to(torch::kDouble);
      const auto r = b - torch::mv(a, x0);
      const auto x1 = x0 + ((r * r).sum() / (r * torch::mv(a, r)).sum()) * r;
      INFO("user " << u << ": " << w[u] << " vs " << x1);
      CHECK(torch::allclose(w[u].to(torch::kDouble), x1, 1e-5, 1e-6));
    }
    CHECK(w[2].abs().max().item<float>() == 0.0f);  // no items: exactly 0, not a step towards it
  }
  SECTION("d = 2 steps: the exact solve, as Cholesky's") {
    IALS model(ModelContext{3, 4, nullptr}, IALSOptions(opts).cg_steps(2));
    CHECK(torch::allclose(model->solve_cg(train, h, start, batched), model->solve(train, h), 1e-4, 1e-5));
  }
  SECTION("a larger problem: the same result with 1 and 2 threads, and as the other path") {
    const Csr big = random_csr(300, 120, 0.1, 11);
    torch::manual_seed(5);
    const auto hb = torch::randn({120, 16}) * 0.1, sb = torch::randn({300, 16}) * 0.1;
    IALS model(ModelContext{300, 120, nullptr}, IALSOptions(opts).factors(16).cg_steps(3));
    const int threads = torch::get_num_threads();
    torch::set_num_threads(1);
    const auto one = model->solve_cg(big, hb, sb, batched);
    torch::set_num_threads(2);
    const auto two = model->solve_cg(big, hb, sb, batched);
    torch::set_num_threads(threads);
    CHECK(torch::equal(one, two));
    CHECK(torch::allclose(one, model->solve_cg(big, hb, sb, !batched), 1e-4, 1e-5));
  }
}

TEST_CASE("ials: the loss never increases, scores agree, empty users and items are finite", "[models]") {
  Csr train = random_csr(40, 30, 0.2, 7);
  // User 5 and item 4 without interactions.
  {
    std::vector<int64_t> rows, cols;
    for (int64_t r = 0; r < train.n_rows; ++r)
      for (const Csr::Index* p = train.row_begin(r); p != train.row_end(r); ++p)
        if (r != 5 && *p != 4) rows.push_back(r), cols.push_back(*p);
    train = Csr::from_pairs(40, 30, rows, cols);
  }
  const std::string solver = GENERATE(as<std::string>{}, "cholesky", "cg");
  INFO("model.solver " << solver);
  torch::manual_seed(3);
  IALS model(ModelContext{40, 30, nullptr},
             IALSOptions().factors(6).alpha(1.0).unobserved_weight(0.3).l2(0.01).nu(0.5).epochs(12).solver(solver));
  model->record_loss = true;
  model->fit(train);
  const auto& hist = model->loss_history;
  REQUIRE(hist.size() == 12);
  for (size_t e = 1; e < hist.size(); ++e) {
    INFO("epoch " << e << ": " << hist[e - 1] << " -> " << hist[e]);
    CHECK(hist[e] <= hist[e - 1] * (1 + 1e-9));
  }
  CHECK(hist.back() < 0.9 * hist.front());
  // The loss recorded during fit equals the loss evaluated directly.
  CHECK(model->loss(train) == Approx(hist.back()).epsilon(1e-6));

  torch::NoGradGuard no_grad;
  const auto users = torch::tensor({0, 5, 5, 17, 39}, torch::kLong), items = torch::tensor({4, 0, 4, 29, 3}, torch::kLong);
  const auto all = model->score_all(users);
  REQUIRE(all.sizes() == torch::IntArrayRef({5, 30}));
  CHECK(torch::isfinite(all).all().item<bool>());
  CHECK(torch::allclose(model->score(users, items), all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
  CHECK(all[1].abs().max().item<float>() == 0.0f);          // user 5: w = 0
  CHECK(all.select(1, 4).abs().max().item<float>() == 0.0f);  // item 4: h = 0
  // The model learned the training matrix: observed pairs outscore the rest on average.
  const auto full = model->score_all(torch::arange(40, torch::kLong)), x = dense(train);
  CHECK((full * x).sum().item<float>() / x.sum().item<float>() >
        (full * (1 - x)).sum().item<float>() / (1 - x).sum().item<float>() + 0.1f);
}

TEST_CASE("ials: bad options name the key", "[models]") {
  auto options_with = [](const std::string& set) {
    const Config cfg = make_config("dataset: synthetic\nmodel: ials\n", {set});
    return IALSOptions::from_config(&cfg);
  };
  CHECK_THROWS_WITH(options_with("model.factors=0"), Contains("model.factors"));
  CHECK_THROWS_WITH(options_with("model.l2=0"), Contains("model.l2") && Contains("must be > 0"));
  CHECK_THROWS_WITH(options_with("model.l2=-1"), Contains("model.l2"));
  CHECK_THROWS_WITH(options_with("model.unobserved_weight=-0.1"), Contains("model.unobserved_weight"));
  CHECK_THROWS_WITH(options_with("model.epochs=0"), Contains("model.epochs"));
  CHECK_THROWS_WITH(options_with("model.init_std=0"), Contains("model.init_std"));
  // The YAML's defaults are the struct's.
  const Config ok = make_config("dataset: synthetic\nmodel: ials\n");
  const auto o = IALSOptions::from_config(&ok), d = IALSOptions();
  CHECK(o.factors() == d.factors());
  CHECK(o.alpha() == d.alpha());
  CHECK(o.unobserved_weight() == d.unobserved_weight());
  CHECK(o.l2() == d.l2());
  CHECK(o.nu() == d.nu());
  CHECK(o.epochs() == d.epochs());
  CHECK(o.init_std() == d.init_std());
  CHECK_THROWS_WITH(IALS(ModelContext{2, 2, nullptr}, IALSOptions().factors(0)), Contains("model.factors"));
}
