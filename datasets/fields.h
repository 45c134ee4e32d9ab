// Named feature fields for the feature-based (context-aware) models: the user and item side
// features a run declares in `dataset.fields`, laid out as slots of one shared embedding table,
// so that a model gathers any entity's fields with one lookup (an embedding bag, RecBole's and
// DLRM's "fields with offsets").
//
// Every field owns a range of rows of the shared table:
//   token field (gender, occupation, item_id)   row 0 = missing / unknown, row 1 + t = token t
//   token sequence (genres, title words, tags)   the same rows; the entity's tokens are averaged
//                                               (each slot weighted 1/n), none = the missing row
//   float field, standardised (age)              row 0 = missing, row 1 = the value's vector,
//                                               weighted by (x - mean) / std; missing: row 0
//   float field, bucketised (field_buckets N)    row 0 = missing, rows 1..N = quantile buckets
// An entity's fields are `slots` (index, weight) pairs: its field f is
//   sum over the field's slots s of weight[s] * table[index[s]]
// and the field's vector in the models is that sum. Plain C++ here (no tensors): models/context
// turns the tables into buffers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rzoo {

class Config;
struct Csr;
struct Dataset;

struct FieldSide {
  std::vector<std::string> names;      // [F] "user_id", "user:age", "item:genres", ...
  std::vector<std::string> kinds;      // [F] "id", "token", "token_seq", "float", "float_bucket"
  std::vector<int64_t> rows;           // [F] rows each field owns in the shared table
  std::vector<int64_t> first_row;      // [F] its first row (offsets into the shared table)
  std::vector<int64_t> slot_field;     // [S] the field of each slot
  int64_t n_entities = 0;
  int64_t n_slots() const { return static_cast<int64_t>(slot_field.size()); }
  int64_t n_fields() const { return static_cast<int64_t>(names.size()); }
  // The index of the field `name` (e.g. kHistoryField), -1 when the side has none.
  int64_t field_index(const std::string& name) const {
    for (size_t f = 0; f < names.size(); ++f)
      if (names[f] == name) return static_cast<int64_t>(f);
    return -1;
  }
  std::vector<int64_t> index;          // [n_entities * S] rows of the shared table
  std::vector<float> weight;           // [n_entities * S] their weights (0 = unused slot)
};

struct FieldLayout {
  FieldSide user, item;
  // Context fields (context:hour, context:weekday, context:gap): one slot each, per interaction
  // (not per entity: index/weight stay empty); an interaction's tokens come with its labelled row
  // (LabeledRows::context), token t at row first_row + t, 0 = missing.
  FieldSide context;
  int64_t table_rows = 0;              // rows of the shared table (both sides)
  // One line per field for logs and the run's schema: "user:age float (mean 34.1, std 12.2)".
  std::vector<std::string> schema;
};

// The derived user field holding the user's training items (fields.cpp: history_field()): rows
// first_row + 1 + item, weights 1/m. Models leave a training pair's own item out of it.
inline constexpr const char* kHistoryField = "user:history";

// Most tokens of a token-sequence field one entity keeps (its first ones).
constexpr int64_t kMaxFieldTokens = 32;

// The fields `dataset.fields` declares for `d`, plus user_id and item_id when `with_ids`.
// Entries: "user:NAME" / "item:NAME" (a side feature of the data), "user:*" / "item:*" (all of a
// side's features) or "auto" (every side feature the data has). An unknown name is an error
// listing the fields that exist; a field named twice is an error. With `train` given, the id of
// an entity without training interactions gets weight 0 (a cold item is scored from its fields
// alone, not from an untrained random vector). cfg may be null: ids only.
FieldLayout build_fields(const Dataset& d, const Config* cfg, bool with_ids, const Csr* train);

// Which users and items have training interactions in `train` (rows beyond n_users and columns
// beyond n_items ignored): the ids whose rows are trained, the others' get weight 0.
struct SeenInTraining {
  std::vector<bool> users, items;
};
SeenInTraining seen_in_training(const Csr& train, int64_t n_users, int64_t n_items);

// The context fields dataset.fields declares ("context:hour" hour of day 0-23 UTC, "context:weekday"
// Monday..Sunday, "context:gap" time since the user's previous interaction, in log2-second
// buckets), in declaration order; an unknown context name is an error listing the known ones.
std::vector<std::string> context_fields(const Config& cfg);
// Tokens of each of `fields` for every interaction of `d`: [n_interactions * fields.size()],
// 0 = missing (no timestamp; gap: the user's first interaction). Needs timestamps (error naming
// the field otherwise).
std::vector<int32_t> context_tokens(const Dataset& d, const std::vector<std::string>& fields, const Config& cfg);
// Tokens (rows) each context field has, missing included.
int64_t context_vocab(const std::string& field);

}  // namespace rzoo
