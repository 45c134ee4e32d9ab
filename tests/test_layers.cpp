// scripts/check_layers.py, the layering check that CTest runs over the sources (`check_layers`):
// it must pass on a well-layered tree and fail, naming file and line, on each kind of violation.
#include "helpers.h"

using namespace rzoo::test;

namespace {

// A miniature rzoo tree: every layer, two model families, only allowed includes.
void write_clean_tree(const TempDir& t) {
  for (const char* d : {"core", "datasets", "models/general", "models/sequential", "trainers", "apps"})
    fs::create_directories(t.path / d);
  t.write("core/error.h", "#pragma once\n#include <string>\n");
  t.write("core/config.cpp", "#include \"core/error.h\"\n#include \"rzoo_build.h\"\n");
  t.write("datasets/batch.h", "#pragma once\n#include <ATen/core/Tensor.h>\n#include \"core/error.h\"\n");
  t.write("models/recommender.h", "#pragma once\n#include \"datasets/batch.h\"\n");
  t.write("models/general/pop.h", "#pragma once\n#include \"models/recommender.h\"\n");
  t.write("models/general/pop.cpp", "#include \"models/general/pop.h\"\n#include \"core/error.h\"\n");
  t.write("models/sequential/sasrec.h", "#pragma once\n#include \"models/recommender.h\"\n");
  t.write("models/registry.cpp", "#include \"models/general/pop.h\"\n#include \"models/sequential/sasrec.h\"\n");
  t.write("trainers/trainer.cpp", "#include <torch/torch.h>\n#include \"models/recommender.h\"\n");
  t.write("apps/rzoo.cpp", "#include \"trainers/trainer.h\"\n");
  t.write("trainers/trainer.h", "#pragma once\n#include \"models/recommender.h\"\n");
}

CliResult check(const TempDir& t, const std::string& extra = "") {
  return run_shell("python3 '" RZOO_TEST_SOURCE_DIR "/scripts/check_layers.py' --root '" + t.path.string() + "' " + extra);
}

}  // namespace

TEST_CASE("check_layers: a well-layered tree passes and draws an acyclic graph", "[layers]") {
  TempDir t;
  write_clean_tree(t);
  auto r = check(t);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("check_layers: ok") != std::string::npos);
  r = check(t, "--graph");
  CHECK(r.code == 0);
  CHECK(r.output.find("models -> datasets") != std::string::npos);
  CHECK(r.output.find("cycles: none") != std::string::npos);
}

TEST_CASE("check_layers: planted violations fail with file and line", "[layers]") {
  TempDir t;
  write_clean_tree(t);
  SECTION("an upward include (datasets/ includes models/)") {
    t.write("datasets/sampler.h", "#pragma once\n#include \"core/error.h\"\n#include \"models/recommender.h\"\n");
    const auto r = check(t);
    INFO(r.output);
    CHECK(r.code == 1);
    CHECK(r.output.find("datasets/sampler.h:3: datasets/ includes \"models/recommender.h\" from models/, a higher layer") !=
          std::string::npos);
    CHECK(r.output.find("include cycle between folders: models -> datasets -> models") != std::string::npos);
  }
  SECTION("core/ includes trainers/") {
    t.write("core/log.cpp", "#include \"trainers/trainer.h\"\n");
    const auto r = check(t);
    CHECK(r.code == 1);
    CHECK(r.output.find("core/log.cpp:1: core/ includes") != std::string::npos);
  }
  SECTION("one model family includes another's files") {
    t.write("models/sequential/gru.cpp", "#include \"models/general/pop.h\"\n");
    const auto r = check(t);
    CHECK(r.code == 1);
    CHECK(r.output.find("models/sequential/gru.cpp:1: model family models/sequential/ includes") != std::string::npos);
  }
  SECTION("a header includes the whole of LibTorch") {
    t.write("models/general/big.h", "#pragma once\n\n#include <torch/torch.h>\n");
    const auto r = check(t);
    CHECK(r.code == 1);
    CHECK(r.output.find("models/general/big.h:3: a header includes <torch/torch.h>") != std::string::npos);
  }
  SECTION("CMakeLists.txt's list of sources built without the precompiled LibTorch header disagrees with the includes") {
    // In the clean tree only core/config.cpp reaches no LibTorch header: the models/ files reach
    // <ATen/...> through datasets/batch.h, trainers/trainer.cpp includes <torch/torch.h>, and
    // apps/rzoo.cpp reaches it through trainers/trainer.h.
    t.write("CMakeLists.txt", "set(RZOO_NO_TORCH_SOURCES\n    core/config.cpp)\n");
    auto r = check(t);
    INFO(r.output);
    CHECK(r.code == 0);
    t.write("CMakeLists.txt", "set(RZOO_NO_TORCH_SOURCES\n    core/config.cpp models/general/pop.cpp core/gone.cpp)\n");
    t.write("core/hash.cpp", "#include \"core/error.h\"\n");
    r = check(t);
    CHECK(r.code == 1);
    CHECK(r.output.find("lists models/general/pop.cpp, which includes LibTorch's headers") != std::string::npos);
    CHECK(r.output.find("core/hash.cpp includes no LibTorch header: add it to RZOO_NO_TORCH_SOURCES") != std::string::npos);
    CHECK(r.output.find("lists core/gone.cpp, which does not exist") != std::string::npos);
  }
  SECTION("a path that is not from the repository root, or does not exist") {
    t.write("trainers/x.cpp", "#include \"trainer.h\"\n#include \"models/missing.h\"\n");
    const auto r = check(t);
    CHECK(r.code == 1);
    CHECK(r.output.find("trainers/x.cpp:1: includes \"trainer.h\", which is not a path from the repository root") !=
          std::string::npos);
    CHECK(r.output.find("trainers/x.cpp:2: includes \"models/missing.h\", which does not exist") != std::string::npos);
  }
}

TEST_CASE("check_layers: rzoo's own sources are layered", "[layers]") {
  const auto r = run_shell("python3 '" RZOO_TEST_SOURCE_DIR "/scripts/check_layers.py' --graph");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("cycles: none") != std::string::npos);
}
