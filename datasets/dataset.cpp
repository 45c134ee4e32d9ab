#include "datasets/dataset.h"

#include <charconv>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <fmt/core.h>

#include "datasets/random.h"
#include "trainers/config.h"
#include "trainers/error.h"

namespace fs = std::filesystem;

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// IdMap, Csr

int64_t IdMap::add(std::string_view raw) {
  auto [it, inserted] = index_.try_emplace(std::string(raw), size());
  if (inserted) raw_.emplace_back(raw);
  return it->second;
}

int64_t IdMap::find(std::string_view raw) const {
  auto it = index_.find(std::string(raw));
  return it == index_.end() ? -1 : it->second;
}

std::string LoadReport::summary() const {
  return fmt::format("{} rows read, {} dropped below the rating threshold", rows_read, dropped_below_threshold);
}

Csr Csr::from_pairs(int64_t n_rows, int64_t n_cols, const std::vector<int64_t>& rows,
                    const std::vector<int64_t>& cols) {
  Csr m;
  m.n_rows = n_rows;
  m.n_cols = n_cols;
  std::vector<int64_t> count(static_cast<size_t>(n_rows) + 1, 0);
  for (int64_t r : rows) ++count[static_cast<size_t>(r) + 1];
  std::partial_sum(count.begin(), count.end(), count.begin());
  std::vector<int64_t> idx(rows.size());
  std::vector<int64_t> fill(count.begin(), count.end() - 1);
  for (size_t k = 0; k < rows.size(); ++k) idx[static_cast<size_t>(fill[static_cast<size_t>(rows[k])]++)] = cols[k];
  // Sort and deduplicate each row.
  m.indptr.assign(static_cast<size_t>(n_rows) + 1, 0);
  m.indices.reserve(idx.size());
  for (int64_t r = 0; r < n_rows; ++r) {
    auto b = idx.begin() + count[static_cast<size_t>(r)], e = idx.begin() + count[static_cast<size_t>(r) + 1];
    std::sort(b, e);
    e = std::unique(b, e);
    m.indices.insert(m.indices.end(), b, e);
    m.indptr[static_cast<size_t>(r) + 1] = static_cast<int64_t>(m.indices.size());
  }
  return m;
}

bool Csr::contains(int64_t r, int64_t c) const { return std::binary_search(row_begin(r), row_end(r), c); }

// ---------------------------------------------------------------------------------------------
// Delimited text (CSV/TSV with RFC 4180 quoting: quoted fields may hold separators, "" and
// newlines). The whole file is read at once; fields are views into it, unescaped copies only
// for quoted fields that contain "".

namespace {

class DelimitedReader {
 public:
  DelimitedReader(std::string path, char sep) : path_(std::move(path)), sep_(sep) {
    std::error_code ec;
    if (!fs::exists(path_, ec)) fail("{}: data file not found", path_);
    if (fs::is_directory(path_, ec)) fail("{}: is a folder, expected a data file", path_);
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("{}: cannot open data file (not readable)", path_);
    in.seekg(0, std::ios::end);
    const auto size = in.tellg();
    if (size < 0) fail("{}: not a regular file (cannot read its size)", path_);
    buf_.resize(static_cast<size_t>(size));
    in.seekg(0);
    in.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    if (!in) fail("{}: read error", path_);
    if (buf_.size() >= 3 && buf_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;  // UTF-8 BOM
  }

  const std::string& path() const { return path_; }
  int64_t line() const { return record_line_; }

  // Next non-blank record; false at end of file.
  bool next(std::vector<std::string_view>& fields) {
    fields.clear();
    scratch_.clear();
    const size_t n = buf_.size();
    while (pos_ < n && (buf_[pos_] == '\n' || buf_[pos_] == '\r')) {  // blank lines
      if (buf_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= n) return false;
    record_line_ = line_;
    for (;;) {
      if (pos_ < n && buf_[pos_] == '"') {
        size_t start = ++pos_;
        bool escaped = false;
        for (;;) {
          if (pos_ >= n) fail("{}:{}: unterminated quoted field", path_, record_line_);
          if (buf_[pos_] == '"') {
            if (pos_ + 1 < n && buf_[pos_ + 1] == '"') { escaped = true; pos_ += 2; continue; }
            break;
          }
          if (buf_[pos_] == '\n') ++line_;
          ++pos_;
        }
        std::string_view v(buf_.data() + start, pos_ - start);
        ++pos_;  // closing quote
        if (escaped) {
          std::string s;
          for (size_t i = 0; i < v.size(); ++i) { s += v[i]; if (v[i] == '"') ++i; }
          scratch_.push_back(std::move(s));
          v = scratch_.back();
        }
        fields.push_back(v);
        if (pos_ < n && buf_[pos_] != sep_ && buf_[pos_] != '\n' && buf_[pos_] != '\r')
          fail("{}:{}: field {}: unexpected character after closing quote", path_, record_line_, fields.size());
      } else {
        size_t start = pos_;
        while (pos_ < n && buf_[pos_] != sep_ && buf_[pos_] != '\n') ++pos_;
        size_t end = pos_;
        if (end > start && buf_[end - 1] == '\r') --end;
        fields.emplace_back(buf_.data() + start, end - start);
      }
      if (pos_ < n && buf_[pos_] == sep_) { ++pos_; continue; }
      if (pos_ < n && buf_[pos_] == '\r') ++pos_;
      if (pos_ < n && buf_[pos_] == '\n') { ++pos_; ++line_; }
      return true;
    }
  }

 private:
  std::string path_;
  char sep_;
  std::string buf_;
  size_t pos_ = 0;
  int64_t line_ = 1, record_line_ = 1;
  std::deque<std::string> scratch_;  // deque: growing it keeps earlier views valid
};

char separator(const Config& cfg, const std::string& key) {
  std::string s = cfg.get_string(key);
  if (s == "\\t" || s == "tab") s = "\t";
  if (s.size() != 1) cfg.bad(key, fmt::format("must be one character (\"\\t\" for tab), got '{}'", s));
  return s[0];
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Resolves a column given by header name or 0-based position; "" or "-1" = not present.
int64_t column_index(const Config& cfg, const std::string& key, const std::vector<std::string>& header,
                     const std::string& file, bool required) {
  const std::string v = cfg.get_string(key);
  if (v.empty() || v == "-1") {
    if (required) cfg.bad(key, "this column is required");
    return -1;
  }
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == v) return static_cast<int64_t>(i);
  int64_t pos;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), pos);
  if (ec == std::errc() && p == v.data() + v.size() && pos >= 0) {
    if (!header.empty() && pos >= static_cast<int64_t>(header.size()))
      cfg.bad(key, fmt::format("column position {} but {} has {} columns", pos, file, header.size()));
    return pos;
  }
  std::string names;
  for (const auto& h : header) names += (names.empty() ? "" : ", ") + h;
  cfg.bad(key, fmt::format("no column '{}' in the header of {} (columns: {})", v, file,
                           names.empty() ? "none: the file has no header" : names));
}

float parse_float(std::string_view s, const DelimitedReader& r, const std::string& column) {
  s = trim(s);
  float v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
    fail("{}:{}: column '{}': '{}' is not a finite number", r.path(), r.line(), column, s);
  return v;
}

int64_t parse_timestamp(std::string_view s, const DelimitedReader& r, const std::string& column) {
  s = trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size()) return v;
  double d = 0;
  auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc() && p2 == s.data() + s.size() && std::isfinite(d) && std::abs(d) < 9.2e18)
    return static_cast<int64_t>(d);
  fail("{}:{}: column '{}': '{}' is not a timestamp (integer seconds)", r.path(), r.line(), column, s);
}

std::string_view field(const std::vector<std::string_view>& f, int64_t col, const DelimitedReader& r,
                       const std::string& column, char sep) {
  if (col >= static_cast<int64_t>(f.size()))
    fail("{}:{}: column '{}' is field {} but the line has {} field(s) separated by '{}' (check dataset.sep)",
         r.path(), r.line(), column, col + 1, f.size(), sep == '\t' ? std::string("\\t") : std::string(1, sep));
  return f[static_cast<size_t>(col)];
}

// The trimmed column names of the first record.
std::vector<std::string> read_header(DelimitedReader& r, std::vector<std::string_view>& f) {
  if (!r.next(f)) fail("{}: empty file (expected a header line)", r.path());
  std::vector<std::string> header;
  for (auto s : f) header.emplace_back(trim(s));
  return header;
}

void read_interactions(const Config& cfg, Dataset& d) {
  const std::string path = cfg.get_string("dataset.path");
  if (path.empty()) cfg.bad("dataset.path", "no interactions file given");
  const char sep = separator(cfg, "dataset.sep");
  const bool has_header = cfg.get_bool("dataset.header");
  const double threshold = cfg.node("dataset.threshold").IsNull() ? -INFINITY : cfg.get_double("dataset.threshold");

  DelimitedReader r(path, sep);
  std::vector<std::string_view> f;
  std::vector<std::string> header;
  if (has_header) header = read_header(r, f);
  const int64_t cu = column_index(cfg, "dataset.columns.user", header, path, true);
  const int64_t ci = column_index(cfg, "dataset.columns.item", header, path, true);
  const int64_t cr = column_index(cfg, "dataset.columns.rating", header, path, false);
  const int64_t ct = column_index(cfg, "dataset.columns.timestamp", header, path, false);
  if (cr < 0 && std::isfinite(threshold))
    cfg.bad("dataset.threshold", "a rating threshold needs a rating column (dataset.columns.rating)");

  while (r.next(f)) {
    ++d.report.rows_read;
    const std::string_view u = trim(field(f, cu, r, "user", sep)), i = trim(field(f, ci, r, "item", sep));
    if (u.empty()) fail("{}:{}: column 'user' is empty", path, r.line());
    if (i.empty()) fail("{}:{}: column 'item' is empty", path, r.line());
    float rating = 1.0f;
    if (cr >= 0) rating = parse_float(field(f, cr, r, "rating", sep), r, "rating");
    int64_t ts = 0;
    if (ct >= 0) ts = parse_timestamp(field(f, ct, r, "timestamp", sep), r, "timestamp");
    if (rating < threshold) { ++d.report.dropped_below_threshold; continue; }
    d.user.push_back(d.users.add(u));
    d.item.push_back(d.items.add(i));
    if (cr >= 0) d.rating.push_back(rating);
    if (ct >= 0) d.timestamp.push_back(ts);
  }
}

// Item metadata (e.g. MovieLens movies.csv: movieId,title,genres with genres "A|B|C").
void read_items(const Config& cfg, Dataset& d) {
  const std::string path = cfg.get_string("dataset.items.path");
  if (path.empty()) return;
  const char sep = separator(cfg, "dataset.items.sep");
  const char gsep = separator(cfg, "dataset.items.genre_sep");
  DelimitedReader r(path, sep);
  std::vector<std::string_view> f;
  const std::vector<std::string> header = read_header(r, f);
  const int64_t cid = column_index(cfg, "dataset.items.columns.id", header, path, true);
  const int64_t ctitle = column_index(cfg, "dataset.items.columns.title", header, path, false);
  const int64_t cgen = column_index(cfg, "dataset.items.columns.genres", header, path, false);
  const auto n = static_cast<size_t>(d.n_items());
  d.meta.title.assign(n, "");
  d.meta.genres.assign(n, {});
  IdMap genre_ids;
  while (r.next(f)) {
    const int64_t item = d.items.find(trim(field(f, cid, r, "id", sep)));
    if (item < 0) continue;  // no interactions: not part of this dataset
    if (ctitle >= 0) d.meta.title[static_cast<size_t>(item)] = std::string(trim(field(f, ctitle, r, "title", sep)));
    if (cgen >= 0) {
      std::string_view g = field(f, cgen, r, "genres", sep);
      while (!g.empty()) {
        const size_t cut = g.find(gsep);
        const std::string_view one = trim(g.substr(0, cut));
        if (!one.empty() && one != "(no genres listed)")
          d.meta.genres[static_cast<size_t>(item)].push_back(static_cast<int32_t>(genre_ids.add(one)));
        if (cut == std::string_view::npos) break;
        g.remove_prefix(cut + 1);
      }
    }
  }
  d.meta.genre_names = genre_ids.raws();
}

// Free-text tags (e.g. MovieLens tags.csv: userId,movieId,tag,timestamp).
void read_tags(const Config& cfg, Dataset& d) {
  const std::string path = cfg.get_string("dataset.tags.path");
  if (path.empty()) return;
  const char sep = separator(cfg, "dataset.tags.sep");
  DelimitedReader r(path, sep);
  std::vector<std::string_view> f;
  const std::vector<std::string> header = read_header(r, f);
  const int64_t citem = column_index(cfg, "dataset.tags.columns.item", header, path, true);
  const int64_t ctag = column_index(cfg, "dataset.tags.columns.tag", header, path, true);
  d.meta.tags.assign(static_cast<size_t>(d.n_items()), {});
  while (r.next(f)) {
    const int64_t item = d.items.find(trim(field(f, citem, r, "item", sep)));
    if (item < 0) continue;
    const std::string_view tag = trim(field(f, ctag, r, "tag", sep));
    if (!tag.empty()) d.meta.tags[static_cast<size_t>(item)].emplace_back(tag);
  }
}

}  // namespace

Dataset load_dataset(const Config& cfg) {
  const std::string format = cfg.get_choice("dataset.format", {"csv", "synthetic"});
  Dataset d;
  if (format == "synthetic") {
    SyntheticOptions o;
    o.n_users = cfg.get_int("dataset.synthetic.n_users", 1);
    o.n_items = cfg.get_int("dataset.synthetic.n_items", 2);
    o.per_user = cfg.get_int("dataset.synthetic.per_user", 1, o.n_items - 1);
    o.factors = cfg.get_int("dataset.synthetic.factors", 1);
    o.seed = static_cast<uint64_t>(cfg.get_int("dataset.synthetic.seed", 0));
    d = make_synthetic(o);
  } else {
    read_interactions(cfg, d);
    read_items(cfg, d);
    read_tags(cfg, d);
  }
  d.name = cfg.get_string("dataset.name");
  if (d.n_interactions() == 0) {
    if (d.report.rows_read == 0) fail("dataset '{}': {} has no data rows", d.name, cfg.get_string("dataset.path"));
    fail("dataset '{}': no interactions left after filtering ({}; dataset.threshold is {})", d.name,
         d.report.summary(), cfg.get_string("dataset.threshold"));
  }
  return d;
}

Split split_random_per_user(const Dataset& data, const std::vector<double>& ratios, uint64_t seed) {
  if (ratios.size() != 3) fail("split ratios must be [train, valid, test], got {} numbers", ratios.size());
  const double sum = ratios[0] + ratios[1] + ratios[2];
  if (ratios[0] <= 0 || ratios[1] < 0 || ratios[2] < 0 || std::abs(sum - 1.0) > 1e-6)
    fail("split ratios must be >= 0 with train > 0 and sum to 1, got [{}, {}, {}]", ratios[0], ratios[1], ratios[2]);
  const Csr all = Csr::from_pairs(data.n_users(), data.n_items(), data.user, data.item);  // unique pairs
  std::vector<int64_t> rows[3], cols[3];
  std::vector<int64_t> items;
  for (int64_t u = 0; u < all.n_rows; ++u) {
    items.assign(all.row_begin(u), all.row_end(u));
    Rng rng(seed, static_cast<uint64_t>(u));  // per-user stream: a user's split ignores the others
    rng.shuffle(items.begin(), items.end());
    const auto n = static_cast<int64_t>(items.size());
    // Cumulative rounding; every user with data keeps at least one training item.
    int64_t n_train = std::max<int64_t>(n > 0 ? 1 : 0, std::llround(static_cast<double>(n) * ratios[0]));
    int64_t n_tv = std::max<int64_t>(n_train, std::llround(static_cast<double>(n) * (ratios[0] + ratios[1])));
    n_train = std::min(n_train, n);
    n_tv = std::min(n_tv, n);
    for (int64_t k = 0; k < n; ++k) {
      const int part = k < n_train ? 0 : (k < n_tv ? 1 : 2);
      rows[part].push_back(u);
      cols[part].push_back(items[static_cast<size_t>(k)]);
    }
  }
  Split s;
  s.train = Csr::from_pairs(all.n_rows, all.n_cols, rows[0], cols[0]);
  s.valid = Csr::from_pairs(all.n_rows, all.n_cols, rows[1], cols[1]);
  s.test = Csr::from_pairs(all.n_rows, all.n_cols, rows[2], cols[2]);
  return s;
}

Split split_dataset(const Dataset& data, const Config& cfg) {
  cfg.get_choice("dataset.split.method", {"random"});
  return split_random_per_user(data, cfg.get_double_list("dataset.split.ratios"),
                               static_cast<uint64_t>(cfg.get_int("dataset.split.seed", 0)));
}

Dataset make_synthetic(const SyntheticOptions& o) {
  if (o.n_users < 1 || o.n_items < 2 || o.per_user < 1 || o.per_user >= o.n_items || o.factors < 1)
    fail("synthetic dataset: need n_users >= 1, n_items >= 2, 1 <= per_user < n_items, factors >= 1");
  Rng rng(o.seed);
  auto gauss = [&rng] {  // Box-Muller
    const double u1 = 1.0 - rng.uniform01(), u2 = rng.uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  const auto F = static_cast<size_t>(o.factors);
  std::vector<double> uf(static_cast<size_t>(o.n_users) * F), vf(static_cast<size_t>(o.n_items) * F),
      pop(static_cast<size_t>(o.n_items));
  for (auto& x : uf) x = gauss();
  for (auto& x : vf) x = gauss();
  for (auto& x : pop) x = 0.7 * gauss();
  Dataset d;
  d.name = "synthetic";
  for (int64_t i = 0; i < o.n_items; ++i) d.items.add("i" + std::to_string(i));
  std::vector<std::pair<double, int64_t>> keyed(static_cast<size_t>(o.n_items));
  for (int64_t u = 0; u < o.n_users; ++u) {
    d.users.add("u" + std::to_string(u));
    // Gumbel top-k: a sample without replacement with P(i) ~ exp(affinity).
    for (int64_t i = 0; i < o.n_items; ++i) {
      double a = pop[static_cast<size_t>(i)];
      for (size_t f = 0; f < F; ++f) a += uf[static_cast<size_t>(u) * F + f] * vf[static_cast<size_t>(i) * F + f];
      const double g = -std::log(-std::log(1.0 - rng.uniform01() * (1.0 - 1e-12)));
      keyed[static_cast<size_t>(i)] = {a + g, i};
    }
    std::partial_sort(keyed.begin(), keyed.begin() + o.per_user, keyed.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    for (int64_t k = 0; k < o.per_user; ++k) {
      d.user.push_back(u);
      d.item.push_back(keyed[static_cast<size_t>(k)].second);
      d.rating.push_back(static_cast<float>(5 - (4 * k) / o.per_user));
      d.timestamp.push_back(k);
    }
  }
  d.report.rows_read = d.n_interactions();
  return d;
}

}  // namespace rzoo
