// Fuzzes the sequence format (`user item item ...` or `user item` per line) through
// load_dataset_uncached.
// Input: one flag byte, then the files cut at 0x01 (fuzz_common.h):
//   sequences \x01 negatives (dataset.negatives_path) \x01 item attributes JSON (items.attributes_path)
// (side files configured only when given). Flag bits: 0 id_type int, 1-2 separator (space tab
// ',' '::'), 3 dedup first (else auto: none for sequences), 4-5 sequence_layout (auto per_user
// per_pair auto: the older corpus files have them clear, so they still read as auto).
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

RZOO_FUZZ_TARGET(fuzz_sequence) {
  if (size < 1 || size > 65536) return 0;
  const uint8_t flags = data[0] & 63;
  const std::string dir = work_dir();
  const std::vector<std::string> files = {dir + "/seq.txt", dir + "/seq_sample.txt", dir + "/seq_attrs.json"};
  const auto parts = split_parts(data + 1, size - 1, files.size());
  write_parts(parts, files);
  const Config& cfg = cached_config(flags | static_cast<int>(parts.size()) << 6, [&] {
    const char* seps[4] = {"space", "\\t", ",", "::"};
    const char* layouts[4] = {"auto", "per_user", "per_pair", "auto"};
    return make_config({
        "dataset.format=sequence",
        "dataset.path=" + files[0],
        std::string("dataset.id_type=") + ((flags & 1) ? "int" : "string"),
        std::string("dataset.sep=\"") + seps[(flags >> 1) & 3] + "\"",
        std::string("dataset.dedup=") + ((flags & 8) ? "first" : "auto"),
        std::string("dataset.sequence_layout=") + layouts[(flags >> 4) & 3],
        "dataset.items.path=",
        "dataset.tags.path=",
        "dataset.negatives_path=" + (parts.size() > 1 ? files[1] : std::string()),
        "dataset.items.attributes_path=" + (parts.size() > 2 ? files[2] : std::string()),
    });
  });
  load_and_check(cfg);
  return 0;
}
