#include "model_checks.h"

#include "helpers.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <random>

#include <torch/script.h>
#include <torch/torch.h>

#include <fmt/core.h>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/recommender.h"
#include "models/registry.h"
#include "trainers/export.h"
#include "trainers/trainer.h"

namespace rzoo::test {

Dataset tiny_genre_dataset() {
  Dataset d;
  for (const char* u : {"u0", "u1"}) d.users.add(u);
  for (const char* i : {"i0", "i1", "i2", "i3"}) d.items.add(i);
  d.user = {0, 1, 1};
  d.item = {0, 1, 2};
  d.rating = {5, 4, 2};
  Feature g;
  g.name = "genres";
  g.kind = Feature::Kind::TokenSeq;
  g.vocab = {"a", "b", "c"};
  g.offsets = {0, 1, 3, 5, 6};
  g.tokens = {0, 0, 1, 1, 2, 2};
  d.item_info.features.push_back(g);
  return d;
}

Csr grouped_csr(int64_t n_users, int64_t n_items, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int64_t> rows, cols;
  for (int64_t u = 0; u < n_users; ++u)
    for (int64_t i = 0; i < n_items; ++i)
      if (std::bernoulli_distribution((u % 2) == (i % 2) ? 0.35 : 0.05)(gen)) rows.push_back(u), cols.push_back(i);
  return Csr::from_pairs(n_users, n_items, rows, cols);
}

TinyExample make_tiny_example(const std::vector<int64_t>& users, const std::vector<int64_t>& items, int64_t n_users,
                              int64_t n_items, std::vector<float> ratings) {
  TinyExample e;
  e.d.name = "tiny";
  for (int64_t u = 0; u < n_users; ++u) e.d.users.add("u" + std::to_string(u));
  for (int64_t i = 0; i < n_items; ++i) e.d.items.add("i" + std::to_string(i));
  e.d.user = std::vector<int32_t>(users.begin(), users.end());
  e.d.item = std::vector<int32_t>(items.begin(), items.end());
  if (!ratings.empty()) e.d.rating = std::move(ratings);
  e.s.train = Csr::from_pairs(n_users, n_items, users, items);
  e.s.valid = Csr::from_pairs(n_users, n_items, {}, {});
  e.s.test = Csr::from_pairs(n_users, n_items, {}, {});
  for (size_t r = 0; r < users.size(); ++r) e.s.train_rows.push_back(static_cast<int64_t>(r));
  return e;
}

TinyExample next_item_chain() {
  std::vector<int64_t> users, items;
  for (int64_t u = 0; u < 60; ++u)
    for (int64_t k = 0; k < 12; ++k) {
      users.push_back(u);
      items.push_back((u + k) % 30);
    }
  return make_tiny_example(users, items, 60, 30);
}

LossChange sequence_loss_change(const std::string& name, const Config& cfg, bool prefix, double lr, uint64_t epochs) {
  const TinyExample e = next_item_chain();
  const Split split = split_dataset(e.d, cfg);
  torch::manual_seed(1);
  Recommender m = make_model(name, ModelContext{e.d.n_users(), e.d.n_items(), &cfg, &e.d, &split});
  auto sampler = make_sampler("uniform", split.train);
  auto batcher = make_batcher(split, InputType::Sequence, *sampler, prefix ? 64 : 8, 1, SequenceOptions{8, prefix});
  auto opt = make_optimizer("adam", m->parameters(), lr, 0.0, 0.0);
  LossChange c{};
  torch::manual_seed(2);
  c.before = epoch_loss(*m, *batcher, nullptr, 0);
  for (uint64_t ep = 0; ep < epochs; ++ep) epoch_loss(*m, *batcher, opt.get(), ep);
  torch::manual_seed(2);
  c.after = epoch_loss(*m, *batcher, nullptr, 0);
  return c;
}

double hand_item_term(const std::string& loss, const std::function<double(int64_t)>& score, int64_t n_items, int64_t target,
                      int64_t neg) {
  if (loss == "ce") {
    std::vector<double> z(static_cast<size_t>(n_items));
    double mx = -1e300;
    for (int64_t i = 0; i < n_items; ++i) mx = std::max(mx, z[static_cast<size_t>(i)] = score(i));
    double se = 0;
    for (double v : z) se += std::exp(v - mx);
    return mx + std::log(se) - z[static_cast<size_t>(target)];
  }
  REQUIRE(loss == "bce");
  return std::log1p(std::exp(-score(target))) + std::log1p(std::exp(score(neg)));
}

double hand_sequence_loss(const std::string& loss, const std::function<double(int64_t, int64_t, int64_t)>& score,
                          const at::Tensor& items, const at::Tensor& neg_items, int64_t pad, int64_t n_items,
                          int64_t* positions) {
  double total = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < items.size(0); ++r)
    for (int64_t j = 0; j < items.size(1); ++j) {
      const int64_t t = items[r][j].item<int64_t>();
      if (t == pad) continue;
      total += hand_item_term(loss, [&](int64_t i) { return score(r, j, i); }, n_items, t, neg_items[r][j].item<int64_t>());
      ++n;
    }
  if (positions) *positions = n;
  return total / static_cast<double>(std::max<int64_t>(n, 1));
}

double epoch_loss(RecommenderImpl& model, BatchSource& batcher, torch::optim::Optimizer* opt, uint64_t epoch,
                  const std::function<void(const Batch&)>& check, int64_t* rows) {
  std::optional<torch::NoGradGuard> no_grad;
  if (!opt) no_grad.emplace();
  batcher.start_epoch(1, epoch);
  double total = 0;
  int64_t n = 0;
  Batch b;
  while (batcher.next(b)) {
    if (check) check(b);
    auto loss = model.loss(b);
    REQUIRE(loss.dim() == 0);
    REQUIRE(std::isfinite(loss.item<double>()));
    if (opt) {
      opt->zero_grad();
      loss.backward();
      opt->step();
    }
    total += loss.item<double>() * static_cast<double>(b.size());
    n += b.size();
  }
  if (rows) *rows = n;
  return total / static_cast<double>(std::max<int64_t>(n, 1));
}

void check_checkpoint_roundtrip(RecommenderImpl& model, const std::function<std::shared_ptr<RecommenderImpl>()>& make_fresh,
                                const at::Tensor& users, const std::string& dir) {
  torch::NoGradGuard no_grad;
  const auto all = model.score_all(users);
  torch::serialize::OutputArchive out;
  model.save(out);
  out.save_to(dir + "/m.pt");
  auto fresh = make_fresh();
  torch::serialize::InputArchive in;
  in.load_from(dir + "/m.pt");
  fresh->load(in);
  fresh->eval();
  CHECK(torch::equal(fresh->score_all(users), all));
}

torch::jit::Module check_export_roundtrip(RecommenderImpl& model, const Config& cfg, const Dataset& data, const Split& split,
                                          const at::Tensor& users, const std::string& dir) {
  torch::NoGradGuard no_grad;
  ExportInputs ex;
  ex.config = &cfg;
  ex.data = &data;
  ex.split = &split;
  export_model(model, ex, dir + "/model.pt");
  torch::jit::Module jm = torch::jit::load(dir + "/model.pt");
  const auto many_u = torch::randint(data.n_users(), {64}, torch::kLong), many_i = torch::randint(data.n_items(), {64}, torch::kLong);
  CHECK(torch::allclose(jm.run_method("score", many_u, many_i).toTensor(), model.score(many_u, many_i).to(torch::kFloat), 1e-5, 1e-5));
  CHECK(torch::allclose(jm.run_method("_score_all", users).toTensor().to(torch::kFloat), model.score_all(users).to(torch::kFloat), 1e-5,
                        1e-5));
  return jm;
}

HistoryCase check_history_serving(RecommenderImpl& model, torch::jit::Module& jm, const Dataset& data, int64_t user,
                                  int64_t k) {
  torch::NoGradGuard no_grad;
  HistoryCase hc;
  std::vector<int64_t> idx;
  at::Tensor expect;
  if (model.folds_in()) {
    // A known user's training items, sent as a new user's history; the C++ fold-in of the same.
    REQUIRE(jm.attr("history_len").toInt() == 0);
    const Csr train = Csr::from_interactions(data.n_users(), data.n_items(), data.user, data.item);
    idx.assign(train.row_begin(user), train.row_end(user));
    REQUIRE(!idx.empty());
    expect = model.score_fold_in(torch::tensor(idx, torch::kLong)).to(torch::kFloat).clone();
  } else {
    const int64_t L = model.history_len();
    REQUIRE(L > 0);
    REQUIRE(jm.attr("history_len").toInt() == L);
    const auto window = jm.attr("hist").toTensor().select(0, user).unsqueeze(0).clone();  // [1, L]
    REQUIRE(window.size(1) == L);
    for (int64_t j = 0; j < L; ++j) {
      const int64_t i = window[0][j].item<int64_t>();
      if (i != data.n_items()) idx.push_back(i);
    }
    REQUIRE(!idx.empty());
    // The C++ model on the same window.
    expect = model.score_history(window).to(torch::kFloat)[0].clone();
  }
  c10::List<std::string> list;
  for (int64_t i : idx) {
    hc.items.push_back(data.items.raws()[static_cast<size_t>(i)]);
    list.push_back(hc.items.back());
  }
  // The history's items masked.
  for (int64_t i : idx) expect[i] = -std::numeric_limits<float>::infinity();
  const auto [vals, top] = expect.topk(k);
  const auto out = jm.run_method("recommend_history", list, k).toTuple();
  const auto got_items = out->elements()[0].toList(), got_scores = out->elements()[1].toList();
  REQUIRE(got_items.size() == static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    hc.rec_items.push_back(got_items.get(static_cast<size_t>(j)).toStringRef());
    hc.rec_scores.push_back(got_scores.get(static_cast<size_t>(j)).toDouble());
    CHECK(hc.rec_scores.back() == Approx(vals[j].item<double>()).epsilon(1e-5).margin(1e-5));
    // Items may swap where scores tie: the returned item must score its returned value.
    const int64_t it = data.items.find(hc.rec_items.back());
    CHECK(expect[it].item<double>() == Approx(hc.rec_scores.back()).epsilon(1e-5).margin(1e-5));
  }
  // Unknown ids: an error naming the id, or skipped.
  c10::List<std::string> with_unknown = list.copy();
  with_unknown.push_back("no such item");
  CHECK_THROWS_WITH(jm.run_method("recommend_history", with_unknown, k), Catch::Matchers::Contains("unknown item id 'no such item'"));
  const auto skipped = jm.run_method("recommend_history", with_unknown, k, true).toTuple()->elements()[0].toList();
  CHECK(skipped.get(0).toStringRef() == hc.rec_items[0]);
  CHECK_THROWS_WITH(jm.run_method("recommend_history", c10::List<std::string>(), k), Catch::Matchers::Contains("history is empty"));

  // Explanations: the C++ evidence for the first recommended item, strongest first (stable).
  const std::string kind = model.explain_kind();
  CHECK(jm.attr("explain_kind").toStringRef() == kind);
  if (!kind.empty()) {
    const int64_t item = data.items.find(hc.rec_items[0]);
    auto [ev, w] = model.explain(torch::tensor(idx, torch::kLong), item);
    REQUIRE(ev.numel() == w.numel());
    const auto order = std::get<1>(torch::sort(w, /*stable=*/true, /*dim=*/0, /*descending=*/true));
    const auto names = kind == "items" ? data.items.raws() : kind == "users" ? data.users.raws() : model.explain_features();
    const int64_t n = std::min<int64_t>(3, ev.numel());
    for (int64_t j = 0; j < n; ++j) {
      const int64_t o = order[j].item<int64_t>();
      hc.evidence.push_back(names.at(static_cast<size_t>(ev[o].item<int64_t>())));
      hc.evidence_weights.push_back(w[o].item<double>());
    }
    const std::string user_raw = data.users.raws()[static_cast<size_t>(user)];
    for (const bool by_user : {false, true}) {
      INFO("explain" << (by_user ? "(user)" : "_history"));
      const auto out = by_user ? jm.run_method("explain", user_raw, hc.rec_items[0], int64_t{3}).toTuple()
                               : jm.run_method("explain_history", list, hc.rec_items[0], int64_t{3}).toTuple();
      const auto got = out->elements()[0].toList(), got_w = out->elements()[1].toList();
      REQUIRE(got.size() == static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) {
        CHECK(got_w.get(static_cast<size_t>(j)).toDouble() == Approx(hc.evidence_weights[static_cast<size_t>(j)]).epsilon(1e-5).margin(1e-6));
        // Names may swap where weights tie.
        if (j + 1 < n && std::abs(hc.evidence_weights[static_cast<size_t>(j)] - hc.evidence_weights[static_cast<size_t>(j) + 1]) < 1e-6) continue;
        if (j > 0 && std::abs(hc.evidence_weights[static_cast<size_t>(j)] - hc.evidence_weights[static_cast<size_t>(j) - 1]) < 1e-6) continue;
        CHECK(got.get(static_cast<size_t>(j)).toStringRef() == hc.evidence[static_cast<size_t>(j)]);
      }
    }
    CHECK_THROWS_WITH(jm.run_method("explain_history", list, std::string("no such item"), int64_t{3}),
                      Catch::Matchers::Contains("unknown item id 'no such item'"));
  } else {
    CHECK_FALSE(jm.find_method("explain"));
  }
  return hc;
}

void check_python_client(torch::jit::Module& jm, const Dataset& data, const at::Tensor& users, int64_t k,
                         const std::string& dir, const HistoryCase* history) {
  // No separate `import torch` probe (2.3 s a call): the script exits 77 when torch is missing.
  const std::string python = test_python();
  auto list = [](const at::Tensor& x) {
    std::string s = "[";
    const auto c = x.contiguous().to(torch::kDouble);
    for (int64_t i = 0; i < c.numel(); ++i) s += (i ? ", " : "") + fmt::format("{:.9g}", c.data_ptr<double>()[i]);
    return s + "]";
  };
  const auto many_u = torch::randint(data.n_users(), {64}, torch::kLong);
  const auto many_i = torch::randint(data.n_items(), {64}, torch::kLong);
  const auto js = jm.run_method("score", many_u, many_i).toTensor();
  const auto top = jm.run_method("recommend", users, k).toTuple()->elements()[0].toTensor();
  std::string rows = "[";
  for (int64_t b = 0; b < top.size(0); ++b) rows += (b ? ", " : "") + list(top[b]);
  rows += "]";
  const std::string raw_user = data.users.raws()[3];
  const auto raw_list = jm.run_method("recommend_raw", raw_user, k).toTuple()->elements()[0].toList();
  std::string raw_items = "[";
  for (size_t i = 0; i < raw_list.size(); ++i) raw_items += (i ? ", \"" : "\"") + raw_list.get(i).toStringRef() + "\"";
  raw_items += "]";
  auto strings = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
    return s + "]";
  };
  std::string hist_json;
  if (history) {
    std::vector<double> sc = history->rec_scores;
    hist_json = fmt::format(", \"history\": {}, \"history_items\": {}, \"history_scores\": {}", strings(history->items),
                            strings(history->rec_items), list(torch::tensor(sc, torch::kDouble)));
    if (!history->evidence.empty())
      hist_json += fmt::format(", \"evidence\": {}, \"evidence_weights\": {}", strings(history->evidence),
                               list(torch::tensor(history->evidence_weights, torch::kDouble)));
  }
  const fs::path cases = fs::path(dir) / "cases.json";
  std::ofstream(cases) << fmt::format("{{\"users\": {}, \"items\": {}, \"scores\": {}, \"rec_users\": {}, \"k\": {}, "
                                      "\"rec_scores\": {}, \"raw_user\": \"{}\", \"raw_items\": {}{}}}",
                                      list(many_u), list(many_i), list(js), list(users), k, rows, raw_user, raw_items, hist_json);
  const auto r = run_shell(python + " " + std::string(RZOO_TEST_SOURCE_DIR) + "/scripts/check_export.py " +
                           (fs::path(dir) / "model.pt").string() + " " + cases.string());
  INFO(r.output);
  if (r.code == 77 || r.code == 127) {  // 127: the shell found no such python
    WARN("skipped the Python check: " << python << " has no torch (apt-get install python3-torch)");
    return;
  }
  CHECK(r.code == 0);
}

}  // namespace rzoo::test
