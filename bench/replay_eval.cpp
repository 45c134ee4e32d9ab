// The feedback-loop replay's evaluator (bench/feedback_replay.py): NDCG@10 of finished runs on
// one week of interactions that none of them trained on.
//
// usage: rzoo_bench_replay_eval HISTORY.csv TARGET.csv START_USERS.txt RUN_DIR [RUN_DIR...]
//   HISTORY.csv  every interaction before the week (user,item,... with a header): the users
//                evaluated are the week's users who appear here, and their items here are
//                removed from the ranking (a serving system knows them, updated model or not)
//   TARGET.csv   the week's interactions: each evaluated user's relevant items
//   START_USERS  raw user ids, one per line (the first model's users.txt): the "known at the
//                start" subset, reported on its own as well
// For each run: a JSON line {"run", "users", "ndcg@10", "start_users", "start_ndcg@10",
// "served_by_popularity", "per_user"} (per_user: each evaluated user's NDCG@10 in user-id order,
// the same users for every run, so runs compare pair by pair). A user the run does not know (one who arrived after it was trained)
// gets the run's training popularity, as a deployed model that is never updated serves newcomers;
// items the run does not know cannot be ranked (misses).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/core.h>

#include "core/log.h"
#include "core/threads.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/experiment.h"

using namespace rzoo;

namespace {

// user -> items of a user,item,... csv with a header line.
std::map<std::string, std::set<std::string>> read_pairs(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read");
  std::map<std::string, std::set<std::string>> out;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    if (a == std::string::npos) continue;
    out[line.substr(0, a)].insert(line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s HISTORY.csv TARGET.csv START_USERS.txt RUN_DIR [RUN_DIR...]\n", argv[0]);
    return 2;
  }
  reexec_with_short_openmp_spin(argv);
  const auto history = read_pairs(argv[1]);
  const auto target = read_pairs(argv[2]);
  std::unordered_set<std::string> start;
  {
    std::ifstream in(argv[3]);
    for (std::string line; std::getline(in, line);) start.insert(line);
  }
  Logger log(true);
  constexpr int64_t K = 10;
  for (int a = 4; a < argc; ++a) {
    auto run = open_run(argv[a], log);
    set_thread_pools(1);
    run->model->to(torch::kCPU);
    run->model->eval();
    torch::NoGradGuard no_grad;
    const Dataset& d = run->data.data;
    const Csr& train = run->data.split.train;
    // Training popularity, for users the run does not know.
    std::vector<float> pop(static_cast<size_t>(d.n_items()), 0.0f);
    for (int64_t i : train.indices) pop[static_cast<size_t>(i)] += 1.0f;
    std::string per_user;  // every evaluated user's value, in user-id order (the same users for every run)
    double sum = 0, sum_start = 0;
    int64_t n = 0, n_start = 0, by_pop = 0;
    for (const auto& [user, items] : target) {
      const auto h = history.find(user);
      if (h == history.end()) continue;  // a user with no history: nothing to personalise from
      const int64_t u = d.users.find(user);
      at::Tensor scores;
      if (u >= 0) {
        scores = run->model->score_all(torch::tensor({u}, torch::kLong)).squeeze(0).to(torch::kFloat).contiguous().clone();
      } else {
        scores = torch::tensor(pop, torch::kFloat);
        ++by_pop;
      }
      float* s = scores.data_ptr<float>();
      for (const auto& it : h->second)
        if (const int64_t i = d.items.find(it); i >= 0) s[i] = -INFINITY;
      const auto top = std::get<1>(scores.topk(std::min<int64_t>(K, d.n_items())));
      std::unordered_set<int64_t> rel;
      for (const auto& it : items)
        if (const int64_t i = d.items.find(it); i >= 0) rel.insert(i);
      double dcg = 0, idcg = 0;
      for (int64_t r = 0; r < top.size(0); ++r)
        if (rel.count(top[r].item<int64_t>())) dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      for (int64_t r = 0; r < std::min<int64_t>(K, static_cast<int64_t>(items.size())); ++r)
        idcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      const double v = idcg > 0 ? dcg / idcg : 0.0;
      per_user += fmt::format("{}{:.6f}", per_user.empty() ? "" : ", ", v);
      sum += v;
      ++n;
      if (start.count(user)) {
        sum_start += v;
        ++n_start;
      }
    }
    // JSON has no NaN: a mean over no user is null.
    auto mean = [](double s, int64_t k) { return k > 0 ? fmt::format("{:.6f}", s / static_cast<double>(k)) : std::string("null"); };
    std::printf("{\"run\": \"%s\", \"users\": %lld, \"ndcg@10\": %s, \"start_users\": %lld, \"start_ndcg@10\": %s, "
                "\"served_by_popularity\": %lld, \"per_user\": [%s]}\n",
                argv[a], static_cast<long long>(n), mean(sum, n).c_str(), static_cast<long long>(n_start),
                mean(sum_start, n_start).c_str(), static_cast<long long>(by_pop), per_user.c_str());
    std::fflush(stdout);
  }
  return 0;
}
