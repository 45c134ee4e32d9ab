#include "model_checks.h"

#include "helpers.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/export.h"

namespace rzoo::test {

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
