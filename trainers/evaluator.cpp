#include "trainers/evaluator.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/config.h"
#include "trainers/error.h"

namespace rzoo {

const std::vector<std::string>& known_metrics() {
  static const std::vector<std::string> m = {"recall", "precision", "hr", "ndcg", "mrr", "map"};
  return m;
}

EvalOptions EvalOptions::from_config(const Config& cfg) {
  EvalOptions o;
  o.ks = cfg.get_int_list("eval.ks", 1);
  if (o.ks.empty()) cfg.bad("eval.ks", "needs at least one K");
  o.metrics = cfg.get_string_list("eval.metrics");
  if (o.metrics.empty()) cfg.bad("eval.metrics", "needs at least one metric");
  for (const auto& m : o.metrics)
    if (std::find(known_metrics().begin(), known_metrics().end(), m) == known_metrics().end())
      cfg.bad("eval.metrics", fmt::format("unknown metric '{}' (known: recall, precision, hr, ndcg, mrr, map)", m));
  o.memory_mb = cfg.get_int("eval.memory_mb", 1);
  o.batch_users = cfg.get_int("eval.batch_users", 0);
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

std::string EvalResult::to_json(int indent) const {
  const std::string pad(static_cast<size_t>(indent), ' ');
  std::string out = fmt::format("{{\n{0}  \"split\": \"{1}\",\n{0}  \"protocol\": \"{2}\",\n{0}  \"n_users\": {3},\n"
                                "{0}  \"n_items\": {4},\n{0}  \"seconds\": {5:.6f},\n{0}  \"metrics\": {{",
                                pad, split, protocol, n_users, n_items, seconds);
  for (size_t i = 0; i < metrics.size(); ++i) {
    const double v = metrics[i].second;  // NaN (no user to evaluate) is JSON null
    out += fmt::format("{}\n{}    \"{}\": {}", i ? "," : "", pad, metrics[i].first,
                       std::isfinite(v) ? fmt::format("{:.10g}", v) : std::string("null"));
  }
  out += fmt::format("\n{0}  }}\n{0}}}", pad);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> ranking_metrics(const at::Tensor& hits_in, const at::Tensor& n_rel_in,
                                                                const std::vector<int64_t>& ks,
                                                                const std::vector<std::string>& metrics) {
  const auto hits = hits_in.to(torch::kDouble);         // [U, K]
  const auto n_rel = n_rel_in.to(hits.device(), torch::kDouble);  // [U]
  const int64_t K = hits.size(1);
  const auto opts = hits.options();
  const auto ranks = torch::arange(1, K + 1, opts);     // [K] 1-based ranks
  const auto discount = 1.0 / torch::log2(ranks + 1.0);  // [K]
  const auto ideal = torch::cumsum(discount, 0);        // [K] IDCG for 1..K relevant items
  const auto cum_hits = torch::cumsum(hits, 1);         // [U, K]
  const auto first_hit = hits * (cum_hits == 1).to(torch::kDouble);  // [U, K] 1 only at the first hit
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& m : metrics) {
    for (int64_t k : ks) {
      TORCH_CHECK(k <= K, "metric @", k, " needs ", k, " ranks, the hit matrix has ", K);
      const auto h = hits.narrow(1, 0, k);
      const auto n_hit = h.sum(1);                                      // [U]
      const auto capped = torch::clamp_max(n_rel, static_cast<double>(k));  // [U] min(n_rel, k)
      at::Tensor v;
      if (m == "hr") v = (n_hit > 0).to(torch::kDouble);
      else if (m == "precision") v = n_hit / static_cast<double>(k);
      else if (m == "recall") v = n_hit / n_rel;
      else if (m == "ndcg")
        v = (h * discount.narrow(0, 0, k)).sum(1) / ideal.index_select(0, (capped - 1).to(torch::kLong));
      else if (m == "mrr") v = (first_hit.narrow(1, 0, k) / ranks.narrow(0, 0, k)).sum(1);
      else if (m == "map") v = ((cum_hits.narrow(1, 0, k) / ranks.narrow(0, 0, k)) * h).sum(1) / capped;
      else TORCH_CHECK(false, "unknown metric '", m, "'");
      out.emplace_back(fmt::format("{}@{}", m, k), v);
    }
  }
  return out;
}

EvalResult evaluate(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                    const c10::Device& device) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const Csr& truth = target == Target::Test ? split.test : split.valid;
  const int64_t n_items = truth.n_cols;
  std::vector<const Csr*> masked{&split.train};
  if (target == Target::Test) masked.push_back(&split.valid);

  std::vector<int64_t> users;
  for (int64_t u = 0; u < truth.n_rows; ++u)
    if (truth.row_size(u) > 0) users.push_back(u);

  EvalResult res;
  res.split = target == Target::Test ? "test" : "valid";
  res.n_items = n_items;
  res.n_users = static_cast<int64_t>(users.size());
  res.protocol = fmt::format("full ranking over all {} items; the user's {} items masked; users with >= 1 {} item",
                             n_items, target == Target::Test ? "training and validation" : "training", res.split);
  // K may exceed the catalogue: rank all items and pad with non-hits, so metric names and
  // definitions (precision = hits / K) stay those configured.
  const int64_t kmax = *std::max_element(opts.ks.begin(), opts.ks.end());
  const int64_t ktop = std::min(kmax, n_items);
  const std::vector<int64_t>& ks = opts.ks;

  // Chunk size: per user we hold scores (4 B/item), the target matrix (1 B/item) and top-k
  // work space; 16 B per item leaves headroom for the model's own temporaries.
  int64_t chunk = opts.batch_users > 0 ? opts.batch_users
                                       : std::max<int64_t>(1, opts.memory_mb * (int64_t{1} << 20) / (16 * n_items));
  std::vector<double> sums;
  std::vector<std::string> names;
  for (size_t start = 0; start < users.size(); start += static_cast<size_t>(chunk)) {
    const int64_t c = std::min<int64_t>(chunk, static_cast<int64_t>(users.size() - start));
    auto u_cpu = torch::from_blob(users.data() + start, {c}, torch::kLong).clone();
    auto scores = model.score_all(u_cpu.to(device)).to(torch::kFloat);  // [C, I]
    TORCH_CHECK(scores.dim() == 2 && scores.size(0) == c && scores.size(1) == n_items, "model '", model.name(),
                "': score_all returned shape ", scores.sizes(), ", expected [", c, ", ", n_items, "]");
    if (!scores.is_contiguous()) scores = scores.contiguous();
    // Mask: (row in chunk, item) pairs of the masked splits, written in one index_put_.
    std::vector<int64_t> mr, mc;
    auto truth_dense = torch::zeros({c, n_items}, torch::kBool);
    bool* td = truth_dense.data_ptr<bool>();
    auto n_rel = torch::empty({c}, torch::kLong);
    int64_t* nr = n_rel.data_ptr<int64_t>();
    for (int64_t r = 0; r < c; ++r) {
      const int64_t u = users[start + static_cast<size_t>(r)];
      for (const Csr* m : masked)
        for (const int64_t* p = m->row_begin(u); p != m->row_end(u); ++p) { mr.push_back(r); mc.push_back(*p); }
      for (const int64_t* p = truth.row_begin(u); p != truth.row_end(u); ++p) td[r * n_items + *p] = true;
      nr[r] = truth.row_size(u);
    }
    if (!mr.empty()) {
      auto rows = torch::from_blob(mr.data(), {static_cast<int64_t>(mr.size())}, torch::kLong).to(device);
      auto cols = torch::from_blob(mc.data(), {static_cast<int64_t>(mc.size())}, torch::kLong).to(device);
      scores.index_put_({rows, cols}, -std::numeric_limits<float>::infinity());
    }
    const auto top = std::get<1>(scores.topk(ktop, 1, true, true));  // [C, ktop]
    auto hits = truth_dense.to(device).gather(1, top);               // [C, ktop]
    if (ktop < kmax) hits = torch::cat({hits, torch::zeros({c, kmax - ktop}, hits.options())}, 1);  // [C, kmax]
    const auto per_user = ranking_metrics(hits, n_rel.to(device), ks, opts.metrics);
    if (sums.empty()) {
      sums.assign(per_user.size(), 0.0);
      for (const auto& kv : per_user) names.push_back(kv.first);
    }
    for (size_t i = 0; i < per_user.size(); ++i) sums[i] += per_user[i].second.sum().item<double>();
  }
  if (names.empty())  // no user has a target item: report the names with NaN, never a made-up 0
    for (const auto& kv : ranking_metrics(torch::zeros({0, kmax}), torch::ones({0}), ks, opts.metrics))
      names.push_back(kv.first), sums.push_back(std::numeric_limits<double>::quiet_NaN());
  for (size_t i = 0; i < names.size(); ++i)
    res.metrics.emplace_back(names[i], users.empty() ? sums[i] : sums[i] / static_cast<double>(users.size()));
  if (was_training) model.train();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace rzoo
