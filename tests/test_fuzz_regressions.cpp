// Regressions found by the fuzz targets (tests/fuzz/, scripts/fuzz.sh). Each input is also in
// the replayed corpus (tests/fuzz/corpus/<target>/regress_*); these name the expected behaviour.
#include "helpers.h"

#include <fstream>

#include "core/error.h"
#include "core/json.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

TEST_CASE("fuzz regressions: a --set value with control characters, the saved config reads back", "[config][fuzz]") {
  // The origin comment `# --set KEY=VALUE` carried the raw bytes into the run's config.yaml: a
  // \x01 ended the YAML stream there (every later key lost), a \r started a new line.
  TempDir t;
  for (const std::string value : {"/tmp/a\x01" "b", "'/tmp/a\rmodel: bpr'", "/tmp/a\x7f"}) {
    INFO(value);
    const Config cfg = make_config("model: pop\n", {"dataset.cache.dir=" + value, "train.epochs=3"});
    const std::string saved = t.write("config.yaml", cfg.dump(true));
    const Config back = load_resolved_config(saved);
    CHECK(back.dump(false) == cfg.dump(false));
    CHECK(back.get_int("train.epochs") == 3);
    CHECK(back.get_string("model.name") == "pop");
  }
}

TEST_CASE("fuzz regressions: a --set value with bytes that are not UTF-8, the saved config reads back whole", "[config][fuzz]") {
  // yaml-cpp's emitter stopped at the first such byte in an origin comment, and Config::dump
  // returned what it had so far: a config.yaml missing every later key, with no error.
  TempDir t;
  for (const std::string value : {"[0.8, 0.1, 0.1]x\xff\xfe", "[0.8, 0.1, 0.1]\xc0\x80", "[0.8, 0.1, 0.1]\xed\xa0\x80 \xe2\x82",
                                  "[0.8, 0.1, 0.1] caf\xc3\xa9 \xf0\x9f\x98\x80"}) {
    INFO(value);
    const Config cfg = make_config("model: pop\n", {"dataset.split.ratios=" + value, "train.epochs=3"});
    const std::string text = cfg.dump(true);
    const std::string saved = t.write("config.yaml", text);
    const Config back = load_resolved_config(saved);
    CHECK(back.dump(false) == cfg.dump(false));
    CHECK(back.get_int("train.epochs") == 3);
    CHECK(back.has("eval.ks"));  // a key after the comment: the file is whole
  }
  // Valid UTF-8 (an accented path) stays as it is in the comment.
  CHECK(make_config("model: pop\n", {"dataset.split.ratios=[0.8, 0.1, 0.1] caf\xc3\xa9"}).dump(true).find("caf\xc3\xa9") !=
        std::string::npos);
}

TEST_CASE("fuzz regressions: a string that is a lone carriage return reads back as itself", "[config][fuzz]") {
  // yaml-cpp wrote the scalar "\r" plain, `- \r`: a line break to the reader, so the saved
  // config.yaml held null there. Scalars with control characters are now written double-quoted.
  TempDir t;
  for (const std::string value : {"[a, \"\\r\", b]", "\"x\\ry\"", "\"\\n\"", "\"a\\u0001b\""}) {
    INFO(value);
    const Config cfg = make_config("model: pop\n", {"search.space.train.lr=" + value});
    const Config back = load_resolved_config(t.write("config.yaml", cfg.dump(true)));
    CHECK(back.dump(false) == cfg.dump(false));
  }
  const Config cfg = make_config("model: pop\n", {"search.space.train.lr=[a, \"\\r\", b]"});
  const Config back = load_resolved_config(t.write("config.yaml", cfg.dump(true)));
  CHECK(back.get_string_list("search.space.train.lr") == std::vector<std::string>{"a", "\r", "b"});
}

TEST_CASE("fuzz regressions: a list, map or null as a config key is an rzoo error naming the line", "[config][fuzz]") {
  // Was yaml-cpp's "bad conversion", naming no key.
  CHECK_THROWS_AS(parse_layer("model: pop\n? [a, b]\n: 1\n", "k.yaml"), Error);
  CHECK_THROWS_WITH(parse_layer("model: pop\n? [a, b]\n: 1\n", "k.yaml"), Contains("k.yaml:2:3: a key must be a name"));
  CHECK_THROWS_WITH(parse_layer("train:\n  {x: 1}: 2\n", "k.yaml"), Contains("a key must be a name") && Contains("under 'train'"));
  CHECK_THROWS_WITH(make_config("model: pop\n~: 1\n"), Contains("a key must be a name"));
  CHECK_THROWS_WITH(make_config("model: pop\n", {"train={[a]: 1}"}), Contains("--set train={[a]: 1}") && Contains("a key must be a name"));
}

TEST_CASE("fuzz regressions: a model or dataset name too long for a file name is an unknown name", "[config][fuzz]") {
  // Was std::filesystem's "File name too long".
  const std::string name(300, 'x');
  CHECK_THROWS_AS(make_config("model: " + name + "\n"), Error);
  CHECK_THROWS_WITH(make_config("model: " + name + "\n"), Contains("unknown model 'xxx"));
  CHECK_THROWS_AS(make_config("model: pop\ndataset: " + name + "\n"), Error);
  CHECK_THROWS_WITH(make_config("model: pop\ndataset: " + name + "\n"), Contains("unknown dataset 'xxx"));
}

TEST_CASE("fuzz regressions: a JSON number beyond double's range is an rzoo error naming the file", "[data][fuzz]") {
  TempDir t;
  const std::string file = t.write("item2attributes.json", "{\"1\": [999e99666]}");
  CHECK_THROWS_AS(json_parse(read_file(file), file), Error);
  CHECK_THROWS_WITH(json_parse(read_file(file), file), Contains(file + ": not valid JSON: number overflow"));
}
