// Internal to the dataset readers (datasets/readers*.cpp):
//   readers.cpp            read_raw_dataset(): the formats csv, ncf, sequence, synthetic
//   readers_common.cpp     separators, headers, columns, field and id helpers
//   readers_inter.cpp      InterReader: the interaction rows of every format (the hot loop)
//   readers_side.cpp       side files: item metadata, tags, user features, attribute maps,
//                          given negatives
//   readers_movielens.cpp  format movielens
//   readers_recbole.cpp    format recbole
#pragma once
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/strings.h"
#include "datasets/dataset.h"
#include "datasets/text.h"

namespace rzoo {

class Config;

namespace readers {

// ---------------------------------------------------------------------------------------------
// Common helpers (readers_common.cpp)

// A separator for messages: "\t" as \t, " " as space.
std::string show_sep(const std::string& s);
// A separator from the config: "\t" / "tab", "space", or the characters themselves.
std::string separator(const Config& cfg, const std::string& key);
TextOptions text_options(const Config& cfg, const std::string& sep_key, const std::string& enc_key);

// Inline: ids are parsed once per field in the readers' inner loops.
inline bool parse_i64(std::string_view s, int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// The header's column names (recbole: the name of each name:type).
std::vector<std::string> header_names(const std::vector<std::string_view>& f, bool recbole);

// Resolves a column given by header name or 0-based position; "" or "-1" = not present.
int64_t column_index(const Config& cfg, const std::string& key, const std::string& value,
                     const std::vector<std::string>& header, const std::string& file, bool required);
// Field k of the current record, with an error naming the separator when the line is short.
std::string_view field_of(const TextReader& r, const std::vector<std::string_view>& f, int64_t k, const char* column,
                          const std::string& sep);

// Lower-case ASCII words of a title or text, for TF-IDF style features.
void add_words(FeatureBuilder& b, int64_t entity, std::string_view text);
// Index of an item named by a side file: existing, added (keep_unseen), or -1 (skip).
int64_t side_item(Dataset& d, std::string_view raw, bool int_ids, bool keep_unseen, const TextReader& r, size_t k);

// ---------------------------------------------------------------------------------------------
// Interactions (readers_inter.cpp)

struct InterSpec {
  std::string path, what = "ratings file";
  TextOptions text;
  bool header = true;
  bool recbole = false;  // header fields are name:type
  std::string user = "0", item = "1", rating, time;
  std::string key = "dataset.columns";  // config path of the column settings, for messages
  bool int_ids = false;
  int8_t part = -1;  // given split part of every row; -1 none
};

// Appends the interaction rows of one or more files to a Dataset; later files must have the
// rating / timestamp columns the first one has.
class InterReader {
 public:
  InterReader(const Config& cfg, Dataset& d) : cfg_(cfg), d_(d) {}

  void read(const InterSpec& s);
  int64_t missing_timestamps() const { return missing_time_; }

 private:
  struct Columns {
    int64_t user, item, rating, time;
  };
  Columns columns(const InterSpec& s, const std::vector<std::string>& header);
  void reserve(const TextReader& r, int64_t rows, const Columns& c);
  int64_t id(const TextReader& r, std::string_view s, size_t k, const char* what, IdMap& map, bool int_ids,
             bool no_header);
  float rating(const TextReader& r, const std::vector<std::string_view>& f, size_t k, const std::vector<std::string>& header);
  int64_t timestamp(const TextReader& r, const std::vector<std::string_view>& f, size_t k);

  const Config& cfg_;
  Dataset& d_;
  bool first_file_ = true, has_rating_ = false, has_time_ = false;
  int64_t missing_time_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Side files (readers_side.cpp)

struct ItemFileSpec {
  std::string path;
  TextOptions text;
  bool header = true;
  std::string id, title, genres;  // columns by name or position
  std::string genre_sep = "|";
  std::vector<std::string> genre_flags;  // ML-100K: genre names of 0/1 flag columns from `flags_from`
  int64_t flags_from = -1;
  std::string key = "dataset.items";
};

// The item file's titles, title words and genres, gathered until finish_items().
struct ItemFeatures {
  FeatureBuilder genres{"genres", Feature::Kind::TokenSeq}, words{"title", Feature::Kind::TokenSeq};
  std::vector<std::string> titles;
};

void read_item_file(const Config& cfg, Dataset& d, const ItemFileSpec& s, bool int_ids, bool keep_unseen,
                    ItemFeatures& out);
void finish_items(Dataset& d, ItemFeatures& f, bool any_titles, bool any_genres);

struct TagSpec {
  std::string path;
  TextOptions text;
  bool header = true;
  std::string item, tag;
  std::string key = "dataset.tags";
};
void read_tags(const Config& cfg, Dataset& d, const TagSpec& s, bool int_ids);

struct UserFileSpec {
  std::string path;
  TextOptions text;
  bool header = true;
  std::string id;
  std::vector<std::pair<std::string, std::string>> features;  // (column, kind: token | float)
  std::string key = "dataset.users";
};
void read_user_file(const Config& cfg, Dataset& d, const UserFileSpec& s, bool int_ids);

// {"item": [attr, ...], ...} (S3-Rec's item2attributes.json): a token_seq feature "attributes".
void read_attribute_json(Dataset& d, const std::string& path, bool int_ids, bool keep_unseen);
// Given evaluation negatives (NCF's test.negative or S3-Rec's *_sample.txt).
void read_negatives(Dataset& d, const std::string& path, bool int_ids);
// dataset.items.*, dataset.tags.*, dataset.users.* of the csv and sequence formats.
void read_side_files(const Config& cfg, Dataset& d);

// ---------------------------------------------------------------------------------------------
// Formats with their own files

void read_movielens(const Config& cfg, Dataset& d);  // readers_movielens.cpp
void read_recbole(const Config& cfg, Dataset& d);    // readers_recbole.cpp
// The .inter layout (tab-separated, name:type header, RecBole's field names, dataset.id_type);
// rating and timestamp columns left to the caller.
InterSpec recbole_inter_spec(const Config& cfg);

}  // namespace readers
}  // namespace rzoo
