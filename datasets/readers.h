// Internal to datasets/: the steps of load_dataset().
#pragma once
#include <cmath>
#include <optional>
#include <string>

#include "datasets/dataset.h"

namespace rzoo {

// Reads the files of `dataset.format` into a Dataset: raw ids mapped in order of appearance,
// no cleaning yet (datasets/readers.cpp).
Dataset read_raw_dataset(const Config& cfg);

// Appends the interaction rows of `path` (a dataset.append file) to `d`, read with the spec of the
// run's dataset.format and columns; ids new to d's id maps are added after the others. The file
// must have a rating (timestamp) column exactly when with_rating (with_time).
void read_appended_rows(const Config& cfg, Dataset& d, const std::string& path, bool with_rating, bool with_time);
// The cleaning rules that apply row by row: dataset.filter's rating range (lo > hi is an error
// naming the key), dataset.threshold, and dataset.dedup ("auto" resolved: none for the sequence
// format, first otherwise). Shared by clean_dataset() and appended rows.
struct RowRules {
  bool has_min = false, has_max = false, has_threshold = false;
  double lo = -INFINITY, hi = INFINITY, threshold = -INFINITY;
  std::string dedup;
  bool keeps_rating(double r) const { return r >= lo && r <= hi && r >= threshold; }
};
RowRules row_rules(const Config& cfg);
// Applies dataset.filter, dataset.dedup, dataset.threshold and k-core filtering, then drops
// users and items left without interactions (datasets/clean.cpp).
void clean_dataset(const Config& cfg, Dataset& d);

// The binary cache (datasets/cache.cpp). cache_file() is "" when caching is off for this config.
std::string cache_file(const Config& cfg);
std::string cache_key_text(const Config& cfg);
// The cached dataset, or nothing when absent, stale or unreadable (`why` says which).
std::optional<Dataset> cache_load(const std::string& file, const std::string& key, bool verify_content, std::string& why);
// Writes atomically; failures to write are reported in `why` and otherwise ignored.
bool cache_store(const std::string& file, const std::string& key, const Dataset& d, std::string& why);

}  // namespace rzoo
