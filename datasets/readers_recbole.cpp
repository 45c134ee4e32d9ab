// Format recbole: RecBole's atomic files (Zhao et al., "RecBole: Towards a Unified, Comprehensive
// and Efficient Framework for Recommendation Algorithms", CIKM 2021): STEM.inter (+ STEM.item,
// STEM.user), tab separated, headers name:type; split.method given reads STEM.train.inter,
// STEM.valid.inter and STEM.test.inter instead of STEM.inter.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/readers_internal.h"

namespace fs = std::filesystem;

namespace rzoo::readers {

namespace {

// The dataset folder's STEM (folder/folder_name) or the .inter file's path without extension.
fs::path recbole_stem(const std::string& path) {
  std::error_code ec;
  fs::path stem;
  if (fs::is_directory(path, ec)) stem = fs::path(path) / fs::path(path).filename();
  else stem = fs::path(path).replace_extension();
  if (fs::path(path).filename().empty()) stem = fs::path(path).parent_path() / fs::path(path).parent_path().filename();
  return stem;
}

// Whether the header of `file` has a field `name`.
bool has_field(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::string_view> f;
  split_fields(line, '\t', false, f);
  for (const auto& x : header_names(f, true))
    if (x == name) return true;
  return false;
}

// The interaction files with their given split part (-1: none).
std::vector<std::pair<std::string, int8_t>> inter_files(const Config& cfg, Dataset& d, const fs::path& stem) {
  std::vector<std::pair<std::string, int8_t>> files;
  if (cfg.get_string("dataset.split.method") != "given") {
    files.emplace_back(stem.string() + ".inter", -1);
    return files;
  }
  std::error_code ec;
  const char* names[3] = {"train", "valid", "test"};
  for (int8_t p = 0; p < 3; ++p) {
    const std::string f = stem.string() + "." + names[p] + ".inter";
    const bool e = fs::is_regular_file(f, ec);
    d.sources.push_back(source_file(f, e));
    if (e) files.emplace_back(f, p);
    else if (p != 1) fail("{}: not found (split.method given reads STEM.train.inter, STEM.valid.inter, STEM.test.inter)", f);
  }
  return files;
}

}  // namespace

InterSpec recbole_inter_spec(const Config& cfg) {
  // Headers name each field with its type; columns default to RecBole's standard names.
  auto col = [&](const char* key, const char* recbole_name, const char* our_default) {
    const std::string v = cfg.get_string(std::string("dataset.columns.") + key);
    return v == our_default ? std::string(recbole_name) : v;
  };
  InterSpec s;
  s.text.sep = "\t";
  s.text.quotes = false;
  s.header = true;
  s.recbole = true;
  s.user = col("user", "user_id", "user");
  s.item = col("item", "item_id", "item");
  s.int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  return s;
}

namespace {

// The interaction files; returns their spec (the user and item field names are the .item /
// .user files' id fields).
InterSpec read_inters(const Config& cfg, Dataset& d, const fs::path& stem) {
  InterSpec s = recbole_inter_spec(cfg);
  InterReader reader(cfg, d);
  const auto files = inter_files(cfg, d, stem);
  const std::string first = files.front().first;
  std::error_code ec;
  if (!fs::is_regular_file(first, ec)) fail("{}: RecBole .inter file not found", first);
  // Rating and timestamp: used when the header has them.
  const std::string rcol = cfg.get_string("dataset.columns.rating"), tcol = cfg.get_string("dataset.columns.timestamp");
  s.rating = !rcol.empty() ? rcol : (has_field(first, "rating") ? "rating" : "");
  s.time = !tcol.empty() ? tcol : (has_field(first, "timestamp") ? "timestamp" : "");
  for (const auto& [f, p] : files) {
    InterSpec sp = s;
    sp.path = f;
    sp.part = p;
    sp.what = "RecBole interactions file";
    reader.read(sp);
  }
  return s;
}

// The header of a .item / .user file: field names and types.
struct Header {
  std::vector<std::string> names, types;
};

Header read_header(TextReader& r, const std::string& file) {
  std::vector<std::string_view> f;
  if (!r.next(f)) fail("{}: empty file (expected a header line)", file);
  Header h;
  for (size_t k = 0; k < f.size(); ++k) {
    const std::string_view field = trim(f[k]);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos)
      r.fail_at(k, fmt::format("header field '{}' has no type (RecBole headers are name:type)", field));
    h.names.emplace_back(field.substr(0, colon));
    h.types.emplace_back(field.substr(colon + 1));
    const std::string& t = h.types.back();
    if (t != "token" && t != "token_seq" && t != "float" && t != "float_seq")
      r.fail_at(k, fmt::format("unknown field type '{}' (token, token_seq, float, float_seq)", t));
  }
  return h;
}

// A .item / .user file being read: every field but the id (and float_seq ones) becomes a feature
// by its type; an item's title / movie_title field also becomes the title.
struct SideTable {
  Header h;
  size_t id_col = 0;
  std::vector<size_t> cols;  // the feature fields
  std::vector<FeatureBuilder> b;
  int64_t title_col = -1;
  std::vector<std::string> titles;
};

void plan_side_table(SideTable& t, bool is_item) {
  for (size_t k = 0; k < t.h.names.size(); ++k) {
    const std::string& type = t.h.types[k];
    if (k == t.id_col || type == "float_seq") continue;
    t.cols.push_back(k);
    t.b.emplace_back(t.h.names[k], type == "token" ? Feature::Kind::Token
                                   : type == "float" ? Feature::Kind::Float : Feature::Kind::TokenSeq);
    if (is_item && (t.h.names[k] == "title" || t.h.names[k] == "movie_title")) t.title_col = static_cast<int64_t>(k);
  }
}

// One row's features of entity e.
void add_side_row(SideTable& t, const TextReader& r, const std::vector<std::string_view>& f, int64_t e,
                  std::vector<std::string_view>& parts) {
  for (size_t j = 0; j < t.cols.size(); ++j) {
    const std::string_view v = trim(f[t.cols[j]]);
    if (v.empty()) continue;
    const std::string& type = t.h.types[t.cols[j]];
    if (type == "float") {
      float x;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
      if (ec != std::errc() || p != v.data() + v.size()) r.fail_at(t.cols[j], fmt::format("'{}' is not a number", v));
      t.b[j].set_value(e, x);
    } else if (type == "token") {
      t.b[j].add(e, v);
    } else {
      split_fields(v, ' ', true, parts);
      for (auto w : parts) t.b[j].add(e, w);
    }
  }
  if (t.title_col >= 0) {
    if (t.titles.size() <= static_cast<size_t>(e)) t.titles.resize(static_cast<size_t>(e) + 1);
    t.titles[static_cast<size_t>(e)] = std::string(trim(f[static_cast<size_t>(t.title_col)]));
  }
}

void read_side_table(const Config& cfg, Dataset& d, const std::string& file, bool is_item, const std::string& id_name) {
  TextOptions opts;
  opts.sep = "\t";
  opts.quotes = false;
  TextReader r(file, opts, std::string("RecBole .") + (is_item ? "item" : "user") + " file");
  SideTable t;
  t.h = read_header(r, file);
  const auto idp = std::find(t.h.names.begin(), t.h.names.end(), id_name);
  if (idp == t.h.names.end()) fail("{}:1: no '{}' field in the header (fields: {})", file, id_name, join(t.h.names));
  t.id_col = static_cast<size_t>(idp - t.h.names.begin());
  plan_side_table(t, is_item);
  IdMap& ids = is_item ? d.items : d.users;
  std::vector<std::string_view> f, parts;
  while (r.next(f)) {
    if (f.size() < t.h.names.size()) field_of(r, f, static_cast<int64_t>(t.h.names.size()) - 1, "feature", "\t");
    const std::string_view raw = trim(f[t.id_col]);
    int64_t e = ids.find(raw);
    if (e < 0 && is_item && cfg.get_bool("dataset.items.keep_unseen")) e = ids.add(raw);
    if (e < 0) continue;
    add_side_row(t, r, f, e, parts);
  }
  SideInfo& info = is_item ? d.item_info : d.user_info;
  for (auto& x : t.b) info.features.push_back(x.build(ids.size()));
  if (t.title_col >= 0) {
    t.titles.resize(static_cast<size_t>(ids.size()));
    info.title = std::move(t.titles);
  }
}

}  // namespace

void read_recbole(const Config& cfg, Dataset& d) {
  std::string path = cfg.get_string("dataset.path");
  if (path.empty()) cfg.bad("dataset.path", "give the RecBole dataset folder or its .inter file");
  const fs::path stem = recbole_stem(path);
  const InterSpec s = read_inters(cfg, d, stem);
  for (const char* kind : {"item", "user"}) {
    const std::string file = stem.string() + "." + kind;
    std::error_code ec;
    const bool exists = fs::is_regular_file(file, ec);
    d.sources.push_back(source_file(file, exists));
    if (!exists) continue;
    const bool is_item = std::string(kind) == "item";
    read_side_table(cfg, d, file, is_item, is_item ? s.item : s.user);
  }
}

}  // namespace rzoo::readers
