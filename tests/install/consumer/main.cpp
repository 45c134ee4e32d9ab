// A program of a C++ user: builds a model from rzoo's registry, fits it on generated data and
// evaluates it with rzoo's evaluator, all through the installed headers and library.
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "core/config.h"
#include "core/log.h"
#include "models/registry.h"
#include "trainers/evaluator.h"
#include "trainers/experiment.h"

int main() {
  using namespace rzoo;
  ConfigSources sources;
  sources.config_dir = RZOO_CONSUMER_CONFIG_DIR;
  sources.experiment = parse_layer("model: pop\ndataset: synthetic\nthreads: 1\n", "consumer");
  const Config cfg = resolve_config(sources);
  Logger log(true);
  const PreparedData data = prepare_data(cfg, log);
  ModelContext ctx;
  ctx.n_users = data.data.n_users();
  ctx.n_items = data.data.n_items();
  ctx.config = &cfg;
  ctx.data = &data.data;
  ctx.split = &data.split;
  Recommender model = make_model("pop", ctx);
  model->fit(data.split.train);
  const EvalResult r = evaluate(*model, data.split, Target::Test, EvalOptions::from_config(cfg), torch::kCPU, &data.data);
  const double ndcg = r.get("ndcg@10");
  std::cout << "consumer: pop on " << data.data.name << ", " << r.n_users << " test users, ndcg@10 " << ndcg << "\n";
  return std::isfinite(ndcg) && ndcg >= 0 && ndcg <= 1 && r.n_users > 0 ? 0 : 1;
}
