// Rating metrics (internal to the evaluator): RMSE and MAE of the predicted scores over the
// split's rated valid or test rows.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "trainers/eval/metrics.h"

namespace rzoo {
struct Split;
struct Dataset;
struct Csr;
struct EvalOptions;
class RecommenderImpl;
enum class Target;
}  // namespace rzoo

namespace rzoo::eval_impl {

// Squared and absolute errors summed over the rated rows.
struct RatingErrors {
  double sse = 0, sae = 0;
  int64_t n_rows = 0;
  double rmse() const;  // NaN without rows
  double mae() const;
};

// Scores the rated rows of the target split; writes each evaluated user's own RMSE and MAE into
// vals (users[r]'s row at vals[r * cols.size()], in the rmse / mae columns). Fails when the data
// has no ratings.
RatingErrors rating_errors(RecommenderImpl& model, const Split& split, Target target, const Dataset* data,
                           const EvalOptions& opts, const c10::Device& device, const Csr& truth,
                           const std::vector<int64_t>& users, const std::vector<MetricColumn>& cols,
                           std::vector<double>& vals);

}  // namespace rzoo::eval_impl
