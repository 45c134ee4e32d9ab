// Format movielens: a MovieLens folder (GroupLens, https://grouplens.org/datasets/movielens/):
//   ML-100K        u.data (tab separated), u.item (titles, 0/1 genre flags), u.user
//   ML-1M, ML-10M  ratings.dat, movies.dat, users.dat, tags.dat ("::" separated, no header)
//   ML-20M, ML-25M, latest  ratings.csv, movies.csv, tags.csv (comma separated, with headers)
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/readers_internal.h"

namespace fs = std::filesystem;

namespace rzoo::readers {

namespace {

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

// A MovieLens folder being read.
struct Folder {
  Folder(const Config& cfg, Dataset& d, std::string dir)
      : cfg(cfg), d(d), dir(std::move(dir)), keep_unseen(cfg.get_bool("dataset.items.keep_unseen")), reader(cfg, d) {}

  // The path of `name` in the folder, or "" when it is absent; a source of the dataset either way.
  std::string probe(const std::string& name) {
    std::error_code ec;
    const std::string p = (fs::path(dir) / name).string();
    const bool e = fs::is_regular_file(p, ec);
    d.sources.push_back(source_file(p, e));
    return e ? p : std::string();
  }
  void read_items(const ItemFileSpec& s) {
    read_item_file(cfg, d, s, true, keep_unseen, items);
    finish_items(d, items, true, true);
  }
  // The user file's four features, named.
  void read_users(const UserFileSpec& s, const char* const (&names)[4]) {
    read_user_file(cfg, d, s, true);
    auto& f = d.user_info.features;
    for (size_t k = 0; k < 4; ++k) f[f.size() - 4 + k].name = names[k];
  }

  const Config& cfg;
  Dataset& d;
  std::string dir;
  bool keep_unseen;
  InterReader reader;
  ItemFeatures items;
};

// user item rating timestamp, integer ids, no header, no quoting.
void read_plain_ratings(Folder& m, const std::string& path, const char* sep) {
  InterSpec s;
  s.path = path;
  s.text.sep = sep;
  s.text.quotes = false;
  s.header = false;
  s.user = "0", s.item = "1", s.rating = "2", s.time = "3";
  s.int_ids = true;
  m.reader.read(s);
}

void read_ml100k(Folder& m, const std::string& ratings) {
  read_plain_ratings(m, ratings, "\t");
  if (const std::string p = m.probe("u.item"); !p.empty()) {
    ItemFileSpec is;
    is.path = p;
    is.text.sep = "|";
    is.text.quotes = false;
    is.text.latin1 = true;
    is.header = false;
    is.id = "0", is.title = "1";
    is.genre_flags = kMl100kGenres;
    is.flags_from = 5;
    m.read_items(is);
  }
  if (const std::string p = m.probe("u.user"); !p.empty()) {
    UserFileSpec us;
    us.path = p;
    us.text.sep = "|";
    us.text.quotes = false;
    us.header = false;
    us.id = "0";
    us.features = {{"1", "float"}, {"2", "token"}, {"3", "token"}, {"4", "token"}};
    m.read_users(us, {"age", "gender", "occupation", "zip"});
  }
}

// ML-1M, ML-10M.
void read_ml_dat(Folder& m, const std::string& ratings) {
  read_plain_ratings(m, ratings, "::");
  if (const std::string p = m.probe("movies.dat"); !p.empty()) {
    ItemFileSpec is;
    is.path = p;
    is.text.sep = "::";
    is.text.quotes = false;
    is.text.latin1 = !is_utf8_file(p);
    is.header = false;
    is.id = "0", is.title = "1", is.genres = "2";
    m.read_items(is);
  }
  if (const std::string p = m.probe("users.dat"); !p.empty()) {
    UserFileSpec us;
    us.path = p;
    us.text.sep = "::";
    us.text.quotes = false;
    us.header = false;
    us.id = "0";
    us.features = {{"1", "token"}, {"2", "token"}, {"3", "token"}, {"4", "token"}};
    m.read_users(us, {"gender", "age", "occupation", "zip"});
  }
  if (const std::string p = m.probe("tags.dat"); !p.empty()) {
    TagSpec ts;
    ts.path = p;
    ts.text.sep = "::";
    ts.text.quotes = false;
    ts.header = false;
    ts.item = "1", ts.tag = "2";
    read_tags(m.cfg, m.d, ts, true);
  }
}

// ML-20M, ML-25M, latest.
void read_ml_csv(Folder& m, const std::string& ratings) {
  InterSpec s;
  s.path = ratings;
  s.header = true;
  s.user = "userId", s.item = "movieId", s.rating = "rating", s.time = "timestamp";
  s.int_ids = true;
  m.reader.read(s);
  if (const std::string p = m.probe("movies.csv"); !p.empty()) {
    ItemFileSpec is;
    is.path = p;
    is.id = "movieId", is.title = "title", is.genres = "genres";
    m.read_items(is);
  }
  if (const std::string p = m.probe("tags.csv"); !p.empty()) {
    TagSpec ts;
    ts.path = p;
    ts.item = "movieId", ts.tag = "tag";
    read_tags(m.cfg, m.d, ts, true);
  }
}

}  // namespace

void read_movielens(const Config& cfg, Dataset& d) {
  const std::string dir = cfg.get_string("dataset.path");
  if (dir.empty()) cfg.bad("dataset.path", "give the MovieLens folder (holding u.data, ratings.dat or ratings.csv)");
  std::error_code ec;
  if (!fs::exists(dir, ec))
    cfg.bad("dataset.path", fmt::format("'{}' does not exist (and no copy fetched into {}); `rzoo data fetch "
                                        "NAME` downloads MovieLens 100K, 1M, 10M, 20M, 25M and latest-small "
                                        "(rzoo data sources lists them)",
                                        dir, data_home()));
  if (!fs::is_directory(dir, ec))
    cfg.bad("dataset.path", fmt::format("'{}' is not a folder; format movielens reads a MovieLens folder", dir));
  Folder m(cfg, d, dir);
  d.sources.clear();
  if (const std::string r = m.probe("u.data"); !r.empty()) return read_ml100k(m, r);
  if (const std::string r = m.probe("ratings.dat"); !r.empty()) return read_ml_dat(m, r);
  if (const std::string r = m.probe("ratings.csv"); !r.empty()) return read_ml_csv(m, r);
  fail("{}: no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in this folder", dir);
}

}  // namespace rzoo::readers
