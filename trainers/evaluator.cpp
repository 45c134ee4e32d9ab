// Evaluation (see evaluator.h for the protocols, the tie rule and the metric definitions): the
// options, the result, and evaluate(), which orchestrates the parts in trainers/eval/:
//   protocol  candidate protocols (full, uni<N>, pop<N>, given) and their words;
//   chunks    the users in chunks: scoring by the model, then per-user ranking in parallel;
//   ranking   the ranking kernel (top-K and the targets' exact ranks under the tie order);
//   metrics   ranking metrics (HR ... GAUC) and the metric names;
//   beyond    beyond-accuracy metrics (popularity, novelty, diversity, coverage, Gini);
//   rating    rating metrics (RMSE, MAE);
//   files     per-user values, rankings and item facts written to a run folder.
#include "trainers/evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/distributed.h"
#include "core/error.h"
#include "core/memory.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/eval/beyond.h"
#include "trainers/eval/chunks.h"
#include "trainers/eval/labeled.h"
#include "trainers/eval/metrics.h"
#include "trainers/eval/protocol.h"
#include "trainers/eval/rating.h"

namespace rzoo {

using namespace eval_impl;

// ---- options and result ----------------------------------------------------------------------

EvalOptions EvalOptions::from_config(const Config& cfg) {
  EvalOptions o;
  o.ks = cfg.get_int_list("eval.ks", 1);
  if (o.ks.empty()) cfg.bad("eval.ks", "needs at least one K");
  for (size_t i = 1; i < o.ks.size(); ++i)
    if (std::find(o.ks.begin(), o.ks.begin() + static_cast<long>(i), o.ks[i]) != o.ks.begin() + static_cast<long>(i))
      cfg.bad("eval.ks", fmt::format("K = {} is listed twice", o.ks[i]));
  o.metrics = cfg.get_string_list("eval.metrics");
  if (o.metrics.empty()) cfg.bad("eval.metrics", "needs at least one metric");
  const auto& names = metric_names();
  std::string known;
  for (const auto& m : names) known += (known.empty() ? "" : ", ") + m;
  for (size_t i = 0; i < o.metrics.size(); ++i) {
    const auto& m = o.metrics[i];
    if (std::find(names.begin(), names.end(), m) == names.end())
      cfg.bad("eval.metrics", fmt::format("unknown metric '{}' (known: {})", m, known));
    if (std::find(o.metrics.begin(), o.metrics.begin() + static_cast<long>(i), m) !=
        o.metrics.begin() + static_cast<long>(i))
      cfg.bad("eval.metrics", fmt::format("'{}' is listed twice", m));
  }
  o.protocol = cfg.get_string("eval.protocol");
  Protocol p;
  if (!parse_protocol(o.protocol, p))
    cfg.bad("eval.protocol",
            fmt::format("'{}' is not one of: full, uni<N>, pop<N> (N >= 1, e.g. uni100), given, labeled", o.protocol));
  for (const auto& m : o.metrics) {
    const bool row_metric = m == "auc" || m == "gauc" || m == "logloss";
    if (p.type == Protocol::Labeled && !row_metric)
      cfg.bad("eval.metrics", fmt::format("eval.protocol labeled computes auc, gauc and logloss over labelled rows; '{}' "
                                          "is not one of them (rank with another protocol)", m));
    if (p.type != Protocol::Labeled && m == "logloss")
      cfg.bad("eval.metrics", fmt::format("logloss needs eval.protocol labeled (with dataset.label_threshold), "
                                          "not '{}'", o.protocol));
  }
  o.memory_mb = cfg.get_int("eval.memory_mb", 1);
  o.batch_users = cfg.get_int("eval.batch_users", 0);
  o.seed = static_cast<uint64_t>(cfg.get_int("eval.seed", 0));
  o.save_rankings = cfg.get_bool("eval.save_rankings");
  o.target_max_train = cfg.get_int("eval.target_max_train", 0);
  o.user_max_train = cfg.get_int("eval.user_max_train", 0);
  o.diversity_features = cfg.get_string_list("eval.diversity_features");
  return o;
}

double EvalResult::get(const std::string& name) const {
  for (const auto& [k, v] : metrics)
    if (k == name) return v;
  std::string known;
  for (const auto& [k, v] : metrics) known += (known.empty() ? "" : ", ") + k;
  fail("metric '{}' was not computed (computed: {})", name, known);
}

bool EvalResult::has(const std::string& name) const {
  for (const auto& kv : metrics)
    if (kv.first == name) return true;
  return false;
}

const std::vector<double>* EvalResult::user_values(const std::string& name) const {
  for (const auto& [k, v] : per_user)
    if (k == name) return &v;
  return nullptr;
}

Json EvalResult::json() const {
  Json m = Json::object();
  for (const auto& [name, v] : metrics) m[name] = json_number(v);  // NaN (no user to evaluate) is null
  return Json{
      {"split", split},     {"protocol_name", protocol_name},      {"protocol", protocol},   {"n_users", n_users},
      {"n_items", n_items}, {"seconds", json_rounded(seconds, 6)}, {"metrics", std::move(m)}};
}

// ---- evaluate --------------------------------------------------------------------------------

namespace {

// Back to training mode on every exit, errors included.
struct ModeGuard {
  RecommenderImpl& m;
  bool was;
  ~ModeGuard() {
    if (was) m.train();
  }
};

// The history a history-reading model may see while its targets are ranked (see HistoryScope):
// training only for validation, training + validation for test; All again afterwards, also
// when the evaluation throws.
struct HistoryScopeGuard {
  RecommenderImpl& m;
  HistoryScopeGuard(RecommenderImpl& model, Target target) : m(model) {
    m.set_history_scope(target == Target::Test ? HistoryScope::TrainValid : HistoryScope::Train);
  }
  ~HistoryScopeGuard() { m.set_history_scope(HistoryScope::All); }
  HistoryScopeGuard(const HistoryScopeGuard&) = delete;
  HistoryScopeGuard& operator=(const HistoryScopeGuard&) = delete;
};

// The targets that count: the split's valid or test items. eval.target_max_train: only targets
// with few training interactions (cold-ish items) count; the user's other targets leave the
// ranking (masked, never candidates), so they are neither hits nor negatives.
struct Targets {
  const Csr& all;
  Csr cold, held_out;  // with eval.target_max_train
  bool cold_only = false;
  const Csr& truth() const { return cold_only ? cold : all; }
};

Targets select_targets(const Split& split, Target target, const EvalOptions& opts) {
  Targets t{target == Target::Test ? split.test : split.valid, {}, {}, opts.target_max_train > 0 || opts.user_max_train > 0};
  if (!t.cold_only) return t;
  const Csr& all_truth = t.all;
  std::vector<int64_t> pop(static_cast<size_t>(split.train.n_cols), 0);
  for (int64_t i : split.train.indices) ++pop[static_cast<size_t>(i)];
  std::vector<int64_t> ku, ki, hu, hi;
  for (int64_t u = 0; u < all_truth.n_rows; ++u) {
    // eval.user_max_train: a user with more training interactions is not evaluated at all.
    if (opts.user_max_train > 0 && u < split.train.n_rows && split.train.row_size(u) > opts.user_max_train) continue;
    for (const Csr::Index* p = all_truth.row_begin(u); p != all_truth.row_end(u); ++p) {
      const bool counts = opts.target_max_train == 0 || pop[static_cast<size_t>(*p)] < opts.target_max_train;
      (counts ? ku : hu).push_back(u), (counts ? ki : hi).push_back(*p);
    }
  }
  t.cold = Csr::from_pairs(all_truth.n_rows, all_truth.n_cols, ku, ki);
  t.held_out = Csr::from_pairs(all_truth.n_rows, all_truth.n_cols, hu, hi);
  return t;
}

// The result before any metric: its users (those with at least one target) and their per-user
// arrays.
void start_result(const Csr& truth, Target target, const EvalOptions& opts, EvalResult& res) {
  res.split = target == Target::Test ? "test" : "valid";
  res.n_items = truth.n_cols;
  for (int64_t u = 0; u < truth.n_rows; ++u)
    if (truth.row_size(u) > 0) res.users.push_back(u);
  const size_t n_eval = res.users.size();
  res.n_users = static_cast<int64_t>(n_eval);
  res.n_targets.resize(n_eval);
  res.n_candidates.assign(n_eval, 0);
  for (size_t r = 0; r < n_eval; ++r) res.n_targets[r] = truth.row_size(res.users[r]);
  if (opts.save_rankings) {
    res.targets.resize(n_eval);
    res.ranks.resize(n_eval);
    res.top.resize(n_eval);
  }
}

// The aggregates of every column (table order), and the per-user values of the per-user ones.
void aggregate(const std::vector<MetricColumn>& cols, const std::vector<double>& vals, const TopCounts& counts,
               const RatingErrors& rating, EvalResult& res) {
  const size_t nc = cols.size();
  const auto n_eval = static_cast<size_t>(res.n_users);
  for (size_t ci = 0; ci < nc; ++ci) {
    const MetricColumn& col = cols[ci];
    double agg = std::numeric_limits<double>::quiet_NaN();
    if (is_count_kind(col.kind)) {
      if (n_eval > 0 && res.n_items > 0) agg = counts.value(col, ci);
    } else if (is_rating_kind(col.kind)) {
      agg = col.kind == RMSE ? rating.rmse() : rating.mae();
    } else {
      agg = mean_over_users(col, vals.data() + ci, nc, res.n_targets);
    }
    res.metrics.emplace_back(col.name, agg);
  }
  for (size_t ci = 0; ci < nc; ++ci) {
    if (!metric_per_user(metric_names()[cols[ci].kind])) continue;
    std::vector<double> v(n_eval);
    for (size_t r = 0; r < n_eval; ++r) v[r] = vals[r * nc + ci];
    res.per_user.emplace_back(cols[ci].name, std::move(v));
  }
}

// ---- distributed evaluation -------------------------------------------------------------------
// Each rank ranks its block of the users (rank_block); the blocks' per-user values, candidate
// counts and rankings, and the sums behind the catalogue and rating metrics, are then exchanged,
// so that every rank holds the single-process result value for value (the aggregates are computed
// from the same per-user values, not as a mean of per-rank means).

// res restricted to its users [lo, hi), without results yet.
EvalResult user_block(const EvalResult& res, size_t lo, size_t hi, bool rankings) {
  EvalResult sub;
  sub.split = res.split;
  sub.n_items = res.n_items;
  sub.users.assign(res.users.begin() + static_cast<long>(lo), res.users.begin() + static_cast<long>(hi));
  sub.n_targets.assign(res.n_targets.begin() + static_cast<long>(lo), res.n_targets.begin() + static_cast<long>(hi));
  sub.n_users = static_cast<int64_t>(hi - lo);
  sub.n_candidates.assign(hi - lo, 0);
  if (rankings) {
    sub.targets.resize(hi - lo);
    sub.ranks.resize(hi - lo);
    sub.top.resize(hi - lo);
  }
  return sub;
}

// Rows of `width` values per user, each rank's block of the n users filled by that rank: every
// block to every rank.
template <class T>
void share_blocks(Distributed& d, std::vector<T>& v, size_t width, size_t n, const std::string& what) {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, int64_t>);
  const auto type = std::is_same_v<T, double> ? torch::kDouble : torch::kLong;
  auto all = torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, type);
  std::vector<at::Tensor> one(1);
  for (int r = 0; r < d.world(); ++r) {
    const auto [lo, hi] = rank_block(static_cast<int64_t>(n), r, d.world());
    if (hi == lo) continue;
    one[0] = all.narrow(0, lo * static_cast<int64_t>(width), (hi - lo) * static_cast<int64_t>(width));
    d.broadcast(one, r, what);
  }
}

// A list per user (targets, ranks, top lists), each rank's block filled by that rank.
void share_lists(Distributed& d, std::vector<std::vector<int64_t>>& lists, const std::string& what) {
  const size_t n = lists.size();
  std::vector<int64_t> len(n);
  for (size_t i = 0; i < n; ++i) len[i] = static_cast<int64_t>(lists[i].size());
  share_blocks(d, len, 1, n, what);
  std::vector<at::Tensor> one(1);
  for (int r = 0; r < d.world(); ++r) {
    const auto [lo, hi] = rank_block(static_cast<int64_t>(n), r, d.world());
    int64_t total = 0;
    for (int64_t i = lo; i < hi; ++i) total += len[static_cast<size_t>(i)];
    if (total == 0) continue;
    auto flat = torch::empty({total}, torch::kLong);
    int64_t* f = flat.data_ptr<int64_t>();
    if (r == d.rank())
      for (int64_t i = lo; i < hi; ++i) f = std::copy(lists[static_cast<size_t>(i)].begin(), lists[static_cast<size_t>(i)].end(), f);
    one[0] = flat;
    d.broadcast(one, r, what);
    const int64_t* g = flat.data_ptr<int64_t>();
    for (int64_t i = lo; i < hi; ++i) {
      auto& l = lists[static_cast<size_t>(i)];
      l.assign(g, g + len[static_cast<size_t>(i)]);
      g += len[static_cast<size_t>(i)];
    }
  }
}

// The ranking pass of a distributed evaluation: this rank's block of vals and the exchange of
// everything but vals (evaluate() shares those once, after the rating pass).
void rank_users_distributed(Distributed& d, const RankingPass& pass, EvalResult& res, std::vector<double>& vals,
                            TopCounts& counts) {
  const size_t n = res.users.size(), nc = pass.cols.size();
  const auto [lo, hi] = rank_block(static_cast<int64_t>(n), d.rank(), d.world());
  EvalResult sub = user_block(res, static_cast<size_t>(lo), static_cast<size_t>(hi), pass.opts.save_rankings);
  std::vector<double> sub_vals(vals.begin() + lo * static_cast<int64_t>(nc), vals.begin() + hi * static_cast<int64_t>(nc));
  if (hi > lo) rank_users(pass, sub, sub_vals, counts);
  std::copy(sub_vals.begin(), sub_vals.end(), vals.begin() + lo * static_cast<int64_t>(nc));
  std::copy(sub.n_candidates.begin(), sub.n_candidates.end(), res.n_candidates.begin() + lo);
  res.seconds_scoring = sub.seconds_scoring;
  res.seconds_masking = sub.seconds_masking;
  res.seconds_ranking = sub.seconds_ranking;
  res.seconds_metrics = sub.seconds_metrics;
  const std::string what = "the exchange of the " + res.split + " evaluation's per-user values";
  share_blocks(d, res.n_candidates, 1, n, what);
  if (pass.opts.save_rankings) {
    for (auto* part : {&res.targets, &res.ranks, &res.top}) {
      const auto& from = part == &res.targets ? sub.targets : part == &res.ranks ? sub.ranks : sub.top;
      std::copy(from.begin(), from.end(), part->begin() + lo);
      share_lists(d, *part, what);
    }
  }
  auto& raw = counts.raw();
  if (!raw.empty()) {
    std::vector<at::Tensor> one{torch::from_blob(raw.data(), {static_cast<int64_t>(raw.size())}, torch::kLong)};
    d.allreduce_sum(one, "the sum of the " + res.split + " evaluation's top-K counts");
  }
}

}  // namespace

EvalResult evaluate(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                    const c10::Device& device, const Dataset* data) {
  const auto t0 = std::chrono::steady_clock::now();
  // Blocks cached for training's sizes back to the system before scoring allocates its own
  // (core/memory.h: the cache bounds its own blocks, not their sum with what evaluation adds).
  release_cpu_block_cache();
  torch::NoGradGuard no_grad;
  ModeGuard mode_guard{model, model.is_training()};
  model.eval();
  const HistoryScopeGuard scope_guard(model, target);
  {
    Protocol p;
    if (parse_protocol(opts.protocol, p) && p.type == Protocol::Labeled) {
      EvalResult res;
      res.split = target == Target::Test ? "test" : "valid";
      res.n_items = split.train.n_cols;
      evaluate_labeled(model, split, target, opts, device, res);
      res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return res;
    }
  }
  const Targets targets = select_targets(split, target, opts);
  const Csr& truth = targets.truth();
  const int64_t n_items = truth.n_cols;
  Protocol proto;
  if (!parse_protocol(opts.protocol, proto)) fail("eval.protocol: '{}' is not a protocol", opts.protocol);
  if (opts.ks.empty() || opts.metrics.empty()) fail("eval: needs at least one K and one metric");

  EvalResult res;
  start_result(truth, target, opts, res);
  const auto cols = columns_for(opts.metrics, opts.ks);
  bool want_rank = false, want_rating = false, want_features = false;
  for (const auto& c : cols) {
    (is_rating_kind(c.kind) ? want_rating : want_rank) = true;
    want_features |= c.kind == DIVERSITY;
  }
  // Top lists, discount tables and per-user buffers hold at most the catalogue: sized by
  // min(K, n_items), never by K alone (a K beyond the items is refused before training, see
  // trainers/eval/bounds.h; here it only costs what the catalogue does).
  const int64_t kmax = std::min(*std::max_element(opts.ks.begin(), opts.ks.end()), std::max<int64_t>(n_items, 1));
  const Tables tb(kmax);
  CandidateSource cs = setup_protocol(proto, split, target, opts, n_items, res);
  std::vector<const Csr*> masked{&split.train};
  if (target == Target::Test) masked.push_back(&split.valid);
  if (opts.target_max_train > 0) masked.push_back(&targets.held_out);

  // Per-user values: [users, cols], NaN where a column has none.
  std::vector<double> vals(res.users.size() * cols.size(), std::numeric_limits<double>::quiet_NaN());
  TopCounts counts(cols, n_items);  // coverage, gini
  const bool any_user = res.n_users > 0;
  if (want_rank && any_user) {
    const ItemFacts facts = item_facts(split, data, opts, want_features);
    const RankingPass pass{model, device, opts, truth, masked, proto, cs, cols, tb, facts, n_items, kmax};
    if (Distributed* d = Distributed::get())
      rank_users_distributed(*d, pass, res, vals, counts);
    else
      rank_users(pass, res, vals, counts);
  }
  RatingErrors rating;
  if (want_rating && any_user) {
    if (Distributed* d = Distributed::get()) {
      const size_t n = res.users.size(), nc = cols.size();
      const auto [lo, hi] = rank_block(static_cast<int64_t>(n), d->rank(), d->world());
      const std::vector<int64_t> mine(res.users.begin() + lo, res.users.begin() + hi);
      std::vector<double> sub(vals.begin() + lo * static_cast<int64_t>(nc), vals.begin() + hi * static_cast<int64_t>(nc));
      if (hi > lo) rating = rating_errors(model, split, target, data, opts, device, truth, mine, cols, sub);
      std::copy(sub.begin(), sub.end(), vals.begin() + lo * static_cast<int64_t>(nc));
      std::vector<at::Tensor> sums{torch::tensor({rating.sse, rating.sae, static_cast<double>(rating.n_rows)}, torch::kDouble)};
      d->allreduce_sum(sums, "the sum of the " + res.split + " rating errors");
      rating.sse = sums[0][0].item<double>();
      rating.sae = sums[0][1].item<double>();
      rating.n_rows = static_cast<int64_t>(sums[0][2].item<double>());
    } else {
      rating = rating_errors(model, split, target, data, opts, device, truth, res.users, cols, vals);
    }
  }
  // Distributed: each rank filled its block of the per-user values; every block to every rank.
  if (Distributed* d = Distributed::get(); d && any_user)
    share_blocks(*d, vals, cols.size(), res.users.size(), "the exchange of the " + res.split + " per-user values");
  aggregate(cols, vals, counts, rating, res);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace rzoo
