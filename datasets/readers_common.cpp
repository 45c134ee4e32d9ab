// Helpers shared by the dataset readers: separators, header columns by name or position, short
// lines, item ids of side files.
#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/readers_internal.h"

namespace rzoo::readers {

namespace {

bool looks_numeric(std::string_view s) {
  s = trim(s);
  double d;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

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

TextOptions text_options(const Config& cfg, const std::string& sep_key, const std::string& enc_key) {
  TextOptions t;
  t.sep = separator(cfg, sep_key);
  t.latin1 = cfg.get_choice(enc_key, {"utf-8", "latin-1"}) == "latin-1";
  t.collapse = t.sep == " ";
  return t;
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

}  // namespace rzoo::readers
