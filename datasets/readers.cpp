// The dataset readers chosen by `dataset.format`:
//   csv        any delimited file (separator, header or none, columns by name or position)
//   movielens  a MovieLens folder: 100K (u.data, u.item, u.user), 1M/10M (*.dat, "::"),
//              20M/25M/latest (*.csv)
//   recbole    RecBole atomic files (.inter, .item, .user with name:type headers)
//   ncf        NCF split files: PREFIX.train.rating | PREFIX.train.pairs, PREFIX.test.rating,
//              PREFIX.test.negative (a given split with its evaluation negatives)
//   sequence   `user i1 i2 ...` per line (S3-Rec) or `user item` per line (SASRec), in time order
//   synthetic  generated (datasets/dataset.cpp)
// Side files: item metadata (titles, genres), tags, item attribute maps (JSON
// {"item": [attr, ...]}), user features, given negatives.
// This file dispatches on the format and reads the simple formats; readers_internal.h lists the
// others' files.
#include "datasets/readers.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/readers_internal.h"
#include "datasets/text.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

using namespace readers;

InterSpec csv_spec(const Config& cfg) {
  InterSpec s;
  s.path = cfg.get_string("dataset.path");
  s.text = text_options(cfg, "dataset.sep", "dataset.encoding");
  s.header = cfg.get_bool("dataset.header");
  s.user = cfg.get_string("dataset.columns.user");
  s.item = cfg.get_string("dataset.columns.item");
  s.rating = cfg.get_string("dataset.columns.rating");
  s.time = cfg.get_string("dataset.columns.timestamp");
  s.int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  return s;
}

void read_csv(const Config& cfg, Dataset& d) {
  const InterSpec s = csv_spec(cfg);
  if (s.path.empty()) cfg.bad("dataset.path", "no interactions file given");
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

// Regroups `user item` rows read in file order so that each user's rows are together (users in
// order of first appearance, each user's items in line order), and renumbers the items by first
// appearance in that order: the dataset a per_user file of the same sequences gives, indices
// included, so either file trains the same model.
void group_pairs(Dataset& d) {
  if (std::is_sorted(d.user.begin(), d.user.end())) return;  // each user's lines are together already
  const size_t n = d.user.size();
  std::vector<size_t> next(static_cast<size_t>(d.users.size()) + 1, 0);
  for (size_t k = 0; k < n; ++k) ++next[static_cast<size_t>(d.user[k]) + 1];
  std::partial_sum(next.begin(), next.end(), next.begin());
  std::vector<int32_t> user(n), item(n);
  for (size_t k = 0; k < n; ++k) {
    const size_t p = next[static_cast<size_t>(d.user[k])]++;
    user[p] = d.user[k];
    item[p] = d.item[k];
  }
  std::vector<int32_t> new_of_old(static_cast<size_t>(d.items.size()), -1);
  std::vector<std::string> raws;
  raws.reserve(new_of_old.size());
  for (int32_t& i : item) {
    int32_t& m = new_of_old[static_cast<size_t>(i)];
    if (m < 0) {
      m = static_cast<int32_t>(raws.size());
      raws.push_back(d.items.raw(i));
    }
    i = m;
  }
  d.items.assign(std::move(raws), d.items.integer_ids());
  d.user = std::move(user);
  d.item = std::move(item);
}

// Two layouts (dataset.sequence_layout), items in time order either way; the position is the time:
//   per_user  `user i1 i2 ...`, one line per user (S3-Rec's files)
//   per_pair  `user item`, one pair per line (SASRec's own files); a user's lines may be apart
// auto reads pairs when every line has exactly two fields and some user has more than one line:
// a per_user file never repeats a user, so that rule cannot misread one, and a file meeting
// neither layout is refused rather than guessed.
void read_sequence(const Config& cfg, Dataset& d) {
  const std::string path = cfg.get_string("dataset.path");
  if (path.empty()) cfg.bad("dataset.path", "no sequence file given");
  const bool int_ids = cfg.get_choice("dataset.id_type", {"string", "int"}) == "int";
  const std::string layout = cfg.get_choice("dataset.sequence_layout", {"auto", "per_user", "per_pair"});
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
  // The first line naming a user seen before, and the first line not of two fields (0 = none):
  // auto decides on these, and names them when the file fits neither layout.
  int64_t repeat_line = 0, wide_line = 0;
  size_t wide_fields = 0;
  std::string repeat_user;
  while (r.next(f)) {
    ++lines;
    if (f.size() < 2)
      r.fail_at(0, layout == "per_pair" ? "a line without an item (dataset.sequence_layout: per_pair reads `user item` per line)"
                                        : "a user without items (a line holds `user item1 item2 ...`)");
    if (f.size() != 2) {
      if (layout == "per_pair")
        r.fail_at(2, fmt::format("{} fields; dataset.sequence_layout: per_pair reads one `user item` pair per line (set "
                                 "per_user for `user item1 item2 ...` lines)",
                                 f.size()));
      if (repeat_line > 0)  // auto: this line is not a pair, and an earlier one repeated a user
        r.fail_at(2, fmt::format("{} fields, but user '{}' has a second line at line {} as in a file of `user item` pairs: "
                                 "the file fits neither one line per user nor one pair per line (dataset.sequence_layout)",
                                 f.size(), repeat_user, repeat_line));
      if (wide_line == 0) wide_line = r.line(), wide_fields = f.size();
    }
    const int64_t before = d.users.size();
    const int64_t u = id(d.users, f[0], 0, "user");
    if (d.users.size() == before && repeat_line == 0) {
      if (layout == "per_user")
        r.fail_at(0, fmt::format("user '{}' has a second line (one `user item` pair per line, as SASRec's files? set "
                                 "dataset.sequence_layout: per_pair)",
                                 trim(f[0])));
      if (wide_line > 0)  // auto: a repeated user, but not every line is a pair
        r.fail_at(0, fmt::format("user '{}' has a second line (line {} holds {} fields, so this is not a file of "
                                 "`user item` pairs either; see dataset.sequence_layout)",
                                 trim(f[0]), wide_line, wide_fields));
      repeat_line = r.line();
      repeat_user = std::string(trim(f[0]));
    }
    for (size_t k = 1; k < f.size(); ++k) {
      d.user.push_back(static_cast<int32_t>(u));
      d.item.push_back(static_cast<int32_t>(id(d.items, f[k], k, "item")));
    }
  }
  if (lines == 0) fail("{}: no data rows (empty file)", path);
  d.report.rows_read = static_cast<int64_t>(d.user.size());
  if (layout == "per_pair" || repeat_line > 0) {
    group_pairs(d);
    d.report.notes.push_back(fmt::format("{} sequences from {} `user item` lines", d.users.size(), lines));
  } else {
    d.report.notes.push_back(fmt::format("{} sequences", lines));
  }
}

}  // namespace

void read_appended_rows(const Config& cfg, Dataset& d, const std::string& path, bool with_rating, bool with_time) {
  const std::string format = cfg.get_choice("dataset.format", {"csv", "movielens", "recbole", "ncf", "sequence", "synthetic"});
  InterSpec s;
  if (format == "csv") {
    s = csv_spec(cfg);
  } else if (format == "movielens") {
    // The layout of the run's own MovieLens folder: u.data (100K), ratings.dat (1M, 10M) or
    // ratings.csv (20M, 25M, latest).
    const fs::path dir = cfg.get_string("dataset.path");
    std::error_code ec;
    s.int_ids = true;
    if (fs::exists(dir / "u.data", ec) || fs::exists(dir / "ratings.dat", ec)) {
      s.text.sep = fs::exists(dir / "u.data", ec) ? "\t" : "::";
      s.text.quotes = false;
      s.header = false;
      s.user = "0", s.item = "1", s.rating = "2", s.time = "3";
    } else {
      s.header = true;
      s.user = "userId", s.item = "movieId", s.rating = "rating", s.time = "timestamp";
    }
  } else if (format == "recbole") {
    s = recbole_inter_spec(cfg);
    const std::string rcol = cfg.get_string("dataset.columns.rating"), tcol = cfg.get_string("dataset.columns.timestamp");
    s.rating = !rcol.empty() ? rcol : (with_rating ? "rating" : "");
    s.time = !tcol.empty() ? tcol : (with_time ? "timestamp" : "");
  } else {
    cfg.bad("dataset.append", fmt::format("appending interactions is supported for the formats csv, movielens and "
                                          "recbole, not '{}'", format));
  }
  s.path = path;
  s.what = "appended interactions file";
  s.key = "dataset.columns";
  s.part = -1;
  // The run's data decides which columns there are: a rating or timestamp column the run's data
  // has must be in the file too (column_index then names it), one it lacks is not read.
  if (!with_rating) s.rating.clear();
  if (!with_time) s.time.clear();
  InterReader reader(cfg, d);
  reader.read(s);
  if (with_rating && d.rating.size() != d.user.size())
    fail("{}: has no rating column, but the run's data has ratings (its columns differ from the run's)", path);
  if (with_time && d.timestamp.size() != d.user.size())
    fail("{}: has no timestamp column, but the run's data has timestamps (its columns differ from the run's)", path);
}

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
