// Fuzzes the recbole format (RecBole atomic files) through load_dataset_uncached.
// Input: one flag byte, then the files cut at 0x01 (fuzz_common.h):
//   bit 3 clear:  STEM.inter \x01 STEM.item \x01 STEM.user
//   bit 3 set (split.method given):  STEM.train.inter \x01 STEM.valid.inter \x01 STEM.test.inter
//                                    \x01 STEM.item \x01 STEM.user
// Other flag bits: 0 id_type int, 1 dataset.path is the folder (else the .inter file),
//   2 dataset.items.keep_unseen. Missing parts: the files are absent.
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

RZOO_FUZZ_TARGET(fuzz_recbole) {
  if (size < 1 || size > 65536) return 0;
  const uint8_t flags = data[0] & 15;
  const bool given = flags & 8;
  const std::string dir = work_dir() + (given ? "/rbg/rb" : "/rb/rb");
  static bool made[2] = {};
  if (!made[given]) made[given] = fs::create_directories(dir) || true;
  const std::string stem = dir + "/rb";
  std::vector<std::string> files;
  if (given) files = {stem + ".train.inter", stem + ".valid.inter", stem + ".test.inter", stem + ".item", stem + ".user"};
  else files = {stem + ".inter", stem + ".item", stem + ".user"};
  write_parts(split_parts(data + 1, size - 1, files.size()), files);
  const Config& cfg = cached_config(flags, [&] {
    std::vector<std::string> s = {
        "dataset.format=recbole",
        "dataset.path=" + ((flags & 2) ? dir : stem + ".inter"),
        std::string("dataset.id_type=") + ((flags & 1) ? "int" : "string"),
        std::string("dataset.items.keep_unseen=") + ((flags & 4) ? "true" : "false"),
    };
    if (given) s.push_back("dataset.split.method=given");
    return make_config(s);
  });
  load_and_check(cfg);
  return 0;
}
