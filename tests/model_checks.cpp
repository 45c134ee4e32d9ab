#include "model_checks.h"

#include "helpers.h"

#include <optional>

#include <torch/script.h>
#include <torch/torch.h>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/recommender.h"
#include "trainers/export.h"

namespace rzoo::test {

double epoch_loss(RecommenderImpl& model, BatchSource& batcher, torch::optim::Optimizer* opt, uint64_t epoch,
                  const std::function<void(const Batch&)>& check, int64_t* rows) {
  std::optional<torch::NoGradGuard> no_grad;
  if (!opt) no_grad.emplace();
  batcher.start_epoch(1, epoch);
  double total = 0;
  int64_t n = 0;
  Batch b;
  while (batcher.next(b)) {
    if (check) check(b);
    auto loss = model.loss(b);
    REQUIRE(loss.dim() == 0);
    REQUIRE(std::isfinite(loss.item<double>()));
    if (opt) {
      opt->zero_grad();
      loss.backward();
      opt->step();
    }
    total += loss.item<double>() * static_cast<double>(b.size());
    n += b.size();
  }
  if (rows) *rows = n;
  return total / static_cast<double>(std::max<int64_t>(n, 1));
}

void check_checkpoint_roundtrip(RecommenderImpl& model, const std::function<std::shared_ptr<RecommenderImpl>()>& make_fresh,
                                const at::Tensor& users, const std::string& dir) {
  torch::NoGradGuard no_grad;
  const auto all = model.score_all(users);
  torch::serialize::OutputArchive out;
  model.save(out);
  out.save_to(dir + "/m.pt");
  auto fresh = make_fresh();
  torch::serialize::InputArchive in;
  in.load_from(dir + "/m.pt");
  fresh->load(in);
  fresh->eval();
  CHECK(torch::equal(fresh->score_all(users), all));
}

torch::jit::Module check_export_roundtrip(RecommenderImpl& model, const Config& cfg, const Dataset& data, const Split& split,
                                          const at::Tensor& users, const std::string& dir) {
  torch::NoGradGuard no_grad;
  ExportInputs ex;
  ex.config = &cfg;
  ex.data = &data;
  ex.split = &split;
  export_model(model, ex, dir + "/model.pt");
  torch::jit::Module jm = torch::jit::load(dir + "/model.pt");
  const auto many_u = torch::randint(data.n_users(), {64}, torch::kLong), many_i = torch::randint(data.n_items(), {64}, torch::kLong);
  CHECK(torch::allclose(jm.run_method("score", many_u, many_i).toTensor(), model.score(many_u, many_i).to(torch::kFloat), 1e-5, 1e-5));
  CHECK(torch::allclose(jm.run_method("_score_all", users).toTensor().to(torch::kFloat), model.score_all(users).to(torch::kFloat), 1e-5,
                        1e-5));
  return jm;
}

}  // namespace rzoo::test
