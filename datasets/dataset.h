// In-memory interaction data: raw ids mapped to contiguous indices, interactions as parallel
// arrays, user and item side features, and the user x item CSR matrices that splits, samplers
// and the evaluator share.
//
// Loading (datasets/readers.cpp) reads one of the formats named by `dataset.format`, cleaning
// (datasets/clean.cpp) applies the `dataset.filter` / `dataset.dedup` / `dataset.threshold`
// rules, splitting (datasets/split.cpp) applies `dataset.split`, and a binary cache
// (datasets/cache.cpp) lets a second run skip parsing.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "datasets/column.h"

#include "datasets/idmap.h"

namespace rzoo {

class Config;

// One side feature of users or items, indexed like Dataset::users / Dataset::items.
struct Feature {
  enum class Kind : uint8_t {
    Token,     // one category per entity (gender, occupation): tokens[offsets[e]] if present
    TokenSeq,  // a set or list of categories/words (genres, tags, title words)
    Float,     // one number per entity (age): values[e], NaN = missing
  };
  std::string name;
  Kind kind = Kind::Token;
  std::vector<std::string> vocab;  // token kinds: token id -> text
  std::vector<int64_t> offsets;    // token kinds: [n + 1], entity e's tokens are [offsets[e], offsets[e+1])
  std::vector<int32_t> tokens;     // token kinds: ids into vocab
  std::vector<float> values;       // Float: [n]

  int64_t n() const { return kind == Kind::Float ? static_cast<int64_t>(values.size()) : static_cast<int64_t>(offsets.size()) - 1; }
  // Multi-hot rows, [n, vocab] as a dense row-major float array (for content models).
  std::vector<float> multi_hot() const;
};
const char* to_string(Feature::Kind k);

// Builds a token feature entity by entity (entities may arrive in any order, some never).
class FeatureBuilder {
 public:
  FeatureBuilder(std::string name, Feature::Kind kind) : name_(std::move(name)), kind_(kind) {}
  void add(int64_t entity, std::string_view token);  // appends one token to `entity`
  void set_value(int64_t entity, float v);           // Float kind
  Feature build(int64_t n_entities) const;           // entities in index order

 private:
  std::string name_;
  Feature::Kind kind_;
  std::vector<std::pair<int64_t, int32_t>> entries_;  // (entity, token id) in arrival order
  std::vector<std::pair<int64_t, float>> values_;
  std::vector<std::string> vocab_;
  IdMap token_ids_;
};

struct SideInfo {
  std::vector<std::string> title;  // display names (empty when the data has none)
  std::vector<Feature> features;
  const Feature* find(std::string_view name) const;
  bool empty() const { return title.empty() && features.empty(); }
  // Keeps entity e at new_of_old[e] (>= 0) in a table of n_new entities.
  void remap(const std::vector<int64_t>& new_of_old, int64_t n_new);
  // Extends every table to n entities (the new ones without values).
  void resize(int64_t n);
};

// A file a reader consulted, for the cache: its path, whether it existed, and its stat
// fingerprint when the reader opened it (so a file changed while loading is noticed).
struct SourceFile {
  std::string path;
  bool exists = true;
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  bool same_stat(const SourceFile& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
};
// Stats `path` now (exists = false when it is not a regular file).
SourceFile source_file(const std::string& path, bool expected_to_exist = true);

// What loading and cleaning did, printed after loading and by `rzoo data stats`.
struct LoadReport {
  int64_t rows_read = 0;
  std::vector<std::pair<std::string, int64_t>> dropped;  // (reason, rows), in the order applied
  std::vector<std::string> notes;                        // e.g. "k-core: 3 rounds"
  double parse_seconds = 0, clean_seconds = 0;
  bool from_cache = false;
  void drop(std::string reason, int64_t rows) { dropped.emplace_back(std::move(reason), rows); }
  int64_t total_dropped() const;
  std::string summary() const;
};

constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();  // a missing timestamp

struct Csr;

struct Dataset {
  std::string name;
  IdMap users, items;
  // One entry per interaction, in file order. Indices are 32-bit (up to 2^31 - 1 users or
  // items): at 20 M interactions that halves the largest arrays, which are what loading and the
  // cache spend their time on (allocating fresh memory costs more than reading into it).
  // Columns loaded from the cache are views of the mapped cache file (see column.h).
  Column<int32_t> user, item;
  Column<float> rating;        // empty when the data has no ratings
  Column<int64_t> timestamp;   // empty when the data has no timestamps; kNoTime = missing
  // A split that came with the data (NCF files, RecBole benchmark files): 0 train, 1 valid,
  // 2 test per interaction; empty otherwise.
  Column<int8_t> part;
  // Given evaluation candidates (e.g. NCF's 99 negatives per test user), as (user, item)
  // pairs; empty when the data has none. Columns like the interactions: views of a cached
  // dataset's file, read only by the split (0.6 M pairs at NCF ML-1M: 4.8 MB, not 9.6 MB of
  // int64 copies held for the whole run).
  Column<int32_t> neg_user, neg_item;
  SideInfo user_info, item_info;
  std::vector<SourceFile> sources;
  LoadReport report;

  int64_t n_users() const { return users.size(); }
  int64_t n_items() const { return items.size(); }
  int64_t n_interactions() const { return static_cast<int64_t>(user.size()); }
  bool has_ratings() const { return !rating.empty(); }
  bool has_timestamps() const { return !timestamp.empty(); }
  // Interaction indices grouped by user (file order within a user, by counting sort);
  // user u's are [start[u], start[u + 1]).
  std::vector<int64_t> rows_by_user(std::vector<int64_t>& start) const;
  // Keeps the interactions with keep[k] true, in order.
  void filter_rows(const std::vector<bool>& keep);
  // Drops users / items without interactions (items named by given negatives stay, as do items
  // known only from metadata when `keep_unseen_items`), renumbering everything.
  void compact(bool keep_unseen_items);
  // Lets the system take back the resident pages of the columns that are views of the mapped
  // cache file (datasets/cache.cpp): nothing changes for readers, a page read again is mapped
  // again from the page cache. Called once the split has read them, so that a model's fit does
  // not carry the whole interaction table in its resident memory. A no-op for owned columns.
  void release_mapped_pages() const;
};

// Compressed sparse rows of a 0/1 user x item matrix; each row's columns sorted and unique.
// Column indices are 32-bit like the Dataset's own columns (at most 2^31 - 1 columns): the
// interaction matrices are a run's largest arrays (a training matrix and its transpose at NCF
// ML-1M's 1 M pairs: 8 MB instead of 16); row offsets stay 64-bit (more than 2^31 pairs).
struct Csr {
  using Index = int32_t;
  int64_t n_rows = 0, n_cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<Index> indices;

  static Csr from_pairs(int64_t n_rows, int64_t n_cols, const std::vector<int64_t>& rows,
                        const std::vector<int64_t>& cols);
  // The same from a Dataset's 32-bit interaction arrays.
  static Csr from_interactions(int64_t n_rows, int64_t n_cols, const Column<int32_t>& rows,
                               const Column<int32_t>& cols);
  // The same from the interactions numbered in `which` only.
  static Csr from_rows(int64_t n_rows, int64_t n_cols, const Column<int32_t>& rows, const Column<int32_t>& cols,
                       const std::vector<int64_t>& which);
  // The rows (ascending) where this matrix and `other`, of the same shape, differ.
  std::vector<int64_t> rows_differing(const Csr& other) const;
  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  int64_t row_size(int64_t r) const { return indptr[r + 1] - indptr[r]; }
  const Index* row_begin(int64_t r) const { return indices.data() + indptr[r]; }
  const Index* row_end(int64_t r) const { return indices.data() + indptr[r + 1]; }
  bool contains(int64_t r, int64_t c) const;  // binary search in row r
};

// Each user's items in time order (by timestamp, then file order), repeats kept: the input of
// sequence models.
struct Sequences {
  int64_t n_rows = 0, n_cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<int64_t> items;
  int64_t size(int64_t r) const { return indptr[r + 1] - indptr[r]; }
  const int64_t* begin(int64_t r) const { return items.data() + indptr[r]; }
};

// Labelled rows (dataset.label_threshold): (user, item, label 0/1) in (user, time) order.
struct LabeledRows {
  std::vector<int64_t> user, item;
  std::vector<float> label;
  std::vector<int32_t> context;  // [size() * C]: context field tokens (dataset.fields context:*), else empty
  int64_t n_context = 0;         // C
  int64_t size() const { return static_cast<int64_t>(user.size()); }
};

struct Split {
  Csr train, valid, test;  // binary (user, item) matrices
  // Interaction indices (into the Dataset's arrays) of each part, ordered by user, then time.
  // train_rows is an int64 per training interaction, read only by the models that use the
  // interactions' ratings, times or order (models/registry.h: model_reads_train_rows); a run of
  // any other model releases it (release_train_rows) and train_rows_released says so.
  std::vector<int64_t> train_rows, valid_rows, test_rows;
  bool train_rows_released = false;
  Sequences train_seq;     // train_rows as sequences
  Csr test_negatives;      // given candidates per user (e.g. NCF's 99); 0 rows when none
  std::string method;      // how it was made, for logs
  // The pairs each training epoch goes over when that is not all of `train` (train.replay: the
  // new interactions of a warm-started run plus a replay sample of the others), and for sequence
  // models those pairs' users' training sequences; epoch.n_rows == 0 means all of train.
  Csr epoch{};
  Sequences epoch_seq{};
  int64_t replay_new = 0, replay_old = 0;  // the epoch's new pairs and replayed old ones
  // A warm-started run's parent (train.init_from with dataset.append, as rzoo update writes it):
  // the parent's training pairs in this split's shape (its users and items are this run's first
  // ones) and their interaction rows, as the parent's own split made them, for closed-form models
  // that update the parent's fit rather than refit (RecommenderImpl::fit_update).
  // parent_train.n_rows == 0 when not known.
  Csr parent_train{};
  std::vector<int64_t> parent_train_rows;
  // dataset.label_threshold: every row of each part with its label (rating >= threshold: 1,
  // else 0). The rows labelled 0 are kept out of everything above (train/valid/test rows, the
  // CSR matrices, train_seq), which then hold the positives, as dataset.threshold would; pointwise
  // models train on train_labeled and eval.protocol labeled scores valid/test_labeled. Empty
  // without a label threshold.
  LabeledRows train_labeled, valid_labeled, test_labeled;
  double label_threshold = 0;
  bool labeled() const { return train_labeled.size() + valid_labeled.size() + test_labeled.size() > 0; }
};

// Loads `dataset.*` from the config: the reader chosen by dataset.format, then cleaning. Uses
// and refreshes the binary cache (dataset.cache). Errors name the file, line and column.
Dataset load_dataset(const Config& cfg);
// The same without the cache.
Dataset load_dataset_uncached(const Config& cfg);

// Splits by `dataset.split`. sequences = false: no Split::train_seq (an int64 per training row,
// read only by sequence models; models/registry.h: model_reads_sequences).
Split split_dataset(const Dataset& data, const Config& cfg, bool sequences = true);
// Frees split.train_rows (its memory goes back to the system) and sets train_rows_released; the
// matrices and the valid/test rows stay.
void release_train_rows(Split& split);
Split split_random_per_user(const Dataset& data, const std::vector<double>& ratios, uint64_t seed, bool sequences = true);

// Interactions appended by dataset.append (datasets/append.cpp).
struct Appended {
  int64_t base_rows = 0;                              // rows before the first appended one
  std::vector<std::pair<int64_t, int64_t>> files;     // each file's rows [begin, end), in order
  int64_t new_users = 0, new_items = 0;
  std::vector<std::string> notes;                     // what was read, kept and dropped
};
// Reads the dataset.append files (the run's format and columns) and appends their rows to `d`:
// rating range, threshold and dedup against every known pair applied (not k-core); ids new to
// `d` numbered after the existing ones, which keep their indices; side tables extended.
Appended append_interactions(const Config& cfg, Dataset& d);
// The split of `d` whose rows from base_rows on were appended after `base` was made: the others
// keep their parts, the appended ones are training rows. With valid_begin < valid_end
// (dataset.append_valid: newest), validation is instead each user's newest row among rows
// [valid_begin, valid_end) (when the user has two or more there), and `base`'s validation rows
// train.
// Rows from row_end on (row_end >= 0) are left out, as if they had not been appended yet: the
// split an earlier update made of the files before them.
Split extend_split(const Dataset& d, const Split& base, int64_t base_rows, int64_t valid_begin = 0, int64_t valid_end = 0,
                   int64_t row_end = -1);
// Sets s.epoch (and epoch_seq): the distinct pairs of rows [new_begin, new_end) plus
// round(replay x their number) other training pairs drawn without replacement (seeded).
void replay_subset(Split& s, const Dataset& d, int64_t new_begin, int64_t new_end, double replay, uint64_t seed);

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
