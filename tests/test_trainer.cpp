#include "helpers.h"
#include "trainer_fixture.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/general/bpr.h"
#include "models/registry.h"
#include "trainers/experiment.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {
using Fixture = TrainerFixture;
}  // namespace

TEST_CASE("trainer: BPR's loss falls and validation beats chance on synthetic data", "[trainer]") {
  Fixture f({"train.epochs=8", "train.lr=0.01", "train.batch_size=256"});
  TempDir t;
  Recommender model{nullptr};
  auto tr = f.trainer(model, t.file("run"));
  CHECK(tr->fit());
  const auto& h = tr->history();
  REQUIRE(h.size() == 8);
  CHECK(h.back().loss < 0.7 * h.front().loss);
  // Pop on the same split as the bar (synthetic data has popularity and taste).
  Recommender pop = make_model("pop", ModelContext{f.data.data.n_users(), f.data.data.n_items(), &f.cfg});
  pop->fit(f.data.split.train);
  const double pop_ndcg = evaluate(*pop, f.data.split, Target::Valid, EvalOptions::from_config(f.cfg), torch::kCPU).get("ndcg@10");
  CHECK(tr->best_valid() > pop_ndcg);
  CHECK(fs::exists(t.file("run/best.pt")));
  CHECK(fs::exists(t.file("run/last.pt")));
}

TEST_CASE("trainer: the same seed gives the same numbers", "[trainer]") {
  Fixture f({"train.epochs=3"});
  TempDir t;
  Recommender a{nullptr}, b{nullptr};
  auto ta = f.trainer(a, t.file("a"));
  ta->fit();
  auto tb = f.trainer(b, t.file("b"));
  tb->fit();
  for (size_t e = 0; e < 3; ++e) {
    CHECK(ta->history()[e].loss == tb->history()[e].loss);
    CHECK(ta->history()[e].valid == tb->history()[e].valid);
  }
}

TEST_CASE("trainer: an interrupted then resumed run equals an uninterrupted one", "[trainer][resume]") {
  const std::string optimizer = GENERATE(as<std::string>{}, "adam", "lazy_adam");
  INFO(optimizer);
  Fixture f({"train.epochs=6", "train.early_stop.patience=0", "train.lr=0.01", "train.batch_size=512",
             "train.optimizer=" + optimizer});
  TempDir t;
  Recommender full{nullptr};
  auto tf = f.trainer(full, t.file("full"));
  REQUIRE(tf->fit());

  Recommender part{nullptr};
  auto tp = f.trainer(part, t.file("part"));
  CHECK_FALSE(tp->fit(2));  // "interrupted" after 2 epochs
  CHECK(tp->epoch() == 2);
  tp.reset();
  Recommender resumed{nullptr};
  auto tr = f.trainer(resumed, t.file("part"));  // a new process would build a fresh model
  tr->resume();
  CHECK(tr->epoch() == 2);
  REQUIRE(tr->fit());

  REQUIRE(tr->history().size() == tf->history().size());
  for (size_t e = 0; e < tf->history().size(); ++e) {
    CHECK(tr->history()[e].loss == tf->history()[e].loss);
    CHECK(tr->history()[e].valid == tf->history()[e].valid);
  }
  CHECK(tr->best_epoch() == tf->best_epoch());
  for (size_t i = 0; i < full->parameters().size(); ++i)
    CHECK(torch::equal(full->parameters()[i], resumed->parameters()[i]));
  tf->restore_best();
  tr->restore_best();
  const auto opts = EvalOptions::from_config(f.cfg);
  const auto a = evaluate(*full, f.data.split, Target::Test, opts, torch::kCPU);
  const auto b = evaluate(*resumed, f.data.split, Target::Test, opts, torch::kCPU);
  CHECK(a.get("ndcg@10") == b.get("ndcg@10"));
}

TEST_CASE("trainer: a run stopped before its first epoch ends resumes exactly", "[trainer][resume]") {
  Fixture f({"train.epochs=3", "train.early_stop.patience=0"});
  TempDir t;
  Recommender full{nullptr}, part{nullptr}, resumed{nullptr};
  auto tf = f.trainer(full, t.file("full"));
  tf->fit();
  auto tp = f.trainer(part, t.file("part"));
  CHECK_FALSE(tp->fit(0));  // interrupted at once: the initial state must already be on disk
  REQUIRE(fs::exists(t.file("part/last.pt")));
  auto tr = f.trainer(resumed, t.file("part"));
  tr->resume();
  tr->fit();
  for (size_t e = 0; e < 3; ++e) CHECK(tr->history()[e].loss == tf->history()[e].loss);
}

TEST_CASE("trainer: a checkpoint of another shape is refused", "[trainer]") {
  Fixture f({"train.epochs=1", "model.embedding_size=64"});
  TempDir t;
  Recommender model{nullptr};
  f.trainer(model, t.file("run"))->fit();
  Fixture g({"train.epochs=1", "model.embedding_size=8"});
  Recommender other{nullptr};
  auto tr = g.trainer(other, t.file("run"));
  CHECK_THROWS_WITH(tr->restore_best(), Contains("does not match the model") && Contains("200x64") && Contains("200x8"));
}

TEST_CASE("trainer: a catalogue smaller than K trains and validates", "[trainer]") {
  Fixture f({"train.epochs=2", "dataset.synthetic.n_items=8", "dataset.synthetic.per_user=4"});
  TempDir t;
  Recommender model{nullptr};
  auto tr = f.trainer(model, t.file("run"));
  CHECK(tr->fit());
  CHECK(std::isfinite(tr->best_valid()));  // ndcg@10 over 8 items
}

TEST_CASE("trainer: checkpoint round trip restores the best model", "[trainer]") {
  Fixture f({"train.epochs=3"});
  TempDir t;
  Recommender model{nullptr};
  auto tr = f.trainer(model, t.file("run"));
  tr->fit();
  tr->restore_best();
  const auto users = torch::arange(10);
  const auto expected = model->score_all(users).detach().clone();
  Recommender other{nullptr};
  auto t2 = f.trainer(other, t.file("run"));
  {
    torch::NoGradGuard g;
    for (auto& p : other->parameters()) p.zero_();
  }
  t2->restore_best();
  CHECK(torch::equal(other->score_all(users), expected));
}

TEST_CASE("trainer: resume from a missing or corrupt checkpoint is a clear error", "[trainer][resume]") {
  Fixture f({"train.epochs=2"});
  TempDir t;
  Recommender model{nullptr};
  auto tr = f.trainer(model, t.file("nothing"));
  CHECK_THROWS_WITH(tr->resume(), Contains("last.pt: checkpoint not found"));
  fs::create_directories(t.file("bad"));
  t.write("bad/last.pt", "this is not a zip archive");
  auto tb = f.trainer(model, t.file("bad"));
  CHECK_THROWS_WITH(tb->resume(), Contains("last.pt: checkpoint is corrupt"));
  // A truncated real checkpoint.
  auto good = f.trainer(model, t.file("good"));
  good->fit();
  const auto size = fs::file_size(t.file("good/last.pt"));
  fs::resize_file(t.file("good/last.pt"), size / 2);
  auto tt = f.trainer(model, t.file("good"));
  CHECK_THROWS_AS(tt->resume(), Error);
}

TEST_CASE("trainer: closed-form models fit once", "[trainer]") {
  const Config cfg = synthetic_config("pop");
  PreparedData p{load_dataset(cfg), {}};
  p.split = split_dataset(p.data, cfg);
  Logger log(true);
  TempDir t;
  const RunResult r = train_model(cfg, p, t.file("pop"), log);
  CHECK(r.epochs_run == 1);
  CHECK(r.test.get("ndcg@10") > 0.0);
  CHECK(fs::exists(t.file("pop/metrics.json")));
  CHECK(fs::exists(t.file("pop/config.yaml")));
  // evaluate_run rebuilds the split from the saved config and gets the same numbers.
  const RunResult again = evaluate_run(t.file("pop"), log);
  CHECK(again.test.get("ndcg@10") == r.test.get("ndcg@10"));
  CHECK(again.best_epoch == r.best_epoch);
  CHECK(again.epochs_run == r.epochs_run);
}

TEST_CASE("trainer: early stopping stops after `patience` validations without gain", "[trainer]") {
  // A learning rate this high overfits at once: validation peaks early.
  Fixture f({"train.epochs=100", "train.lr=0.2", "train.early_stop.patience=2"});
  TempDir t;
  Recommender model{nullptr};
  auto tr = f.trainer(model, t.file("run"));
  tr->fit();
  CHECK(tr->epoch() < 100);
  CHECK(tr->epoch() == tr->best_epoch() + 2);
}

TEST_CASE("trainer: early stopping waits for train.early_stop.min_epochs", "[trainer]") {
  // The run above with min_epochs past its early stop: it goes on to min_epochs (no gain after the
  // early peak), then stops at once; the best epoch is the same.
  Fixture plain({"train.epochs=100", "train.lr=0.2", "train.early_stop.patience=2"});
  TempDir t;
  Recommender m1{nullptr};
  auto t1 = plain.trainer(m1, t.file("plain"));
  t1->fit();
  const int64_t stop = t1->epoch();
  REQUIRE(stop < 40);
  const int64_t min_epochs = stop + 5;
  Fixture f({"train.epochs=100", "train.lr=0.2", "train.early_stop.patience=2",
             "train.early_stop.min_epochs=" + std::to_string(min_epochs)});
  Recommender m2{nullptr};
  auto t2 = f.trainer(m2, t.file("wait"));
  t2->fit();
  INFO("plain stop " << stop << ", best " << t1->best_epoch() << "; with min_epochs: stop " << t2->epoch() << ", best "
                     << t2->best_epoch());
  CHECK(t2->epoch() >= min_epochs);
  CHECK(t2->epoch() < 100);
  CHECK(t2->epoch() == std::max(min_epochs, t2->best_epoch() + 2));
}

namespace {
// BPR that counts before_training() calls.
struct CountingBPR : BPRImpl {
  using BPRImpl::BPRImpl;
  int calls = 0;
  void before_training() override { ++calls; }
};
}  // namespace

TEST_CASE("trainer: before_training runs once for a fresh run, never on resume, log_every logs the loss", "[trainer]") {
  Fixture f({"train.epochs=2", "train.batch_size=256", "train.log_every=3", "train.early_stop.patience=0"});
  TempDir t;
  f.log.open(t.file("train.log"));
  const ModelContext ctx{f.data.data.n_users(), f.data.data.n_items(), &f.cfg};
  auto counting = std::make_shared<CountingBPR>(ctx);
  Recommender model(std::static_pointer_cast<RecommenderImpl>(counting));
  {
    Trainer tr(model, f.data.split, TrainOptions::from_config(f.cfg), EvalOptions::from_config(f.cfg), torch::kCPU,
               t.file("run"), f.log);
    CHECK_FALSE(tr.fit(1));  // one epoch, then stop
    CHECK(counting->calls == 1);
  }
  {
    Trainer tr(model, f.data.split, TrainOptions::from_config(f.cfg), EvalOptions::from_config(f.cfg), torch::kCPU,
               t.file("run"), f.log);
    tr.resume(false);
    CHECK(tr.fit());
    CHECK(counting->calls == 1);  // resumed: the pre-training hook is not run again
  }
  f.log.close();
  std::ifstream in(t.file("train.log"));
  std::string line;
  int64_t step_lines = 0, epoch_lines = 0;
  while (std::getline(in, line)) {
    if (line.find(" step ") != std::string::npos) {
      ++step_lines;
      CHECK_THAT(line, Contains("(mean of the last 3 steps)"));
    }
    if (line.find("% batching)") != std::string::npos) ++epoch_lines;
  }
  // Steps per epoch: the pairwise rows (one negative per positive) in batches of 256. The step
  // counter restarts with the process, so each of the two runs logs floor(steps / 3) lines.
  const int64_t steps = (f.data.split.train.nnz() + 255) / 256;
  CHECK(epoch_lines == 2);
  CHECK(step_lines == 2 * (steps / 3));
}

TEST_CASE("user batcher: every user with training data once per epoch, order from (seed, epoch)", "[trainer]") {
  const Config cfg = synthetic_config("bpr");
  const Dataset d = load_dataset(cfg);
  const Split s = split_dataset(d, cfg);
  auto sampler = make_sampler("uniform", s.train);
  auto order = [&](uint64_t seed, uint64_t epoch) {
    auto b = make_batcher(s, InputType::Users, *sampler, 7, 1);
    b->start_epoch(seed, epoch);
    std::vector<int64_t> users;
    Batch batch;
    while (b->next(batch)) {
      CHECK(batch.size() <= 7);
      CHECK_FALSE(batch.items.defined());
      for (int64_t r = 0; r < batch.size(); ++r) users.push_back(batch.users[r].item<int64_t>());
    }
    return users;
  };
  const auto a = order(1, 0);
  std::vector<int64_t> expected;
  for (int64_t u = 0; u < s.train.n_rows; ++u)
    if (s.train.row_size(u) > 0) expected.push_back(u);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == expected);
  CHECK(order(1, 0) == a);
  CHECK(order(1, 1) != a);
  CHECK(order(2, 0) != a);
}

TEST_CASE("trainer: micro-batches take the step of the whole batch", "[trainer][micro]") {
  // SGD, not Adam: Adam's step barely depends on the gradient's scale, so a wrongly weighted sum
  // of the pieces would go unseen; with SGD every weight shows in the parameters.
  struct Case {
    const char* name;
    std::string model;
    std::vector<std::string> sets;
    bool fused;  // a native loss-and-backward: takes the batch whole, the same floats exactly
    bool sequence = false;
  };
  // Sequence cases: histories of 6 to 45 items (the synthetic data's are all 20 long), so that
  // all-positions rows hold different numbers of targets.
  TempDir data;
  std::string csv = "user,item,timestamp\n";
  for (int u = 0; u < 90; ++u)
    for (int k = 0; k < 6 + (u * 7) % 40; ++k) csv += fmt::format("{},{},{}\n", u, (u * 13 + k * k * 7 + k) % 120, 1000 * u + k);
  const std::string seq_data = "{format: csv, path: '" + data.write("seq.csv", csv) +
                               "', columns: {user: user, item: item, timestamp: timestamp}, cache: {enabled: false}}";
  const std::string seq = "dataset.split.method=leave_last";
  const std::vector<Case> cases = {
      {"mf (pointwise)", "mf", {"train.lr=0.5"}, false},
      {"bpr, sgd (sparse embedding gradients added up over the pieces)", "bpr", {"train.lr=0.5"}, false},
      {"bpr, adam (native backward)", "bpr", {"train.lr=0.5", "train.optimizer=adam"}, true},
      {"sasrec, prefix rows, ce", "{name: sasrec, hidden_size: 16, layers: 1, inner_size: 32, dropout: 0, attn_dropout: 0, max_len: 10}",
       {seq, "train.lr=0.5", "train.sequence.augment=prefix"}, false, true},
      // All-positions rows hold different numbers of targets (windows of 60 over shorter
      // histories): a piece is weighted by its targets, not its rows.
      {"sasrec, all positions, ce", "{name: sasrec, hidden_size: 16, layers: 1, inner_size: 32, dropout: 0, attn_dropout: 0, max_len: 60}",
       {seq, "train.lr=0.5", "train.sequence.augment=none", "train.sequence.max_len=60"}, false, true},
      // (Not loss: sampled: it draws its negatives per forward pass, so per piece.)
      {"gru4rec, all positions, ce", "{name: gru4rec, embedding_size: 16, hidden_size: 16, dropout: 0, max_len: 60}",
       {seq, "train.lr=0.5", "train.sequence.augment=none", "train.sequence.max_len=60"}, false, true},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      const auto run = [&](const std::string& micro, std::vector<double>& losses) {
        std::vector<std::string> sets = {"train.epochs=2", "train.optimizer=sgd", "train.batch_size=64",
                                         "train.early_stop.patience=0", "train.micro_batch_size=" + micro};
        sets.insert(sets.end(), c.sets.begin(), c.sets.end());  // later --set wins (the case's optimizer)
        const Config cfg = make_config("dataset: " + (c.sequence ? seq_data : std::string("synthetic")) + "\nmodel: " + c.model + "\n", [&] {
          std::vector<std::string> all = {"threads=1", "train.progress=false"};
          all.insert(all.end(), sets.begin(), sets.end());
          return all;
        }());
        Dataset d = load_dataset(cfg);
        const Split s = split_dataset(d, cfg);
        torch::manual_seed(2020);
        Recommender m = make_model(cfg.get_string("model.name"), ModelContext{d.n_users(), d.n_items(), &cfg, &d, &s});
        TempDir t;
        Logger log{true};
        Trainer tr(m, s, TrainOptions::from_config(cfg), EvalOptions::from_config(cfg), torch::kCPU, t.file("run"), log);
        tr.fit();
        for (const auto& e : tr.history()) losses.push_back(e.loss);
        std::vector<at::Tensor> params;
        for (const auto& p : m->parameters()) params.push_back(p.detach().clone());
        return params;
      };
      std::vector<double> l0, l16, l20;
      const auto whole = run("0", l0);
      for (const std::string micro : {"16", "20"}) {  // 64 = 4 x 16; 20 + 20 + 20 + 4
        INFO("micro_batch_size " << micro);
        auto& l = micro == "16" ? l16 : l20;
        const auto parts = run(micro, l);
        REQUIRE(parts.size() == whole.size());
        double diff = 0;
        for (size_t k = 0; k < whole.size(); ++k) diff = std::max(diff, (parts[k] - whole[k]).abs().max().item<double>());
        if (c.fused) CHECK(diff == 0);
        else CHECK(diff < 2e-5);
        REQUIRE(l.size() == l0.size());
        for (size_t e = 0; e < l0.size(); ++e) CHECK(l[e] == Approx(l0[e]).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("trainer: a negative train.micro_batch_size is refused by name", "[trainer][micro]") {
  CHECK_THROWS_WITH(TrainOptions::from_config(synthetic_config("bpr", {"train.micro_batch_size=-1"})),
                    Contains("train.micro_batch_size"));
}
