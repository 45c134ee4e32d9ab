// Rating metrics: the split's rated rows scored by the model, in chunks.
#include "trainers/eval/rating.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/eval/ranking.h"
#include "trainers/evaluator.h"

namespace rzoo::eval_impl {

double RatingErrors::rmse() const {
  return n_rows > 0 ? std::sqrt(sse / static_cast<double>(n_rows)) : std::numeric_limits<double>::quiet_NaN();
}
double RatingErrors::mae() const {
  return n_rows > 0 ? sae / static_cast<double>(n_rows) : std::numeric_limits<double>::quiet_NaN();
}

namespace {

// The model's predictions for the pairs (ru[k], ri[k]), scored in chunks within eval.memory_mb.
std::vector<float> predict(RecommenderImpl& model, std::vector<int64_t>& ru, std::vector<int64_t>& ri,
                           const EvalOptions& opts, const c10::Device& device) {
  std::vector<float> pred(ru.size());
  const int64_t step = std::max<int64_t>(1, opts.memory_mb * (int64_t{1} << 20) / (40 + 1024));  // as for pairs
  for (int64_t s = 0; s < static_cast<int64_t>(ru.size()); s += step) {
    const int64_t m = std::min<int64_t>(step, static_cast<int64_t>(ru.size()) - s);
    auto p = model
                 .score(torch::from_blob(ru.data() + s, {m}, torch::kLong).to(device),
                        torch::from_blob(ri.data() + s, {m}, torch::kLong).to(device))
                 .to(torch::kFloat)
                 .to(torch::kCPU)
                 .contiguous();
    TORCH_CHECK(p.dim() == 1 && p.size(0) == m, "model '", model.name(), "': score returned shape ", p.sizes());
    std::memcpy(pred.data() + s, p.data_ptr<float>(), static_cast<size_t>(m) * 4);
  }
  return pred;
}

}  // namespace

RatingErrors rating_errors(RecommenderImpl& model, const Split& split, Target target, const Dataset* data,
                           const EvalOptions& opts, const c10::Device& device, const Csr& truth,
                           const std::vector<int64_t>& users, const std::vector<MetricColumn>& cols,
                           std::vector<double>& vals) {
  if (!data || !data->has_ratings())
    fail(
        "eval.metrics: rmse and mae need ratings, and the dataset has none (set dataset.columns.rating; no threshold)");
  const auto& rows = target == Target::Test ? split.test_rows : split.valid_rows;
  std::vector<int64_t> ru(rows.size()), ri(rows.size());
  const Column<int32_t>&du = data->user, &di = data->item;
  const Column<float>& dr = data->rating;
  for (size_t k = 0; k < rows.size(); ++k)
    ru[k] = du[static_cast<size_t>(rows[k])], ri[k] = di[static_cast<size_t>(rows[k])];
  const std::vector<float> pred = predict(model, ru, ri, opts, device);
  // Per user (rows are grouped by user): each user's own RMSE and MAE.
  RatingErrors err;
  std::vector<double> u_se(static_cast<size_t>(truth.n_rows), 0.0), u_ae(u_se.size(), 0.0);
  std::vector<int64_t> u_n(u_se.size(), 0);
  for (size_t k = 0; k < rows.size(); ++k) {
    const double e = static_cast<double>(pred[k]) - static_cast<double>(dr[static_cast<size_t>(rows[k])]);
    if (std::isnan(e)) nan_score(model.name(), ru[k], ri[k]);
    err.sse += e * e, err.sae += std::abs(e), ++err.n_rows;
    u_se[static_cast<size_t>(ru[k])] += e * e, u_ae[static_cast<size_t>(ru[k])] += std::abs(e),
        ++u_n[static_cast<size_t>(ru[k])];
  }
  const size_t nc = cols.size();
  for (size_t r = 0; r < users.size(); ++r) {
    const auto u = static_cast<size_t>(users[r]);
    for (size_t ci = 0; ci < nc; ++ci) {
      if (u_n[u] == 0) continue;
      if (cols[ci].kind == RMSE) vals[r * nc + ci] = std::sqrt(u_se[u] / static_cast<double>(u_n[u]));
      if (cols[ci].kind == MAE) vals[r * nc + ci] = u_ae[u] / static_cast<double>(u_n[u]);
    }
  }
  return err;
}

}  // namespace rzoo::eval_impl
