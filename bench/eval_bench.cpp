// Full-ranking evaluation benchmark: a matrix-factorisation model (BPR-MF, 64 factors, random
// weights) over generated data of a given shape, evaluated on the test split with every ranking
// and beyond-accuracy metric at K = 5, 10, 20, 50. Prints the wall time (median of the runs),
// where it went (scoring, masking, ranking, metrics), peak memory, and the limit: LibTorch's own
// matmul producing the same score matrix in the same chunks.
//
// usage: rzoo_bench_eval CONFIG_DIR USERS ITEMS INTERACTIONS_PER_USER [MEMORY_MB] [RUNS]
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "core/config.h"
#include "core/random.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "models/registry.h"
#include "trainers/evaluator.h"

using namespace rzoo;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double peak_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CONFIG_DIR USERS ITEMS PER_USER [MEMORY_MB] [RUNS]\n", argv[0]);
    return 2;
  }
  const std::string config_dir = argv[1];
  const int64_t n_users = std::stoll(argv[2]), n_items = std::stoll(argv[3]), per_user = std::stoll(argv[4]);
  const int64_t memory_mb = argc > 5 ? std::stoll(argv[5]) : 512;
  const int runs = argc > 6 ? std::stoi(argv[6]) : 3;
  torch::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));

  // Interactions: each user gets per_user distinct items (+-50%), drawn with Zipf-like popularity.
  auto t0 = Clock::now();
  Dataset d;
  for (int64_t u = 0; u < n_users; ++u) d.users.add_int(u);
  for (int64_t i = 0; i < n_items; ++i) d.items.add_int(i);
  std::vector<double> cdf(static_cast<size_t>(n_items));
  double acc = 0;
  for (int64_t i = 0; i < n_items; ++i) cdf[static_cast<size_t>(i)] = acc += 1.0 / std::pow(static_cast<double>(i + 1), 0.8);
  Rng rng(7);
  std::vector<char> taken(static_cast<size_t>(n_items), 0);
  std::vector<int32_t> uu, ii, row;
  for (int64_t u = 0; u < n_users; ++u) {
    const int64_t m = std::min<int64_t>(n_items / 2, per_user / 2 + rng.uniform(per_user + 1));
    row.clear();
    while (static_cast<int64_t>(row.size()) < m) {
      const auto i = static_cast<int32_t>(std::upper_bound(cdf.begin(), cdf.end(), rng.uniform01() * acc) - cdf.begin());
      if (i >= n_items || taken[static_cast<size_t>(i)]) continue;
      taken[static_cast<size_t>(i)] = 1;
      row.push_back(i);
    }
    for (int32_t i : row) taken[static_cast<size_t>(i)] = 0, uu.push_back(static_cast<int32_t>(u)), ii.push_back(i);
  }
  d.user = std::move(uu);
  d.item = std::move(ii);
  const Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 2020);
  std::printf("data: %lld users x %lld items, %lld interactions (train %lld, test %lld); generated in %.1f s\n",
              static_cast<long long>(n_users), static_cast<long long>(n_items), static_cast<long long>(d.n_interactions()),
              static_cast<long long>(s.train.nnz()), static_cast<long long>(s.test.nnz()), since(t0));

  ConfigSources src;
  src.config_dir = config_dir;
  src.experiment = parse_layer("model: {name: bpr, embedding_size: 64}\n", "bench");
  const Config cfg = resolve_config(src);
  torch::manual_seed(1);
  Recommender model = make_model("bpr", ModelContext{n_users, n_items, &cfg});
  EvalOptions o;
  o.ks = {5, 10, 20, 50};
  o.metrics = {"hr", "recall", "precision", "ndcg", "mrr", "map", "auc", "gauc", "coverage", "gini", "popularity", "novelty"};
  o.memory_mb = memory_mb;

  std::vector<double> wall;
  EvalResult last;
  for (int r = 0; r < runs; ++r) {
    t0 = Clock::now();
    last = evaluate(*model, s, Target::Test, o, torch::kCPU);
    wall.push_back(since(t0));
  }
  std::sort(wall.begin(), wall.end());
  const double med = wall[wall.size() / 2];
  const double thread_s = last.seconds_masking + last.seconds_ranking + last.seconds_metrics;
  const double kernel_wall = std::max(0.0, last.seconds - last.seconds_scoring);
  std::printf("evaluate: %lld users, %zu metrics, %d threads, memory_mb %lld: median %.3f s (runs:",
              static_cast<long long>(last.n_users), last.metrics.size(), torch::get_num_threads(),
              static_cast<long long>(memory_mb), med);
  for (double w : wall) std::printf(" %.3f", w);
  std::printf(")\n");
  std::printf("  last run %.3f s: scoring %.3f s wall (%.0f%%); masking + ranking + metrics %.3f s wall (%.0f%%), of whose "
              "%.3f thread-s masking %.0f%%, top-k and target ranks %.0f%%, metrics %.0f%%\n",
              last.seconds, last.seconds_scoring, 100 * last.seconds_scoring / last.seconds, kernel_wall,
              100 * kernel_wall / last.seconds, thread_s, 100 * last.seconds_masking / thread_s,
              100 * last.seconds_ranking / thread_s, 100 * last.seconds_metrics / thread_s);
  std::printf("  ndcg@10 %.5f, auc %.5f, coverage@50 %.5f (random model)\n", last.get("ndcg@10"), last.get("auc"),
              last.get("coverage@50"));

  // The limit: the same score matrix by one matmul per chunk, nothing else.
  {
    torch::NoGradGuard ng;
    const int64_t chunk = std::max<int64_t>(1, memory_mb * (int64_t{1} << 20) / (n_items * 8));
    std::vector<double> mm;
    for (int r = 0; r < runs; ++r) {
      t0 = Clock::now();
      for (int64_t b = 0; b < n_users; b += chunk) {
        auto users = torch::arange(b, std::min(n_users, b + chunk), torch::kLong);
        auto sc = model->score_all(users);
        (void)sc;
      }
      mm.push_back(since(t0));
    }
    std::sort(mm.begin(), mm.end());
    std::printf("limit: score_all alone (LibTorch matmul) over all %lld users: median %.3f s; evaluate / limit = %.2fx\n",
                static_cast<long long>(n_users), mm[mm.size() / 2], med / mm[mm.size() / 2]);
  }
  std::printf("peak memory: %.0f MB\n", peak_mb());
  return 0;
}
