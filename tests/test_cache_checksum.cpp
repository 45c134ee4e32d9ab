// The dataset cache's own integrity (issue 20): a CRC32C over the whole file, verified on every
// load, so that a flipped bit is never loaded as different data; temporary files of killed
// writers removed on the next write.
#include "helpers.h"

#include <sys/wait.h>

#include <fmt/core.h>

#include "core/crc32c.h"
#include "datasets/dataset.h"

using namespace rzoo;
using namespace rzoo::test;

namespace {

Config cache_cfg(const TempDir& t, bool verify_checksum = false) {
  std::vector<std::string> sets = {"dataset.format=csv", "dataset.path=" + t.file("r.csv"), "dataset.columns.rating=rating",
                                   "dataset.columns.timestamp=ts", "dataset.items.path=" + t.file("items.csv"),
                                   "dataset.cache.dir=" + t.file("cache"), "dataset.cache.min_mb=0"};
  if (verify_checksum) sets.push_back("dataset.cache.verify=checksum");
  return make_config("model: pop\n", sets);
}

void write_data(const TempDir& t) {
  std::string csv = "user,item,rating,ts\n";
  for (int u = 0; u < 12; ++u)
    for (int k = 0; k < 4; ++k) csv += fmt::format("u{},i{},{},{}\n", u, (u * 3 + k * 5) % 17, 1 + (u + k) % 5, 1000 + u * 10 + k);
  t.write("r.csv", csv);
  std::string items = "item,title,genres\n";
  for (int i = 0; i < 17; ++i) items += fmt::format("i{},Title {},{}\n", i, i, i % 2 ? "A|B" : "C");
  t.write("items.csv", items);
}

std::string the_cache_file(const TempDir& t) {
  std::string found;
  for (const auto& e : fs::directory_iterator(t.file("cache")))
    if (e.path().extension() == ".rzc") {
      REQUIRE(found.empty());
      found = e.path().string();
    }
  REQUIRE_FALSE(found.empty());
  return found;
}

// The same data, field by field.
void check_same(const Dataset& a, const Dataset& b) {
  CHECK(b.users.raws() == a.users.raws());
  CHECK(b.items.raws() == a.items.raws());
  CHECK(b.user == a.user);
  CHECK(b.item == a.item);
  CHECK(b.rating == a.rating);
  CHECK(b.timestamp == a.timestamp);
  CHECK(b.item_info.title == a.item_info.title);
  REQUIRE(b.item_info.find("genres") != nullptr);
  CHECK(b.item_info.find("genres")->tokens == a.item_info.find("genres")->tokens);
  CHECK(b.item_info.find("genres")->offsets == a.item_info.find("genres")->offsets);
  CHECK(b.report.rows_read == a.report.rows_read);
}

bool has_note(const Dataset& d, const std::string& text) {
  for (const auto& n : d.report.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}


}  // namespace

TEST_CASE("crc32c: the standard check value, hardware and table versions agree, chaining", "[cache][reliability]") {
  const std::string check = "123456789";
  CHECK(crc32c(0, check.data(), check.size()) == 0xE3069283u);
  CHECK(crc32c_portable(0, check.data(), check.size()) == 0xE3069283u);
  CHECK(crc32c(0, nullptr, 0) == 0u);
  std::string s;
  for (int i = 0; i < 10000; ++i) s += static_cast<char>((i * 7919) >> 3);
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{63}, size_t{4097}, s.size()}) {
    INFO(n);
    CHECK(crc32c(0, s.data(), n) == crc32c_portable(0, s.data(), n));
    const size_t half = n / 3;
    CHECK(crc32c(crc32c(0, s.data(), half), s.data() + half, n - half) == crc32c(0, s.data(), n));
  }
}

TEST_CASE("cache: a flipped bit anywhere in the cache file is detected, the data rebuilt identically, with a note",
          "[data][cache][reliability]") {
  TempDir t;
  write_data(t);
  const Dataset a = load_dataset(cache_cfg(t));
  REQUIRE_FALSE(a.report.from_cache);
  REQUIRE(load_dataset(cache_cfg(t)).report.from_cache);
  const std::string file = the_cache_file(t);
  const std::string good = read_file(file);
  const size_t n = good.size();
  REQUIRE(n > 1000);
  // The header (magic, key, time), the sources, the arrays, the side tables, the end marker and
  // the checksum itself; then every 37th byte.
  std::vector<size_t> offsets = {0, 7, 8, 20, 100, n / 4, n / 2, 3 * n / 4, n - 17, n - 16, n - 9, n - 8, n - 1};
  for (size_t o = 3; o < n; o += 37) offsets.push_back(o);
  for (const size_t at : offsets) {
    for (const bool verify : {false, true}) {
      INFO("offset " << at << " of " << n << (verify ? ", verify: checksum" : ""));
      // Damaged in a new file renamed over the cache (as any writer of the folder would; a loaded
      // dataset may still map the old one).
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << (at % 8)));
      t.write("cache/x", bad);
      fs::rename(t.file("cache/x"), file);
      const Dataset d = load_dataset(cache_cfg(t, verify));
      CHECK_FALSE(d.report.from_cache);
      check_same(a, d);
      CHECK(has_note(d, "not used: "));
      if (at >= 8) CHECK(has_note(d, "checksum mismatch"));
      // Rebuilt: the next load uses the cache again, with the same data.
      const Dataset e = load_dataset(cache_cfg(t, verify));
      CHECK(e.report.from_cache);
      check_same(a, e);
      CHECK_FALSE(has_note(e, "not used"));
    }
  }
  // A truncated file too.
  t.write("cache/x", good.substr(0, n - 3));
  fs::rename(t.file("cache/x"), file);
  const Dataset d = load_dataset(cache_cfg(t));
  CHECK_FALSE(d.report.from_cache);
  check_same(a, d);
}

TEST_CASE("cache: temporary files of killed cache writers are removed on the next cache write", "[data][cache][reliability]") {
  TempDir t;
  write_data(t);
  REQUIRE_FALSE(load_dataset(cache_cfg(t)).report.from_cache);
  const std::string file = the_cache_file(t);
  const long dead = dead_pid();
  const std::string stale = file + ".tmp" + std::to_string(dead);
  const std::string other = t.file("cache/other-0123456789abcdef.rzc.tmp" + std::to_string(dead));
  const std::string live = file + ".tmp1";  // pid 1 runs
  const std::string not_cache = t.file("cache/notes.txt.tmp" + std::to_string(dead));
  for (const auto& p : {stale, other, live, not_cache}) std::ofstream(p) << "half-written";
  // A load that only reads writes nothing and removes nothing.
  REQUIRE(load_dataset(cache_cfg(t)).report.from_cache);
  CHECK(fs::exists(stale));
  // New data: the cache is written again, and the folder swept.
  std::ofstream(t.file("r.csv"), std::ios::app) << "u99,i1,5,9999\n";
  const Dataset d = load_dataset(cache_cfg(t));
  CHECK_FALSE(d.report.from_cache);
  CHECK(d.users.find("u99") >= 0);
  CHECK_FALSE(fs::exists(stale));
  CHECK_FALSE(fs::exists(other));
  CHECK(fs::exists(live));
  CHECK(fs::exists(not_cache));
  CHECK(load_dataset(cache_cfg(t)).report.from_cache);
}
