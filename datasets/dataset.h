// In-memory interaction data: raw ids mapped to contiguous indices, interactions as parallel
// arrays, item side information, and the user x item CSR matrices that splits, samplers and the
// evaluator share.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rzoo {

class Config;

// Raw id <-> contiguous index, in order of first appearance (deterministic for a given file).
class IdMap {
 public:
  int64_t size() const { return static_cast<int64_t>(raw_.size()); }
  int64_t add(std::string_view raw);        // index of `raw`, added if new
  int64_t find(std::string_view raw) const;  // -1 if absent
  const std::string& raw(int64_t index) const { return raw_.at(static_cast<size_t>(index)); }
  const std::vector<std::string>& raws() const { return raw_; }

 private:
  std::vector<std::string> raw_;
  std::unordered_map<std::string, int64_t> index_;
};

// Side information about items, indexed like Dataset::items. Empty vectors when not loaded.
struct ItemMeta {
  std::vector<std::string> title;                 // [n_items]
  std::vector<std::string> genre_names;           // vocabulary
  std::vector<std::vector<int32_t>> genres;       // [n_items] -> indices into genre_names
  std::vector<std::vector<std::string>> tags;     // [n_items] -> free-text tags
};

// What loading did, printed after loading.
struct LoadReport {
  int64_t rows_read = 0;
  int64_t dropped_below_threshold = 0;
  std::string summary() const;
};

struct Dataset {
  std::string name;
  IdMap users, items;
  // One entry per interaction.
  std::vector<int64_t> user, item;
  std::vector<float> rating;        // empty when the data has no ratings
  std::vector<int64_t> timestamp;   // empty when the data has no timestamps
  ItemMeta meta;
  LoadReport report;

  int64_t n_users() const { return users.size(); }
  int64_t n_items() const { return items.size(); }
  int64_t n_interactions() const { return static_cast<int64_t>(user.size()); }
};

// Compressed sparse rows of a 0/1 user x item matrix; each row's columns sorted and unique.
struct Csr {
  int64_t n_rows = 0, n_cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<int64_t> indices;

  static Csr from_pairs(int64_t n_rows, int64_t n_cols, const std::vector<int64_t>& rows,
                        const std::vector<int64_t>& cols);
  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  int64_t row_size(int64_t r) const { return indptr[r + 1] - indptr[r]; }
  const int64_t* row_begin(int64_t r) const { return indices.data() + indptr[r]; }
  const int64_t* row_end(int64_t r) const { return indices.data() + indptr[r + 1]; }
  bool contains(int64_t r, int64_t c) const;  // binary search in row r
};

struct Split {
  Csr train, valid, test;
};

// Loads `dataset.*` from the config (reader chosen by dataset.format), applies the rating
// threshold, and maps ids. Errors name the file, line and column.
Dataset load_dataset(const Config& cfg);

// Seeded random split of each user's interactions by `dataset.split.ratios` [train, valid, test].
Split split_dataset(const Dataset& data, const Config& cfg);
Split split_random_per_user(const Dataset& data, const std::vector<double>& ratios, uint64_t seed);

// A seeded synthetic dataset with low-rank structure plus popularity, for tests and demos:
// users prefer items whose hidden factors match theirs, so models have something to learn.
struct SyntheticOptions {
  int64_t n_users = 200;
  int64_t n_items = 300;
  int64_t per_user = 20;   // interactions per user
  int64_t factors = 4;     // hidden rank
  uint64_t seed = 1;
};
Dataset make_synthetic(const SyntheticOptions& opts);

}  // namespace rzoo
