// Inference of a ratings file's layout for `rzoo train --data FILE` (see sniff.h).
#include "datasets/sniff.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

struct Candidate {
  const char* sep;    // as dataset.sep takes it
  const char* label;  // for people
};
// In order of preference: "::" before ":"-free ones, since a `::` file holds no other candidate.
const Candidate kCandidates[] = {{"::", "'::'"}, {"\\t", "tab"}, {",", "comma"},
                                 {";", "semicolon"}, {"|", "'|'"}, {"space", "spaces"}};

std::vector<std::string> split(const std::string& line, const std::string& sep) {
  std::vector<std::string> out;
  if (sep == "space") {
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      out.push_back(line.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string s = sep == "\\t" ? "\t" : sep;
  if (s.size() == 1) {
    // Quote-aware for one-character separators: "Toy Story, The" is one field.
    std::string cur;
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (c == '"') {
        if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = !quoted;
        }
      } else if (c == s[0] && !quoted) {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    out.push_back(cur);
    return out;
  }
  size_t start = 0;
  for (;;) {
    const size_t at = line.find(s, start);
    if (at == std::string::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, at - start));
    start = at + s.size();
  }
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

bool number(const std::string& text, double* out = nullptr) {
  const std::string t = trim(text);
  if (t.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) return false;
  if (out) *out = v;
  return true;
}

// Lowercase letters and digits only: "User ID", "user_id" and "userId" all read "userid"; a
// RecBole type suffix goes ("user_id:token" reads "userid").
std::string norm(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, s.find(':')))
    if (std::isalnum(c)) out += char(std::tolower(c));
  return out;
}

const std::set<std::string> kUser = {"user", "userid", "uid", "users", "customer", "customerid", "reviewerid",
                                     "member", "memberid", "visitorid", "sessionid", "session", "u"};
const std::set<std::string> kItem = {"item", "itemid", "iid", "items", "movie", "movieid", "product",
                                     "productid", "asin", "song", "songid", "track", "trackid", "artist",
                                     "artistid", "book", "bookid", "isbn", "business", "businessid",
                                     "article", "articleid", "i", "anime", "animeid", "game", "gameid"};
const std::set<std::string> kRating = {"rating", "ratings", "score", "stars", "star", "value",
                                       "preference", "rate", "overall", "r"};
const std::set<std::string> kTime = {"timestamp", "time", "ts", "date", "datetime", "unixtime",
                                     "unixreviewtime", "t", "created", "createdat"};

bool known_name(const std::string& n) {
  return kUser.count(n) || kItem.count(n) || kRating.count(n) || kTime.count(n);
}

struct ColumnStats {
  bool numeric = true, integer = true;
  double min = INFINITY, max = -INFINITY;
};

}  // namespace

SniffedData sniff_data(const std::string& given) {
  SniffedData s;
  std::error_code ec;
  if (!fs::exists(given, ec)) fail("--data {}: no such file or folder", given);
  s.path = fs::absolute(given, ec).lexically_normal().string();
  if (fs::is_directory(s.path, ec)) {
    for (const char* f : {"u.data", "ratings.dat", "ratings.csv"})
      if (fs::exists(fs::path(s.path) / f, ec)) {
        s.format = "movielens";
        s.notes.push_back(fmt::format("a MovieLens folder (it holds {}): format movielens", f));
        return s;
      }
    fail("--data {}: a folder, but not a MovieLens one (no u.data, ratings.dat or ratings.csv); give the ratings "
         "file itself",
         given);
  }
  std::ifstream in(s.path, std::ios::binary);
  if (!in) fail("--data {}: cannot open", given);
  std::vector<std::string> lines;
  std::string line;
  size_t bytes = 0;
  while (lines.size() < 500 && bytes < (1u << 20) && std::getline(in, line)) {
    bytes += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lines.empty() && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line = line.substr(3);  // UTF-8 BOM
    if (trim(line).empty()) continue;
    lines.push_back(line);
  }
  if (lines.empty()) fail("--data {}: the file is empty", given);

  // 1. Separator: the first candidate that cuts every line into the same number (>= 2) of fields.
  std::vector<std::vector<std::string>> rows;
  const Candidate* chosen = nullptr;
  for (const auto& c : kCandidates) {
    std::vector<std::vector<std::string>> r;
    bool same = true;
    for (const auto& l : lines) {
      r.push_back(split(l, c.sep));
      if (r.back().size() < 2 || r.back().size() != r.front().size()) {
        same = false;
        break;
      }
    }
    if (same) {
      chosen = &c;
      rows = std::move(r);
      break;
    }
  }
  if (!chosen)
    fail("--data {}: cannot tell its separator: none of '::', tab, comma, semicolon, '|' or spaces cuts every "
         "line of the first {} into the same number of fields (2 or more); write a dataset config "
         "(dataset.format: csv, sep, header, columns; see configs/defaults.yaml)",
         given, lines.size());
  s.format = "csv";
  s.sep = chosen->sep;
  const size_t ncol = rows.front().size();
  for (auto& r : rows)
    for (auto& f : r) f = trim(f);

  // 2. Header: known column names, or text above a column of numbers.
  const auto& first = rows.front();
  bool names = false, text_over_numbers = false;
  for (size_t j = 0; j < ncol; ++j) {
    if (known_name(norm(first[j]))) names = true;
    if (rows.size() > 1 && !number(first[j]) &&
        std::all_of(rows.begin() + 1, rows.end(), [&](const std::vector<std::string>& r) { return number(r[j]); }))
      text_over_numbers = true;
  }
  s.header = names || text_over_numbers;
  const size_t body = s.header ? 1 : 0;
  if (rows.size() <= body) fail("--data {}: only a header line, no data rows", given);

  // 3. Columns.
  std::vector<ColumnStats> st(ncol);
  for (size_t i = body; i < rows.size(); ++i)
    for (size_t j = 0; j < ncol; ++j) {
      double v;
      if (!number(rows[i][j], &v)) {
        st[j].numeric = st[j].integer = false;
        continue;
      }
      st[j].min = std::min(st[j].min, v);
      st[j].max = std::max(st[j].max, v);
      if (v != std::floor(v)) st[j].integer = false;
    }
  int user = -1, item = -1, rating = -1, time = -1;
  auto free_col = [&](int j) { return j != user && j != item && j != rating && j != time; };
  if (s.header) {
    for (int j = 0; j < int(ncol); ++j) {
      const std::string n = norm(first[size_t(j)]);
      if (user < 0 && kUser.count(n)) user = j;
      else if (item < 0 && kItem.count(n)) item = j;
      else if (rating < 0 && kRating.count(n)) {
        if (st[size_t(j)].numeric) rating = j;
        else s.notes.push_back(fmt::format("column '{}' holds text, not numbers: not used as the rating", first[size_t(j)]));
      } else if (time < 0 && kTime.count(n)) {
        if (st[size_t(j)].numeric) time = j;
        else s.notes.push_back(fmt::format("column '{}' is not in Unix seconds: not used as the timestamp "
                                           "(convert it to use time-based splits)", first[size_t(j)]));
      }
    }
  }
  for (int j = 0; j < int(ncol) && (user < 0 || item < 0); ++j)
    if (free_col(j)) {
      if (user < 0) user = j;
      else item = j;
    }
  if (item < 0) fail("--data {}: found a user column but no item column", given);
  // Unnamed numeric columns: Unix seconds (integers >= 1e8, i.e. after 1973), then a rating (numbers
  // within 0..100).
  for (int j = 0; j < int(ncol); ++j) {
    const auto& c = st[size_t(j)];
    if (!free_col(j) || !c.numeric) continue;
    if (s.header && known_name(norm(first[size_t(j)]))) continue;
    if (time < 0 && c.integer && c.min >= 1e8) time = j;
    else if (rating < 0 && c.min >= 0 && c.max <= 100) rating = j;
  }
  auto col = [&](int j) { return j < 0 ? std::string() : std::to_string(j); };
  s.user = col(user);
  s.item = col(item);
  s.rating = col(rating);
  s.timestamp = col(time);
  if (s.header) {
    s.notes.push_back(fmt::format("header: {}", [&] {
      std::string h;
      for (const auto& f : first) h += (h.empty() ? "" : ", ") + f;
      return h;
    }()));
  }
  if (rating >= 0)
    s.notes.push_back(fmt::format("ratings from {} to {} (every row is a positive; --set dataset.threshold=4 "
                                  "keeps ratings >= 4 only)", st[size_t(rating)].min, st[size_t(rating)].max));
  for (int j = 0; j < int(ncol); ++j)
    if (free_col(j))
      s.notes.push_back(fmt::format("column {}{} not used", j,
                                    s.header ? " ('" + first[size_t(j)] + "')" : std::string()));
  return s;
}

std::string describe(const SniffedData& s) {
  if (s.format == "movielens") return "format movielens (a MovieLens folder)";
  std::string sep = s.sep;
  for (const auto& c : kCandidates)
    if (s.sep == c.sep) sep = c.label;
  std::string out = fmt::format("format csv, separator {}, {}, columns user={} item={}", sep,
                                s.header ? "a header line" : "no header", s.user, s.item);
  out += " rating=" + (s.rating.empty() ? std::string("none") : s.rating);
  out += " timestamp=" + (s.timestamp.empty() ? std::string("none") : s.timestamp);
  return out;
}

}  // namespace rzoo
