// Fuzzes the ncf format (NCF split files under a prefix) through load_dataset_uncached.
// Input: one flag byte, then the files cut at 0x01 (fuzz_common.h):
//   PREFIX.train.rating (flag bit 0: PREFIX.train.pairs) \x01 PREFIX.test.rating \x01 PREFIX.test.negative
// Missing parts: the files are absent.
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

RZOO_FUZZ_TARGET(fuzz_ncf) {
  if (size < 1 || size > 65536) return 0;
  const bool pairs = data[0] & 1;
  const std::string prefix = work_dir() + "/ncf";
  // Only one of the two training files may exist (.train.rating wins when both do).
  ::unlink((prefix + (pairs ? ".train.rating" : ".train.pairs")).c_str());
  const std::vector<std::string> files = {prefix + (pairs ? ".train.pairs" : ".train.rating"), prefix + ".test.rating",
                                          prefix + ".test.negative"};
  write_parts(split_parts(data + 1, size - 1, files.size()), files);
  const Config& cfg = cached_config(0, [&] {
    return make_config({"dataset.format=ncf", "dataset.path=" + prefix, "dataset.split.method=given"});
  });
  load_and_check(cfg);
  return 0;
}
