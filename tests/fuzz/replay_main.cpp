// Replays fuzz inputs through the fuzz targets without libFuzzer (any compiler): CTest's
// fuzz_corpus_replay runs every committed corpus file (tests/fuzz/corpus/<target>/) this way.
//
//   rzoo_fuzz_replay TARGET FILE_OR_DIR...   the inputs through one target
//   rzoo_fuzz_replay --all CORPUS_ROOT       each target over CORPUS_ROOT/<target>/
//   rzoo_fuzz_replay --list                  the targets
// Exits non-zero when a target or folder is missing; a crash shows as the signal, after the
// input's name (printed before each run).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace fs = std::filesystem;

namespace {

// The files named, folders expanded (recursively, sorted, so runs are repeatable).
std::vector<std::string> inputs_of(const std::string& p) {
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file()) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
  } else {
    out.push_back(p);
  }
  return out;
}

int replay(const std::string& name, const std::vector<std::string>& paths) {
  const auto it = rzoo::fuzz::targets().find(name);
  if (it == rzoo::fuzz::targets().end()) {
    std::fprintf(stderr, "no fuzz target '%s' (--list shows them)\n", name.c_str());
    return 2;
  }
  size_t n = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      std::fprintf(stderr, "%s: not found\n", p.c_str());
      return 2;
    }
    for (const auto& f : inputs_of(p)) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), f.c_str());
      std::ifstream in(f, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      it->second(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++n;
    }
  }
  std::printf("%s: %zu inputs replayed, no crash\n", name.c_str(), n);
  return n > 0 ? 0 : 2;  // an empty corpus is a mistake, not a pass
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& t : rzoo::fuzz::targets()) std::printf("%s\n", t.first.c_str());
    return 0;
  }
  if (argc == 3 && std::string(argv[1]) == "--all") {
    int rc = 0;
    for (const auto& t : rzoo::fuzz::targets()) rc = std::max(rc, replay(t.first, {std::string(argv[2]) + "/" + t.first}));
    return rc;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TARGET FILE_OR_DIR... | --all CORPUS_ROOT | --list\n", argv[0]);
    return 2;
  }
  return replay(argv[1], std::vector<std::string>(argv + 2, argv + argc));
}
