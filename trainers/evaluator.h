// Full-ranking evaluation: every item is scored for every evaluated user, the user's training
// items (and validation items, at test time) are masked, and ranking metrics are computed on the
// top-K. Users are processed in chunks sized by a memory budget (eval.memory_mb). Metrics are
// computed per user with tensor operations and averaged over users with at least one target item.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rzoo {

class Config;
struct Split;
class RecommenderImpl;

enum class Target { Valid, Test };

struct EvalOptions {
  std::vector<int64_t> ks = {10, 20};
  std::vector<std::string> metrics = {"recall", "precision", "hr", "ndcg", "mrr", "map"};
  int64_t memory_mb = 512;   // budget for one chunk's score, mask and target matrices
  int64_t batch_users = 0;   // users per chunk; 0 = derived from memory_mb
  static EvalOptions from_config(const Config& cfg);
};

const std::vector<std::string>& known_metrics();

struct EvalResult {
  std::string split;     // "valid" or "test"
  std::string protocol;  // how the numbers were obtained, written beside them
  int64_t n_users = 0;   // users with at least one target item
  int64_t n_items = 0;
  double seconds = 0;
  std::vector<std::pair<std::string, double>> metrics;  // "ndcg@10" -> mean, in table order

  double get(const std::string& name) const;  // throws listing the known names
  bool has(const std::string& name) const;
  std::string to_json(int indent = 0) const;
};

EvalResult evaluate(RecommenderImpl& model, const Split& split, Target target, const EvalOptions& opts,
                    const c10::Device& device);

// Per-user metric values from a ranked hit matrix.
//   hits [U, K]: 1 where the item at rank k (0-based) is a target item, else 0; K >= max(ks).
//   n_relevant [U]: number of target items of each user (> 0).
// Returns ("name@k", [U] float tensor) in the order metrics x ks.
// Definitions (@k): hr = 1 if any hit; precision = hits / k; recall = hits / n_relevant;
// ndcg = DCG / IDCG with gain 1 and discount 1/log2(rank + 1), IDCG over min(n_relevant, k)
// hits; mrr = 1 / rank of the first hit (0 if none); map = sum over hit ranks r of
// precision@r, divided by min(n_relevant, k).
std::vector<std::pair<std::string, at::Tensor>> ranking_metrics(const at::Tensor& hits, const at::Tensor& n_relevant,
                                                                const std::vector<int64_t>& ks,
                                                                const std::vector<std::string>& metrics);

}  // namespace rzoo
