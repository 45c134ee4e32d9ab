// Side files: item metadata (titles, genres), tags, user features, item attribute maps (JSON
// {"item": [attr, ...]}), given evaluation negatives.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "core/json.h"
#include "datasets/readers_internal.h"

namespace fs = std::filesystem;

namespace rzoo::readers {

void read_item_file(const Config& cfg, Dataset& d, const ItemFileSpec& s, bool int_ids, bool keep_unseen,
                    ItemFeatures& out) {
  FeatureBuilder &genres = out.genres, &words = out.words;
  std::vector<std::string>& titles = out.titles;
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

void finish_items(Dataset& d, ItemFeatures& f, bool any_titles, bool any_genres) {
  const int64_t n = d.n_items();
  if (any_titles) {
    f.titles.resize(static_cast<size_t>(n));
    d.item_info.title = std::move(f.titles);
    d.item_info.features.push_back(f.words.build(n));
  }
  if (any_genres) d.item_info.features.push_back(f.genres.build(n));
}

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


// ---------------------------------------------------------------------------------------------
// Attribute maps (JSON)

namespace {

bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skip_space(const std::string& t, size_t p) {
  while (p < t.size() && json_space(t[p])) ++p;
  return p;
}

// The offset just past the JSON value that starts at p (t is valid JSON).
size_t skip_value(const std::string& t, size_t p) {
  int depth = 0;
  bool in_string = false;
  for (; p < t.size(); ++p) {
    const char c = t[p];
    if (in_string) {
      if (c == '\\') {
        ++p;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return p + 1;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (depth == 0 && (c == ',' || c == '}' || c == ']' || json_space(c))) {
      return p;  // the end of a number or literal
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return p + 1;
    }
  }
  return p;
}

// Positions in the text of an attribute file, for messages: nlohmann/json keeps none, so they
// are found again in the (by then validated) text, only when a message needs one.
struct JsonText {
  const std::string& path;
  const std::string& text;

  // "path:line:column" of byte offset p (both 1-based).
  std::string at(size_t p) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p && i < text.size(); ++i) {
      if (text[i] == '\n') line++, col = 1;
      else ++col;
    }
    return fmt::format("{}:{}:{}", path, line, col);
  }
  size_t root() const { return skip_space(text, 0); }
  // The offsets of the entries of the object or list that opens at p: each member's key, each
  // element's first character.
  std::vector<size_t> entries(size_t p) const {
    std::vector<size_t> out;
    const bool object = text[p] == '{';
    p = skip_space(text, p + 1);
    while (p < text.size() && text[p] != '}' && text[p] != ']') {
      out.push_back(p);
      p = skip_space(text, skip_value(text, p));
      if (object) p = skip_space(text, skip_value(text, skip_space(text, p + 1)));  // ':' and the value
      if (p >= text.size() || text[p] != ',') break;
      p = skip_space(text, p + 1);
    }
    return out;
  }
  // The key of the top-level member named `key` (its first occurrence, as the parsed object keeps).
  size_t key(const std::string& key) const {
    for (size_t p : entries(root()))
      if (Json::parse(text.substr(p, skip_value(text, p) - p)).get<std::string>() == key) return p;
    return root();
  }
  size_t value(const std::string& k) const { return skip_space(text, skip_space(text, skip_value(text, key(k))) + 1); }
  size_t element(const std::string& k, size_t index) const {
    const auto e = entries(value(k));
    return index < e.size() ? e[index] : value(k);
  }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open attribute file", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The item a key names: existing, added (keep_unseen) or -1 (skip).
int64_t attribute_item(Dataset& d, const std::string& key, bool int_ids, bool keep_unseen, const JsonText& jt) {
  if (!int_ids) {
    const int64_t item = d.items.find(key);
    return item < 0 && keep_unseen ? d.items.add(key) : item;
  }
  int64_t id;
  if (!parse_i64(key, id) || id < 0)
    fail("{}: key \"{}\" is not a non-negative integer item id", jt.at(jt.key(key)), key);
  const int64_t item = d.items.find_int(id);
  return item < 0 && keep_unseen ? d.items.add_int(id) : item;
}

// An attribute as a token: a string as it is, a number (or true / false) as JSON writes it.
std::string attribute_token(const Json& a, const std::string& key, size_t index, const JsonText& jt) {
  if (a.is_string()) return a.get<std::string>();
  if (a.is_number() || a.is_boolean()) return a.dump();
  fail("{}: key \"{}\": attributes must be numbers or strings", jt.at(jt.element(key, index)), key);
}

}  // namespace

void read_attribute_json(Dataset& d, const std::string& path, bool int_ids, bool keep_unseen) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("{}: attribute file not found", path);
  d.sources.push_back(source_file(path));
  const std::string text = read_text(path);
  const Json root = json_parse(text, path);
  const JsonText jt{path, text};
  if (!root.is_object())
    fail("{}: expected a JSON object {{\"item\": [attribute, ...]}}, found a {}", jt.at(jt.root()),
         root.is_array() ? "list" : "scalar");
  FeatureBuilder attrs("attributes", Feature::Kind::TokenSeq);
  for (const auto& [key, v] : root.items()) {
    if (!v.is_array())
      fail("{}: key \"{}\": expected a list of attributes, found a {}", jt.at(jt.value(key)), key,
           v.is_object() ? "object" : "scalar");
    const int64_t item = attribute_item(d, key, int_ids, keep_unseen, jt);
    if (item < 0) continue;
    for (size_t k = 0; k < v.size(); ++k) attrs.add(item, attribute_token(v[k], key, k, jt));
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
      d.neg_user.push_back(static_cast<int32_t>(u));
      d.neg_item.push_back(static_cast<int32_t>(i));
    }
    ++rows;
  }
  if (rows == 0) fail("{}: no data rows (empty file)", path);
}

void read_side_files(const Config& cfg, Dataset& d) {
  const bool int_ids = d.items.integer_ids();
  const bool keep_unseen = cfg.get_bool("dataset.items.keep_unseen");
  ItemFeatures items;
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
    read_item_file(cfg, d, s, int_ids, keep_unseen, items);
    finish_items(d, items, !s.title.empty(), !s.genres.empty());
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

}  // namespace rzoo::readers
