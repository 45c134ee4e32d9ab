// The ranking pass (internal to the evaluator): the users in chunks sized by eval.memory_mb;
// each chunk scored by the model, then its users masked, ranked and measured in parallel.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "trainers/eval/beyond.h"
#include "trainers/eval/metrics.h"
#include "trainers/eval/protocol.h"

namespace rzoo {
struct Csr;
struct EvalOptions;
struct EvalResult;
class RecommenderImpl;
}  // namespace rzoo

namespace rzoo::eval_impl {

struct RankingPass {
  RecommenderImpl& model;
  const c10::Device& device;
  const EvalOptions& opts;
  const Csr& truth;                // the targets per user
  std::vector<const Csr*> masked;  // full protocol: the user's items that are not candidates
  Protocol proto;
  CandidateSource& cs;  // sampled protocols
  const std::vector<MetricColumn>& cols;
  const Tables& tb;
  const ItemFacts& facts;
  int64_t n_items = 0, kmax = 0;
};

// Ranks every user of res.users: fills res.n_candidates, with save_rankings res.targets, ranks
// and top, the time split (seconds_scoring ... seconds_metrics), the per-user rank and top-list
// metrics in vals ([users, cols], row-major) and the catalogue counts.
void rank_users(const RankingPass& p, EvalResult& res, std::vector<double>& vals, TopCounts& counts);

}  // namespace rzoo::eval_impl
