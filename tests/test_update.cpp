// The feedback loop's incremental update: interactions appended to a run's data
// (dataset.append), the replay subset of a warm-started run (train.replay), the warm start itself
// (train.init_from, trainers/trainer.h warm_start) and `rzoo update`.
#include "helpers.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/checkpoint.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "models/context/ctr.h"
#include "models/registry.h"
#include "trainers/experiment.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// 30 users x 40 items, 8 rated interactions each in time order: user u rates items
// (3u + 5j) mod 40 at times 1000u + j.
std::string ratings_csv() {
  std::string s = "user,item,rating,timestamp\n";
  for (int u = 0; u < 30; ++u)
    for (int j = 0; j < 8; ++j)
      s += fmt::format("u{},i{},{},{}\n", u, (3 * u + 5 * j) % 40, 1 + (u + j) % 5, 1000 * u + j);
  return s;
}

std::string experiment(const TempDir& t, const std::string& model) {
  return fmt::format(
      "model: {}\n"
      "dataset:\n  name: tiny\n  format: csv\n  path: {}\n"
      "  columns: {{user: user, item: item, rating: rating, timestamp: timestamp}}\n"
      "  filter: {{rating_min: 2}}\n  cache: {{enabled: false}}\n"
      "  split: {{method: leave_last, valid_k: 1, test_k: 1}}\n"
      "train: {{epochs: 2, progress: 'false', batch_size: 64}}\n"
      "eval: {{ks: [5, 10]}}\n"
      "threads: 1\noutput_dir: {}\n",
      model, t.file("ratings.csv"), t.file("runs"));
}

// Known user u1 with a new item; a new user; a known pair (dropped: dedup); a rating below the
// range (dropped, and its new user and item with it).
const char* kNewRows =
    "user,item,rating,timestamp\n"
    "u1,inew1,5,90000\n"
    "unew1,i1,4,90001\n"
    "unew1,inew2,4,90002\n"
    "u2,i6,5,90003\n"
    "unew2,inew3,1,90004\n";

std::set<std::pair<std::string, std::string>> pairs_of(const Dataset& d, const Csr& m) {
  std::set<std::pair<std::string, std::string>> out;
  for (int64_t u = 0; u < m.n_rows; ++u)
    for (const Csr::Index* p = m.row_begin(u); p != m.row_end(u); ++p) out.emplace(d.users.raw(u), d.items.raw(*p));
  return out;
}

}  // namespace

TEST_CASE("update: appended interactions keep every index, add new ids after the others, all in train", "[update]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  Logger log(true);
  const Config base_cfg = make_config(experiment(t, "bpr"));
  const PreparedData base = prepare_data(base_cfg, log);
  const Config cfg = make_config(experiment(t, "bpr"), {"dataset.append=[" + q(fresh) + "]"});
  const PreparedData app = prepare_data(cfg, log);
  const Dataset& b = base.data;
  const Dataset& a = app.data;
  REQUIRE(b.n_users() == 30);
  REQUIRE(a.n_users() == 31);
  REQUIRE(a.n_items() == b.n_items() + 2);
  for (int64_t u = 0; u < b.n_users(); ++u) CHECK(a.users.raw(u) == b.users.raw(u));
  for (int64_t i = 0; i < b.n_items(); ++i) CHECK(a.items.raw(i) == b.items.raw(i));
  CHECK(a.users.raw(30) == "unew1");
  CHECK(a.items.raw(b.n_items()) == "inew1");
  CHECK(a.items.raw(b.n_items() + 1) == "inew2");
  CHECK(a.users.find("unew2") == -1);
  CHECK(a.items.find("inew3") == -1);
  // Three rows kept: the known pair (u2, i6) and the rating 1 were dropped.
  REQUIRE(a.n_interactions() == b.n_interactions() + 3);
  for (int64_t k = 0; k < b.n_interactions(); ++k) {
    CHECK(a.user[static_cast<size_t>(k)] == b.user[static_cast<size_t>(k)]);
    CHECK(a.item[static_cast<size_t>(k)] == b.item[static_cast<size_t>(k)]);
  }
  CHECK(a.rating[static_cast<size_t>(a.n_interactions() - 1)] == 4.0f);
  CHECK(a.timestamp[static_cast<size_t>(a.n_interactions() - 1)] == 90002);
  // Validation and test are the run's own; train gained exactly the new pairs.
  CHECK(pairs_of(a, app.split.valid) == pairs_of(b, base.split.valid));
  CHECK(pairs_of(a, app.split.test) == pairs_of(b, base.split.test));
  auto train = pairs_of(a, app.split.train);
  const auto before = pairs_of(b, base.split.train);
  CHECK(train.size() == before.size() + 3);
  for (const auto& p : before) CHECK(train.count(p) == 1);
  CHECK(train.count({"u1", "inew1"}) == 1);
  CHECK(train.count({"unew1", "i1"}) == 1);
  CHECK(train.count({"unew1", "inew2"}) == 1);
  CHECK(app.split.train.n_rows == a.n_users());
  CHECK(app.split.valid.n_rows == a.n_users());
  CHECK(app.split.test.n_cols == a.n_items());
  // The new user's training sequence is in time order; u1's ends with the new item.
  const int64_t un = a.users.find("unew1");
  REQUIRE(app.split.train_seq.size(un) == 2);
  CHECK(app.split.train_seq.begin(un)[0] == a.items.find("i1"));
  CHECK(app.split.train_seq.begin(un)[1] == a.items.find("inew2"));
  const int64_t u1 = a.users.find("u1");
  CHECK(app.split.train_seq.begin(u1)[app.split.train_seq.size(u1) - 1] == a.items.find("inew1"));
  // The whole epoch: no subset without init_from.
  CHECK(app.split.epoch.n_rows == 0);

  // Files whose columns are not the run's are refused, naming the file or the column.
  const std::string no_rating = t.write("norating.csv", "user,item,timestamp\nu1,i3,5\n");
  CHECK_THROWS_WITH(prepare_data(make_config(experiment(t, "bpr"), {"dataset.append=[" + q(no_rating) + "]"}), log),
                    Catch::Contains("no column 'rating'") && Catch::Contains("norating.csv"));
  CHECK_THROWS_WITH(prepare_data(make_config(experiment(t, "bpr"), {"dataset.append=[" + q(t.file("none.csv")) + "]"}), log),
                    Catch::Contains("none.csv"));
}

TEST_CASE("prepare_data without sequences: no training sequences, a sequence model refuses such data", "[update][data]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  Logger log(true);
  const Config cfg = make_config(experiment(t, "bpr"), {"dataset.append=[" + q(fresh) + "]"});
  const PreparedData with = prepare_data(cfg, log);
  const PreparedData without = prepare_data(cfg, log, true, false);
  REQUIRE(with.split.train_seq.n_rows == with.data.n_users());
  CHECK(static_cast<int64_t>(with.split.train_seq.items.size()) == static_cast<int64_t>(with.split.train_rows.size()));
  CHECK(without.split.train_seq.n_rows == 0);
  CHECK(without.split.train_seq.items.empty());
  CHECK(without.split.epoch_seq.items.empty());
  CHECK(without.split.train.indices == with.split.train.indices);  // everything else as before
  CHECK(without.split.train_rows == with.split.train_rows);
  const Config seq = make_config(experiment(t, "gru4rec"), {"dataset.append=[" + q(fresh) + "]", "train.epochs=1"});
  CHECK_THROWS_WITH(train_model(seq, without, t.file("runs/seq"), log, false, true),
                    Catch::Contains("model gru4rec trains on sequences, and the data was prepared without them"));
  CHECK_FALSE(fs::exists(t.file("runs/seq")));
}

TEST_CASE("prepare_data without training rows: released, the rest as before, a model that reads them refuses such data", "[update][data]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  Logger log(true);
  const Config cfg = make_config(experiment(t, "ials"), {"dataset.append=[" + q(fresh) + "]"});
  const PreparedData with = prepare_data(cfg, log);
  const PreparedData without = prepare_data(cfg, log, true, true, false);
  REQUIRE_FALSE(with.split.train_rows.empty());
  CHECK_FALSE(with.split.train_rows_released);
  CHECK(without.split.train_rows_released);
  CHECK(without.split.train_rows.empty());
  CHECK(without.split.train_rows.capacity() == 0);  // the memory is given back, not just cleared
  CHECK(without.split.train.indices == with.split.train.indices);  // everything else as before
  CHECK(without.split.valid_rows == with.split.valid_rows);
  CHECK(without.split.test_rows == with.split.test_rows);
  CHECK(without.split.train_seq.items == with.split.train_seq.items);
  // A model that declares it does not read them trains to the same result without them.
  const RunResult a = train_model(cfg, with, t.file("runs/with"), log, false, true);
  const RunResult b = train_model(cfg, without, t.file("runs/without"), log, false, true);
  CHECK(a.test.metrics == b.test.metrics);
  CHECK(a.valid.metrics == b.valid.metrics);
  // One that reads them (ratings: biasedmf; interaction order: markov) is refused, writing nothing.
  for (const std::string model : {"biasedmf", "markov"}) {
    const Config mc = make_config(experiment(t, model), {"dataset.append=[" + q(fresh) + "]", "train.epochs=1"});
    CHECK_THROWS_WITH(train_model(mc, without, t.file("runs/" + model), log, false, true),
                      Catch::Contains("model " + model + " reads the training rows, and the data was prepared without them"));
    CHECK_FALSE(fs::exists(t.file("runs/" + model)));
  }
}

TEST_CASE("update: the replay subset holds the new pairs and the asked number of old ones, seeded", "[update]") {
  const Dataset d = make_synthetic({});
  Split s = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  // Pretend the rows of the last 5 users' training interactions are the new ones.
  const int64_t begin = 0, end = 50;
  std::set<std::pair<int64_t, int64_t>> fresh;
  for (int64_t k = begin; k < end; ++k) fresh.emplace(d.user[static_cast<size_t>(k)], d.item[static_cast<size_t>(k)]);
  replay_subset(s, d, begin, end, 2.0, 7);
  CHECK(s.replay_new == static_cast<int64_t>(fresh.size()));
  CHECK(s.replay_old == 2 * s.replay_new);
  CHECK(s.epoch.nnz() == s.replay_new + s.replay_old);
  int64_t n_fresh = 0;
  for (int64_t u = 0; u < s.epoch.n_rows; ++u)
    for (const Csr::Index* p = s.epoch.row_begin(u); p != s.epoch.row_end(u); ++p) {
      n_fresh += fresh.count({u, *p});
      const bool known = s.train.contains(u, *p) || fresh.count({u, *p});
      CHECK(known);
    }
  CHECK(n_fresh == s.replay_new);
  // The sequences of exactly the epoch's users.
  for (int64_t u = 0; u < s.epoch.n_rows; ++u)
    CHECK(s.epoch_seq.size(u) == (s.epoch.row_size(u) > 0 ? s.train_seq.size(u) : 0));
  Split again = split_random_per_user(d, {0.8, 0.1, 0.1}, 1);
  replay_subset(again, d, begin, end, 2.0, 7);
  CHECK(again.epoch.indices == s.epoch.indices);
  replay_subset(again, d, begin, end, 2.0, 8);
  CHECK(again.epoch.indices != s.epoch.indices);
  // More replay than there are old pairs: all of them.
  replay_subset(again, d, begin, end, 1e9, 7);
  CHECK(again.epoch.nnz() == s.train.nnz() + s.replay_new - static_cast<int64_t>(
      std::count_if(fresh.begin(), fresh.end(), [&](const auto& p) { return s.train.contains(p.first, p.second); })));
}

TEST_CASE("update: a warm start copies the trained rows and keeps the new rows' initialisation", "[update]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  Logger log(true);
  for (const std::string model : {"bpr", "bert4rec", "neumf"}) {
    DYNAMIC_SECTION(model) {
      const Config pcfg = make_config(experiment(t, model), {"run_name=" + model});
      const PreparedData pdata = prepare_data(pcfg, log);
      const std::string run = new_run_dir(pcfg);
      train_model(pcfg, pdata, run, log);
      // The parent's trained model, and a fresh one for the grown data.
      Recommender parent = make_model(model, ModelContext{pdata.data.n_users(), pdata.data.n_items(), &pcfg, &pdata.data, &pdata.split});
      load_model_checkpoint(run + "/best.pt", *parent, model, torch::kCPU);
      const Config cfg = make_config(experiment(t, model), {"dataset.append=[" + q(fresh) + "]", "train.init_from=" + q(run)});
      const PreparedData data = prepare_data(cfg, log);
      torch::manual_seed(3);
      Recommender grown = make_model(model, ModelContext{data.data.n_users(), data.data.n_items(), &cfg, &data.data, &data.split});
      std::map<std::string, at::Tensor> init;
      for (const auto& p : grown->named_parameters()) init[p.key()] = p.value().detach().clone();
      const int64_t n = warm_start(*grown, run + "/best.pt", model, pdata.data.n_users(), pdata.data.n_items(),
                                   data.data.n_users(), data.data.n_items(), torch::kCPU);
      CHECK(n >= 1);
      const auto old_params = parent->named_parameters();
      int64_t checked_rows = 0;
      for (const auto& p : grown->named_parameters()) {
        const at::Tensor src = old_params[p.key()];
        const at::Tensor dst = p.value();
        INFO(p.key());
        if (src.sizes() == dst.sizes()) {
          CHECK(torch::equal(src, dst));
          continue;
        }
        // Grown along dimension 0 (users or items, plus padding / mask rows at the end).
        REQUIRE(src.size(0) < dst.size(0));
        const bool items = dst.size(0) - src.size(0) == 2;
        const int64_t old_n = items ? pdata.data.n_items() : pdata.data.n_users();
        const int64_t c = src.size(0) - old_n;
        CHECK(torch::equal(dst.narrow(0, 0, old_n), src.narrow(0, 0, old_n)));
        if (c > 0) CHECK(torch::equal(dst.narrow(0, dst.size(0) - c, c), src.narrow(0, old_n, c)));
        const int64_t added = dst.size(0) - src.size(0);
        CHECK(torch::equal(dst.narrow(0, old_n, added), init[p.key()].narrow(0, old_n, added)));
        checked_rows += added;
      }
      CHECK(checked_rows > 0);
    }
  }
}

TEST_CASE("update: a parameter that cannot grow is refused, naming it", "[update]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  Logger log(true);
  const Config pcfg = make_config(experiment(t, "bpr"), {"run_name=p"});
  const PreparedData pdata = prepare_data(pcfg, log);
  const std::string run = new_run_dir(pcfg);
  train_model(pcfg, pdata, run, log);
  const Config wide = make_config(experiment(t, "bpr"), {"model.embedding_size=7"});
  Recommender m = make_model("bpr", ModelContext{pdata.data.n_users(), pdata.data.n_items(), &wide});
  CHECK_THROWS_WITH(warm_start(*m, run + "/best.pt", "bpr", pdata.data.n_users(), pdata.data.n_items(),
                               pdata.data.n_users(), pdata.data.n_items(), torch::kCPU),
                    Catch::Contains("best.pt") && Catch::Contains("user_emb") && Catch::Contains("only tables of users"));
  CHECK_THROWS_WITH(warm_start(*m, run + "/best.pt", "mf", 1, 1, 1, 1, torch::kCPU), Catch::Contains("holds model 'bpr'"));
}

TEST_CASE("cli: rzoo update warm-starts a new run beside its parent and never touches the parent", "[update][cli]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  const std::string exp = t.write("exp.yaml", experiment(t, "bpr") + "run_name: parent\n");
  auto r = run_cli("train " + q(exp));
  INFO(r.output);
  REQUIRE(r.code == 0);
  const fs::path parent = t.path / "runs" / "parent";
  REQUIRE(fs::exists(parent / "best.pt"));
  std::map<std::string, std::string> before;
  for (const auto& e : fs::recursive_directory_iterator(parent)) before[e.path().string()] = read_file(e.path().string());

  r = run_cli("update " + q(parent.string()) + " --data " + q(fresh) + " --set train.epochs=3 --out " + q(t.file("u1.pt")));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("warm start from " + parent.string() + "/best.pt: 30 users and") != std::string::npos);
  CHECK(r.output.find("(1 new users, 2 new items") != std::string::npos);
  CHECK(r.output.find("each epoch goes over 3 new training pairs and a replay sample of 12 others") != std::string::npos);
  const fs::path u1 = t.path / "runs" / "parent-u1";
  REQUIRE(fs::exists(u1 / "best.pt"));
  CHECK(fs::exists(t.file("u1.pt")));
  const std::string cfg = read_file((u1 / "config.yaml").string());
  CHECK(cfg.find("init_from: " + parent.string()) != std::string::npos);
  CHECK(cfg.find(fresh) != std::string::npos);
  const std::string users = read_file((u1 / "users.txt").string());
  CHECK(users.rfind(read_file((parent / "users.txt").string()), 0) == 0);
  CHECK(users.find("unew1\n") != std::string::npos);
  // The updated run evaluates and exports like any other run.
  CHECK(run_cli("evaluate " + q(u1.string())).code == 0);
  // An update of the update: -u2, both files appended in order.
  const std::string fresh2 = t.write("new2.csv", "user,item,rating,timestamp\nunew3,inew1,5,95000\nunew3,i2,5,95001\n");
  r = run_cli("update " + q(u1.string()) + " --data " + q(fresh2) + " --set train.epochs=1 --quiet");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string cfg2 = read_file((t.path / "runs" / "parent-u2" / "config.yaml").string());
  CHECK(cfg2.find(fresh) != std::string::npos);
  CHECK(cfg2.find(fresh2) > cfg2.find(fresh));
  // Closed-form models update the parent's fit, and say so (the next test checks the result).
  const std::string pop = t.write("pop.yaml", experiment(t, "pop") + "run_name: pop\n");
  REQUIRE(run_cli("train " + q(pop)).code == 0);
  r = run_cli("update " + q(t.file("runs/pop")) + " --data " + q(fresh));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("'pop' updated from the parent's fit") != std::string::npos);
  // Bad inputs: each one clear error, and the parent unchanged.
  require_clean_failure(run_cli("update " + q(parent.string())), "needs --data FILE");
  require_clean_failure(run_cli("update " + q(parent.string()) + " --data " + q(t.file("nope.csv"))), "no such file");
  require_clean_failure(run_cli("update " + q(t.file("nope")) + " --data " + q(fresh)), "no such run folder");
  require_clean_failure(run_cli("update " + q(parent.string()) + " --data " + q(fresh) + " --set model.embedding_size=8"),
                        "--set model.embedding_size=8 refused");
  const std::string no_rating = t.write("norating.csv", "user,item,timestamp\nu1,i3,5\n");
  require_clean_failure(run_cli("update " + q(parent.string()) + " --data " + q(no_rating)), "no column 'rating'");
  fs::copy(parent, t.path / "unfinished", fs::copy_options::recursive);
  fs::remove(t.path / "unfinished" / "best.pt");
  require_clean_failure(run_cli("update " + q(t.file("unfinished")) + " --data " + q(fresh)), "has no best.pt");
  // A run written before these keys existed (its config.yaml lacks them) updates too: missing
  // keys take today's defaults.
  fs::copy(parent, t.path / "older", fs::copy_options::recursive);
  {
    const std::string c = read_file((t.path / "older" / "config.yaml").string());
    std::string kept;
    for (size_t a = 0, b; a < c.size(); a = b + 1) {
      b = c.find('\n', a);
      if (b == std::string::npos) b = c.size();
      const std::string line = c.substr(a, b - a);
      if (line.find("append") == std::string::npos && line.find("init_") == std::string::npos &&
          line.find("replay") == std::string::npos)
        kept += line + "\n";
    }
    REQUIRE(kept.size() < c.size());
    std::ofstream((t.path / "older" / "config.yaml").string(), std::ios::binary) << kept;
  }
  r = run_cli("update " + q(t.file("older")) + " --data " + q(fresh) + " --set train.epochs=1 --quiet");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(run_cli("evaluate " + q(t.file("older"))).code == 0);
  std::map<std::string, std::string> after;
  for (const auto& e : fs::recursive_directory_iterator(parent)) after[e.path().string()] = read_file(e.path().string());
  CHECK(after == before);
}

TEST_CASE("update: new users of BPR, MF, GMF, NCF-MLP and NeuMF start from their fold-in (train.init_new_users)", "[update]") {
  torch::NoGradGuard no_grad;
  const Csr train = Csr::from_pairs(6, 5, {0, 0, 1, 2, 3, 4, 4, 5, 5}, {0, 1, 2, 3, 4, 0, 2, 1, 3});
  const int64_t first = 4;  // users 4 and 5 are new
  for (const std::string name : {"bpr", "mf", "gmf", "ncfmlp", "neumf"}) {
    INFO(name);
    const std::vector<std::string> sets = name == "ncfmlp" ? std::vector<std::string>{"model.layers=[8, 4]"}
                                          : name == "neumf" ? std::vector<std::string>{"model.embedding_size=3", "model.layers=[8, 4]"}
                                                            : std::vector<std::string>{"model.embedding_size=3"};
    const Config cfg = make_config("dataset: synthetic\nmodel: " + name + "\n", sets);
    torch::manual_seed(1);
    Recommender big = make_model(name, ModelContext{6, 5, &cfg});
    torch::manual_seed(2);
    Recommender small = make_model(name, ModelContext{first, 5, &cfg});
    // The small model: the big one's old users and every item.
    auto bp = big->named_parameters();
    for (auto& p : small->named_parameters()) {
      const at::Tensor& src = bp[p.key()];
      if (src.dim() > 0 && src.size(0) == 6) p.value().copy_(src.narrow(0, 0, first));
      else p.value().copy_(src);
    }
    const auto before = big->score_all(torch::tensor({0, 1, 2, 3}, torch::kLong));
    CHECK(big->init_user_rows(train, first) == 2);
    // Old users untouched; a new user's scores are its fold-in against the old users' prior.
    CHECK(torch::equal(big->score_all(torch::tensor({0, 1, 2, 3}, torch::kLong)), before));
    for (const int64_t u : {4, 5}) {
      const auto items = torch::tensor(std::vector<int64_t>(train.row_begin(u), train.row_end(u)), torch::kLong);
      CHECK(torch::allclose(big->score_all(torch::tensor({u}, torch::kLong))[0], small->score_fold_in(items), 1e-4, 1e-5));
    }
  }
  // A model without a user vector to set keeps its rows (0 set).
  const Config pc = make_config("dataset: synthetic\nmodel: pop\n");
  Recommender pop = make_model("pop", ModelContext{6, 5, &pc});
  CHECK(pop->init_user_rows(train, first) == 0);
}

TEST_CASE("cli: rzoo update trains with the run's update section (defaults, the model's YAML, the experiment, --set)", "[update][cli]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  // defaults.yaml: replay 4, 20 epochs (BPR); configs/models/mf.yaml: 5 epochs; an experiment's own.
  const std::string bpr = t.write("bpr.yaml", experiment(t, "bpr") + "run_name: bpr\n");
  const std::string mf = t.write("mf.yaml", experiment(t, "mf") + "run_name: mf\n");
  const std::string own = t.write("own.yaml", experiment(t, "mf") + "run_name: own\nupdate: {replay: 1, epochs: 2}\n");
  for (const auto& e : {bpr, mf, own}) REQUIRE(run_cli("train " + q(e) + " --quiet").code == 0);
  auto r = run_cli("update " + q(t.file("runs/bpr")) + " --data " + q(fresh));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("(train.replay 4, train.epochs 20)") != std::string::npos);
  CHECK(read_file(t.file("runs/bpr-u1/config.yaml")).find("valid_every: 20") != std::string::npos);
  r = run_cli("update " + q(t.file("runs/mf")) + " --data " + q(fresh));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("(train.replay 4, train.epochs 5)") != std::string::npos);
  r = run_cli("update " + q(t.file("runs/own")) + " --data " + q(fresh));
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("(train.replay 1, train.epochs 2)") != std::string::npos);
  // --set update.* at update time, and train.* over it.
  r = run_cli("update " + q(t.file("runs/own")) + " --data " + q(fresh) + " --set update.epochs=3 --set run_name=own-b");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("(train.replay 1, train.epochs 3)") != std::string::npos);
  r = run_cli("update " + q(t.file("runs/own")) + " --data " + q(fresh) + " --set train.epochs=1 --set run_name=own-c");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("(train.replay 1, train.epochs 1)") != std::string::npos);
  // Bad values name the key; nothing is written.
  require_clean_failure(run_cli("update " + q(t.file("runs/own")) + " --data " + q(fresh) + " --set update.replay=-2"),
                        "update.replay");
  require_clean_failure(run_cli("update " + q(t.file("runs/own")) + " --data " + q(fresh) + " --set update.epochs=0"),
                        "update.epochs");
  std::set<std::string> runs;
  for (const auto& e : fs::directory_iterator(t.file("runs"))) runs.insert(e.path().filename().string());
  CHECK(runs == std::set<std::string>{"bpr", "bpr-u1", "mf", "mf-u1", "own", "own-u1", "own-b", "own-c"});
}

namespace {
// The named tensors of a checkpoint's model (best.pt).
std::map<std::string, at::Tensor> model_tensors(const std::string& path, const std::vector<std::string>& names) {
  torch::serialize::InputArchive ar, m;
  load_archive(ar, path, torch::kCPU);
  REQUIRE(ar.try_read("model", m));
  std::map<std::string, at::Tensor> out;
  for (const auto& n : names) {
    at::Tensor t;
    INFO(path << ": " << n);
    REQUIRE(m.try_read(n, t));
    out[n] = t;
  }
  return out;
}
}  // namespace

TEST_CASE("update: closed-form models update the parent's fit to what a refit on all the pairs gives", "[update][cli]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  // Three weeks: known users with new items and a new user (u1, unew1), then known items for
  // known and new users, then more; the second and third validated on their newest rows.
  const std::string w1 = t.write("w1.csv", kNewRows);
  const std::string w2 = t.write("w2.csv", "user,item,rating,timestamp\nu4,i2,4,91000\nunew1,i11,5,91001\nunew1,i21,3,91002\n"
                                           "unew3,inew1,5,91003\nunew3,i26,4,91004\nunew3,i31,2,91005\n");
  const std::string w3 = t.write("w3.csv", "user,item,rating,timestamp\nu9,i0,5,92000\nu9,i5,4,92001\nu20,inew2,5,92002\n"
                                           "u20,i19,3,92003\n");
  struct Case {
    const char* model;
    const char* spec;  // the experiment's model: value
    std::vector<std::string> tensors;
    bool exact;
  };
  const std::vector<Case> cases{
      {"pop", "pop", {"counts"}, true},
      {"itemknn", "{name: itemknn, similarity: cosine, idf: false, neighbors: 5}", {"nbr_index", "nbr_sim", "train_keys", "train_indptr"}, true},
      {"itemknn", "{name: itemknn, similarity: adjusted_cosine, prune: column, neighbors: 6, shrinkage: 2}",
       {"nbr_index", "nbr_sim", "nbr_ptr", "nbr_list", "nbr_weight", "train_keys"}, true},
      {"itemknn", "{name: itemknn, similarity: asymmetric_cosine, idf: true, neighbors: 4}", {"nbr_index", "nbr_sim"}, true},
      {"userknn", "{name: userknn, similarity: jaccard, neighbors: 4}", {"nbr_index", "nbr_sim", "train_keys"}, true},
      {"ease", "{name: ease, l2: 5.0}", {"item_weights", "history_indptr", "history_items"}, false},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string name = fmt::format("{}{}", c.model, n++);
    INFO(name << " " << c.spec);
    const std::string exp = t.write(name + ".yaml", experiment(t, c.spec) + "run_name: " + name + "\n");
    auto r = run_cli("train " + q(exp) + " --quiet");
    INFO(r.output);
    REQUIRE(r.code == 0);
    std::string parent = t.file("runs/" + name);
    int week = 0;
    for (const auto& [file, valid] : {std::pair{w1, "run"}, std::pair{w2, "newest"}, std::pair{w3, "newest"}}) {
      ++week;
      r = run_cli("update " + q(parent) + " --data " + q(file) + " --set dataset.append_valid=" + valid);
      INFO(r.output);
      REQUIRE(r.code == 0);
      const bool ease = std::string(c.model) == "ease";
      if (ease && week == 2) {
        // dataset.append_valid newest moved every user's validation pair into training: a
        // change of rank 2 x 32 > 42 / 4, refit in full.
        CHECK(r.output.find("refits in full") != std::string::npos);
        CHECK(r.output.find("over a quarter of the 42 items") != std::string::npos);
      } else {
        CHECK(r.output.find(fmt::format("'{}' updated from the parent's fit", c.model)) != std::string::npos);
      }
      if (ease && week != 2) CHECK(r.output.find("Woodbury update of rank") != std::string::npos);
      // Without idf (whose log(items / df) every new item moves), the clusters of items the new
      // pairs do not touch keep the parent's lists (items i = 3u + 5j mod 40 fall in five
      // classes mod 5).
      if (std::string(c.spec).find("idf: false") != std::string::npos && week == 1)
        CHECK(r.output.find("the other 0 the parent's") == std::string::npos);
      const std::string child = fmt::format("{}-u{}", t.file("runs/" + name), week);
      // The same config trained from scratch.
      r = run_cli("train " + q(child + "/config.yaml") + " --quiet --set train.init_from= --set run_name=" +
                  fmt::format("{}-full{}", name, week));
      INFO(r.output);
      REQUIRE(r.code == 0);
      const auto got = model_tensors(child + "/best.pt", c.tensors);
      const auto want = model_tensors(fmt::format("{}-full{}/best.pt", t.file("runs/" + name), week), c.tensors);
      for (const auto& tn : c.tensors) {
        INFO("week " << week << ": " << tn);
        REQUIRE(got.at(tn).sizes() == want.at(tn).sizes());
        if (c.exact || got.at(tn).scalar_type() == torch::kLong)
          CHECK(torch::equal(got.at(tn), want.at(tn)));
        else
          CHECK((got.at(tn) - want.at(tn)).abs().max().item<double>() <= 1e-5);
      }
      CHECK(read_file(child + "/metrics.json").size() > 0);
      parent = child;
    }
  }
  // A parent whose training pairs cannot be told (its config does not append the files before
  // this run's last): a full refit, said so.
  const std::string exp = t.write("pop-x.yaml", experiment(t, "pop") + "run_name: popx\n");
  REQUIRE(run_cli("train " + q(exp) + " --quiet").code == 0);
  auto r = run_cli("train " + q(exp) + " --set run_name=popx2 --set train.init_from=" + q(t.file("runs/popx")) +
                   " --set 'dataset.append=[" + w1 + "," + w2 + "]'");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("refits in full") != std::string::npos);
  CHECK(r.output.find("the parent's training pairs are not known") != std::string::npos);
  // A parent fitted with other model settings (train.init_from by hand): its k-lists are not
  // this model's, so a full refit.
  r = run_cli("train " + q(t.file("itemknn1.yaml")) + " --set run_name=knn-other --set model.similarity=jaccard" +
              " --set train.init_from=" + q(t.file("runs/itemknn1")) + " --set 'dataset.append=[" + w1 + "]'");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("refits in full") != std::string::npos);
  CHECK(r.output.find("its model.* settings differ") != std::string::npos);
}

TEST_CASE("update: a feature model's shared table carries each field's rows to the field's new place", "[update][context]") {
  TempDir t;
  t.write("ratings.csv", ratings_csv());
  const std::string fresh = t.write("new.csv", kNewRows);
  Logger log(true);
  // user_id, user:history (both grow), item_id (grows): one table, the fields' rows in turn.
  const std::vector<std::string> sets = {"run_name=fm", "dataset.fields=[user:history]"};
  const Config pcfg = make_config(experiment(t, "fm"), sets);
  const PreparedData pdata = prepare_data(pcfg, log);
  const std::string run = new_run_dir(pcfg);
  train_model(pcfg, pdata, run, log);
  Recommender parent = make_model("fm", ModelContext{pdata.data.n_users(), pdata.data.n_items(), &pcfg, &pdata.data, &pdata.split});
  load_model_checkpoint(run + "/best.pt", *parent, "fm", torch::kCPU);
  std::vector<std::string> grow = sets;
  grow.push_back("dataset.append=[" + q(fresh) + "]");
  grow.push_back("train.init_from=" + q(run));
  const Config cfg = make_config(experiment(t, "fm"), grow);
  const PreparedData data = prepare_data(cfg, log);
  REQUIRE(data.data.n_users() > pdata.data.n_users());
  REQUIRE(data.data.n_items() > pdata.data.n_items());
  torch::manual_seed(3);
  Recommender grown = make_model("fm", ModelContext{data.data.n_users(), data.data.n_items(), &cfg, &data.data, &data.split});
  const at::Tensor init = grown->named_parameters()["table"].detach().clone();
  CHECK(warm_start(*grown, run + "/best.pt", "fm", pdata.data.n_users(), pdata.data.n_items(), data.data.n_users(),
                   data.data.n_items(), torch::kCPU) == 2);  // table and linear
  const auto& pl = dynamic_cast<FeatureModelImpl&>(*parent).layout();
  const auto& gl = dynamic_cast<FeatureModelImpl&>(*grown).layout();
  const at::Tensor src = parent->named_parameters()["table"], dst = grown->named_parameters()["table"];
  int64_t fields = 0;
  for (const auto& [ps, gs] : {std::pair{&pl.user, &gl.user}, std::pair{&pl.item, &gl.item}})
    for (int64_t f = 0; f < gs->n_fields(); ++f) {
      const auto k = static_cast<size_t>(f);
      INFO(gs->names[k]);
      REQUIRE(ps->names[k] == gs->names[k]);
      REQUIRE(gs->rows[k] > ps->rows[k]);  // every field here grows
      CHECK(torch::equal(dst.narrow(0, gs->first_row[k], ps->rows[k]), src.narrow(0, ps->first_row[k], ps->rows[k])));
      const int64_t added = gs->rows[k] - ps->rows[k];
      CHECK(torch::equal(dst.narrow(0, gs->first_row[k] + ps->rows[k], added),
                         init.narrow(0, gs->first_row[k] + ps->rows[k], added)));
      ++fields;
    }
  CHECK(fields == 3);
}
