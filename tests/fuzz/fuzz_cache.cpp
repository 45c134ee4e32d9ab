// Fuzzes the dataset cache loader (cache_load) with the bytes of a cache file.
// Input: one flag byte, then the file. Flag bits: 0 verify content (dataset.cache.verify:
// checksum), 1 raw: the file is the bytes as given; else the file's trailing CRC32C is computed
// and appended, so that mutations reach the parser behind the checksum (the seeds are real cache
// files, written by cache_store, with their checksum cut off). The expected key is kKey.
#include "core/crc32c.h"
#include "datasets/readers.h"
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

namespace {
const char* const kKey = "rzoo-fuzz-key";
}

RZOO_FUZZ_TARGET(fuzz_cache) {
  if (size < 1 || size > 1 << 20) return 0;
  const bool verify = data[0] & 1, raw = data[0] & 2;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!raw) {
    const uint64_t crc = crc32c(0, bytes.data(), bytes.size());
    bytes.append(reinterpret_cast<const char*>(&crc), 8);
  }
  const std::string file = work_dir() + "/cache.rzc";
  write_file(file, bytes);
  std::string why;
  // cache_load never throws: a file it cannot use is "nothing" with a reason, and the data is
  // read again (an exception here would fail a run that only needed to rebuild its cache).
  std::optional<Dataset> d;
  try {
    d = cache_load(file, kKey, verify, why);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: cache_load threw %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  if (d) check_dataset(*d);
  else RZOO_FUZZ_CHECK(!why.empty());
  return 0;
}
