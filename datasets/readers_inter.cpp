// Interaction rows (user, item[, rating][, timestamp]) of every file format: the loop that reads
// a 500 MB ratings file, so it stays in this one file with the per-field parsers it calls.
#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/readers_internal.h"

namespace rzoo::readers {

InterReader::Columns InterReader::columns(const InterSpec& s, const std::vector<std::string>& header) {
  Columns c;
  c.user = column_index(cfg_, s.key + ".user", s.user, header, s.path, true);
  c.item = column_index(cfg_, s.key + ".item", s.item, header, s.path, true);
  c.rating = column_index(cfg_, s.key + ".rating", s.rating, header, s.path, false);
  c.time = column_index(cfg_, s.key + ".timestamp", s.time, header, s.path, false);
  if (first_file_) {
    has_rating_ = c.rating >= 0;
    has_time_ = c.time >= 0;
    first_file_ = false;
  } else if (has_rating_ != (c.rating >= 0) || has_time_ != (c.time >= 0)) {
    fail("{}: has {} rating / {} timestamp column, unlike the first interactions file", s.path,
         c.rating >= 0 ? "a" : "no", c.time >= 0 ? "a" : "no");
  }
  return c;
}

// Reserve for the whole file from the first lines' average length, so the arrays do not double
// (and briefly triple) their memory while growing.
void InterReader::reserve(const TextReader& r, int64_t rows, const Columns& c) {
  const double per = static_cast<double>(r.offset()) / static_cast<double>(rows);
  const auto est = static_cast<size_t>(static_cast<double>(r.bytes()) / per * 1.05) + d_.user.size();
  d_.user.reserve(est);
  d_.item.reserve(est);
  if (c.rating >= 0) d_.rating.reserve(est);
  if (c.time >= 0) d_.timestamp.reserve(est);
}

// The per-field parsers are `inline` (as they were when defined in the class): the read loop
// below is their only caller and should keep them inlined.
inline int64_t InterReader::id(const TextReader& r, std::string_view s, size_t k, const char* what, IdMap& map,
                               bool int_ids, bool no_header) {
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

inline float InterReader::rating(const TextReader& r, const std::vector<std::string_view>& f, size_t k,
                                 const std::vector<std::string>& header) {
  const std::string_view s = trim(f[k]);
  float v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size() && std::isfinite(v)) return v;
  std::string hint;
  if (r.line() == 1 && header.empty()) hint = "; this looks like a header row: set header: true";
  else if (!header.empty() && k < header.size() && s == header[k]) hint = "; a repeated header row?";
  r.fail_at(k, fmt::format("rating '{}' is not a finite number{}", s, hint));
}

inline int64_t InterReader::timestamp(const TextReader& r, const std::vector<std::string_view>& f, size_t k) {
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

void InterReader::read(const InterSpec& s) {
  TextReader r(s.path, s.text, s.what);
  d_.sources.push_back(source_file(s.path));
  std::vector<std::string_view> f;
  std::vector<std::string> header;
  if (s.header) {
    if (!r.next(f)) fail("{}: empty file (expected a header line)", s.path);
    header = header_names(f, s.recbole);
  }
  const Columns c = columns(s, header);
  const int64_t cu = c.user, ci = c.item, cr = c.rating, ct = c.time;
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
      reserved = true;
      reserve(r, rows, c);
    }
  }
  if (rows == 0) fail("{}: no data rows{}", s.path, s.header ? " after the header line" : " (empty file)");
  d_.report.rows_read += rows;
  if (cr < 0) d_.rating.clear();
  if (ct < 0) d_.timestamp.clear();
}

}  // namespace rzoo::readers
