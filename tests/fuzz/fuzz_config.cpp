// Fuzzes the layered YAML configuration (core/config.h).
// Input: the experiment file's YAML, then `--set` assignments, cut at 0x01 (fuzz_common.h):
//   experiment.yaml \x01 a.b=value \x01 ...   (at most 4 assignments)
// The experiment is resolved against the project's configs/ (defaults, model and dataset layers,
// unknown-key and type checks); a resolved config is printed (dump), re-assigned (with_set) and
// read back as a saved run's config.yaml (load_resolved_config). The text is also loaded as a
// file (load_layer).
#include "fuzz_common.h"
#include "fuzz_target.h"

using namespace rzoo;
using namespace rzoo::fuzz;

namespace {

template <class F>
void expect_clean(F f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    other_exception(e);
  }
}

}  // namespace

RZOO_FUZZ_TARGET(fuzz_config) {
  if (size > 8192) return 0;
  const auto parts = split_parts(data, size, 5);
  const std::string file = work_dir() + "/experiment.yaml";
  write_file(file, parts[0]);
  expect_clean([&] { (void)load_layer(file); });
  expect_clean([&] {
    ConfigSources s;
    s.config_dir = std::string(RZOO_TEST_SOURCE_DIR) + "/configs";
    s.experiment = parse_layer(parts[0], file);
    s.sets.assign(parts.begin() + 1, parts.end());
    const Config cfg = resolve_config(s);
    const std::string text = cfg.dump(true);
    const std::string plain = cfg.dump(false);
    (void)resolve_threads(cfg);
    expect_clean([&] { (void)cfg.get_choice("dataset.format", {"csv", "movielens", "recbole", "ncf", "sequence", "synthetic"}); });
    if (parts.size() > 1) expect_clean([&] { (void)cfg.with_set(parts.back()).dump(true); });
    // The resolved config as a run folder's config.yaml: it must read back, unchanged.
    const std::string saved = work_dir() + "/resolved.yaml";
    write_file(saved, text);
    const Config back = load_resolved_config(saved);
    RZOO_FUZZ_CHECK(back.dump(false) == plain);
  });
  return 0;
}
