// ItemKNN and UserKNN: similarities, shrinkage, pruning, ranking and rating predictions, the ALS
// baseline, edge cases and bad options, on hand-computed examples; and the model contract
// (score vs score_all, save/load, TorchScript export) in both modes.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "datasets/dataset.h"
#include "models/general/knn.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// Example A: 4 users x 5 items, ratings (user 3 and item 4 have no interactions):
//        i0  i1  i2  i3  i4
//   u0    5   3   4   .   .
//   u1    4   1   .   2   .
//   u2    .   2   5   .   .
//   u3    .   .   .   .   .
using Example = TinyExample;

Example example_a() {
  return make_tiny_example({0, 0, 0, 1, 1, 1, 2, 2}, {0, 1, 2, 0, 1, 3, 1, 2}, 4, 5, {5, 3, 4, 4, 1, 2, 2, 5});
}

// The stored (pruned) similarity of entity x to y in ranking mode; 0 when y is not a neighbour.
double neighbour_sim(const KNNImpl& m, int64_t x, int64_t y) {
  const auto idx = m.nbr_index[x], val = m.nbr_sim[x];
  for (int64_t t = 0; t < idx.size(0); ++t)
    if (idx[t].item<int64_t>() == y && val[t].item<float>() != 0.0f) return val[t].item<double>();
  return 0.0;
}

at::Tensor longs(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

// score() agrees with score_all() at every (user, item).
void check_score_agrees(KNNImpl& m) {
  const auto users = torch::arange(m.n_users(), torch::kLong);
  const auto all = m.score_all(users);
  REQUIRE(all.sizes() == torch::IntArrayRef({m.n_users(), m.n_items()}));
  CHECK(torch::isfinite(all).all().item<bool>());
  const auto u = users.repeat_interleave(m.n_items());
  const auto i = torch::arange(m.n_items(), torch::kLong).repeat({m.n_users()});
  CHECK(torch::allclose(m.score(u, i), all.reshape(-1), 1e-6, 1e-6));
}

}  // namespace

TEST_CASE("itemknn: binary cosine and jaccard by hand, shrinkage", "[models]") {
  const Example e = example_a();
  // Binary item vectors over the users: i0 {u0,u1}, i1 {u0,u1,u2}, i2 {u0,u2}, i3 {u1}, i4 {}.
  ItemKNN cos(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(10));
  cos->fit(e.s.train);
  REQUIRE(cos->nbr_index.sizes() == torch::IntArrayRef({5, 4}));  // k capped at items - 1
  CHECK(neighbour_sim(*cos, 0, 1) == Approx(2 / std::sqrt(6.0)));  // 2 co-raters / sqrt(2 * 3)
  CHECK(neighbour_sim(*cos, 0, 2) == Approx(0.5));                 // 1 / sqrt(2 * 2)
  CHECK(neighbour_sim(*cos, 0, 3) == Approx(1 / std::sqrt(2.0)));  // 1 / sqrt(2 * 1)
  CHECK(neighbour_sim(*cos, 1, 3) == Approx(1 / std::sqrt(3.0)));  // 1 / sqrt(3 * 1)
  CHECK(neighbour_sim(*cos, 2, 3) == 0.0);                         // no co-rater
  CHECK(neighbour_sim(*cos, 3, 0) == Approx(1 / std::sqrt(2.0)));  // symmetric
  // Item 4 (nobody's) has no neighbours: its row is padded with itself at similarity 0.
  CHECK(torch::equal(cos->nbr_index[4], torch::full({4}, 4, torch::kLong)));
  CHECK(cos->nbr_sim[4].abs().sum().item<float>() == 0.0f);

  ItemKNN jac(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(0).neighbors(10));
  jac->fit(e.s.train);
  CHECK(neighbour_sim(*jac, 0, 1) == Approx(2.0 / 3));  // 2 / (2 + 3 - 2)
  CHECK(neighbour_sim(*jac, 0, 2) == Approx(1.0 / 3));  // 1 / (2 + 2 - 1)
  CHECK(neighbour_sim(*jac, 0, 3) == Approx(0.5));      // 1 / (2 + 1 - 1)
  CHECK(neighbour_sim(*jac, 1, 3) == Approx(1.0 / 3));  // 1 / (3 + 1 - 1)

  // Shrinkage: s * n / (n + lambda), n = co-raters. cos(i0, i1): n = 2, lambda = 2 -> x 1/2;
  // cos(i0, i3): n = 1 -> x 1/3.
  ItemKNN shrunk(e.ctx(), KNNOptions().similarity("cosine").shrinkage(2).neighbors(10));
  shrunk->fit(e.s.train);
  CHECK(neighbour_sim(*shrunk, 0, 1) == Approx(2 / std::sqrt(6.0) * 2 / 4));
  CHECK(neighbour_sim(*shrunk, 0, 3) == Approx(1 / std::sqrt(2.0) * 1 / 3));
  ItemKNN jac_shrunk(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(1).neighbors(10));
  jac_shrunk->fit(e.s.train);
  CHECK(neighbour_sim(*jac_shrunk, 1, 2) == Approx(2.0 / 3 * 2 / 3));  // n = 2, lambda = 1
}

TEST_CASE("itemknn: rating-based similarities by hand (cosine, adjusted cosine, pearson)", "[models]") {
  const Example e = example_a();
  // Rating mode keeps the dense similarity, so every pair can be read.
  auto dense = [&](const std::string& name) {
    ItemKNN m(e.ctx(), KNNOptions().similarity(name).shrinkage(0).mode("rating"));
    m->fit(e.s.train);
    CHECK(m->sim.diagonal().abs().sum().item<float>() == 0.0f);  // never its own neighbour
    return m->sim.clone();
  };
  // Cosine on rating vectors over users: i0 = (5, 4, 0), i1 = (3, 1, 2), i2 = (4, 0, 5):
  // (15 + 4) / (sqrt(41) sqrt(14)); (20) / (sqrt(41) sqrt(41)).
  const auto cs = dense("cosine");
  CHECK(cs[0][1].item<double>() == Approx(19 / std::sqrt(41.0 * 14.0)));
  CHECK(cs[0][2].item<double>() == Approx(20 / 41.0));
  CHECK(cs[1][0].item<double>() == Approx(cs[0][1].item<double>()));
  // Adjusted cosine: ratings minus the user's mean (u0 4, u1 7/3, u2 3.5):
  //   u0: i0 +1, i1 -1, i2 0;  u1: i0 +5/3, i1 -4/3, i3 -1/3;  u2: i1 -1.5, i2 +1.5.
  // (i0, i1) over u0, u1: ab = -1 - 20/9 = -29/9, aa = 34/9, bb = 25/9 -> -29 / sqrt(850).
  // (i1, i2) over u0, u2: ab = -2.25, aa = 3.25, bb = 2.25 -> -1.5 / sqrt(3.25).
  // (i0, i3) over u1: (5/3)(-1/3) / (5/3 * 1/3) = -1;  (i0, i2) over u0: bb = 0 -> 0.
  const auto ac = dense("adjusted_cosine");
  CHECK(ac[0][1].item<double>() == Approx(-29 / std::sqrt(850.0)));
  CHECK(ac[1][2].item<double>() == Approx(-1.5 / std::sqrt(3.25)));
  CHECK(ac[0][3].item<double>() == Approx(-1.0));
  CHECK(ac[0][2].item<double>() == 0.0);
  // Pearson over co-raters: (i0, i1) over u0, u1: (5, 4) vs (3, 1): +1; (i1, i2) over u0, u2:
  // (3, 2) vs (4, 5): -1; (i0, i2): one co-rater, zero variance -> 0.
  const auto pe = dense("pearson");
  CHECK(pe[0][1].item<double>() == Approx(1.0));
  CHECK(pe[1][2].item<double>() == Approx(-1.0));
  CHECK(pe[0][2].item<double>() == 0.0);
  CHECK(pe[4].abs().sum().item<float>() == 0.0f);  // the item nobody rated

  // Example B: 3 users x 2 items, i0 = (1, 2, 3), i1 = (2, 2, 5). Pearson: centred (-1, 0, 1)
  // and (-1, -1, 2): 3 / sqrt(2 * 6); cosine: (2 + 4 + 15) / (sqrt(14) sqrt(33)); with
  // shrinkage 3 and n = 3: x 1/2.
  const Example b = make_tiny_example({0, 0, 1, 1, 2, 2}, {0, 1, 0, 1, 0, 1}, 3, 2, {1, 2, 2, 2, 3, 5});
  ItemKNN pb(b.ctx(), KNNOptions().similarity("pearson").shrinkage(0).mode("rating"));
  pb->fit(b.s.train);
  CHECK(pb->sim[0][1].item<double>() == Approx(3 / std::sqrt(12.0)));
  ItemKNN pb3(b.ctx(), KNNOptions().similarity("pearson").shrinkage(3).mode("rating"));
  pb3->fit(b.s.train);
  CHECK(pb3->sim[0][1].item<double>() == Approx(3 / std::sqrt(12.0) / 2));
  ItemKNN cb(b.ctx(), KNNOptions().similarity("cosine").shrinkage(0).mode("rating"));
  cb->fit(b.s.train);
  CHECK(cb->sim[0][1].item<double>() == Approx(21 / std::sqrt(14.0 * 33.0)));
}

TEST_CASE("itemknn: ALS baseline (one epoch by hand) and pearson_baseline", "[models]") {
  const Example e = example_a();
  ItemKNN m(e.ctx(), KNNOptions().similarity("pearson_baseline").shrinkage(0).mode("rating").baseline("als")
                         .baseline_epochs(1).baseline_reg_item(10).baseline_reg_user(15));
  m->fit(e.s.train);
  // mu = 26 / 8 = 3.25. Items first (b_u = 0): b_i = sum (r - mu) / (10 + n_i).
  const double mu = 3.25;
  const double bi[5] = {(5 + 4 - 2 * mu) / 12, (3 + 1 + 2 - 3 * mu) / 13, (4 + 5 - 2 * mu) / 12, (2 - mu) / 11, 0.0};
  // Then users: b_u = sum (r - mu - b_i) / (15 + n_u).
  const double bu[4] = {((5 - mu - bi[0]) + (3 - mu - bi[1]) + (4 - mu - bi[2])) / 18,
                        ((4 - mu - bi[0]) + (1 - mu - bi[1]) + (2 - mu - bi[3])) / 18,
                        ((2 - mu - bi[1]) + (5 - mu - bi[2])) / 17, 0.0};
  CHECK(m->mu.item<double>() == Approx(mu));
  for (int i = 0; i < 5; ++i) CHECK(m->bi[i].item<double>() == Approx(bi[i]).margin(1e-6));
  for (int u = 0; u < 4; ++u) CHECK(m->bu[u].item<double>() == Approx(bu[u]).margin(1e-6));
  // Residuals r_ui - (mu + b_u + b_i) are what the model stores per training pair (CSR order).
  CHECK(m->train_resid[0].item<double>() == Approx(5 - mu - bu[0] - bi[0]));
  CHECK(m->train_resid[8].item<double>() == 0.0);  // the sentinel
  // pearson_baseline(i0, i1) over u0, u1: sum e0 e1 / sqrt(sum e0^2 sum e1^2) on residuals.
  auto res = [&](int u, int i, double r) { return r - mu - bu[u] - bi[i]; };
  const double a0 = res(0, 0, 5), a1 = res(1, 0, 4), b0 = res(0, 1, 3), b1 = res(1, 1, 1);
  CHECK(m->sim[0][1].item<double>() == Approx((a0 * b0 + a1 * b1) / std::sqrt((a0 * a0 + a1 * a1) * (b0 * b0 + b1 * b1))));

  // A user nobody knows and an item nobody rated: the baseline (b_u = b_i = 0 there).
  const auto all = m->score_all(longs({3}));
  CHECK(all[0][4].item<double>() == Approx(mu));
  CHECK(torch::isfinite(all).all().item<bool>());
  check_score_agrees(*m);
}

TEST_CASE("itemknn: top-k pruning with ties, ranking scores by hand", "[models]") {
  const Example e = example_a();
  // cos(i1, i0) = cos(i1, i2) = 2 / sqrt(6) exactly: with k = 1 the lower index wins.
  ItemKNN k1(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(1));
  k1->fit(e.s.train);
  CHECK(k1->nbr_index[1][0].item<int64_t>() == 0);
  CHECK(k1->nbr_index[0][0].item<int64_t>() == 1);  // i0: i1 (0.816) beats i3 (0.707), i2 (0.5)

  // k = 2: i0 -> {i1 .816, i3 .707}; i1 -> {i0 .816, i2 .816}; i2 -> {i1 .816, i0 .5};
  // i3 -> {i0 .707, i1 .577}; i4 -> none.
  ItemKNN m(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(2));
  m->fit(e.s.train);
  const double c2 = 2 / std::sqrt(6.0), c3 = 1 / std::sqrt(3.0), h = 1 / std::sqrt(2.0);
  CHECK(torch::equal(m->nbr_index[0], longs({1, 3})));
  CHECK(m->nbr_sim[2][1].item<double>() == Approx(0.5));
  const auto all = m->score_all(longs({0, 2, 3}));
  // u0 has {i0, i1, i2}: score(u0, i) = sum of s_ij over i's neighbours j that u0 has.
  CHECK(all[0][0].item<double>() == Approx(c2));           // i0: i1 (i3 not u0's)
  CHECK(all[0][1].item<double>() == Approx(2 * c2));       // i1: i0 + i2
  CHECK(all[0][2].item<double>() == Approx(c2 + 0.5));     // i2: i1 + i0
  CHECK(all[0][3].item<double>() == Approx(h + c3));       // i3: i0 + i1
  CHECK(all[0][4].item<double>() == 0.0);                  // nobody's item
  // u2 has {i1, i2}.
  CHECK(all[1][0].item<double>() == Approx(c2));           // i0: i1
  CHECK(all[1][3].item<double>() == Approx(c3));           // i3: i1
  // u3 has nothing: all zero, finite.
  CHECK(all[2].abs().sum().item<float>() == 0.0f);
  check_score_agrees(*m);
}

TEST_CASE("itemknn: rating prediction with the mean baseline by hand, fallback", "[models]") {
  const Example e = example_a();
  // Jaccard (binary): J(i3, i0) = 1/2, J(i3, i1) = 1/3, J(i3, i2) = 0; J(i0, i1) = 2/3,
  // J(i0, i2) = 1/3. Item means: i0 4.5, i1 2, i2 4.5, i3 2; i4 -> the global mean 3.25.
  ItemKNN m(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(0).mode("rating").baseline("mean").neighbors(2));
  m->fit(e.s.train);
  const auto all = m->score_all(longs({0, 2, 3}));
  // u0 (i0 5, i1 3, i2 4) for i3: neighbours i0, i1 (i2 has s = 0):
  //   2 + (1/2 (5 - 4.5) + 1/3 (3 - 2)) / (1/2 + 1/3) = 2 + 0.7.
  CHECK(all[0][3].item<double>() == Approx(2.7));
  // u2 (i1 2, i2 5) for i0: 4.5 + (2/3 (2 - 2) + 1/3 (5 - 4.5)) / 1 = 4.5 + 1/6.
  CHECK(all[1][0].item<double>() == Approx(4.5 + 1.0 / 6));
  // Fallback to the baseline: i4 has no similar item; u3 rated nothing.
  CHECK(all[0][4].item<double>() == Approx(3.25));
  CHECK(all[2][0].item<double>() == Approx(4.5));
  CHECK(all[2][4].item<double>() == Approx(3.25));
  check_score_agrees(*m);
  // k = 1: only the most similar rated item: u0 -> i3 uses i0: 2 + 0.5; u2 -> i0 uses i1: 4.5.
  ItemKNN k1(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(0).mode("rating").baseline("mean").neighbors(1));
  k1->fit(e.s.train);
  CHECK(k1->score(longs({0, 2}), longs({3, 0}))[0].item<double>() == Approx(2.5));
  CHECK(k1->score(longs({0, 2}), longs({3, 0}))[1].item<double>() == Approx(4.5));
  check_score_agrees(*k1);
}

TEST_CASE("userknn: similarities, pruning and ranking scores by hand", "[models]") {
  const Example e = example_a();
  // User vectors over items: u0 {i0,i1,i2}, u1 {i0,i1,i3}, u2 {i1,i2}, u3 {}.
  // cos(u0,u1) = 2/3, cos(u0,u2) = 2/sqrt(6), cos(u1,u2) = 1/sqrt(6).
  UserKNN m(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(1));
  m->fit(e.s.train);
  CHECK(torch::equal(m->nbr_index.select(1, 0), longs({2, 0, 0, 3})));  // u3: none (itself, 0)
  CHECK(m->nbr_sim[1][0].item<double>() == Approx(2.0 / 3));
  const auto all = m->score_all(longs({0, 1, 3}));
  // u0's neighbour u2 has {i1, i2}; u1's neighbour u0 has {i0, i1, i2}.
  CHECK(all[0][0].item<double>() == 0.0);
  CHECK(all[0][1].item<double>() == Approx(2 / std::sqrt(6.0)));
  CHECK(all[1][2].item<double>() == Approx(2.0 / 3));
  CHECK(all[1][3].item<double>() == 0.0);
  CHECK(all[2].abs().sum().item<float>() == 0.0f);
  check_score_agrees(*m);
  // k = 2: u0 -> {u2, u1}: score(u0, i1) = 2/sqrt(6) + 2/3, score(u0, i3) = 2/3.
  UserKNN m2(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(2));
  m2->fit(e.s.train);
  CHECK(m2->score(longs({0, 0}), longs({1, 3}))[0].item<double>() == Approx(2 / std::sqrt(6.0) + 2.0 / 3));
  CHECK(m2->score(longs({0, 0}), longs({1, 3}))[1].item<double>() == Approx(2.0 / 3));
  check_score_agrees(*m2);

  // Ratings: Pearson(u0, u1) over i0, i1: (5, 3) vs (4, 1): +1. Adjusted cosine centres by the
  // item means (i0 4.5, i1 2, i2 4.5, i3 2): u0 (.5, 1, -.5), u1 (-.5, -1, 0 at i3),
  // u2 (0 at i1, .5 at i2): (u0, u1) over i0, i1: -1.25 / 1.25 = -1; (u0, u2) over i1, i2:
  // -0.25 / sqrt(1.25 * 0.25).
  UserKNN pe(e.ctx(), KNNOptions().similarity("pearson").shrinkage(0).mode("rating"));
  pe->fit(e.s.train);
  CHECK(pe->sim[0][1].item<double>() == Approx(1.0));
  UserKNN ac(e.ctx(), KNNOptions().similarity("adjusted_cosine").shrinkage(0).mode("rating"));
  ac->fit(e.s.train);
  CHECK(ac->sim[0][1].item<double>() == Approx(-1.0));
  CHECK(ac->sim[0][2].item<double>() == Approx(-0.25 / std::sqrt(1.25 * 0.25)));
  // Jaccard with shrinkage 1: J(u0, u2) = 2/3, n = 2 -> x 2/3.
  UserKNN js(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(1).neighbors(3));
  js->fit(e.s.train);
  CHECK(neighbour_sim(*js, 0, 2) == Approx(2.0 / 3 * 2 / 3));
}

TEST_CASE("itemknn/userknn: column pruning by hand (the transposed k-lists)", "[models]") {
  const Example e = example_a();
  const double c2 = 2 / std::sqrt(6.0), h = 1 / std::sqrt(2.0);
  // UserKNN k = 1: u0 -> u2 (2/sqrt 6 beats 2/3), u1 -> u0 (2/3), u2 -> u0 (2/sqrt 6), u3 -> none.
  // Column: u0 counts for u1 and u2 ... transposed: u0's entries are u1 (2/3) and u2 (2/sqrt 6),
  // u2's is u0 (2/sqrt 6), u1 and u3 have none (u3 keeps its zero padding).
  UserKNN u(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(1).prune("column"));
  u->fit(e.s.train);
  CHECK(torch::equal(u->nbr_ptr, longs({0, 2, 2, 3, 4})));
  CHECK(torch::equal(u->nbr_list, longs({1, 2, 0, 3})));
  CHECK(u->nbr_weight[0].item<double>() == Approx(2.0 / 3));
  CHECK(u->nbr_weight[3].item<double>() == 0.0);
  const auto ua = u->score_all(longs({0, 1, 2}));
  // u0: u1 has {i0, i1, i3}, u2 has {i1, i2}.
  CHECK(ua[0][0].item<double>() == Approx(2.0 / 3));
  CHECK(ua[0][1].item<double>() == Approx(2.0 / 3 + c2));
  CHECK(ua[0][2].item<double>() == Approx(c2));
  CHECK(ua[0][3].item<double>() == Approx(2.0 / 3));
  CHECK(ua[0][4].item<double>() == 0.0);
  CHECK(ua[1].abs().sum().item<float>() == 0.0f);  // nobody keeps u1 as a neighbour
  CHECK(ua[2][0].item<double>() == Approx(c2));     // u0's items {i0, i1, i2}
  CHECK(ua[2][3].item<double>() == 0.0);
  check_score_agrees(*u);

  // ItemKNN k = 2 (lists as in the row test): i0 -> {i1, i3}, i1 -> {i0, i2}, i2 -> {i1, i0},
  // i3 -> {i0, i1}. Column: score(u, i) = sum over u's items j with i in j's list of s_ji.
  ItemKNN m(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(2).prune("column"));
  m->fit(e.s.train);
  const auto all = m->score_all(longs({0, 2}));
  // u0 has {i0, i1, i2}.
  CHECK(all[0][0].item<double>() == Approx(c2 + 0.5));  // from i1 and i2
  CHECK(all[0][1].item<double>() == Approx(2 * c2));    // from i0 and i2
  CHECK(all[0][2].item<double>() == Approx(c2));        // from i1 (i2 is in neither i0's list)
  CHECK(all[0][3].item<double>() == Approx(h));         // from i0
  CHECK(all[0][4].item<double>() == 0.0);
  // u2 has {i1, i2}.
  CHECK(all[1][0].item<double>() == Approx(c2 + 0.5));
  CHECK(all[1][3].item<double>() == 0.0);
  check_score_agrees(*m);
  // Row pruning of the same model scores i2 for u0 as c2 + 0.5: the two rules differ.
  ItemKNN row(e.ctx(), KNNOptions().similarity("cosine").shrinkage(0).neighbors(2));
  row->fit(e.s.train);
  CHECK(row->score(longs({0}), longs({2}))[0].item<double>() == Approx(c2 + 0.5));
}

TEST_CASE("userknn: rating prediction with the mean baseline by hand, fallback", "[models]") {
  const Example e = example_a();
  // Jaccard: J(u2, u0) = 2/3, J(u2, u1) = 1/4, J(u0, u1) = 1/2. User means: u0 4, u1 7/3,
  // u2 3.5, u3 -> the global mean 3.25.
  UserKNN m(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(0).mode("rating").baseline("mean").neighbors(2));
  m->fit(e.s.train);
  const auto all = m->score_all(longs({2, 3}));
  // u2 for i0 (rated by u0: 5, u1: 4): 3.5 + (2/3 (5 - 4) + 1/4 (4 - 7/3)) / (2/3 + 1/4).
  CHECK(all[0][0].item<double>() == Approx(3.5 + (2.0 / 3 + 1.0 / 4 * 5 / 3) / (2.0 / 3 + 1.0 / 4)));
  // u2 for i3 (rated by u1: 2): 3.5 + (2 - 7/3) = 3.5 - 1/3.
  CHECK(all[0][3].item<double>() == Approx(3.5 - 1.0 / 3));
  // Fallback: nobody rated i4; u3 has no similar user.
  CHECK(all[0][4].item<double>() == Approx(3.5));
  CHECK(all[1][0].item<double>() == Approx(3.25));
  check_score_agrees(*m);
  // k = 1: u2 for i0 takes u0 only: 3.5 + 1.
  UserKNN k1(e.ctx(), KNNOptions().similarity("jaccard").shrinkage(0).mode("rating").baseline("mean").neighbors(1));
  k1->fit(e.s.train);
  CHECK(k1->score(longs({2}), longs({0}))[0].item<double>() == Approx(4.5));
  check_score_agrees(*k1);
  // ALS baseline and pearson_baseline run and agree too.
  UserKNN pb(e.ctx(), KNNOptions().similarity("pearson_baseline").mode("rating"));
  pb->fit(e.s.train);
  check_score_agrees(*pb);
}

TEST_CASE("itemknn/userknn: bad options and missing ratings are clear errors", "[models]") {
  const Example e = example_a();
  auto cfg_with = [](const std::string& model, const std::string& key_value) {
    return make_config("model: {name: " + model + ", " + key_value + "}\n");
  };
  for (const std::string model : {"itemknn", "userknn"}) {
    auto build = [&](const Config& c) {
      const ModelContext ctx{e.d.n_users(), e.d.n_items(), &c, &e.d, &e.s};
      if (model == "itemknn") return ItemKNN(ctx).ptr()->n_items();
      return UserKNN(ctx).ptr()->n_items();
    };
    const Config bad_sim = cfg_with(model, "similarity: euclid");
    CHECK_THROWS_WITH(build(bad_sim), Contains("model.similarity") && Contains("'euclid'") &&
                                          Contains("cosine, adjusted_cosine, pearson, pearson_baseline, jaccard"));
    const Config zero_k = cfg_with(model, "neighbors: 0");
    CHECK_THROWS_WITH(build(zero_k), Contains("model.neighbors") && Contains(">= 1"));
    const Config neg_shrink = cfg_with(model, "shrinkage: -1");
    CHECK_THROWS_WITH(build(neg_shrink), Contains("model.shrinkage"));
    const Config bad_mode = cfg_with(model, "mode: both");
    CHECK_THROWS_WITH(build(bad_mode), Contains("model.mode") && Contains("ranking, rating"));
    const Config bad_prune = cfg_with(model, "prune: cols");
    CHECK_THROWS_WITH(build(bad_prune), Contains("model.prune") && Contains("'cols'") && Contains("row, column"));
    const Config rating_column = cfg_with(model, "mode: rating, prune: column");
    CHECK_THROWS_WITH(build(rating_column), Contains("model.prune 'column' applies to model.mode 'ranking' only"));
  }
  // The options struct is checked too.
  CHECK_THROWS_WITH(ItemKNN(e.ctx(), KNNOptions().similarity("euclid")),
                    Contains("unknown similarity 'euclid'") && Contains("known: cosine, adjusted_cosine, pearson"));
  CHECK_THROWS_WITH(UserKNN(e.ctx(), KNNOptions().neighbors(0)), Contains("model.neighbors must be >= 1, got 0"));
  // Ratings: needed by rating mode and by rating-based similarities, never by binary ranking.
  CHECK_THROWS_WITH(ItemKNN(ModelContext{4, 5, nullptr}, KNNOptions().mode("rating")),
                    Contains("model.mode 'rating' needs the training ratings"));
  CHECK_THROWS_WITH(UserKNN(ModelContext{4, 5, nullptr}, KNNOptions().similarity("pearson")),
                    Contains("model.similarity 'pearson' needs the training ratings"));
  Example unrated = example_a();
  unrated.d.rating = Column<float>();
  CHECK_THROWS_WITH(ItemKNN(unrated.ctx(), KNNOptions().similarity("adjusted_cosine")), Contains("has none"));
  // Binary ranking needs neither data nor a split: the storage is sized by fit().
  ItemKNN plain(ModelContext{4, 5, nullptr}, KNNOptions().shrinkage(0));
  plain->fit(e.s.train);
  CHECK(plain->train_keys.size(0) == 9);
  CHECK(plain->score(longs({0}), longs({3}))[0].item<double>() == Approx(1 / std::sqrt(2.0) + 1 / std::sqrt(3.0)));
  // A checkpoint loads into a freshly built model of the same context.
  TempDir t;
  torch::serialize::OutputArchive out;
  ItemKNN fitted(e.ctx(), KNNOptions().mode("rating").similarity("pearson_baseline"));
  fitted->fit(e.s.train);
  fitted->save(out);
  out.save_to(t.file("m.pt"));
  ItemKNN fresh(e.ctx(), KNNOptions().mode("rating").similarity("pearson_baseline"));
  torch::serialize::InputArchive in;
  in.load_from(t.file("m.pt"));
  fresh->load(in);
  const auto users = torch::arange(4, torch::kLong);
  CHECK(torch::equal(fresh->score_all(users), fitted->score_all(users)));
}

// The registry-wide contract (tests/test_models.cpp) for each mode: synthetic data built from the
// model's own YAML, score vs score_all, a save/load round trip into a fresh model, and the
// TorchScript export reproducing score and score_all.
TEST_CASE("itemknn/userknn: contract in both modes (score_all, save/load, TorchScript)", "[models]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"itemknn", {}},
      {"itemknn", {"model.similarity=pearson", "model.neighbors=7"}},
      {"itemknn", {"model.prune=column", "model.neighbors=5"}},
      {"itemknn", {"model.mode=rating", "model.similarity=pearson_baseline", "model.neighbors=5"}},
      {"itemknn", {"model.mode=rating", "model.similarity=cosine", "model.baseline=mean", "model.neighbors=40"}},
      {"userknn", {}},
      {"userknn", {"model.similarity=jaccard", "model.neighbors=3"}},
      {"userknn", {"model.prune=column", "model.neighbors=4"}},
      {"userknn", {"model.mode=rating", "model.similarity=pearson_baseline", "model.neighbors=5"}},
      {"userknn", {"model.mode=rating", "model.similarity=adjusted_cosine", "model.baseline=mean"}},
  };
  for (const auto& [name, sets] : cases) {
    std::string label = name;
    for (const auto& s : sets) label += " " + s;
    DYNAMIC_SECTION(label) {
      const Config cfg = synthetic_config(name, sets);
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      auto build = [&]() -> std::shared_ptr<KNNImpl> {
        if (name == "itemknn") return std::make_shared<ItemKNNImpl>(ctx);
        return std::make_shared<UserKNNImpl>(ctx);
      };
      auto model = build();
      model->fit(split.train);
      torch::NoGradGuard no_grad;
      const auto users = longs({0, 3, 3, 7});
      const auto items = longs({0, 1, 5, d.n_items() - 1});
      const auto all = model->score_all(users);
      REQUIRE(all.sizes() == torch::IntArrayRef({4, d.n_items()}));
      CHECK(torch::isfinite(all).all().item<bool>());
      CHECK(torch::allclose(model->score(users, items), all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
      // Scores are not trivially zero.
      CHECK(all.abs().sum().item<double>() > 0);

      TempDir t;
      check_checkpoint_roundtrip(*model, [&] { return std::shared_ptr<RecommenderImpl>(build()); }, users, t.path.string());
      torch::manual_seed(3);
      check_export_roundtrip(*model, cfg, d, split, torch::arange(0, d.n_users(), 17, torch::kLong), t.path.string());
    }
  }
}

TEST_CASE("knn: asymmetric cosine by hand", "[models]") {
  // Co-raters n = 2 with dot 2; |x|^2 = 4 entries, |y|^2 = 2 entries (binary).
  KNNCoSums s;
  s.n = 2, s.ab = 2;
  KNNEntity x, y;
  x.count = 4, x.norm = 2.0;
  y.count = 2, y.norm = std::sqrt(2.0);
  // alpha 0.5 is the cosine: 2 / (2 sqrt2); alpha 0.25: 2 / (4^0.25 * 2^0.75).
  CHECK(make_knn_similarity("asymmetric_cosine", 0.5)->value(s, x, y) == Approx(2 / (2 * std::sqrt(2.0))));
  CHECK(make_knn_similarity("asymmetric_cosine", 0.25)->value(s, x, y) == Approx(2 / (std::pow(4.0, 0.25) * std::pow(2.0, 0.75))));
  CHECK(make_knn_similarity("asymmetric_cosine", 1.0)->value(s, x, y) == Approx(2.0 / 4));
}
