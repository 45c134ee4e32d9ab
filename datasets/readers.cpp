// The dataset readers chosen by `dataset.format`:
//   csv        any delimited file (separator, header or none, columns by name or position)
//   movielens  a MovieLens folder: 100K (u.data, u.item, u.user), 1M/10M (*.dat, "::"),
//              20M/25M/latest (*.csv)
//   recbole    RecBole atomic files (.inter, .item, .user with name:type headers)
//   ncf        NCF split files: PREFIX.train.rating | PREFIX.train.pairs, PREFIX.test.rating,
//              PREFIX.test.negative (a given split with its evaluation negatives)
//   sequence   one line per user: `user i1 i2 ...` in time order (SASRec / S3-Rec files)
//   synthetic  generated (datasets/dataset.cpp)
// Side files: item metadata (titles, genres), tags, item attribute maps (JSON
// {"item": [attr, ...]}), user features, given negatives.
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/readers.h"
#include "datasets/text.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

std::string show_sep(const std::string& s) {
  if (s == "\t") return "\\t";
  if (s == " ") return "space";
  return s;
}

// A separator from the config: "\t" / "tab", "space", or the characters themselves.
std::string separator(const Config& cfg, const std::string& key) {
  std::string s = cfg.get_string(key);
  if (s == "\\t" || s == "tab") s = "\t";
  if (s == "space") s = " ";
  if (s.empty()) cfg.bad(key, "the separator is empty");
  if (s.find('\n') != std::string::npos || s.find('"') != std::string::npos)
    cfg.bad(key, fmt::format("'{}' cannot be a separator", s));
  return s;
}

bool parse_i64(std::string_view s, int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

std::vector<std::string> header_names(const std::vector<std::string_view>& f, bool recbole) {
  std::vector<std::string> h;
  for (auto s : f) {
    s = trim(s);
    if (recbole) s = s.substr(0, s.find(':'));
    h.emplace_back(s);
  }
  return h;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool looks_numeric(std::string_view s) {
  s = trim(s);
  double d;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// Resolves a column given by header name or 0-based position; "" or "-1" = not present.
int64_t column_index(const Config& cfg, const std::string& key, const std::string& value,
                     const std::vector<std::string>& header, const std::string& file, bool required) {
  if (value.empty() || value == "-1") {
    if (required) cfg.bad(key, "this column is required");
    return -1;
  }
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == value) return static_cast<int64_t>(i);
  int64_t pos;
  if (parse_i64(value, pos) && pos >= 0) {
    if (!header.empty() && pos >= static_cast<int64_t>(header.size()))
      cfg.bad(key, fmt::format("column position {} but {} has {} columns", pos, file, header.size()));
    return pos;
  }
  if (header.empty())
    cfg.bad(key, fmt::format("'{}' is a column name but {} is read without a header (header: false); give a "
                             "0-based position", value, file));
  const bool data_like = std::all_of(header.begin(), header.end(), [](const std::string& h) { return looks_numeric(h); });
  cfg.bad(key, fmt::format("{}:1: no column '{}' in the header (columns: {}){}", file, value, join(header),
                           data_like ? "; the first line looks like data: set header: false" : ""));
}

// Field k of the current record, with an error naming the separator when the line is short.
std::string_view field_of(const TextReader& r, const std::vector<std::string_view>& f, int64_t k,
                          const char* column, const std::string& sep) {
  if (k < static_cast<int64_t>(f.size())) return f[static_cast<size_t>(k)];
  std::string hint;
  const std::string line_text = f.size() == 1 ? std::string(f[0]) : "";
  for (const char* other : {"\t", ",", ";", "|", "::", " "})
    if (other != sep && line_text.find(other) != std::string::npos) {
      hint = fmt::format("; the line contains '{}': is the separator right?", show_sep(other));
      break;
    }
  if (hint.empty() && r.last_unterminated()) hint = "; the file ends here without a newline: truncated last line?";
  r.fail_at(f.size() - 1, fmt::format("column '{}' is field {} but the line has {} field(s) separated by '{}'{}",
                                      column, k + 1, f.size(), show_sep(sep), hint));
}

// ---------------------------------------------------------------------------------------------
// Interactions

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

class InterReader {
 public:
  InterReader(const Config& cfg, Dataset& d) : cfg_(cfg), d_(d) {}

  void read(const InterSpec& s) {
    TextReader r(s.path, s.text, s.what);
    d_.sources.push_back(source_file(s.path));
    std::vector<std::string_view> f;
    std::vector<std::string> header;
    if (s.header) {
      if (!r.next(f)) fail("{}: empty file (expected a header line)", s.path);
      header = header_names(f, s.recbole);
    }
    const int64_t cu = column_index(cfg_, s.key + ".user", s.user, header, s.path, true);
    const int64_t ci = column_index(cfg_, s.key + ".item", s.item, header, s.path, true);
    const int64_t cr = column_index(cfg_, s.key + ".rating", s.rating, header, s.path, false);
    const int64_t ct = column_index(cfg_, s.key + ".timestamp", s.time, header, s.path, false);
    if (first_file_) {
      has_rating_ = cr >= 0;
      has_time_ = ct >= 0;
      first_file_ = false;
    } else if (has_rating_ != (cr >= 0) || has_time_ != (ct >= 0)) {
      fail("{}: has {} rating / {} timestamp column, unlike the first interactions file", s.path,
           cr >= 0 ? "a" : "no", ct >= 0 ? "a" : "no");
    }
    const int64_t need = std::max({cu, ci, cr, ct});
    const std::string& sep = s.text.sep;
    int64_t rows = 0;
    bool reserved = false;
    while (r.next(f)) {
      if (static_cast<int64_t>(f.size()) <= need) field_of(r, f, need, need == cu ? "user" : need == ci ? "item" : need == cr ? "rating" : "timestamp", sep);
      const std::string_view us = trim(f[static_cast<size_t>(cu)]), is = trim(f[static_cast<size_t>(ci)]);
      d_.user.push_back(static_cast<int32_t>(id(r, us, static_cast<size_t>(cu), "user", d_.users, s.int_ids, header.empty())));
      d_.item.push_back(static_cast<int32_t>(id(r, is, static_cast<size_t>(ci), "item", d_.items, s.int_ids, header.empty())));
      if (cr >= 0) d_.rating.push_back(rating(r, f, static_cast<size_t>(cr), header));
      if (ct >= 0) d_.timestamp.push_back(timestamp(r, f, static_cast<size_t>(ct)));
      if (s.part >= 0) d_.part.push_back(s.part);
      ++rows;
      if (!reserved && rows == 4096 && r.bytes() > (64u << 20)) {
        // Reserve for the whole file from the first lines' average length, so the arrays do not
        // double (and briefly triple) their memory while growing.
        reserved = true;
        const double per = static_cast<double>(r.offset()) / static_cast<double>(rows);
        const auto est = static_cast<size_t>(static_cast<double>(r.bytes()) / per * 1.05) + d_.user.size();
        d_.user.reserve(est);
        d_.item.reserve(est);
        if (cr >= 0) d_.rating.reserve(est);
        if (ct >= 0) d_.timestamp.reserve(est);
      }
    }
    if (rows == 0) fail("{}: no data rows{}", s.path, s.header ? " after the header line" : " (empty file)");
    d_.report.rows_read += rows;
    if (cr < 0) d_.rating.clear();
    if (ct < 0) d_.timestamp.clear();
  }

  int64_t missing_timestamps() const { return missing_time_; }

 private:
  int64_t id(const TextReader& r, std::string_view s, size_t k, const char* what, IdMap& map, bool int_ids,
             bool no_header) {
    if (s.empty()) r.fail_at(k, fmt::format("column '{}' is empty", what));
    if (!int_ids) return map.add(s);
    int64_t v;
    if (!parse_i64(s, v)) {
      const bool first = r.line() == 1 && no_header;
      r.fail_at(k, fmt::format("{} id '{}' is not an integer (ids of this format are integers{}){}", what, s,
                               first ? "" : "; set dataset.id_type: string for text ids",
                               first ? "; this looks like a header row: set header: true" : ""));
    }
    if (v < 0) r.fail_at(k, fmt::format("negative {} id {}", what, v));
    return map.add_int(v);
  }

  float rating(const TextReader& r, const std::vector<std::string_view>& f, size_t k, const std::vector<std::string>& header) {
    const std::string_view s = trim(f[k]);
    float v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size() && std::isfinite(v)) return v;
    std::string hint;
    if (r.line() == 1 && header.empty()) hint = "; this looks like a header row: set header: true";
    else if (!header.empty() && k < header.size() && s == header[k]) hint = "; a repeated header row?";
    r.fail_at(k, fmt::format("rating '{}' is not a finite number{}", s, hint));
  }

  int64_t timestamp(const TextReader& r, const std::vector<std::string_view>& f, size_t k) {
    const std::string_view s = trim(f[k]);
    if (s.empty()) {
      ++missing_time_;
      return kNoTime;
    }
    int64_t v;
    if (parse_i64(s, v) && v != kNoTime) return v;
    double d = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec == std::errc() && p == s.data() + s.size() && std::isfinite(d) && std::abs(d) < 9.2e18)
      return static_cast<int64_t>(d);
    r.fail_at(k, fmt::format("timestamp '{}' is not a number (seconds)", s));
  }

  const Config& cfg_;
  Dataset& d_;
  bool first_file_ = true, has_rating_ = false, has_time_ = false;
  int64_t missing_time_ = 0;
};

// Lower-case ASCII words of a title or text, for TF-IDF style features.
void add_words(FeatureBuilder& b, int64_t entity, std::string_view text) {
  std::string w;
  auto flush = [&] {
    if (!w.empty()) b.add(entity, w);
    w.clear();
  };
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80) w += static_cast<char>(u < 0x80 ? std::tolower(u) : u);
    else flush();
  }
  flush();
}

// Index of an item named by a side file: existing, added (keep_unseen), or -1 (skip).
int64_t side_item(Dataset& d, std::string_view raw, bool int_ids, bool keep_unseen, const TextReader& r, size_t k) {
  raw = trim(raw);
  if (int_ids) {
    int64_t v;
    if (!parse_i64(raw, v)) r.fail_at(k, fmt::format("item id '{}' is not an integer", raw));
    if (v < 0) r.fail_at(k, fmt::format("negative item id {}", v));
    const int64_t i = d.items.find_int(v);
    return i >= 0 || !keep_unseen ? i : d.items.add_int(v);
  }
  const int64_t i = d.items.find(raw);
  return i >= 0 || !keep_unseen ? i : d.items.add(raw);
}

// ---------------------------------------------------------------------------------------------
// Side files

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

void read_item_file(const Config& cfg, Dataset& d, const ItemFileSpec& s, bool int_ids, bool keep_unseen,
                    FeatureBuilder& genres, FeatureBuilder& words, std::vector<std::string>& titles) {
  TextReader r(s.path, s.text, "item file");
  d.sources.push_back(source_file(s.path));
  std::vector<std::string_view> f;
  std::vector<std::string> header;
  if (s.header) {
    if (!r.next(f)) fail("{}: empty file (expected a header line)", s.path);
    header = header_names(f, false);
  }
  const int64_t cid = column_index(cfg, s.key + ".columns.id", s.id, header, s.path, true);
  const int64_t ctitle = column_index(cfg, s.key + ".columns.title", s.title, header, s.path, false);
  const int64_t cgen = column_index(cfg, s.key + ".columns.genres", s.genres, header, s.path, false);
  const int64_t need = std::max({cid, ctitle, cgen, s.flags_from < 0 ? -1 : s.flags_from + static_cast<int64_t>(s.genre_flags.size()) - 1});
  std::vector<std::string_view> parts;
  while (r.next(f)) {
    if (static_cast<int64_t>(f.size()) <= need) field_of(r, f, need, "genres", s.text.sep);
    const int64_t item = side_item(d, f[static_cast<size_t>(cid)], int_ids, keep_unseen, r, static_cast<size_t>(cid));
    if (item < 0) continue;
    if (ctitle >= 0) {
      const std::string_view t = trim(f[static_cast<size_t>(ctitle)]);
      if (titles.size() <= static_cast<size_t>(item)) titles.resize(static_cast<size_t>(item) + 1);
      titles[static_cast<size_t>(item)] = std::string(t);
      add_words(words, item, t);
    }
    if (cgen >= 0) {
      split_fields(f[static_cast<size_t>(cgen)], s.genre_sep[0], true, parts);
      for (auto g : parts) {
        g = trim(g);
        if (!g.empty() && g != "(no genres listed)") genres.add(item, g);
      }
    }
    for (size_t g = 0; g < s.genre_flags.size(); ++g) {
      const std::string_view v = trim(f[static_cast<size_t>(s.flags_from) + g]);
      if (v == "1") genres.add(item, s.genre_flags[g]);
      else if (v != "0" && !v.empty())
        r.fail_at(static_cast<size_t>(s.flags_from) + g, fmt::format("genre flag '{}' is not 0 or 1", v));
    }
  }
}

void finish_items(Dataset& d, FeatureBuilder& genres, FeatureBuilder& words, std::vector<std::string>& titles,
                  bool any_titles, bool any_genres) {
  const int64_t n = d.n_items();
  if (any_titles) {
    titles.resize(static_cast<size_t>(n));
    d.item_info.title = std::move(titles);
    d.item_info.features.push_back(words.build(n));
  }
  if (any_genres) d.item_info.features.push_back(genres.build(n));
}

struct TagSpec {
  std::string path;
  TextOptions text;
  bool header = true;
  std::string item, tag;
  std::string key = "dataset.tags";
};

void read_tags(const Config& cfg, Dataset& d, const TagSpec& s, bool int_ids) {
  TextReader r(s.path, s.text, "tag file");
  d.sources.push_back(source_file(s.path));
  std::vector<std::string_view> f;
  std::vector<std::string> header;
  if (s.header) {
    if (!r.next(f)) fail("{}: empty file (expected a header line)", s.path);
    header = header_names(f, false);
  }
  const int64_t citem = column_index(cfg, s.key + ".columns.item", s.item, header, s.path, true);
  const int64_t ctag = column_index(cfg, s.key + ".columns.tag", s.tag, header, s.path, true);
  FeatureBuilder tags("tags", Feature::Kind::TokenSeq);
  std::string low;
  while (r.next(f)) {
    if (static_cast<int64_t>(f.size()) <= std::max(citem, ctag)) field_of(r, f, std::max(citem, ctag), "tag", s.text.sep);
    const int64_t item = side_item(d, f[static_cast<size_t>(citem)], int_ids, false, r, static_cast<size_t>(citem));
    if (item < 0) continue;
    const std::string_view tag = trim(f[static_cast<size_t>(ctag)]);
    low.assign(tag);
    for (auto& c : low)
      if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!low.empty()) tags.add(item, low);
  }
  d.item_info.features.push_back(tags.build(d.n_items()));
}

struct UserFileSpec {
  std::string path;
  TextOptions text;
  bool header = true;
  std::string id;
  std::vector<std::pair<std::string, std::string>> features;  // (column, kind: token | float)
  std::string key = "dataset.users";
};

void read_user_file(const Config& cfg, Dataset& d, const UserFileSpec& s, bool int_ids) {
  TextReader r(s.path, s.text, "user file");
  d.sources.push_back(source_file(s.path));
  std::vector<std::string_view> f;
  std::vector<std::string> header;
  if (s.header) {
    if (!r.next(f)) fail("{}: empty file (expected a header line)", s.path);
    header = header_names(f, false);
  }
  const int64_t cid = column_index(cfg, s.key + ".columns.id", s.id, header, s.path, true);
  std::vector<int64_t> cols;
  std::vector<FeatureBuilder> b;
  for (const auto& [col, kind] : s.features) {
    cols.push_back(column_index(cfg, s.key + ".columns.features", col, header, s.path, true));
    const std::string name = header.empty() || static_cast<size_t>(cols.back()) >= header.size()
                                 ? col : header[static_cast<size_t>(cols.back())];
    b.emplace_back(name, kind == "float" ? Feature::Kind::Float : Feature::Kind::Token);
  }
  int64_t need = cid;
  for (auto c : cols) need = std::max(need, c);
  while (r.next(f)) {
    if (static_cast<int64_t>(f.size()) <= need) field_of(r, f, need, "feature", s.text.sep);
    const std::string_view raw = trim(f[static_cast<size_t>(cid)]);
    int64_t u;
    if (int_ids) {
      int64_t v;
      if (!parse_i64(raw, v)) r.fail_at(static_cast<size_t>(cid), fmt::format("user id '{}' is not an integer", raw));
      u = d.users.find_int(v);
    } else {
      u = d.users.find(raw);
    }
    if (u < 0) continue;  // a user without interactions
    for (size_t j = 0; j < cols.size(); ++j) {
      const std::string_view v = trim(f[static_cast<size_t>(cols[j])]);
      if (v.empty()) continue;
      if (s.features[j].second == "float") {
        float x;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(x))
          r.fail_at(static_cast<size_t>(cols[j]), fmt::format("'{}' is not a number", v));
        b[j].set_value(u, x);
      } else {
        b[j].add(u, v);
      }
    }
  }
  for (auto& x : b) d.user_info.features.push_back(x.build(d.n_users()));
}

// {"item": [attr, ...], ...} (S3-Rec's item2attributes.json): a token_seq feature "attributes".
void read_attribute_json(Dataset& d, const std::string& path, bool int_ids, bool keep_unseen) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("{}: attribute file not found", path);
  d.sources.push_back(source_file(path));
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail("{}:{}:{}: not valid JSON: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  const YAML::Node& croot = root;
  if (!croot.IsMap())
    fail("{}:{}:{}: expected a JSON object {{\"item\": [attribute, ...]}}, found a {}", path, croot.Mark().line + 1,
         croot.Mark().column + 1, croot.IsSequence() ? "list" : "scalar");
  FeatureBuilder attrs("attributes", Feature::Kind::TokenSeq);
  for (const auto& kv : croot) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (!v.IsSequence())
      fail("{}:{}:{}: key \"{}\": expected a list of attributes, found a {}", path, v.Mark().line + 1,
           v.Mark().column + 1, key, v.IsMap() ? "object" : "scalar");
    int64_t item;
    if (int_ids) {
      int64_t id;
      if (!parse_i64(key, id) || id < 0)
        fail("{}:{}:{}: key \"{}\" is not a non-negative integer item id", path, kv.first.Mark().line + 1,
             kv.first.Mark().column + 1, key);
      item = d.items.find_int(id);
      if (item < 0 && keep_unseen) item = d.items.add_int(id);
    } else {
      item = d.items.find(key);
      if (item < 0 && keep_unseen) item = d.items.add(key);
    }
    if (item < 0) continue;
    for (const auto& a : v) {
      if (!a.IsScalar())
        fail("{}:{}:{}: key \"{}\": attributes must be numbers or strings", path, a.Mark().line + 1, a.Mark().column + 1, key);
      attrs.add(item, a.Scalar());
    }
  }
  d.item_info.features.push_back(attrs.build(d.n_items()));
}

// Given evaluation negatives. Two line forms, detected per line:
//   (user,item)\tneg1\tneg2...   NCF's test.negative (the pair must be the user's test item)
//   user neg1 neg2 ...           S3-Rec's *_sample.txt
void read_negatives(Dataset& d, const std::string& path, bool int_ids) {
  TextOptions t;
  t.quotes = false;
  t.collapse = true;
  {
    std::ifstream in(path, std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
    t.sep = head.find('\t') != std::string::npos ? "\t" : " ";
  }
  TextReader r(path, t, "negatives file");
  d.sources.push_back(source_file(path));
  // The test item of each user (given split), to check NCF's (user,item) heads.
  std::vector<int64_t> test_item;
  if (!d.part.empty()) {
    test_item.assign(static_cast<size_t>(d.n_users()), -1);
    for (size_t k = 0; k < d.part.size(); ++k)
      if (d.part[k] == 2) test_item[static_cast<size_t>(d.user[k])] = d.item[k];
  }
  auto lookup = [&](IdMap& m, std::string_view raw, size_t k, const char* what, bool add) -> int64_t {
    raw = trim(raw);
    if (int_ids) {
      int64_t v;
      if (!parse_i64(raw, v)) r.fail_at(k, fmt::format("{} id '{}' is not an integer", what, raw));
      if (v < 0) r.fail_at(k, fmt::format("negative {} id {}", what, v));
      const int64_t i = m.find_int(v);
      return i >= 0 || !add ? i : m.add_int(v);
    }
    const int64_t i = m.find(raw);
    return i >= 0 || !add ? i : m.add(raw);
  };
  std::vector<std::string_view> f;
  int64_t rows = 0;
  while (r.next(f)) {
    std::string_view head = trim(f[0]);
    int64_t u;
    if (!head.empty() && head.front() == '(') {
      if (head.back() != ')' || head.find(',') == std::string_view::npos)
        r.fail_at(0, fmt::format("expected (user,item), found '{}'", head));
      const size_t comma = head.find(',');
      const std::string_view us = head.substr(1, comma - 1), is = head.substr(comma + 1, head.size() - comma - 2);
      u = lookup(d.users, us, 0, "user", false);
      if (u < 0) r.fail_at(0, fmt::format("unknown user '{}' (not in the interactions)", trim(us)));
      const int64_t i = lookup(d.items, is, 0, "item", false);
      if (!test_item.empty() && (i < 0 || test_item[static_cast<size_t>(u)] != i))
        r.fail_at(0, fmt::format("({},{}) is not user {}'s held-out test item", trim(us), trim(is), trim(us)));
    } else {
      u = lookup(d.users, head, 0, "user", false);
      if (u < 0) r.fail_at(0, fmt::format("unknown user '{}' (not in the interactions)", head));
    }
    if (f.size() < 2) r.fail_at(0, "a user without negatives");
    for (size_t k = 1; k < f.size(); ++k) {
      // An item no one interacted with is still a candidate: it joins the catalogue.
      const int64_t i = lookup(d.items, f[k], k, "item", true);
      d.neg_user.push_back(u);
      d.neg_item.push_back(i);
    }
    ++rows;
  }
  if (rows == 0) fail("{}: no data rows (empty file)", path);
}

// ---------------------------------------------------------------------------------------------
// Formats

TextOptions text_options(const Config& cfg, const std::string& sep_key, const std::string& enc_key) {
  TextOptions t;
  t.sep = separator(cfg, sep_key);
  t.latin1 = cfg.get_choice(enc_key, {"utf-8", "latin-1"}) == "latin-1";
  t.collapse = t.sep == " ";
  return t;
}

void read_csv(const Config& cfg, Dataset& d) {
  InterSpec s;
  s.path = cfg.get_string("dataset.path");
  if (s.path.empty()) cfg.bad("dataset.path", "no interactions file given");
  s.text = text_options(cfg, "dataset.sep", "dataset.encoding");
  s.header = cfg.get_bool("dataset.header");
  s.user = cfg.get_string("dataset.columns.user");
  s.item = cfg.get_string("dataset.columns.item");
  s.rating = cfg.get_string("dataset.columns.rating");
  s.time = cfg.get_string("dataset.columns.timestamp");
  s.int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  InterReader reader(cfg, d);
  // A given split from files (split.method: given with split.train_path, valid_path, test_path).
  const bool given_files = cfg.get_string("dataset.split.method") == "given" &&
                           !cfg.get_string("dataset.split.train_path").empty();
  if (given_files) {
    const char* names[3] = {"train", "valid", "test"};
    for (int8_t p = 0; p < 3; ++p) {
      const std::string path = cfg.get_string(std::string("dataset.split.") + names[p] + "_path");
      if (path.empty()) {
        if (p == 2) cfg.bad("dataset.split.test_path", "a given split needs a test file");
        continue;
      }
      InterSpec sp = s;
      sp.path = path;
      sp.part = p;
      sp.what = std::string(names[p]) + " file";
      reader.read(sp);
    }
  } else {
    reader.read(s);
  }
  if (reader.missing_timestamps() > 0) d.report.notes.push_back(fmt::format("{} rows without a timestamp", reader.missing_timestamps()));
}

void read_side_files(const Config& cfg, Dataset& d) {
  const bool int_ids = d.items.integer_ids();
  const bool keep_unseen = cfg.get_bool("dataset.items.keep_unseen");
  FeatureBuilder genres("genres", Feature::Kind::TokenSeq), words("title", Feature::Kind::TokenSeq);
  std::vector<std::string> titles;
  const std::string ipath = cfg.get_string("dataset.items.path");
  if (!ipath.empty()) {
    ItemFileSpec s;
    s.path = ipath;
    s.text = text_options(cfg, "dataset.items.sep", "dataset.items.encoding");
    s.header = cfg.get_bool("dataset.items.header");
    s.id = cfg.get_string("dataset.items.columns.id");
    s.title = cfg.get_string("dataset.items.columns.title");
    s.genres = cfg.get_string("dataset.items.columns.genres");
    s.genre_sep = separator(cfg, "dataset.items.genre_sep");
    read_item_file(cfg, d, s, int_ids, keep_unseen, genres, words, titles);
    finish_items(d, genres, words, titles, !s.title.empty(), !s.genres.empty());
  }
  const std::string apath = cfg.get_string("dataset.items.attributes_path");
  if (!apath.empty()) read_attribute_json(d, apath, int_ids, keep_unseen);
  const std::string tpath = cfg.get_string("dataset.tags.path");
  if (!tpath.empty()) {
    TagSpec s;
    s.path = tpath;
    s.text = text_options(cfg, "dataset.tags.sep", "dataset.encoding");
    s.header = cfg.get_bool("dataset.tags.header");
    s.item = cfg.get_string("dataset.tags.columns.item");
    s.tag = cfg.get_string("dataset.tags.columns.tag");
    read_tags(cfg, d, s, int_ids);
  }
  const std::string upath = cfg.get_string("dataset.users.path");
  if (!upath.empty()) {
    UserFileSpec s;
    s.path = upath;
    s.text = text_options(cfg, "dataset.users.sep", "dataset.encoding");
    s.header = cfg.get_bool("dataset.users.header");
    s.id = cfg.get_string("dataset.users.columns.id");
    for (const auto& c : cfg.get_string_list("dataset.users.columns.features")) s.features.emplace_back(c, "token");
    read_user_file(cfg, d, s, d.users.integer_ids());
  }
}

// The MovieLens genres of ML-100K's u.item flags, in column order (u.genre lists the same).
const std::vector<std::string> kMl100kGenres = {
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"};

// Metadata files of ML-1M are Latin-1; those of later releases UTF-8. Decide by content.
bool is_utf8_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return utf8_invalid_at(s.data(), s.size()) == s.size();
}

void read_movielens(const Config& cfg, Dataset& d) {
  const std::string dir = cfg.get_string("dataset.path");
  if (dir.empty()) cfg.bad("dataset.path", "give the MovieLens folder (holding u.data, ratings.dat or ratings.csv)");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    cfg.bad("dataset.path", fmt::format("'{}' is not a folder; format movielens reads a MovieLens folder", dir));
  auto probe = [&](const std::string& name) {
    const std::string p = (fs::path(dir) / name).string();
    const bool e = fs::is_regular_file(p, ec);
    d.sources.push_back(source_file(p, e));
    return e ? p : std::string();
  };
  const bool keep_unseen = cfg.get_bool("dataset.items.keep_unseen");
  InterReader reader(cfg, d);
  FeatureBuilder genres("genres", Feature::Kind::TokenSeq), words("title", Feature::Kind::TokenSeq);
  std::vector<std::string> titles;
  d.sources.clear();
  if (const std::string u = probe("u.data"); !u.empty()) {  // ML-100K
    InterSpec s;
    s.path = u;
    s.text.sep = "\t";
    s.text.quotes = false;
    s.header = false;
    s.user = "0", s.item = "1", s.rating = "2", s.time = "3";
    s.int_ids = true;
    reader.read(s);
    if (const std::string p = probe("u.item"); !p.empty()) {
      ItemFileSpec is;
      is.path = p;
      is.text.sep = "|";
      is.text.quotes = false;
      is.text.latin1 = true;
      is.header = false;
      is.id = "0", is.title = "1";
      is.genre_flags = kMl100kGenres;
      is.flags_from = 5;
      read_item_file(cfg, d, is, true, keep_unseen, genres, words, titles);
      finish_items(d, genres, words, titles, true, true);
    }
    if (const std::string p = probe("u.user"); !p.empty()) {
      UserFileSpec us;
      us.path = p;
      us.text.sep = "|";
      us.text.quotes = false;
      us.header = false;
      us.id = "0";
      us.features = {{"1", "float"}, {"2", "token"}, {"3", "token"}, {"4", "token"}};
      read_user_file(cfg, d, us, true);
      const char* names[4] = {"age", "gender", "occupation", "zip"};
      auto& fs_ = d.user_info.features;
      for (size_t k = 0; k < 4; ++k) fs_[fs_.size() - 4 + k].name = names[k];
    }
    return;
  }
  if (const std::string r = probe("ratings.dat"); !r.empty()) {  // ML-1M, ML-10M
    InterSpec s;
    s.path = r;
    s.text.sep = "::";
    s.text.quotes = false;
    s.header = false;
    s.user = "0", s.item = "1", s.rating = "2", s.time = "3";
    s.int_ids = true;
    reader.read(s);
    if (const std::string p = probe("movies.dat"); !p.empty()) {
      ItemFileSpec is;
      is.path = p;
      is.text.sep = "::";
      is.text.quotes = false;
      is.text.latin1 = !is_utf8_file(p);
      is.header = false;
      is.id = "0", is.title = "1", is.genres = "2";
      read_item_file(cfg, d, is, true, keep_unseen, genres, words, titles);
      finish_items(d, genres, words, titles, true, true);
    }
    if (const std::string p = probe("users.dat"); !p.empty()) {
      UserFileSpec us;
      us.path = p;
      us.text.sep = "::";
      us.text.quotes = false;
      us.header = false;
      us.id = "0";
      us.features = {{"1", "token"}, {"2", "token"}, {"3", "token"}, {"4", "token"}};
      read_user_file(cfg, d, us, true);
      const char* names[4] = {"gender", "age", "occupation", "zip"};
      auto& fs_ = d.user_info.features;
      for (size_t k = 0; k < 4; ++k) fs_[fs_.size() - 4 + k].name = names[k];
    }
    if (const std::string p = probe("tags.dat"); !p.empty()) {
      TagSpec ts;
      ts.path = p;
      ts.text.sep = "::";
      ts.text.quotes = false;
      ts.header = false;
      ts.item = "1", ts.tag = "2";
      read_tags(cfg, d, ts, true);
    }
    return;
  }
  if (const std::string r = probe("ratings.csv"); !r.empty()) {  // ML-20M, ML-25M, latest
    InterSpec s;
    s.path = r;
    s.header = true;
    s.user = "userId", s.item = "movieId", s.rating = "rating", s.time = "timestamp";
    s.int_ids = true;
    reader.read(s);
    if (const std::string p = probe("movies.csv"); !p.empty()) {
      ItemFileSpec is;
      is.path = p;
      is.id = "movieId", is.title = "title", is.genres = "genres";
      read_item_file(cfg, d, is, true, keep_unseen, genres, words, titles);
      finish_items(d, genres, words, titles, true, true);
    }
    if (const std::string p = probe("tags.csv"); !p.empty()) {
      TagSpec ts;
      ts.path = p;
      ts.item = "movieId", ts.tag = "tag";
      read_tags(cfg, d, ts, true);
    }
    return;
  }
  fail("{}: no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in this folder", dir);
}

// RecBole atomic files: STEM.inter (+ STEM.item, STEM.user), tab separated, headers name:type.
void read_recbole(const Config& cfg, Dataset& d) {
  std::string path = cfg.get_string("dataset.path");
  if (path.empty()) cfg.bad("dataset.path", "give the RecBole dataset folder or its .inter file");
  std::error_code ec;
  fs::path stem;
  if (fs::is_directory(path, ec)) stem = fs::path(path) / fs::path(path).filename();
  else stem = fs::path(path).replace_extension();
  if (fs::path(path).filename().empty()) stem = fs::path(path).parent_path() / fs::path(path).parent_path().filename();
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
  // Rating and timestamp: used when the header has them.
  auto has_field = [&](const std::string& file, const std::string& name) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    std::vector<std::string_view> f;
    split_fields(line, '\t', false, f);
    for (auto x : header_names(f, true))
      if (x == name) return true;
    return false;
  };
  InterReader reader(cfg, d);
  const std::string inter = stem.string() + ".inter";
  const bool given = cfg.get_string("dataset.split.method") == "given";
  std::vector<std::pair<std::string, int8_t>> files;
  if (given) {
    const char* names[3] = {"train", "valid", "test"};
    for (int8_t p = 0; p < 3; ++p) {
      const std::string f = stem.string() + "." + names[p] + ".inter";
      const bool e = fs::is_regular_file(f, ec);
      d.sources.push_back(source_file(f, e));
      if (e) files.emplace_back(f, p);
      else if (p != 1) fail("{}: not found (split.method given reads STEM.train.inter, STEM.valid.inter, STEM.test.inter)", f);
    }
  } else {
    files.emplace_back(inter, -1);
  }
  const std::string first = files.front().first;
  if (!fs::is_regular_file(first, ec)) fail("{}: RecBole .inter file not found", first);
  const std::string rcol = cfg.get_string("dataset.columns.rating"), tcol = cfg.get_string("dataset.columns.timestamp");
  s.rating = !rcol.empty() ? rcol : (has_field(first, "rating") ? "rating" : "");
  s.time = !tcol.empty() ? tcol : (has_field(first, "timestamp") ? "timestamp" : "");
  s.int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  for (const auto& [f, p] : files) {
    InterSpec sp = s;
    sp.path = f;
    sp.part = p;
    sp.what = "RecBole interactions file";
    reader.read(sp);
  }
  // .item / .user: every field but the id becomes a feature by its type.
  for (const char* kind : {"item", "user"}) {
    const std::string file = stem.string() + "." + kind;
    const bool exists = fs::is_regular_file(file, ec);
    d.sources.push_back(source_file(file, exists));
    if (!exists) continue;
    const bool is_item = std::string(kind) == "item";
    TextOptions t;
    t.sep = "\t";
    t.quotes = false;
    TextReader r(file, t, std::string("RecBole .") + kind + " file");
    std::vector<std::string_view> f;
    if (!r.next(f)) fail("{}: empty file (expected a header line)", file);
    std::vector<std::string> names, types;
    for (size_t k = 0; k < f.size(); ++k) {
      const std::string_view h = trim(f[k]);
      const size_t colon = h.find(':');
      if (colon == std::string_view::npos)
        r.fail_at(k, fmt::format("header field '{}' has no type (RecBole headers are name:type)", h));
      names.emplace_back(h.substr(0, colon));
      types.emplace_back(h.substr(colon + 1));
      if (types.back() != "token" && types.back() != "token_seq" && types.back() != "float" && types.back() != "float_seq")
        r.fail_at(k, fmt::format("unknown field type '{}' (token, token_seq, float, float_seq)", types.back()));
    }
    const std::string id_name = is_item ? s.item : s.user;
    const auto idp = std::find(names.begin(), names.end(), id_name);
    if (idp == names.end()) fail("{}:1: no '{}' field in the header (fields: {})", file, id_name, join(names));
    const auto cid = static_cast<size_t>(idp - names.begin());
    std::vector<FeatureBuilder> b;
    std::vector<size_t> cols;
    int64_t title_col = -1;
    for (size_t k = 0; k < names.size(); ++k) {
      if (k == cid || types[k] == "float_seq") continue;
      cols.push_back(k);
      b.emplace_back(names[k], types[k] == "token" ? Feature::Kind::Token
                                : types[k] == "float" ? Feature::Kind::Float : Feature::Kind::TokenSeq);
      if (is_item && (names[k] == "title" || names[k] == "movie_title")) title_col = static_cast<int64_t>(k);
    }
    std::vector<std::string> titles;
    std::vector<std::string_view> parts;
    IdMap& ids = is_item ? d.items : d.users;
    while (r.next(f)) {
      if (f.size() < names.size()) field_of(r, f, static_cast<int64_t>(names.size()) - 1, "feature", "\t");
      const std::string_view raw = trim(f[cid]);
      int64_t e = ids.find(raw);
      if (e < 0 && is_item && cfg.get_bool("dataset.items.keep_unseen")) e = ids.add(raw);
      if (e < 0) continue;
      for (size_t j = 0; j < cols.size(); ++j) {
        const std::string_view v = trim(f[cols[j]]);
        if (v.empty()) continue;
        if (types[cols[j]] == "float") {
          float x;
          auto [p, ec2] = std::from_chars(v.data(), v.data() + v.size(), x);
          if (ec2 != std::errc() || p != v.data() + v.size()) r.fail_at(cols[j], fmt::format("'{}' is not a number", v));
          b[j].set_value(e, x);
        } else if (types[cols[j]] == "token") {
          b[j].add(e, v);
        } else {
          split_fields(v, ' ', true, parts);
          for (auto w : parts) b[j].add(e, w);
        }
      }
      if (title_col >= 0) {
        if (titles.size() <= static_cast<size_t>(e)) titles.resize(static_cast<size_t>(e) + 1);
        titles[static_cast<size_t>(e)] = std::string(trim(f[static_cast<size_t>(title_col)]));
      }
    }
    SideInfo& info = is_item ? d.item_info : d.user_info;
    for (auto& x : b) info.features.push_back(x.build(ids.size()));
    if (title_col >= 0) {
      titles.resize(static_cast<size_t>(ids.size()));
      info.title = std::move(titles);
    }
  }
}

// NCF split files: PREFIX.train.rating (user item rating time) or PREFIX.train.pairs (user item),
// PREFIX.test.rating, PREFIX.test.negative.
void read_ncf(const Config& cfg, Dataset& d) {
  const std::string prefix = cfg.get_string("dataset.path");
  if (prefix.empty()) cfg.bad("dataset.path", "give the NCF file prefix, e.g. ../shared/data/ncf-ml-1m/ml-1m");
  std::error_code ec;
  auto exists = [&](const std::string& p) {
    const bool e = fs::is_regular_file(p, ec);
    d.sources.push_back(source_file(p, e));
    return e;
  };
  InterReader reader(cfg, d);
  InterSpec s;
  s.text.sep = "\t";
  s.text.quotes = false;
  s.header = false;
  s.int_ids = true;
  s.user = "0", s.item = "1";
  const std::string rating = prefix + ".train.rating", pairs = prefix + ".train.pairs";
  const bool has_rating = exists(rating);
  if (has_rating) {
    // user item rating [timestamp]: NCF's ML-1M file has four fields, DeepCF's Last.fm three.
    s.path = rating;
    std::ifstream in(rating);
    std::string line;
    std::getline(in, line);
    std::vector<std::string_view> f;
    split_fields(line, '\t', false, f);
    if (f.size() >= 3) s.rating = "2";
    if (f.size() >= 4) s.time = "3";
  } else if (exists(pairs)) {
    s.path = pairs;
  } else {
    fail("{}: no NCF training file ({} or {})", prefix, rating, pairs);
  }
  s.part = 0;
  s.what = "NCF training file";
  reader.read(s);
  const std::string test = prefix + ".test.rating";
  if (!exists(test)) fail("{}: NCF test file not found", test);
  InterSpec t = s;
  t.path = test;
  t.part = 2;
  t.what = "NCF test file";
  // The test file has rating and time columns; read what the training file has.
  reader.read(t);
  const std::string neg = prefix + ".test.negative";
  if (exists(neg)) read_negatives(d, neg, true);
}

// `user i1 i2 ...` per line, items in time order; the position is the time.
void read_sequence(const Config& cfg, Dataset& d) {
  const std::string path = cfg.get_string("dataset.path");
  if (path.empty()) cfg.bad("dataset.path", "no sequence file given");
  const bool int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  TextOptions t;
  t.sep = separator(cfg, "dataset.sep");
  t.quotes = false;
  t.collapse = t.sep == " " || t.sep == "\t";
  TextReader r(path, t, "sequence file");
  d.sources.push_back(source_file(path));
  std::vector<std::string_view> f;
  int64_t lines = 0;
  auto id = [&](IdMap& m, std::string_view s, size_t k, const char* what) -> int64_t {
    s = trim(s);
    if (!int_ids) return m.add(s);
    int64_t v;
    if (!parse_i64(s, v))
      r.fail_at(k, fmt::format("{} id '{}' is not an integer (set dataset.id_type: string for text ids)", what, s));
    if (v < 0) r.fail_at(k, fmt::format("negative {} id {}", what, v));
    return m.add_int(v);
  };
  while (r.next(f)) {
    ++lines;
    if (f.size() < 2) r.fail_at(0, "a user without items (a line holds `user item1 item2 ...`)");
    const int64_t before = d.users.size();
    const int64_t u = id(d.users, f[0], 0, "user");
    if (d.users.size() == before) r.fail_at(0, fmt::format("user '{}' has a second line", trim(f[0])));
    for (size_t k = 1; k < f.size(); ++k) {
      d.user.push_back(static_cast<int32_t>(u));
      d.item.push_back(static_cast<int32_t>(id(d.items, f[k], k, "item")));
    }
  }
  if (lines == 0) fail("{}: no data rows (empty file)", path);
  d.report.rows_read = static_cast<int64_t>(d.user.size());
  d.report.notes.push_back(fmt::format("{} sequences", lines));
}

}  // namespace

Dataset read_raw_dataset(const Config& cfg) {
  const std::string format = cfg.get_choice("dataset.format", {"csv", "movielens", "recbole", "ncf", "sequence", "synthetic"});
  Dataset d;
  if (format == "synthetic") {
    SyntheticOptions o;
    o.n_users = cfg.get_int("dataset.synthetic.n_users", 1);
    o.n_items = cfg.get_int("dataset.synthetic.n_items", 2);
    o.per_user = cfg.get_int("dataset.synthetic.per_user", 1, o.n_items - 1);
    o.factors = cfg.get_int("dataset.synthetic.factors", 1);
    o.seed = static_cast<uint64_t>(cfg.get_int("dataset.synthetic.seed", 0));
    d = make_synthetic(o);
  } else if (format == "csv") {
    read_csv(cfg, d);
    read_side_files(cfg, d);
  } else if (format == "movielens") {
    read_movielens(cfg, d);
  } else if (format == "recbole") {
    read_recbole(cfg, d);
  } else if (format == "ncf") {
    read_ncf(cfg, d);
  } else {
    read_sequence(cfg, d);
    read_side_files(cfg, d);
  }
  const std::string neg = cfg.get_string("dataset.negatives_path");
  if (!neg.empty()) {
    if (!d.neg_user.empty()) cfg.bad("dataset.negatives_path", "this format already read its negatives file");
    read_negatives(d, neg, d.users.integer_ids());
  }
  // Side tables cover every user and item (items may join after them, e.g. from negatives).
  d.user_info.resize(d.n_users());
  d.item_info.resize(d.n_items());
  if (d.n_users() > INT32_MAX || d.n_items() > INT32_MAX)
    fail("dataset '{}': {} users and {} items; at most {} of each are supported", cfg.get_string("dataset.name"),
         d.n_users(), d.n_items(), INT32_MAX);
  d.name = cfg.get_string("dataset.name");
  return d;
}

}  // namespace rzoo
