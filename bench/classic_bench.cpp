// Fit-time benchmark of the classic closed-form models on the NCF ML-1M training split
// (6,040 users x 3,706 items): ItemKNN and UserKNN fits, the EASE fit, one iALS iteration
// (64 factors), each the median of 3 runs on all cores, with LibTorch's own matmul of the same
// size as a yardstick.
// usage: rzoo_bench_classic CONFIG_DIR NCF_PREFIX
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/config.h"
#include "datasets/dataset.h"
#include "models/registry.h"

using namespace rzoo;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CONFIG_DIR NCF_PREFIX\n", argv[0]);
    return 2;
  }
  torch::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  ConfigSources src;
  src.config_dir = argv[1];
  src.experiment = parse_layer("dataset: ncf-ml-1m\n", "bench");
  src.sets = {std::string("dataset.path=") + argv[2]};
  Config base = resolve_config(src);
  const Dataset d = load_dataset(base);
  const Split s = split_dataset(d, base);
  std::printf("NCF ML-1M train: %lld users x %lld items, %lld interactions; %d threads\n",
              static_cast<long long>(d.n_users()), static_cast<long long>(d.n_items()),
              static_cast<long long>(s.train.nnz()), torch::get_num_threads());
  auto time_fit = [&](const std::string& model, const std::vector<std::string>& sets) {
    ConfigSources m = src;
    m.experiment = parse_layer("dataset: ncf-ml-1m\nmodel: " + model + "\n", "bench");
    m.sets.insert(m.sets.end(), sets.begin(), sets.end());
    const Config cfg = resolve_config(m);
    std::vector<double> t;
    for (int r = 0; r < 3; ++r) {
      Recommender rec = make_model(model, ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s});
      const auto t0 = Clock::now();
      rec->fit(s.train);
      t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[1];
  };
  std::printf("itemknn fit (cosine, 100 neighbours): %.3f s (target < 2 s)\n", time_fit("itemknn", {}));
  std::printf("userknn fit (cosine, 50 neighbours):  %.3f s\n", time_fit("userknn", {}));
  std::printf("ease fit (l2 500):                    %.3f s (target < 5 s)\n", time_fit("ease", {}));
  const double one = time_fit("ials", {"model.epochs=1", "model.factors=64"});
  std::printf("ials, one iteration, 64 factors:      %.3f s (target < 1 s)\n", one);
  // Yardstick: one [U, 64] x [64, I] product, the size of scoring every user with 64 factors.
  auto a = torch::randn({d.n_users(), 64}), b = torch::randn({64, d.n_items()});
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    auto c = torch::mm(a, b);
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("yardstick: LibTorch matmul [%lld x 64] x [64 x %lld]: %.4f s\n", static_cast<long long>(d.n_users()),
              static_cast<long long>(d.n_items()), t[2]);
  return 0;
}
