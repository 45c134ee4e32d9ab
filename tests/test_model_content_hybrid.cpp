// Content-based and hybrid models: maths on hand-computed examples.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>

#include "datasets/dataset.h"
#include "models/general/content.h"
#include "models/general/hybrid.h"
#include "models/registry.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

// 2 users x 4 items; genres: item 0 {a}, 1 {a, b}, 2 {b, c}, 3 {c} (item 3: nobody's).
Dataset tiny() { return tiny_genre_dataset(); }

}  // namespace

TEST_CASE("content: TF-IDF vectors, profiles and cosine scores by hand", "[models]") {
  const Dataset d = tiny();
  Split s;
  s.train = Csr::from_pairs(2, 4, {0, 1, 1}, {0, 1, 2});
  s.train_rows = {0, 1, 2};
  const ModelContext ctx{2, 4, nullptr, &d, &s};
  // Binary weighting: item vectors are normalised multi-hot rows.
  Content m(ctx, ContentOptions().weighting("binary"));
  m->fit(s.train);
  const auto all = m->score_all(torch::tensor({0, 1}));
  // User 0 = item 0 = a: cos with a = 1, with {a,b} = 1/sqrt2, with {b,c} = 0, with c = 0.
  CHECK(all[0][0].item<float>() == Approx(1.0));
  CHECK(all[0][1].item<float>() == Approx(1 / std::sqrt(2.0)));
  CHECK(all[0][2].item<float>() == Approx(0.0));
  // User 1 = mean of {a,b}/sqrt2 and {b,c}/sqrt2 = (a + 2b + c) / (2 sqrt2), normalised:
  // (1, 2, 1)/sqrt6. Cold item 3 ({c}) scores 1/sqrt6 without any interaction.
  CHECK(all[1][3].item<float>() == Approx(1 / std::sqrt(6.0)));
  CHECK(all[1][1].item<float>() == Approx(3 / (std::sqrt(6.0) * std::sqrt(2.0))));
  // TF-IDF: idf = ln((1 + 4) / (1 + df)) + 1 with df(a) = 2, df(b) = 2, df(c) = 2: equal, so
  // the same vectors; the vocabulary is ordered by document frequency.
  Content t(ctx, ContentOptions());
  t->fit(s.train);
  CHECK(torch::allclose(t->score_all(torch::tensor({0, 1})), all, 1e-5, 1e-6));
  CHECK(t->vocab.size() == 3);
  // Rating-weighted profile: user 1 rated item 1 with 4 and item 2 with 2 (mean 3): weights +1
  // and -1 -> profile ({a,b} - {b,c}) / sqrt2 = (a - c) / sqrt2, normalised (1, 0, -1)/sqrt2.
  Content r(ctx, ContentOptions().weighting("binary").profile("rating"));
  r->fit(s.train);
  const auto rs = r->score_all(torch::tensor({1}));
  CHECK(rs[0][0].item<float>() == Approx(1 / std::sqrt(2.0)));
  CHECK(rs[0][3].item<float>() == Approx(-1 / std::sqrt(2.0)));
  // Errors: a feature the data lacks; no data at all.
  CHECK_THROWS_WITH(Content(ctx, ContentOptions().features({"tags"})), Contains("no item token feature 'tags'") && Contains("genres"));
  CHECK_THROWS_WITH(Content(ModelContext{2, 4, nullptr}), Contains("needs the dataset's item features"));
}

TEST_CASE("hybrid: weighted blend and reciprocal-rank fusion by hand, sub-models from YAML", "[models]") {
  const Dataset d = tiny();
  Split s;
  s.train = Csr::from_pairs(2, 4, {0, 1, 1}, {0, 1, 2});
  s.train_rows = {0, 1, 2};
  // pop scores: counts (1, 1, 1, 0); content (binary) for user 0: (1, 1/sqrt2, 0, 0).
  const Config cfg = make_config("model: {name: hybrid, models: [pop, {name: content, weighting: binary}], weights: [0.25, 0.75]}\n");
  Hybrid h(ModelContext{2, 4, &cfg, &d, &s});
  REQUIRE(h->parts().size() == 2);
  CHECK(h->parts()[1]->name() == "content");
  h->fit(s.train);
  // User 0's training item 0 is left out and gets 0. Min-max over items 1..3: pop (1, 1, 0)
  // -> (1, 1, 0); content (1/sqrt2, 0, 0) -> (1, 0, 0).
  const auto w = h->score_all(torch::tensor({0}));
  CHECK(w[0][0].item<float>() == Approx(0.0));
  CHECK(w[0][1].item<float>() == Approx(0.25 + 0.75));
  CHECK(w[0][2].item<float>() == Approx(0.25));
  CHECK(w[0][3].item<float>() == Approx(0.0));
  CHECK(h->score(torch::tensor({0}), torch::tensor({1}))[0].item<float>() == Approx(w[0][1].item<float>()));
  // RRF, k = 1, the training item ranked last: pop ranks items 1, 2, 3 as 1, 2, 3 (ties by
  // index); content ranks 1, 2, 3 likewise: item 1 = 0.25/2 + 0.75/2, item 3 = 0.25/4 + 0.75/4.
  const Config rcfg = make_config("model: {name: hybrid, method: rrf, rrf_k: 1, models: [pop, {name: content, weighting: binary}], weights: [0.25, 0.75]}\n");
  Hybrid r(ModelContext{2, 4, &rcfg, &d, &s});
  r->fit(s.train);
  const auto f = r->score_all(torch::tensor({0}));
  CHECK(f[0][1].item<float>() == Approx(0.5));
  CHECK(f[0][3].item<float>() == Approx(0.25));
  CHECK(f[0][0].item<float>() == Approx(0.0));
  // z-score over the candidates: pop (1, 1, 0) has mean 2/3, sd sqrt(2)/3.
  const Config zcfg = make_config("model: {name: hybrid, normalize: zscore, models: [pop]}\n");
  Hybrid z(ModelContext{2, 4, &zcfg, &d, &s});
  z->fit(s.train);
  CHECK(z->score_all(torch::tensor({0}))[0][3].item<float>() == Approx((0 - 2.0 / 3) / (std::sqrt(2.0) / 3)));
  // Bad configurations name the key.
  CHECK_THROWS_WITH(Hybrid(ModelContext{2, 4, &(const Config&)make_config("model: {name: hybrid, models: [pop], weights: [1, 2]}\n"), &d, &s}),
                    Contains("model.weights") && Contains("2 weights for 1 sub-models"));
  const Config bad_sub = make_config("model: {name: hybrid, models: [{name: content, nosuch: 1}]}\n");
  CHECK_THROWS_WITH(Hybrid(ModelContext{2, 4, &bad_sub, &d, &s}), Contains("nosuch"));
  const Config grad = make_config("model: {name: hybrid, models: [bpr]}\n");
  CHECK_THROWS_WITH(Hybrid(ModelContext{2, 4, &grad, &d, &s}), Contains("trained by gradient steps"));
}

TEST_CASE("hybrid: cold_start_threshold moves collaborative weight to content on weakly supported items, by hand", "[models]") {
  const Dataset d = tiny();
  Split s;
  s.train = Csr::from_pairs(2, 4, {0, 1, 1}, {0, 1, 2});
  s.train_rows = {0, 1, 2};
  // Item supports n = (1, 1, 1, 0), T = 2: g = (0.5, 0.5, 0.5, 0). pop is collaborative (weight
  // 0.25 g), content gets 0.75 (1 + (1 - g) 0.25 / 0.75).
  const Config cfg = make_config("model: {name: hybrid, cold_start_threshold: 2, models: [pop, {name: content, weighting: binary}], weights: [0.25, 0.75]}\n");
  Hybrid h(ModelContext{2, 4, &cfg, &d, &s});
  h->fit(s.train);
  // User 0, candidates 1..3: pop min-max (1, 1, 0), content (1, 0, 0).
  const auto w = h->score_all(torch::tensor({0}));
  CHECK(w[0][1].item<float>() == Approx(0.25 * 0.5 + 0.75 * (1.0 + 0.5 / 3.0)));  // = 1.0
  CHECK(w[0][2].item<float>() == Approx(0.25 * 0.5));                             // plain blend: 0.25
  CHECK(w[0][3].item<float>() == Approx(0.0));
  // A cold item (g = 0) is ranked by content alone, with the whole weight: user 1's profile is
  // (a + 2b + c) / sqrt6 (binary vectors), item 3 = {c}; min-max over candidates {0, 3}, whose
  // content scores tie: both 0. Use a history instead: {2} = (b + c) / sqrt2 -> item 3: 1/sqrt2.
  const auto f = h->score_fold_in(torch::tensor({2}, torch::kLong));
  // content over candidates {0, 1, 3}: (0, 1/2, 1/sqrt2) -> min-max (0, 0.7071, 1); pop (1, 1, 0).
  CHECK(f[3].item<float>() == Approx(0.75 * (1.0 + 1.0 / 3.0) * 1.0));  // = 1.0: content alone
  CHECK(f[0].item<float>() == Approx(0.25 * 0.5 * 1.0));
  // Without a part that scores from features: an error naming the key.
  const Config bad = make_config("model: {name: hybrid, cold_start_threshold: 2, models: [pop]}\n");
  CHECK_THROWS_WITH(Hybrid(ModelContext{2, 4, &bad, &d, &s}), Contains("model.cold_start_threshold") && Contains("content") && Contains("pop"));
}

TEST_CASE("score on many pairs is sliced and equals score_all (ease, content, hybrid)", "[models]") {
  const Config cfg = synthetic_config("ease");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  torch::manual_seed(4);
  // 70,000 pairs: more than one slice for every model here.
  const auto users = torch::randint(d.n_users(), {70000}, torch::kLong), items = torch::randint(d.n_items(), {70000}, torch::kLong);
  for (const std::string name : {"ease", "content", "hybrid"}) {
    const Config c = synthetic_config(name, name == "hybrid" ? std::vector<std::string>{"model.models=[pop, content]"} : std::vector<std::string>{});
    Recommender m = make_model(name, ModelContext{d.n_users(), d.n_items(), &c, &d, &s});
    m->fit(s.train);
    const auto expect = m->score_all(torch::arange(d.n_users())).index({users, items});
    INFO(name);
    CHECK(torch::allclose(m->score(users, items), expect, 1e-5, 1e-6));
  }
}

TEST_CASE("hybrid: every method exports to TorchScript with the same scores", "[models][export]") {
  const Config base = synthetic_config("hybrid");
  const Dataset d = load_dataset(base);
  const Split s = split_dataset(d, base);
  for (const std::string extra : {"model.method=rrf", "model.normalize=zscore", "model.normalize=none", "model.normalize=minmax",
                                  "model.cold_start_threshold=4", "model.method=rrf model.cold_start_threshold=3"}) {
    std::vector<std::string> sets = {"model.models=[pop, content, {name: itemknn, neighbors: 20}]"};
    for (size_t b = 0, e; b < extra.size(); b = e + 1) {  // one or two space-separated assignments
      e = extra.find(' ', b);
      if (e == std::string::npos) e = extra.size();
      sets.push_back(extra.substr(b, e - b));
    }
    const Config c = synthetic_config("hybrid", sets);
    Hybrid h(ModelContext{d.n_users(), d.n_items(), &c, &d, &s});
    h->fit(s.train);
    TempDir t;
    const auto users = torch::tensor({0, 5, 17, 199}, torch::kLong);
    const auto items = torch::tensor({1, 2, 3, 4}, torch::kLong);
    INFO(extra);
    torch::jit::Module m = check_export_roundtrip(*h, c, d, s, users, t.path.string());
    CHECK(torch::allclose(m.run_method("score", users, items).toTensor(), h->score(users, items), 1e-5, 1e-6));
    // Fold-in: every part folds in, so the blend does; a known user's training items give its
    // scores, in C++ and in the export.
    REQUIRE(h->folds_in());
    const auto hist = torch::tensor(std::vector<int64_t>(s.train.row_begin(5), s.train.row_end(5)), torch::kLong);
    const auto folded = h->score_fold_in(hist);
    CHECK(torch::allclose(folded, h->score_all(torch::tensor({5}))[0], 1e-5, 1e-6));
    CHECK(torch::allclose(m.run_method("score_history", hist).toTensor(), folded, 1e-5, 1e-6));
  }
  // Parts whose TorchScript reads constants (iALS's fold-in) export inside a hybrid too; a part
  // that cannot fold in makes the hybrid refuse, naming it.
  const Config c = synthetic_config("hybrid", {"model.models=[{name: ials, epochs: 2}, ease]"});
  Hybrid h(ModelContext{d.n_users(), d.n_items(), &c, &d, &s});
  h->fit(s.train);
  TempDir t;
  torch::jit::Module m = check_export_roundtrip(*h, c, d, s, torch::tensor({0, 5}, torch::kLong), t.path.string());
  const auto hist = torch::tensor({1, 2, 3}, torch::kLong);
  CHECK(torch::allclose(m.run_method("score_history", hist).toTensor(), h->score_fold_in(hist), 1e-4, 1e-5));
  // UserKNN's fold-in (its neighbours among the training users) exports inside a hybrid too.
  const Config cu = synthetic_config("hybrid", {"model.models=[{name: userknn, neighbors: 10}, ease]"});
  Hybrid hu(ModelContext{d.n_users(), d.n_items(), &cu, &d, &s});
  hu->fit(s.train);
  REQUIRE(hu->folds_in());
  TempDir tu;
  torch::jit::Module mu = check_export_roundtrip(*hu, cu, d, s, torch::tensor({0, 5}, torch::kLong), tu.path.string());
  CHECK(torch::allclose(mu.run_method("score_history", hist).toTensor(), hu->score_fold_in(hist), 1e-4, 1e-5));
  const Config cb = synthetic_config("hybrid", {"model.models=[{name: userknn, neighbors: 10, prune: column}, ease]"});
  Hybrid hb(ModelContext{d.n_users(), d.n_items(), &cb, &d, &s});
  CHECK_FALSE(hb->folds_in());
  CHECK_THROWS_WITH(hb->score_fold_in(hist), Contains("model 'hybrid' cannot fold in") && Contains("userknn"));
}
