#include "helpers.h"

#include "core/error.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

TEST_CASE("config layers: defaults < model < dataset < experiment < --set", "[config]") {
  // defaults.yaml: train.lr 0.001; models/bpr.yaml: 0.0005; experiment: 0.02; --set: 0.5
  const Config d = make_config("model: pop\n");
  CHECK(d.get_double("train.lr") == Approx(0.001));
  const Config m = make_config("model: bpr\n");
  CHECK(m.get_double("train.lr") == Approx(0.0005));
  CHECK(m.get_int("model.embedding_size") == 128);  // defined by the model layer
  CHECK_THAT(m.origin("train.lr"), Contains("models/bpr.yaml"));
  const Config e = make_config("model: bpr\ntrain: {lr: 0.02}\n");
  CHECK(e.get_double("train.lr") == Approx(0.02));
  CHECK(e.origin("train.lr") == "test.yaml:2:13");
  const Config s = make_config("model: bpr\ntrain: {lr: 0.02}\n", {"train.lr=0.5", "eval.ks=[1, 5]"});
  CHECK(s.get_double("train.lr") == Approx(0.5));
  CHECK(s.get_int_list("eval.ks") == std::vector<int64_t>{1, 5});
  CHECK_THAT(s.origin("train.lr"), Contains("--set train.lr=0.5"));
  // The dataset layer sits between model and experiment.
  const Config ds = make_config("model: pop\ndataset: synthetic\n");
  CHECK(ds.get_string("dataset.format") == "synthetic");
  CHECK(make_config("model: pop\n").get_string("dataset.format") == "movielens");
}

TEST_CASE("config: assigning to a copy never changes the Config it was copied from", "[config]") {
  // yaml-cpp's Node::operator= writes through to the shared node; `rzoo evaluate RUN --set
  // eval.ks=[5]` once changed the run's own training settings this way.
  const Config trained = make_config("model: bpr\n");
  Config loaded = trained;
  loaded = loaded.with_set("eval.ks=[5]");
  CHECK(loaded.get_int_list("eval.ks") == std::vector<int64_t>{5});
  CHECK(trained.get_int_list("eval.ks") == std::vector<int64_t>{10, 20});
  Config moved = trained;
  moved = Config(make_config("model: pop\n"));
  CHECK(trained.get_string("model.name") == "bpr");
  CHECK(moved.get_string("model.name") == "pop");
}

TEST_CASE("config: model and dataset shorthand and --set of the model name", "[config]") {
  CHECK(make_config("model: {name: bpr, embedding_size: 8}\n").get_int("model.embedding_size") == 8);
  CHECK(make_config("model: pop\n", {"model=bpr"}).get_string("model.name") == "bpr");
  CHECK(make_config("model: pop\n", {"model.name=bpr"}).has("model.embedding_size"));
  CHECK_FALSE(make_config("model: pop\n").has("model.embedding_size"));
}

TEST_CASE("config: unknown keys are rejected with their path, file and line", "[config]") {
  CHECK_THROWS_WITH(make_config("model: bpr\ntrain:\n  epoch: 3\n"),
                    Contains("test.yaml:3:3: unknown key 'train.epoch'") && Contains("epochs"));
  // A key of another model is unknown to this one.
  CHECK_THROWS_WITH(make_config("model: {name: pop, embedding_size: 8}\n"), Contains("unknown key 'model.embedding_size'"));
  CHECK_THROWS_WITH(make_config("model: bpr\n", {"train.nope=1"}), Contains("--set train.nope=1: unknown key 'train.nope'"));
  CHECK_THROWS_WITH(make_config("modle: bpr\n"), Contains("unknown key 'modle'"));
  CHECK_THROWS_WITH(make_config("model: bpr\n", {"train.=1"}), Contains("empty key component"));
}

TEST_CASE("config: wrong types are rejected naming the key", "[config]") {
  CHECK_THROWS_WITH(make_config("model: bpr\ntrain: {epochs: many}\n"),
                    Contains("test.yaml:2:17: 'train.epochs' must be an integer, got a string"));
  CHECK_THROWS_WITH(make_config("model: bpr\ntrain: {lr: [1]}\n"), Contains("'train.lr' must be a number"));
  CHECK_THROWS_WITH(make_config("model: bpr\ntrain: 3\n"), Contains("'train' must be a map"));
  CHECK_THROWS_WITH(make_config("model: bpr\neval: {ks: [10, x]}\n"), Contains("'eval.ks[1]' must be an integer"));
  // An int where a float is expected is fine; a float where an int is expected is not.
  CHECK(make_config("model: bpr\ntrain: {lr: 1}\n").get_double("train.lr") == 1.0);
  CHECK_THROWS_WITH(make_config("model: bpr\ntrain: {epochs: 2.5}\n"), Contains("must be an integer"));
  // Types come from the defining layer, not from the value a previous layer left.
  CHECK(make_config("model: bpr\ntrain: {lr: 1}\n", {"train.lr=0.5"}).get_double("train.lr") == 0.5);
  CHECK(make_config("model: {name: bpr, init_std: 1}\n", {"model.init_std=0.5"}).get_double("model.init_std") == 0.5);
}

TEST_CASE("config: typed getters check ranges and choices", "[config]") {
  const Config c = make_config("model: bpr\n", {"train.epochs=-1", "train.optimizer=rmsprop"});
  CHECK_THROWS_WITH(c.get_int("train.epochs", 0), Contains("train.epochs: must be >= 0, got -1"));
  CHECK_THROWS_WITH(c.get_choice("train.optimizer", {"adam", "sgd"}), Contains("'rmsprop' is not one of: adam, sgd"));
  CHECK_THROWS_AS(c.node("no.such.key"), Error);
}

TEST_CASE("config: unknown model, missing file, syntax error", "[config]") {
  CHECK_THROWS_WITH(make_config("model: nosuch\n"), Contains("unknown model 'nosuch'") && Contains("bpr, ") && Contains("ials, itemknn"));
  CHECK_THROWS_WITH(load_layer("/nonexistent/x.yaml"), Contains("/nonexistent/x.yaml: cannot open config file"));
  CHECK_THROWS_WITH(parse_layer("a: [1, 2\n", "bad.yaml"), Contains("bad.yaml:") && Contains("YAML syntax error"));
}

TEST_CASE("config: the resolved dump reloads to the same values", "[config]") {
  const Config c = make_config("model: bpr\ntrain: {epochs: 7}\n", {"dataset=synthetic"});
  TempDir t;
  const std::string path = t.write("config.yaml", c.dump());
  const Config back = load_resolved_config(path);
  CHECK(back.get_int("train.epochs") == 7);
  CHECK(back.get_string("dataset.format") == "synthetic");
  CHECK(back.get_double_list("dataset.split.ratios") == c.get_double_list("dataset.split.ratios"));
  CHECK(back.get_string("dataset.items.genre_sep") == "|");
  CHECK(YAML::Dump(back.root()) == YAML::Dump(c.root()));
}

TEST_CASE("config: paths in configs/ files are relative to the project", "[config]") {
  const Config c = make_config("model: pop\n");
  const std::string p = c.get_string("dataset.path");
  CHECK(fs::path(p).is_absolute());
  CHECK(fs::exists(p));
  CHECK(fs::path(make_config("model: pop\n", {"dataset.path=x.csv"}).get_string("dataset.path")) ==
        (fs::current_path() / "x.csv"));
}

TEST_CASE("config: --set values are YAML: null, lists, empty strings", "[config]") {
  CHECK(make_config("model: pop\n", {"dataset.threshold=4"}).get_double("dataset.threshold") == 4.0);
  CHECK(make_config("model: pop\ndataset: {threshold: 4}\n", {"dataset.threshold=null"}).node("dataset.threshold").IsNull());
  CHECK(make_config("model: pop\n", {"dataset.items.path="}).get_string("dataset.items.path").empty());
  CHECK(make_config("model: pop\n", {"eval.metrics=[ndcg]"}).get_string_list("eval.metrics") == std::vector<std::string>{"ndcg"});
}

TEST_CASE("config: threads", "[config]") {
  CHECK(resolve_threads(make_config("model: pop\n", {"threads=3"})) == 3);
  CHECK(resolve_threads(make_config("model: pop\n", {"threads=auto"})) >= 1);
  CHECK_THROWS_WITH(resolve_threads(make_config("model: pop\n", {"threads=0"})), Contains("threads"));
}

TEST_CASE("config: a key given twice in one map is an error naming the file, both lines and the key", "[config]") {
  // yaml-cpp accepts duplicates (one of them silently wins): `model: bpr` then `model: pop`.
  CHECK_THROWS_WITH(parse_layer("model: bpr\ntrain: {epochs: 1}\nmodel: pop\n", "e.yaml"),
                    Contains("e.yaml: duplicate key 'model' at line 1 and line 3"));
  // At any depth, in block and flow maps; the key is named by its path.
  CHECK_THROWS_WITH(parse_layer("model: bpr\ntrain:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n", "e.yaml"),
                    Contains("e.yaml: duplicate key 'train.lr' at line 3 and line 5"));
  CHECK_THROWS_WITH(parse_layer("compare:\n  - {model: bpr, model: pop}\n", "e.yaml"),
                    Contains("duplicate key 'compare[0].model' at line 2 and line 2"));
  // A config file (load_layer), and a --set value.
  TempDir t;
  const std::string f = t.write("dup.yaml", "dataset: synthetic\nmodel: bpr\n\nmodel: pop\n");
  CHECK_THROWS_WITH(load_layer(f), Contains(f + ": duplicate key 'model' at line 2 and line 4"));
  CHECK_THROWS_WITH(make_config("model: bpr\n", {"train={lr: 0.1, lr: 0.2}"}),
                    Contains("--set train={lr: 0.1, lr: 0.2}: duplicate key 'train.lr' at line 1 and line 1"));
  // Distinct keys, and the same key in different maps, are fine.
  CHECK_NOTHROW(parse_layer("a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 2}]\n", "e.yaml"));
}
