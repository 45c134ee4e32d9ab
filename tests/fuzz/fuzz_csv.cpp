// Fuzzes the csv format through load_dataset_uncached (read_raw_dataset, then cleaning).
// Input: one flag byte, then the files cut at 0x01 (fuzz_common.h):
//   ratings \x01 items \x01 tags \x01 users     (side files configured only when given)
// Flag bits: 0 header, 1 id_type int, 2-3 separator (',' tab space '::'), 4 encoding latin-1,
//   5-6 dedup (auto last mean none), 7 cleaning (threshold 3, 2-core, keep_unseen items).
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

RZOO_FUZZ_TARGET(fuzz_csv) {
  if (size < 1 || size > 65536) return 0;
  const uint8_t flags = data[0];
  const auto parts = split_parts(data + 1, size - 1, 4);
  const std::string dir = work_dir() + "/csv";
  static const bool made = fs::create_directories(dir) || true;
  (void)made;
  const std::vector<std::string> files = {dir + "/ratings", dir + "/items", dir + "/tags", dir + "/users"};
  write_parts(parts, files);
  const int variant = flags | static_cast<int>(parts.size()) << 8;
  const Config& cfg = cached_config(variant, [&] {
    const bool header = flags & 1;
    const char* seps[4] = {",", "\\t", "space", "::"};
    const char* dedups[4] = {"auto", "last", "mean", "none"};
    std::vector<std::string> s = {
        "dataset.format=csv",
        "dataset.path=" + files[0],
        std::string("dataset.header=") + (header ? "true" : "false"),
        std::string("dataset.id_type=") + ((flags & 2) ? "int" : "string"),
        std::string("dataset.sep=\"") + seps[(flags >> 2) & 3] + "\"",
        std::string("dataset.encoding=") + ((flags & 16) ? "latin-1" : "utf-8"),
        std::string("dataset.dedup=") + dedups[(flags >> 5) & 3],
        header ? "dataset.columns={user: userId, item: movieId, rating: rating, timestamp: timestamp}"
               : "dataset.columns={user: '0', item: '1', rating: '2', timestamp: '3'}",
        "dataset.items.path=" + (parts.size() > 1 ? files[1] : std::string()),
        "dataset.items.columns={id: movieId, title: title, genres: genres}",
        "dataset.tags.path=" + (parts.size() > 2 ? files[2] : std::string()),
        "dataset.tags.columns={item: movieId, tag: tag}",
        "dataset.users.path=" + (parts.size() > 3 ? files[3] : std::string()),
        "dataset.users.columns={id: userId, features: [gender, age]}",
    };
    if (flags & 128) {
      s.push_back("dataset.threshold=3");
      s.push_back("dataset.filter={user_min: 2, item_min: 2}");
      s.push_back("dataset.items.keep_unseen=true");
    }
    return make_config(s);
  });
  load_and_check(cfg);
  return 0;
}
