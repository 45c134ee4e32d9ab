// Fuzzes the movielens format (a MovieLens folder) through load_dataset_uncached.
// Input: one flag byte, then the folder's files cut at 0x01 (fuzz_common.h); flag bits 0-1 pick
// the release (a folder per release, so earlier files never shadow later ones):
//   0 ML-100K     u.data \x01 u.item \x01 u.user
//   1 ML-1M/10M   ratings.dat \x01 movies.dat \x01 users.dat \x01 tags.dat
//   2,3 latest    ratings.csv \x01 movies.csv \x01 tags.csv
// Bit 2: dataset.items.keep_unseen. Missing parts: the files are absent (they are optional).
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

RZOO_FUZZ_TARGET(fuzz_movielens) {
  if (size < 1 || size > 65536) return 0;
  const uint8_t flags = data[0];
  const int release = std::min(flags & 3, 2);
  static const std::vector<std::vector<std::string>> names = {
      {"u.data", "u.item", "u.user"},
      {"ratings.dat", "movies.dat", "users.dat", "tags.dat"},
      {"ratings.csv", "movies.csv", "tags.csv"}};
  const std::string dir = work_dir() + "/ml" + std::to_string(release);
  static bool made[3] = {};
  if (!made[release]) made[release] = fs::create_directories(dir) || true;
  std::vector<std::string> files;
  for (const auto& n : names[release]) files.push_back(dir + "/" + n);
  write_parts(split_parts(data + 1, size - 1, files.size()), files);
  const bool keep_unseen = flags & 4;
  const Config& cfg = cached_config(release | (keep_unseen ? 4 : 0), [&] {
    return make_config({"dataset.format=movielens", "dataset.path=" + dir,
                        std::string("dataset.items.keep_unseen=") + (keep_unseen ? "true" : "false")});
  });
  load_and_check(cfg);
  return 0;
}
