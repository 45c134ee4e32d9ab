// The contract every registered model follows, generated over the registry, plus per-model maths.
#include "helpers.h"
#include "model_checks.h"

#include <torch/script.h>
#include <torch/torch.h>


#include <cmath>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/general/bpr.h"
#include "models/general/pop.h"
#include "models/registry.h"
#include "trainers/evaluator.h"
#include "trainers/export.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

TEST_CASE("registry: sorted names, descriptions, unknown name lists the known ones", "[registry]") {
  const auto& models = registered_models();
  REQUIRE(models.size() >= 2);
  for (size_t i = 1; i < models.size(); ++i) CHECK(models[i - 1].name < models[i].name);
  for (const auto& m : models) {
    CHECK_FALSE(m.description.empty());
    CHECK_FALSE(m.paper.empty());
    // Every model has its documented config file.
    CHECK(fs::exists(config_dir() + "/models/" + m.name + ".yaml"));
  }
  const ModelContext ctx{3, 4, nullptr};
  std::string known;
  for (const auto& m : models) known += (known.empty() ? "" : ", ") + m.name;
  CHECK_THROWS_WITH(make_model("nosuch", ctx), Contains("unknown model 'nosuch' (known models: " + known + ")"));
  CHECK(known.find("bpr") != std::string::npos);
}

namespace {
// The config overrides a model's contract runs under. Every model is first built on the default
// (random) split; models that rank from a user's history (history_len() > 0: the sequence
// models, trained on sequence batches, and the closed-form markov) refuse it, naming
// dataset.split.method (checked here), and run on the time-ordered leave-one-out split instead.
// The other models keep the default split.
std::vector<std::string> contract_sets(const std::string& name, std::vector<std::string> sets = {}) {
  const Config cfg = synthetic_config(name, sets);
  const Dataset d = load_dataset(cfg);
  const Split split = split_dataset(d, cfg);
  try {
    make_model(name, ModelContext{d.n_users(), d.n_items(), &cfg, &d, &split});
  } catch (const std::exception& e) {
    INFO(name << ": " << e.what());
    REQUIRE_THAT(e.what(), Contains("dataset.split.method"));
    sets.push_back("dataset.split.method=leave_last");
    const Config seq_cfg = synthetic_config(name, sets);
    const Dataset sd = load_dataset(seq_cfg);
    const Split ss = split_dataset(sd, seq_cfg);
    const Recommender m = make_model(name, ModelContext{sd.n_users(), sd.n_items(), &seq_cfg, &sd, &ss});
    REQUIRE(m->history_len() > 0);
  }
  return sets;
}
}  // namespace

namespace {

// The contract on synthetic data for model `name` built from its YAML plus `sets`.
void check_contract(const std::string& name, const std::vector<std::string>& sets) {
  const Config cfg = synthetic_config(name, sets);  // builds from its own YAML
  CHECK(cfg.get_string("model.name") == name);
  const Dataset d = load_dataset(cfg);
  Split split = split_dataset(d, cfg);
  // As a run of the model has it (apps/rzoo.cpp): without the training rows unless it reads them.
  if (!model_reads_train_rows(name)) release_train_rows(split);
  torch::manual_seed(1);
  const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
  Recommender model = make_model(name, ctx);
  CHECK(model->name() == name);

  if (model->input_type() == InputType::None) {
    model->fit(split.train);
  } else {
    // The loss is finite and falls over a few epochs of the model's own batches.
    model->before_training();
    auto sampler = make_sampler("uniform", split.train);
    // Per-user models (autoencoders) see 200 rows per epoch: smaller batches give them more
    // than one step, at their own configured learning rate (lr 0.01 is unstable for Mult-VAE).
    // Sequence models train in the layout their YAML gives (train.sequence: the trainer's): one
    // row per user for SASRec, GRU4Rec and Caser, also 200 rows, so also batches of 32 (BERT4Rec:
    // prefix rows, below). The prefix layout has ~19x the rows; "caser and bert4rec: every loss
    // falls ... in both batch layouts" and the sequence-layout tests cover it.
    const TrainOptions topt = TrainOptions::from_config(cfg);
    const SequenceOptions seq{topt.seq_max_len, topt.seq_prefix, topt.seq_bucket};
    const bool per_user = model->input_type() == InputType::Users ||
                          (model->input_type() == InputType::Sequence && !seq.prefix);
    auto batcher_ptr = make_batcher(split, model->input_type(), *sampler, per_user ? 32 : 256, 1, seq);
    BatchSource& batcher = *batcher_ptr;
    auto opt = make_optimizer("adam", model->parameters(),
                              model->input_type() == InputType::Users ? cfg.get_double("train.lr") : 0.01, 0.0, 0.0);
    // Random losses (BERT4Rec's cloze masks, sampled negatives inside a loss) are compared
    // under the same seed.
    torch::manual_seed(2);
    const double before = epoch_loss(*model, batcher, nullptr, 0);
    // At least 5 epochs; deeper models (an NCF-MLP tower from tiny initial embeddings) may
    // take up to 15 to get there; models with one row per user, 7 steps an epoch, up to 40.
    double after = before;
    const uint64_t max_epochs = per_user ? 40 : 15;
    for (uint64_t e = 0; e < max_epochs; ++e) {
      epoch_loss(*model, batcher, opt.get(), e);
      if (e < 4) continue;
      torch::manual_seed(2);
      after = epoch_loss(*model, batcher, nullptr, 0);
      if (after < 0.8 * before) break;
    }
    INFO(name << ": loss " << before << " -> " << after);
    CHECK(after < 0.8 * before);
  }

  // Scores have the right shapes and agree between score and score_all.
  torch::NoGradGuard no_grad;
  model->eval();
  const auto users = torch::tensor({0, 3, 3, 7}, torch::kLong);
  const auto items = torch::tensor({int64_t{0}, int64_t{1}, int64_t{5}, d.n_items() - 1}, torch::kLong);
  const auto s = model->score(users, items);
  const auto all = model->score_all(users);
  REQUIRE(s.sizes() == torch::IntArrayRef({4}));
  REQUIRE(all.sizes() == torch::IntArrayRef({4, d.n_items()}));
  CHECK(torch::allclose(s, all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-5, 1e-6));
  CHECK(torch::isfinite(all).all().item<bool>());

  // Save / load round trip into a freshly built model gives the same scores.
  TempDir t;
  check_checkpoint_roundtrip(*model, [&] { torch::manual_seed(99); return make_model(name, ctx).ptr(); }, users,
                             t.path.string());

  // TorchScript export: loaded back by torch::jit::load, the same scores (1e-5) and the
  // same recommendations (known items masked); then by Debian's python3-torch.
  torch::jit::Module jm = check_export_roundtrip(*model, cfg, d, split, users, t.path.string());
  const int64_t k = 7;
  const auto rec = jm.run_method("recommend", users, k).toTuple();
  auto expect = model->score_all(users).to(torch::kFloat);
  const Csr known = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  for (int64_t b = 0; b < users.size(0); ++b) {
    const int64_t u = users[b].item<int64_t>();
    for (const Csr::Index* p = known.row_begin(u); p != known.row_end(u); ++p)
      expect[b][*p] = -std::numeric_limits<float>::infinity();
  }
  const auto top = std::get<0>(expect.topk(k, 1));
  CHECK(torch::allclose(rec->elements()[0].toTensor(), top, 1e-5, 1e-5));
  const auto rec_items = rec->elements()[1].toTensor();
  for (int64_t b = 0; b < users.size(0); ++b)
    for (int64_t j = 0; j < k; ++j) CHECK_FALSE(known.contains(users[b].item<int64_t>(), rec_items[b][j].item<int64_t>()));
  const std::string raw_user = d.users.raws()[3];
  const auto raw = jm.run_method("recommend_raw", raw_user, k).toTuple();
  std::vector<std::string> raw_items;
  const auto raw_list = raw->elements()[0].toList();
  for (size_t i = 0; i < raw_list.size(); ++i) raw_items.push_back(raw_list.get(i).toStringRef());
  REQUIRE(raw_items.size() == static_cast<size_t>(k));
  CHECK(raw_items[0] == d.items.raws()[static_cast<size_t>(rec_items[1][0].item<int64_t>())]);
  // Plain PyTorch reproduces the C++ numbers on the same inputs.
  // Sequential models also rank a history given as raw ids (the fourth user's, as a new
  // user would send it): the same in C++ and in Python.
  if (model->history_len() > 0 || model->folds_in()) {
    const HistoryCase hc = check_history_serving(*model, jm, d, 3, k);
    check_python_client(jm, d, users, k, t.path.string(), &hc);
  } else {
    CHECK_FALSE(jm.find_method("recommend_history"));
    CHECK_THROWS_WITH(model->score_history(torch::zeros({1, 3}, torch::kLong)), Contains("not from a history of items"));
    CHECK_THROWS_WITH(model->score_fold_in(torch::zeros({2}, torch::kLong)),
                      Contains("model '" + model->name() + "' cannot fold in a new user's history"));
    check_python_client(jm, d, users, k, t.path.string());
  }
}

}  // namespace

TEST_CASE("contract: every registered model", "[contract]") {
  for (const auto& info : registered_models()) {
    DYNAMIC_SECTION(info.name) {
      // BERT4Rec's cloze on its own layout (one row per user, items masked anywhere) does not
      // fall by a fifth on the synthetic data within 40 epochs (5.69 -> 5.41; with half the
      // items masked 5.39); with prefix rows (the last position masked) it does: that layout.
      check_contract(info.name, contract_sets(info.name, info.name == "bert4rec"
                                                             ? std::vector<std::string>{"train.sequence.augment=prefix"}
                                                             : std::vector<std::string>{}));
    }
  }
}

// Variants that change what a model holds: bpr and mf with side-feature fields (the synthetic
// data's user group/taste and item genres).
TEST_CASE("contract: bpr and mf with model.fields", "[contract]") {
  for (const std::string name : {"bpr", "mf"}) {
    DYNAMIC_SECTION(name) {
      auto sets = contract_sets(name);
      sets.push_back("model.fields=true");
      check_contract(name, sets);
    }
  }
}

TEST_CASE("registry: model_reads_sequences agrees with every model's input type", "[registry]") {
  // prepare_data keeps the training sequences only for the models this names: a sequence model
  // it missed would find none.
  for (const auto& info : registered_models()) {
    DYNAMIC_SECTION(info.name) {
      const Config cfg = synthetic_config(info.name, contract_sets(info.name, {}));
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      const Recommender model = make_model(info.name, ctx);
      CHECK(model_reads_sequences(info.name) == (model->input_type() == InputType::Sequence));
    }
  }
  CHECK(model_reads_sequences("sasrec"));
  CHECK_FALSE(model_reads_sequences("ials"));
  CHECK_FALSE(model_reads_sequences("nosuch"));
}

// A run of a model whose class declares kReadsTrainRows = false gets a split without
// Split::train_rows: each such model fits or trains (2 epochs of its batches, the same seeds) to
// the same losses and scores with the rows released as with them.
TEST_CASE("registry: a model that declares it does not read the training rows gives the same results without them",
          "[registry]") {
  for (const auto& info : registered_models()) {
    if (model_reads_train_rows(info.name)) continue;
    DYNAMIC_SECTION(info.name) {
      const Config cfg = synthetic_config(info.name, contract_sets(info.name, {}));
      const Dataset d = load_dataset(cfg);
      const Split with = split_dataset(d, cfg);
      Split without = with;
      release_train_rows(without);
      REQUIRE(without.train_rows.empty());
      std::vector<at::Tensor> scores;
      std::vector<double> losses;
      for (const Split* s : std::vector<const Split*>{&with, &without}) {
        torch::manual_seed(1);
        const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, s};
        Recommender model = make_model(info.name, ctx);
        if (model->input_type() == InputType::None) {
          model->fit(s->train);
        } else {
          model->before_training();
          auto sampler = make_sampler("uniform", s->train);
          const TrainOptions topt = TrainOptions::from_config(cfg);
          auto batcher = make_batcher(*s, model->input_type(), *sampler, 64, 1,
                                      SequenceOptions{topt.seq_max_len, topt.seq_prefix, topt.seq_bucket});
          auto opt = make_optimizer("adam", model->parameters(), 0.01, 0.0, 0.0);
          for (uint64_t e = 0; e < 2; ++e) {
            torch::manual_seed(2 + e);
            losses.push_back(epoch_loss(*model, *batcher, opt.get(), e));
          }
        }
        torch::NoGradGuard no_grad;
        model->eval();
        scores.push_back(model->score_all(torch::arange(d.n_users(), torch::kLong)));
      }
      for (size_t k = 0; k < losses.size() / 2; ++k) CHECK(losses[k] == losses[k + losses.size() / 2]);
      CHECK(torch::equal(scores[0], scores[1]));
    }
  }
  CHECK(model_reads_train_rows("biasedmf"));  // ratings of the training rows
  CHECK(model_reads_train_rows("markov"));    // their order
  CHECK(model_reads_train_rows("sasrec"));
  CHECK_FALSE(model_reads_train_rows("ials"));
  CHECK(model_reads_train_rows("nosuch"));
}

// The same contract where a CUDA device exists (LibTorch built with CUDA and a GPU present; CI
// has none, so there this test only says it was skipped): each model trains through the Trainer
// on the GPU, its scores there agree with the same weights on the CPU, its best.pt (written from
// GPU tensors) loads into a fresh CPU model, and its TorchScript export is CPU-only.
TEST_CASE("contract on cuda: every registered model trains, scores, saves and exports", "[contract][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("skipped: no CUDA device (LibTorch without CUDA, or no GPU)");
    return;
  }
  const c10::Device cuda(torch::kCUDA, 0);
  for (const auto& info : registered_models()) {
    DYNAMIC_SECTION(info.name) {
      const Config cfg = synthetic_config(info.name, contract_sets(info.name, {"train.epochs=3", "device=cuda"}));
      const Dataset d = load_dataset(cfg);
      const Split split = split_dataset(d, cfg);
      torch::manual_seed(1);
      const ModelContext ctx{d.n_users(), d.n_items(), &cfg, &d, &split};
      Recommender model = make_model(info.name, ctx);
      TempDir t;
      Logger log{true};
      Trainer trainer(model, split, TrainOptions::from_config(cfg), EvalOptions::from_config(cfg), cuda, t.file("run"), log,
                      &d);
      REQUIRE(trainer.fit());
      trainer.restore_best();
      if (model->input_type() != InputType::None)
        for (const auto& h : trainer.history()) CHECK(std::isfinite(h.loss));
      // Where the weights live is the model's business (content fits on the CPU by design); the
      // scores below must come from cuda inputs either way. Say so when nothing is on the GPU.
      bool any_cuda = false;
      for (const auto& p : model->parameters()) any_cuda = any_cuda || p.device().is_cuda();
      for (const auto& b : model->buffers()) any_cuda = any_cuda || b.device().is_cuda();
      if (!any_cuda) WARN(info.name << ": no parameter or buffer on the GPU after training there");

      torch::NoGradGuard no_grad;
      model->eval();
      const auto users = torch::tensor({0, 3, 3, 7}, torch::kLong);
      const auto items = torch::tensor({int64_t{0}, int64_t{1}, int64_t{5}, d.n_items() - 1}, torch::kLong);
      const auto s = model->score(users.to(cuda), items.to(cuda)).to(torch::kCPU, torch::kFloat);
      const auto all = model->score_all(users.to(cuda)).to(torch::kCPU, torch::kFloat);
      REQUIRE(all.sizes() == torch::IntArrayRef({4, d.n_items()}));
      CHECK(torch::isfinite(all).all().item<bool>());
      CHECK(torch::allclose(s, all.gather(1, items.unsqueeze(1)).squeeze(1), 1e-4, 1e-5));
      const EvalOptions eval = EvalOptions::from_config(cfg);
      const double gpu_ndcg = evaluate(*model, split, Target::Test, eval, cuda, &d).get("ndcg@10");

      // Exported from the GPU model: a CPU module with the same scores.
      ExportInputs ex;
      ex.config = &cfg;
      ex.data = &d;
      ex.split = &split;
      export_model(*model, ex, t.file("model.pt"));
      torch::jit::Module jm = torch::jit::load(t.file("model.pt"));
      for (const auto& p : jm.buffers()) CHECK(p.device().is_cpu());
      CHECK(torch::allclose(jm.run_method("_score_all", users).toTensor().to(torch::kFloat), all, 1e-4, 1e-5));

      // The best.pt written from GPU tensors loads into a fresh CPU model: same scores, same
      // metric (a near tie may rank differently on the two devices: 1e-3).
      torch::manual_seed(99);
      Recommender fresh = make_model(info.name, ctx);
      load_model_checkpoint(t.file("run/best.pt"), *fresh, info.name, torch::kCPU);
      fresh->eval();
      CHECK(torch::allclose(fresh->score_all(users).to(torch::kFloat), all, 1e-4, 1e-5));
      const double cpu_ndcg = evaluate(*fresh, split, Target::Test, eval, torch::kCPU, &d).get("ndcg@10");
      INFO(info.name << ": test ndcg@10 " << gpu_ndcg << " on cuda, " << cpu_ndcg << " on the cpu");
      CHECK(std::abs(gpu_ndcg - cpu_ndcg) < 1e-3);
    }
  }
}

TEST_CASE("pop: scores are training counts", "[models]") {
  const Csr train = Csr::from_pairs(3, 4, {0, 0, 1, 2, 2}, {1, 2, 1, 1, 3});
  Pop pop(ModelContext{3, 4, nullptr});
  pop->fit(train);
  CHECK(torch::equal(pop->score_all(torch::tensor({2}, torch::kLong)), torch::tensor({{0.f, 3.f, 1.f, 1.f}})));
  CHECK(pop->input_type() == InputType::None);
  CHECK_THROWS_WITH(pop->loss(Batch{}), Contains("closed form"));
}

TEST_CASE("bpr: loss and one SGD step by hand", "[models]") {
  BPR bpr(ModelContext{1, 2, nullptr}, BPROptions().embedding_size(2));
  {
    torch::NoGradGuard g;
    bpr->user_emb->weight.copy_(torch::tensor({{1.0f, 2.0f}}));
    bpr->item_emb->weight.copy_(torch::tensor({{0.5f, 0.0f}, {0.0f, 0.5f}}));
  }
  Batch b{torch::tensor({0}, torch::kLong), torch::tensor({0}, torch::kLong), torch::tensor({1}, torch::kLong), {}};
  // x = <u, i+ - i-> = 1*0.5 + 2*(-0.5) = -0.5; loss = -log sigmoid(-0.5) = log(1 + e^0.5)
  auto loss = bpr->loss(b);
  CHECK(loss.item<double>() == Approx(std::log1p(std::exp(0.5))));
  // d loss / d u = -(1 - sigmoid(x)) * (i+ - i-); one SGD step with lr 1.
  torch::optim::SGD sgd(bpr->parameters(), torch::optim::SGDOptions(1.0));
  sgd.zero_grad();
  loss.backward();
  sgd.step();
  const double g = 1.0 - 1.0 / (1.0 + std::exp(0.5));  // 1 - sigmoid(-0.5)
  CHECK(bpr->user_emb->weight[0][0].item<double>() == Approx(1.0 + g * 0.5));
  CHECK(bpr->user_emb->weight[0][1].item<double>() == Approx(2.0 - g * 0.5));
  CHECK(bpr->score(torch::tensor({0}, torch::kLong), torch::tensor({0}, torch::kLong)).item<double>() ==
        Approx((1.0 + g * 0.5) * (0.5 + g * 1.0) + (2.0 - g * 0.5) * (0.0 + g * 2.0)));  // i+ += g * u
}

TEST_CASE("bpr: the fused loss and gradient equal autograd's, repeated rows included", "[models]") {
  for (const double l2 : {0.0, 0.01}) {
    INFO("l2 " << l2);
    torch::manual_seed(7);
    BPR a(ModelContext{5, 7, nullptr}, BPROptions().embedding_size(9).init_std(0.5).l2(l2));
    BPR f(ModelContext{5, 7, nullptr}, BPROptions().embedding_size(9).init_std(0.5).l2(l2));
    {
      torch::NoGradGuard g;
      f->user_emb->weight.copy_(a->user_emb->weight);
      f->item_emb->weight.copy_(a->item_emb->weight);
    }
    // 40 triples over 5 users and 7 items: rows repeat, and an item is both positive and negative.
    const auto users = torch::randint(0, 5, {40}, torch::kLong), pos = torch::randint(0, 7, {40}, torch::kLong);
    auto neg = torch::randint(0, 7, {40}, torch::kLong);
    neg[3] = pos[3];
    const Batch b{users, pos, neg, {}};
    const auto want = a->loss(b);
    want.backward();
    const auto got = f->fused_loss_backward(b);
    REQUIRE(got.defined());
    CHECK(got.item<double>() == Approx(want.item<double>()).epsilon(1e-6));
    CHECK(torch::allclose(f->user_emb->weight.grad(), a->user_emb->weight.grad(), 1e-5, 1e-7));
    CHECK(torch::allclose(f->item_emb->weight.grad(), a->item_emb->weight.grad(), 1e-5, 1e-7));
    // A second call adds to the gradients, as a second backward would.
    f->fused_loss_backward(b);
    CHECK(torch::allclose(f->item_emb->weight.grad(), 2 * a->item_emb->weight.grad(), 1e-5, 1e-7));
    // Where it cannot (sparse embedding gradients, double parameters, no gradient mode): autograd.
    f->item_emb->options.sparse(true);
    CHECK_FALSE(f->fused_loss_backward(b).defined());
    f->item_emb->options.sparse(false);
    {
      torch::NoGradGuard g;
      CHECK_FALSE(f->fused_loss_backward(b).defined());
    }
    f->to(torch::kDouble);
    CHECK_FALSE(f->fused_loss_backward(b).defined());
  }
}
