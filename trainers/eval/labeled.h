// eval.protocol labeled (internal to the evaluator): the split's labelled valid/test rows
// (dataset.label_threshold) scored pair by pair; AUC over all rows, GAUC and log loss.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

namespace rzoo {
struct Split;
struct EvalOptions;
struct EvalResult;
class RecommenderImpl;
enum class Target;
}  // namespace rzoo

namespace rzoo::eval_impl {

// AUC of scores s against 0/1 labels y (Mann-Whitney: ties count one half); NaN when one class
// is absent.
double auc_of(const std::vector<float>& s, const std::vector<float>& y);

// Fills res (metrics auc, gauc, logloss among opts.metrics; per-user values) from the rows.
void evaluate_labeled(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                      const c10::Device& device, EvalResult& res);

}  // namespace rzoo::eval_impl
