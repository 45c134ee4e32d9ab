// Fold-in quality and speed: evaluates a finished run twice on its test split, once as trained
// and once with every user folded in from its training items as if new (score_fold_in of the
// user's training items instead of its trained representation; "strong generalisation" in Liang
// et al.'s Mult-VAE terms, here on the run's own users), with the run's evaluation settings.
// Prints both results side by side and the fold-in time per user.
//
// usage: rzoo_bench_fold_in RUN_DIR [RUN_DIR...]     (1 thread; RZOO_BENCH_THREADS=N for more)
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/log.h"
#include "core/threads.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/evaluator.h"
#include "trainers/experiment.h"

using namespace rzoo;

namespace {

// score_all of a user = the wrapped model's fold-in of the user's training items.
class FoldInView : public RecommenderImpl {
 public:
  FoldInView(RecommenderImpl& m, const Csr& train) : RecommenderImpl("fold-in", ModelContext{m.n_users(), m.n_items()}), m_(m), train_(train) {}
  InputType input_type() const override { return InputType::None; }
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override {
    return score_all(users).gather(1, items.to(torch::kLong).unsqueeze(1)).squeeze(1);
  }
  at::Tensor score_all(const at::Tensor& users) override {
    const auto u = users.to(torch::kCPU, torch::kLong).contiguous();
    auto out = torch::zeros({u.size(0), n_items_});
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < u.size(0); ++b) {
      const int64_t user = u.data_ptr<int64_t>()[b];
      if (train_.row_size(user) == 0) continue;
      const auto items = torch::tensor(std::vector<int64_t>(train_.row_begin(user), train_.row_end(user)), torch::kLong);
      out[b] = m_.score_fold_in(items).to(torch::kCPU, torch::kFloat);
      ++folded;
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  }
  int64_t folded = 0;
  double seconds = 0;

 private:
  RecommenderImpl& m_;
  const Csr& train_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s RUN_DIR [RUN_DIR...]\n", argv[0]);
    return 2;
  }
  reexec_with_short_openmp_spin(argv);
  const int threads = std::getenv("RZOO_BENCH_THREADS") ? std::atoi(std::getenv("RZOO_BENCH_THREADS")) : 1;
  Logger log;
  for (int a = 1; a < argc; ++a) {
    auto run = open_run(argv[a], log);
    set_thread_pools(threads);  // after open_run, which applies the run's own `threads`
    run->model->to(torch::kCPU);
    run->model->eval();
    torch::NoGradGuard no_grad;
    const auto& split = run->data.split;
    const EvalOptions opts = EvalOptions::from_config(run->cfg);
    const auto trained = evaluate(*run->model, split, Target::Test, opts, torch::kCPU, &run->data.data);
    FoldInView view(*run->model, split.train);
    const auto folded = evaluate(view, split, Target::Test, opts, torch::kCPU, &run->data.data);
    std::printf("%s (%s): test, %lld users\n", argv[a], run->model->name().c_str(), static_cast<long long>(trained.n_users));
    for (const auto& [name, v] : trained.metrics)
      if (folded.has(name)) std::printf("  %-12s trained %.4f   folded in %.4f   ratio %.3f\n", name.c_str(), v, folded.get(name), folded.get(name) / v);
    std::printf("  fold-in: %.2f ms per user (%lld users)\n", 1e3 * view.seconds / std::max<int64_t>(1, view.folded),
                static_cast<long long>(view.folded));
  }
  return 0;
}
