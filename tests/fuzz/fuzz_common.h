// Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.cpp).
//
// Each target defines LLVMFuzzerTestOneInput. Built with clang and libFuzzer (-DRZOO_FUZZ=ON,
// scripts/fuzz.sh) they fuzz; built with the normal compiler and replay_main.cpp they replay the
// committed corpus in CTest (fuzz_corpus_replay).
//
// Clean failures are expected on bad input: rzoo::Error (and other std::exception types, which
// are counted, and printed once per kind, as worth a look: a message a user cannot act on).
// Anything else is a finding: a crash, a sanitizer report, std::terminate, a hang, or a Dataset
// that breaks its invariants (check_dataset aborts).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <typeinfo>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "test_paths.h"

namespace rzoo::fuzz {

namespace fs = std::filesystem;

// The separator byte of targets that read several files: the input is cut at each 0x01 into
// the files' contents, in the order the target lists them (a missing part: the file is absent).
// 0x01 rather than NUL, so that NUL bytes inside the files are fuzzed too.
constexpr char kPartSep = '\x01';

// A folder private to this process: /dev/shm when there is one (no disk writes), else $TMPDIR.
inline const std::string& work_dir() {
  static const std::string dir = [] {
    std::string base = "/dev/shm";
    std::error_code ec;
    if (!fs::is_directory(base, ec)) {
      const char* t = std::getenv("TMPDIR");
      base = t && *t ? t : "/tmp";
    }
    const std::string d = base + "/rzoo-fuzz-" + std::to_string(::getpid());
    fs::create_directories(d);
    // Removed at exit (libFuzzer exits through exit() after a run of -runs / -max_total_time).
    static struct Cleanup {
      std::string d;
      ~Cleanup() {
        std::error_code e;
        fs::remove_all(d, e);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

// Writes `n` bytes to `path` (creating or truncating it).
inline void write_file(const std::string& path, const void* p, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    c += w, n -= static_cast<size_t>(w);
  }
  ::close(fd);
}
inline void write_file(const std::string& path, const std::string& s) { write_file(path, s.data(), s.size()); }

// The input cut at kPartSep into at most `max_parts` parts (the last keeps any further separators).
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string> parts;
  const char* p = reinterpret_cast<const char*>(data);
  const char* end = p + size;
  while (parts.size() + 1 < max_parts) {
    const char* q = static_cast<const char*>(std::memchr(p, kPartSep, static_cast<size_t>(end - p)));
    if (!q) break;
    parts.emplace_back(p, q);
    p = q + 1;
  }
  parts.emplace_back(p, end);
  return parts;
}

// Writes part k to `files[k]` for every part given; removes the files of the missing parts.
inline void write_parts(const std::vector<std::string>& parts, const std::vector<std::string>& files) {
  for (size_t k = 0; k < files.size(); ++k) {
    if (k < parts.size()) write_file(files[k], parts[k]);
    else ::unlink(files[k].c_str());
  }
}

// A config resolved against the project's configs/ like the CLI does (an experiment naming the
// model pop, then `--set` assignments). Resolving reads the YAML layers: targets keep the
// configs they use (see cached_config).
inline Config make_config(const std::vector<std::string>& sets) {
  ConfigSources s;
  s.config_dir = std::string(RZOO_TEST_SOURCE_DIR) + "/configs";
  s.experiment = parse_layer("model: pop\n", "fuzz.yaml");
  s.sets = sets;
  s.sets.push_back("dataset.cache.enabled=false");
  s.sets.push_back("threads=1");
  return resolve_config(s);
}

// One config per variant number, resolved on first use.
template <class Make>
const Config& cached_config(int variant, Make make) {
  static std::map<int, Config> configs;
  auto it = configs.find(variant);
  if (it == configs.end()) it = configs.emplace(variant, make()).first;
  return it->second;
}

// An exception other than rzoo::Error: allowed, but each kind is printed once (RZOO_FUZZ_QUIET=1
// silences it) and RZOO_FUZZ_STRICT=1 makes it a finding.
inline void other_exception(const std::exception& e) {
  static std::set<std::string> seen;
  const std::string kind = typeid(e).name();
  auto on = [](const char* name) {
    const char* v = std::getenv(name);
    return v && *v && std::string(v) != "0";
  };
  if (on("RZOO_FUZZ_STRICT")) {
    std::fprintf(stderr, "fuzz: non-rzoo exception %s: %s\n", kind.c_str(), e.what());
    std::abort();
  }
  if (seen.insert(kind).second && !on("RZOO_FUZZ_QUIET"))
    std::fprintf(stderr, "fuzz: note: non-rzoo exception %s: %s\n", kind.c_str(), e.what());
}

#define RZOO_FUZZ_CHECK(cond)                                                               \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// The invariants every Dataset the product hands on must keep (indices in range, equal lengths,
// side tables covering every entity).
inline void check_dataset(const Dataset& d) {
  const size_t n = d.user.size();
  RZOO_FUZZ_CHECK(d.item.size() == n);
  RZOO_FUZZ_CHECK(d.rating.empty() || d.rating.size() == n);
  RZOO_FUZZ_CHECK(d.timestamp.empty() || d.timestamp.size() == n);
  RZOO_FUZZ_CHECK(d.part.empty() || d.part.size() == n);
  const Column<int32_t>&u = d.user, &i = d.item;
  for (size_t k = 0; k < n; ++k) {
    RZOO_FUZZ_CHECK(u[k] >= 0 && u[k] < d.n_users());
    RZOO_FUZZ_CHECK(i[k] >= 0 && i[k] < d.n_items());
  }
  for (int8_t p : std::as_const(d.part)) RZOO_FUZZ_CHECK(p >= 0 && p <= 2);
  RZOO_FUZZ_CHECK(d.neg_user.size() == d.neg_item.size());
  for (size_t k = 0; k < d.neg_user.size(); ++k) {
    RZOO_FUZZ_CHECK(d.neg_user[k] >= 0 && d.neg_user[k] < d.n_users());
    RZOO_FUZZ_CHECK(d.neg_item[k] >= 0 && d.neg_item[k] < d.n_items());
  }
  for (const auto* side : {&d.user_info, &d.item_info}) {
    const int64_t ne = side == &d.user_info ? d.n_users() : d.n_items();
    RZOO_FUZZ_CHECK(side->title.empty() || static_cast<int64_t>(side->title.size()) == ne);
    for (const auto& f : side->features) {
      RZOO_FUZZ_CHECK(f.n() == ne);
      if (f.kind == Feature::Kind::Float) continue;
      RZOO_FUZZ_CHECK(!f.offsets.empty() && f.offsets.front() == 0);
      RZOO_FUZZ_CHECK(f.offsets.back() == static_cast<int64_t>(f.tokens.size()));
      for (size_t k = 1; k < f.offsets.size(); ++k) RZOO_FUZZ_CHECK(f.offsets[k - 1] <= f.offsets[k]);
      for (int32_t t : f.tokens) RZOO_FUZZ_CHECK(t >= 0 && static_cast<size_t>(t) < f.vocab.size());
    }
  }
}

// Loads the dataset as the product does without the cache (read_raw_dataset, then cleaning) and
// checks the result; clean errors are expected.
inline void load_and_check(const Config& cfg) {
  try {
    const Dataset d = load_dataset_uncached(cfg);
    check_dataset(d);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    other_exception(e);
  }
}

}  // namespace rzoo::fuzz
