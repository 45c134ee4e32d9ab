// eval.protocol labeled: AUC, GAUC and log loss over labelled rows (see evaluator.h).
#include "trainers/eval/labeled.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/evaluator.h"

namespace rzoo::eval_impl {

double auc_of(const std::vector<float>& s, const std::vector<float>& y) {
  const size_t n = s.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a] < s[b]; });
  // Sum of the positives' ranks (1-based, ties get their mean rank).
  double rank_sum = 0, n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && s[order[j]] == s[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      if (y[order[k]] > 0.5F) rank_sum += mean_rank, n_pos += 1;
    i = j;
  }
  const double n_neg = static_cast<double>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}

namespace {

// -log sigmoid(s) for y = 1, -log(1 - sigmoid(s)) for y = 0, without overflow.
double log_loss(double s, float y) {
  const double z = y > 0.5F ? -s : s;  // softplus(z)
  return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

}  // namespace

void evaluate_labeled(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                      const c10::Device& device, EvalResult& res) {
  if (!split.labeled())
    fail("eval.protocol labeled needs labelled rows: set dataset.label_threshold (rows rated at or above it are 1, "
         "below 0)");
  const LabeledRows& rows = target == Target::Test ? split.test_labeled : split.valid_labeled;
  const int64_t n = rows.size();
  res.protocol_name = "labeled";
  res.protocol = fmt::format("labelled rows: each {} row (user, item) scored, label 1 when rating >= {} else 0; auc "
                             "over all rows, gauc per user (users with both labels, weighted by their rows), "
                             "logloss of sigmoid(score)",
                             target == Target::Test ? "test" : "validation", split.label_threshold);
  // Scores in chunks within eval.memory_mb (a pair costs about 1 KB of temporaries in the
  // feature models).
  std::vector<float> s(static_cast<size_t>(n));
  const int64_t step = std::max<int64_t>(1, opts.memory_mb * (int64_t{1} << 20) / 2048);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < n; b += step) {
    const int64_t m = std::min(step, n - b);
    auto u = torch::from_blob(const_cast<int64_t*>(rows.user.data()) + b, {m}, torch::kLong).to(device);
    auto i = torch::from_blob(const_cast<int64_t*>(rows.item.data()) + b, {m}, torch::kLong).to(device);
    at::Tensor ctx;
    if (rows.n_context > 0) {
      ctx = torch::empty({m, rows.n_context}, torch::kLong);
      std::copy(rows.context.begin() + b * rows.n_context, rows.context.begin() + (b + m) * rows.n_context,
                ctx.data_ptr<int64_t>());
      ctx = ctx.to(device);
    }
    auto p = model.score_labeled(u, i, ctx).to(torch::kFloat).to(torch::kCPU).contiguous();
    TORCH_CHECK(p.dim() == 1 && p.size(0) == m, "model '", model.name(), "': score returned shape ", p.sizes());
    std::memcpy(s.data() + b, p.data_ptr<float>(), static_cast<size_t>(m) * 4);
  }
  res.seconds_scoring = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int64_t k = 0; k < n; ++k)
    if (std::isnan(s[static_cast<size_t>(k)]))
      fail("model '{}' scored NaN for user {} and item {}", model.name(), rows.user[static_cast<size_t>(k)],
           rows.item[static_cast<size_t>(k)]);

  // Per user (rows are grouped by user).
  std::vector<double> u_auc, u_loss;
  double loss_sum = 0, gauc_num = 0, gauc_den = 0;
  for (int64_t b = 0; b < n;) {
    int64_t e = b;
    while (e < n && rows.user[static_cast<size_t>(e)] == rows.user[static_cast<size_t>(b)]) ++e;
    std::vector<float> us(s.begin() + b, s.begin() + e), uy(rows.label.begin() + b, rows.label.begin() + e);
    double l = 0;
    int64_t pos = 0;
    for (int64_t k = b; k < e; ++k) {
      l += log_loss(s[static_cast<size_t>(k)], rows.label[static_cast<size_t>(k)]);
      pos += rows.label[static_cast<size_t>(k)] > 0.5F;
    }
    loss_sum += l;
    const double a = auc_of(us, uy);
    if (!std::isnan(a)) gauc_num += a * static_cast<double>(e - b), gauc_den += static_cast<double>(e - b);
    res.users.push_back(rows.user[static_cast<size_t>(b)]);
    res.n_targets.push_back(pos);
    res.n_candidates.push_back(e - b);
    u_auc.push_back(a);
    u_loss.push_back(l / static_cast<double>(e - b));
    b = e;
  }
  res.n_users = static_cast<int64_t>(res.users.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& m : opts.metrics) {
    if (m == "auc") {
      res.metrics.emplace_back("auc", auc_of(s, rows.label));
      res.per_user.emplace_back("auc", u_auc);
    } else if (m == "gauc") {
      res.metrics.emplace_back("gauc", gauc_den > 0 ? gauc_num / gauc_den : nan);
      res.per_user.emplace_back("gauc", u_auc);
    } else if (m == "logloss") {
      res.metrics.emplace_back("logloss", n > 0 ? loss_sum / static_cast<double>(n) : nan);
      res.per_user.emplace_back("logloss", u_loss);
    }
  }
}

}  // namespace rzoo::eval_impl
