// Readers on small inline fixtures, cleaning, splits, samplers, the cache.
#include "helpers.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <map>
#include <random>
#include <set>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "datasets/stats.h"
#include "datasets/text.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

Config cfg_with(const std::vector<std::string>& sets) { return make_config("model: pop\n", sets); }

// (raw user, raw item) pairs of a split part, sorted.
std::set<std::pair<std::string, std::string>> pairs_of(const Dataset& d, const std::vector<int64_t>& rows) {
  std::set<std::pair<std::string, std::string>> s;
  for (int64_t k : rows) s.emplace(d.users.raw(d.user[static_cast<size_t>(k)]), d.items.raw(d.item[static_cast<size_t>(k)]));
  return s;
}

std::vector<std::string> tokens_of(const Feature& f, int64_t e) {
  std::vector<std::string> out;
  for (int64_t k = f.offsets[static_cast<size_t>(e)]; k < f.offsets[static_cast<size_t>(e) + 1]; ++k)
    out.push_back(f.vocab[static_cast<size_t>(f.tokens[static_cast<size_t>(k)])]);
  return out;
}

}  // namespace

TEST_CASE("text reader: blocks, quotes across block ends, CRLF, BOM, multi-character separators", "[data][text]") {
  TempDir t;
  std::string text = "\xEF\xBB\xBF";
  for (int i = 0; i < 3000; ++i) text += "u" + std::to_string(i) + "::\"a::b\r\nc\"::" + std::to_string(i) + "\r\n";
  t.write("x.dat", text);
  TextOptions o;
  o.sep = "::";
  o.block = 4096;  // many refills, records split across them
  TextReader r(t.file("x.dat"), o);
  std::vector<std::string_view> f;
  int n = 0;
  while (r.next(f)) {
    REQUIRE(f.size() == 3);
    CHECK(f[0] == "u" + std::to_string(n));
    CHECK(f[1] == "a::b\r\nc");
    CHECK(f[2] == std::to_string(n));
    CHECK(r.line() == 2 * n + 1);  // the quoted newline counts
    ++n;
  }
  CHECK(n == 3000);
}

TEST_CASE("text reader: Latin-1 is transcoded, whitespace runs collapse", "[data][text]") {
  TempDir t;
  t.write("l.txt", "1 Caf\xE9  x\n  2   y \n");
  TextOptions o;
  o.sep = " ";
  o.collapse = true;
  o.latin1 = true;
  TextReader r(t.file("l.txt"), o);
  std::vector<std::string_view> f;
  REQUIRE(r.next(f));
  CHECK(f == std::vector<std::string_view>{"1", "Caf\xC3\xA9", "x"});
  REQUIRE(r.next(f));
  CHECK(f == std::vector<std::string_view>{"2", "y"});
  CHECK_FALSE(r.next(f));
}

TEST_CASE("id map: string and integer ids, first-appearance order, compaction", "[data]") {
  IdMap s;
  CHECK(s.add("b") == 0);
  CHECK(s.add("a") == 1);
  CHECK(s.add("b") == 0);
  for (int i = 0; i < 5000; ++i) s.add("k" + std::to_string(i));  // grows the table
  CHECK(s.find("k4999") == 5001);
  CHECK(s.find("zz") == -1);
  IdMap n;
  CHECK(n.add_int(7) == 0);
  CHECK(n.add_int(int64_t{1} << 40) == 1);  // beyond the direct table
  CHECK(n.find("007") == 0);
  CHECK(n.raw(1) == std::to_string(int64_t{1} << 40));
  const auto m = n.compact({false, true});
  CHECK(m == std::vector<int64_t>{-1, 0});
  CHECK(n.find_int(int64_t{1} << 40) == 0);
  CHECK(n.find_int(7) == -1);
}

TEST_CASE("id map: sparse integer ids stay in the hash table, dense ones in the direct table, one index each", "[data]") {
  // Ids in the millions before the map holds many ids go to the hash table; small ids added later
  // fill the direct table. Every id must keep one index, whichever table holds it.
  IdMap n;
  std::map<int64_t, int64_t> ref;
  std::mt19937_64 rng(7);
  auto add = [&](int64_t id) {
    const int64_t got = n.add_int(id);
    auto [it, fresh] = ref.emplace(id, static_cast<int64_t>(ref.size()));
    CHECK(got == it->second);
  };
  add(5000000);
  add(16777215);  // the last id the direct table could ever hold
  add(3);
  for (int i = 0; i < 20000; ++i) add(static_cast<int64_t>(rng() % 60000));         // dense range, growing
  for (int i = 0; i < 2000; ++i) add(static_cast<int64_t>(rng() % (int64_t{1} << 26)));  // sparse
  for (int64_t id = 4999990; id < 5000010; ++id) add(id);
  REQUIRE(n.size() == static_cast<int64_t>(ref.size()));
  for (const auto& [id, index] : ref) {
    REQUIRE(n.find_int(id) == index);
    REQUIRE(n.raw(index) == std::to_string(id));
  }
  CHECK(n.find_int(60001) == (ref.count(60001) ? ref[60001] : -1));
  CHECK(n.find_int(-5) == -1);
  // Compaction keeps every other id, each found at its new index.
  std::vector<bool> keep(ref.size());
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = i % 2 == 0;
  const auto m = n.compact(keep);
  for (const auto& [id, index] : ref) CHECK(n.find_int(id) == m[static_cast<size_t>(index)]);
}

TEST_CASE("movielens 100K folder: u.data, Latin-1 u.item with genre flags, u.user", "[data][readers]") {
  TempDir t;
  t.write("u.data", "1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t20\t4\t881250951\n");
  const std::string flags0 = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0";  // Animation, Children's, Comedy
  const std::string flags1 = "0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0";  // Action, Thriller
  t.write("u.item", "10|Caf\xE9 Society (1995)|01-Jan-1995||http://x|" + flags0 + "\n20|Heat (1995)|01-Jan-1995||http://y|" +
                        flags1 + "\n30|Unrated (1990)|01-Jan-1990||http://z|" + flags1 + "\n");
  t.write("u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n");
  const Dataset d = load_dataset(cfg_with({"dataset.format=movielens", "dataset.path=" + t.path.string()}));
  CHECK(d.n_users() == 2);
  CHECK(d.n_items() == 2);  // item 30 has no ratings
  CHECK(d.items.integer_ids());
  CHECK(d.rating == std::vector<float>{5, 3, 4});
  CHECK(d.timestamp[2] == 881250951);
  const int64_t i10 = d.items.find("10");
  CHECK(d.item_info.title[static_cast<size_t>(i10)] == "Caf\xC3\xA9 Society (1995)");
  CHECK(tokens_of(*d.item_info.find("genres"), i10) == std::vector<std::string>{"Animation", "Children's", "Comedy"});
  CHECK(tokens_of(*d.item_info.find("title"), i10) == std::vector<std::string>{"caf\xC3\xA9", "society", "1995"});
  const Feature* age = d.user_info.find("age");
  REQUIRE(age != nullptr);
  CHECK(age->kind == Feature::Kind::Float);
  CHECK(age->values[static_cast<size_t>(d.users.find("2"))] == 53.0f);
  CHECK(tokens_of(*d.user_info.find("occupation"), d.users.find("1")) == std::vector<std::string>{"technician"});
  // keep_unseen keeps item 30 from the metadata.
  const Dataset all = load_dataset(cfg_with({"dataset.format=movielens", "dataset.path=" + t.path.string(), "dataset.items.keep_unseen=true"}));
  CHECK(all.n_items() == 3);
  CHECK(all.item_info.title[static_cast<size_t>(all.items.find("30"))] == "Unrated (1990)");
}

TEST_CASE("movielens 1M folder: '::' files, Latin-1 titles detected, users.dat", "[data][readers]") {
  TempDir t;
  t.write("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
  t.write("movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Mis\xE9rables (1995)::Animation|Musical\n");
  t.write("users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n");
  const Dataset d = load_dataset(cfg_with({"dataset.format=movielens", "dataset.path=" + t.path.string()}));
  CHECK(d.n_interactions() == 3);
  CHECK(d.item_info.title[static_cast<size_t>(d.items.find("661"))] == "Mis\xC3\xA9rables (1995)");
  CHECK(tokens_of(*d.item_info.find("genres"), d.items.find("661")) == std::vector<std::string>{"Animation", "Musical"});
  CHECK(tokens_of(*d.user_info.find("gender"), d.users.find("2")) == std::vector<std::string>{"M"});
  CHECK_THROWS_WITH(load_dataset(cfg_with({"dataset.format=movielens", "dataset.path=" + t.file("ratings.dat")})),
                    Contains("is not a folder"));
  TempDir empty;
  CHECK_THROWS_WITH(load_dataset(cfg_with({"dataset.format=movielens", "dataset.path=" + empty.path.string()})),
                    Contains("no MovieLens ratings file"));
}

TEST_CASE("generic csv: string ids, integer ids, user features", "[data][readers]") {
  TempDir t;
  t.write("r.tsv", "11\t007\n12\t7\n11\tx9\n");
  const std::vector<std::string> base = {"dataset.format=csv", "dataset.path=" + t.file("r.tsv"), "dataset.sep=tab",
                                         "dataset.header=false", "dataset.columns={user: '0', item: '1'}"};
  const Dataset s = load_dataset(cfg_with(base));
  CHECK(s.n_items() == 3);  // "007", "7", "x9" are three text ids
  CHECK_FALSE(s.has_ratings());
  auto with_int = base;
  with_int.push_back("dataset.id_type=int");
  CHECK_THROWS_WITH(load_dataset(cfg_with(with_int)), Contains("r.tsv:3:4: item id 'x9' is not an integer"));
  t.write("r2.tsv", "11\t007\n12\t7\n");
  with_int[1] = "dataset.path=" + t.file("r2.tsv");
  const Dataset n = load_dataset(cfg_with(with_int));
  CHECK(n.n_items() == 1);  // 007 and 7 are one integer id
  CHECK(n.items.raw(0) == "7");
  t.write("users.csv", "name,country,age\n11,fr,30\n12,de,40\n13,uk,50\n");
  auto with_users = base;
  with_users.insert(with_users.end(), {"dataset.users.path=" + t.file("users.csv"), "dataset.users.columns={id: name, features: [country]}"});
  const Dataset u = load_dataset(cfg_with(with_users));
  CHECK(tokens_of(*u.user_info.find("country"), u.users.find("12")) == std::vector<std::string>{"de"});
}

TEST_CASE("recbole atomic files: .inter, .item features by type, .user", "[data][readers]") {
  TempDir t;
  const auto dir = t.path / "mini";
  fs::create_directories(dir);
  t.write("mini/mini.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t100\nu1\ti2\t2\t200\nu2\ti1\t5\t150\n");
  t.write("mini/mini.item", "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tyear:float\tvec:float_seq\n"
                            "i1\tThe Heat\tAction Crime\t1995\t1 2\ni2\tPlain\tDrama\t2001\t3 4\n");
  t.write("mini/mini.user", "user_id:token\tgender:token\nu1\tF\nu2\tM\n");
  const Dataset d = load_dataset(cfg_with({"dataset.format=recbole", "dataset.path=" + dir.string()}));
  CHECK(d.n_interactions() == 3);
  CHECK(d.timestamp == std::vector<int64_t>{100, 200, 150});
  CHECK(d.item_info.title[static_cast<size_t>(d.items.find("i1"))] == "The Heat");
  CHECK(tokens_of(*d.item_info.find("genre"), d.items.find("i1")) == std::vector<std::string>{"Action", "Crime"});
  CHECK(d.item_info.find("year")->values[static_cast<size_t>(d.items.find("i2"))] == 2001.0f);
  CHECK(d.item_info.find("vec") == nullptr);  // float_seq is not loaded
  CHECK(tokens_of(*d.user_info.find("gender"), d.users.find("u2")) == std::vector<std::string>{"M"});
  // The .inter file itself as the path.
  CHECK(load_dataset(cfg_with({"dataset.format=recbole", "dataset.path=" + t.file("mini/mini.inter")})).n_interactions() == 3);
  t.write("mini/mini.item", "item_id\ttitle\ni1\tx\n");
  CHECK_THROWS_WITH(load_dataset(cfg_with({"dataset.format=recbole", "dataset.path=" + dir.string()})),
                    Contains("mini.item:1:1: header field 'item_id' has no type"));
}

TEST_CASE("ncf files: the given split with its negatives, validation carved from train", "[data][readers][split]") {
  TempDir t;
  t.write("x.train.rating", "0\t1\t5\t10\n0\t2\t4\t11\n0\t3\t4\t12\n1\t1\t3\t10\n1\t4\t5\t13\n");
  t.write("x.test.rating", "0\t4\t5\t20\n1\t2\t4\t21\n");
  t.write("x.test.negative", "(0,4)\t5\t6\n(1,2)\t3\t5\n");
  const Config c = cfg_with({"dataset.format=ncf", "dataset.path=" + t.file("x"), "dataset.split.method=given",
                             "dataset.split.valid=last", "dataset.split.valid_k=1"});
  const Dataset d = load_dataset(c);
  CHECK(d.n_users() == 2);
  CHECK(d.n_items() == 6);  // items 5 and 6 appear only as negatives: still candidates
  CHECK(d.part == std::vector<int8_t>{0, 0, 0, 0, 0, 2, 2});
  const Split s = split_dataset(d, c);
  CHECK(pairs_of(d, s.test_rows) == std::set<std::pair<std::string, std::string>>{{"0", "4"}, {"1", "2"}});
  CHECK(pairs_of(d, s.valid_rows) == std::set<std::pair<std::string, std::string>>{{"0", "3"}, {"1", "4"}});  // latest
  CHECK(s.train.nnz() == 3);
  CHECK(s.test_negatives.nnz() == 4);
  CHECK(s.test_negatives.contains(d.users.find("0"), d.items.find("6")));
  // Two-column training pairs (NCF's rebuilt ML-1M) are read when train.rating is absent.
  fs::rename(t.file("x.train.rating"), t.file("x.train.pairs"));
  t.write("x.train.pairs", "0\t1\n0\t2\n1\t1\n");
  t.write("x.test.rating", "0\t4\n1\t2\n");
  const Dataset p = load_dataset(c);
  CHECK(p.n_interactions() == 5);
  CHECK_FALSE(p.has_timestamps());
}

TEST_CASE("sequence files with an attribute map and given negatives", "[data][readers]") {
  TempDir t;
  t.write("s.txt", "1 10 11 12 10\n2 11 13\n");
  t.write("attrs.json", "{\"10\": [1, 2], \"11\": [2], \"13\": [], \"99\": [5]}");
  t.write("neg.txt", "1 13 14\n2 10 12\n");
  const Config c = cfg_with({"dataset.format=sequence", "dataset.path=" + t.file("s.txt"), "dataset.sep=space", "dataset.id_type=int",
                             "dataset.items.attributes_path=" + t.file("attrs.json"), "dataset.negatives_path=" + t.file("neg.txt"),
                             "dataset.split.method=leave_last", "dataset.split.test_k=1", "dataset.split.valid_k=1"});
  const Dataset d = load_dataset(c);
  CHECK(d.n_interactions() == 6);  // repeats are the data (dedup auto = none for sequences)
  CHECK(d.n_items() == 5);         // 10 11 12 13 and the negative 14
  CHECK(tokens_of(*d.item_info.find("attributes"), d.items.find("10")) == std::vector<std::string>{"1", "2"});
  const Split s = split_dataset(d, c);
  CHECK(pairs_of(d, s.test_rows) == std::set<std::pair<std::string, std::string>>{{"1", "10"}, {"2", "13"}});
  CHECK(pairs_of(d, s.valid_rows) == std::set<std::pair<std::string, std::string>>{{"1", "12"}});  // user 2 keeps 1 train item
  const int64_t u1 = d.users.find("1");
  CHECK(std::vector<int64_t>(s.train_seq.begin(u1), s.train_seq.begin(u1) + s.train_seq.size(u1)) ==
        std::vector<int64_t>{d.items.find("10"), d.items.find("11")});
  CHECK(s.test_negatives.row_size(u1) == 2);
}

TEST_CASE("cleaning: range filter, dedup policies, threshold, k-core to a fixed point", "[data][clean]") {
  TempDir t;
  t.write("r.csv", "user,item,rating,time\na,x,4,3\na,x,2,1\na,y,5,2\nb,x,1,1\nb,y,3,\nb,z,9,5\nc,z,4,1\n");
  auto c = [&](std::vector<std::string> extra) {
    std::vector<std::string> s = {"dataset.format=csv", "dataset.path=" + t.file("r.csv"),
                                  "dataset.columns={user: user, item: item, rating: rating, timestamp: time}"};
    s.insert(s.end(), extra.begin(), extra.end());
    return cfg_with(s);
  };
  auto rating_of = [](const Dataset& d, const std::string& u, const std::string& i) {
    for (size_t k = 0; k < d.user.size(); ++k)
      if (d.users.raw(d.user[k]) == u && d.items.raw(d.item[k]) == i) return d.rating[k];
    return -1.0f;
  };
  const Dataset first = load_dataset(c({"dataset.dedup=first"}));
  CHECK(first.n_interactions() == 6);
  CHECK(rating_of(first, "a", "x") == 2.0f);  // earliest by time, not by file order
  CHECK(std::count(first.timestamp.begin(), first.timestamp.end(), kNoTime) == 1);  // b,y has none: allowed
  CHECK(rating_of(load_dataset(c({"dataset.dedup=last"})), "a", "x") == 4.0f);
  CHECK(rating_of(load_dataset(c({"dataset.dedup=mean"})), "a", "x") == 3.0f);
  CHECK(load_dataset(c({"dataset.dedup=none"})).n_interactions() == 7);
  const Dataset ranged = load_dataset(c({"dataset.filter.rating_max=5"}));
  CHECK(rating_of(ranged, "b", "z") == -1.0f);
  CHECK(ranged.report.dropped[0].second == 1);
  // Threshold 3 leaves a:{x(2 by first)... } -> rows a-y(5), b-y(3), c-z(4) and a-x dropped (2).
  const Dataset th = load_dataset(c({"dataset.threshold=3"}));
  CHECK(th.n_interactions() == 4);  // a-y, b-y, b-z(9), c-z
  // 2-core on users and items: c has one row -> goes; then z has one row (b) -> goes; then b
  // has one row (y) -> goes; then y has one (a) -> goes; a has x only -> goes: nothing left.
  CHECK_THROWS_WITH(load_dataset(c({"dataset.threshold=3", "dataset.filter.user_min=2", "dataset.filter.item_min=2"})),
                    Contains("no interactions left after cleaning"));
  const Dataset core = load_dataset(c({"dataset.filter.user_min=2", "dataset.filter.item_min=2"}));
  // a: x, y; b: x, y, z; c: z -> c dropped, then z has b only -> dropped; a,b keep x,y.
  CHECK(core.n_users() == 2);
  CHECK(core.n_items() == 2);
  CHECK(core.n_interactions() == 4);
  CHECK_THAT(core.report.summary(), Contains("k-core (users >= 2, items >= 2; 3 rounds)"));
}

TEST_CASE("splits: leave-last by time, temporal, kfold, global random", "[data][split]") {
  SyntheticOptions o;
  o.n_users = 40;
  o.n_items = 60;
  o.per_user = 10;
  const Dataset d = make_synthetic(o);  // timestamps 0..9 per user
  auto cfg = [](std::vector<std::string> s) {
    s.push_back("dataset=synthetic");
    return cfg_with(s);
  };
  const Split loo = split_dataset(d, cfg({"dataset.split.method=leave_last", "dataset.split.test_k=2", "dataset.split.valid_k=1"}));
  CHECK(loo.test_rows.size() == 80);
  CHECK(loo.valid_rows.size() == 40);
  for (int64_t k : loo.test_rows) CHECK(d.timestamp[static_cast<size_t>(k)] >= 8);
  for (int64_t k : loo.valid_rows) CHECK(d.timestamp[static_cast<size_t>(k)] == 7);
  const Split tcut = split_dataset(d, cfg({"dataset.split.method=temporal", "dataset.split.cut=[5, 8]"}));
  for (int64_t k : tcut.train_rows) CHECK(d.timestamp[static_cast<size_t>(k)] < 5);
  for (int64_t k : tcut.test_rows) CHECK(d.timestamp[static_cast<size_t>(k)] >= 8);
  const Split tratio = split_dataset(d, cfg({"dataset.split.method=temporal", "dataset.split.ratios=[0.5, 0.2, 0.3]"}));
  CHECK(tratio.train_rows.size() == 200);
  CHECK(tratio.test_rows.size() == 120);
  // kfold: the test folds partition all pairs.
  std::multiset<std::pair<int64_t, int64_t>> seen;
  for (int f = 0; f < 4; ++f) {
    const Split s = split_dataset(d, cfg({"dataset.split.method=kfold", "dataset.split.folds=4", "dataset.split.fold=" + std::to_string(f),
                                          "dataset.split.valid=none"}));
    CHECK(s.test_rows.size() == 100);
    CHECK(s.train_rows.size() == 300);
    for (int64_t k : s.test_rows) seen.emplace(d.user[static_cast<size_t>(k)], d.item[static_cast<size_t>(k)]);
  }
  CHECK(seen.size() == 400);
  CHECK(std::set<std::pair<int64_t, int64_t>>(seen.begin(), seen.end()).size() == 400);
  const Split g1 = split_dataset(d, cfg({"dataset.split.scope=global"}));
  const Split g2 = split_dataset(d, cfg({"dataset.split.scope=global"}));
  CHECK(g1.test_rows == g2.test_rows);
  CHECK(g1.train_rows.size() + g1.valid_rows.size() + g1.test_rows.size() == 400);
  CHECK_THROWS_WITH(split_dataset(d, cfg({"dataset.split.method=given"})), Contains("'given' needs a split"));
}

TEST_CASE("given split from csv files, a repeated pair never straddles a random split", "[data][split]") {
  TempDir t;
  t.write("tr.csv", "user,item\na,x\na,y\nb,x\nb,y\nb,z\n");
  t.write("te.csv", "user,item\na,z\nb,w\n");
  const Config c = cfg_with({"dataset.format=csv", "dataset.path=" + t.file("tr.csv"), "dataset.split.method=given",
                             "dataset.split.train_path=" + t.file("tr.csv"), "dataset.split.test_path=" + t.file("te.csv"),
                             "dataset.split.valid=none"});
  const Dataset d = load_dataset(c);
  const Split s = split_dataset(d, c);
  CHECK(pairs_of(d, s.test_rows) == std::set<std::pair<std::string, std::string>>{{"a", "z"}, {"b", "w"}});
  CHECK(s.train_rows.size() == 5);
  // dedup none + random split: both rows of (u, i) land in the same part.
  std::string rows = "user,item\n";
  for (int u = 0; u < 30; ++u)
    for (int i = 0; i < 8; ++i) rows += fmt::format("u{0},i{1}\nu{0},i{1}\n", u, i);
  t.write("dup.csv", rows);
  const Config r = cfg_with({"dataset.format=csv", "dataset.path=" + t.file("dup.csv"), "dataset.dedup=none"});
  const Dataset dd = load_dataset(r);
  const Split rs = split_dataset(dd, r);
  const auto tr = pairs_of(dd, rs.train_rows);
  for (const auto& p : pairs_of(dd, rs.test_rows)) CHECK(tr.count(p) == 0);
}

TEST_CASE("popularity sampler: proportional to popularity, never a positive", "[data][sampler]") {
  // Items 0..4 with training counts 1, 1, 2, 4, 8 over users 1..8; user 0 owns item 4.
  std::vector<int64_t> rows, cols;
  const int counts[5] = {1, 1, 2, 4, 8};
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < counts[i]; ++k) rows.push_back(1 + k), cols.push_back(i);
  rows.push_back(0), cols.push_back(0);
  const Csr pos = Csr::from_pairs(9, 6, rows, cols);  // item 5 has no interactions
  PopularitySampler s(pos, 1.0);
  CHECK(s.probability(5) == 0.0);
  CHECK(s.probability(4) == Approx(8.0 / 17.0));
  Rng rng(3);
  std::vector<int64_t> users(100000, 0), out(100000);
  s.sample(users.data(), 100000, out.data(), rng);
  std::map<int64_t, int> hist;
  for (int64_t i : out) ++hist[i];
  CHECK(hist.count(0) == 0);  // user 0's positive
  CHECK(hist.count(5) == 0);  // never seen in training
  // Item 0 has count 2 (users 0 and 1); conditioned on not item 0: P(i) = c_i / 15.
  CHECK(hist[4] / 100000.0 == Approx(8.0 / 15.0).margin(0.01));
  CHECK(hist[2] / 100000.0 == Approx(2.0 / 15.0).margin(0.01));
  PopularitySampler flat(pos, 0.0);  // alpha 0: uniform over all items
  CHECK(flat.probability(5) == Approx(1.0 / 6.0));
}

TEST_CASE("sequence batcher: prefixes, left truncation and padding, per-position targets", "[data][sampler]") {
  Sequences seq;
  seq.n_rows = 2;
  seq.n_cols = 10;
  seq.indptr = {0, 5, 7};
  seq.items = {1, 2, 3, 4, 5, 7, 8};
  const Csr pos = Csr::from_pairs(2, 10, {0, 0, 0, 0, 0, 1, 1}, {1, 2, 3, 4, 5, 7, 8});
  UniformSampler s(pos);
  SequenceBatcher prefix(seq, s, SequenceOptions{3, true}, 100, 1);
  CHECK(prefix.rows_per_epoch() == 5);  // 4 prefixes of user 0, 1 of user 1
  prefix.start_epoch(1, 0);
  Batch b;
  REQUIRE(prefix.next(b));
  std::map<int64_t, std::vector<int64_t>> by_target;
  for (int64_t r = 0; r < b.size(); ++r) {
    const auto row = b.seq[r];
    by_target[b.items[r].item<int64_t>()] = std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 3);
    CHECK_FALSE(pos.contains(b.users[r].item<int64_t>(), b.neg_items[r].item<int64_t>()));
  }
  CHECK(by_target[2] == std::vector<int64_t>{10, 10, 1});  // left-padded with n_items
  CHECK(by_target[5] == std::vector<int64_t>{2, 3, 4});    // left-truncated to the last 3
  CHECK(by_target[8] == std::vector<int64_t>{10, 10, 7});
  SequenceBatcher whole(seq, s, SequenceOptions{3, false}, 100, 1);
  whole.start_epoch(1, 0);
  REQUIRE(whole.next(b));
  REQUIRE(b.items.sizes() == torch::IntArrayRef({2, 3}));
  for (int64_t r = 0; r < 2; ++r) {
    std::vector<int64_t> in(b.seq[r].data_ptr<int64_t>(), b.seq[r].data_ptr<int64_t>() + 3);
    std::vector<int64_t> tg(b.items[r].data_ptr<int64_t>(), b.items[r].data_ptr<int64_t>() + 3);
    std::vector<int64_t> ng(b.neg_items[r].data_ptr<int64_t>(), b.neg_items[r].data_ptr<int64_t>() + 3);
    if (b.users[r].item<int64_t>() == 0) {
      CHECK(in == std::vector<int64_t>{2, 3, 4});
      CHECK(tg == std::vector<int64_t>{3, 4, 5});
    } else {
      CHECK(in == std::vector<int64_t>{10, 10, 7});
      CHECK(tg == std::vector<int64_t>{10, 10, 8});
      CHECK(ng[0] == 10);  // no negative where there is no target
      CHECK(ng[2] != 10);
    }
  }
  CHECK_THROWS_WITH(SequenceBatcher(seq, s, SequenceOptions{3, false}, 10, 2), Contains("neg_per_pos must be 1"));
}

TEST_CASE("cache: a second load skips parsing, a changed or damaged cache is never used", "[data][cache]") {
  TempDir t;
  t.write("r.csv", "user,item,rating\na,x,4\nb,y,3\nb,x,5\n");
  t.write("items.csv", "item,title,genres\nx,X One,A|B\ny,Y Two,B\n");
  const std::vector<std::string> sets = {"dataset.format=csv", "dataset.path=" + t.file("r.csv"),
                                         "dataset.columns.rating=rating", "dataset.items.path=" + t.file("items.csv"),
                                         "dataset.cache.dir=" + t.file("cache"), "dataset.cache.min_mb=0"};
  const Dataset a = load_dataset(cfg_with(sets));
  CHECK_FALSE(a.report.from_cache);
  const Dataset b = load_dataset(cfg_with(sets));
  REQUIRE(b.report.from_cache);
  CHECK(b.users.raws() == a.users.raws());
  CHECK(b.items.raws() == a.items.raws());
  CHECK(b.user == a.user);
  CHECK(b.item == a.item);
  CHECK(b.rating == a.rating);
  CHECK(b.item_info.title == a.item_info.title);
  CHECK(b.item_info.find("genres")->tokens == a.item_info.find("genres")->tokens);
  CHECK(b.items.find("y") == a.items.find("y"));
  // Other reader options: another cache entry.
  auto other = sets;
  other.push_back("dataset.threshold=4");
  CHECK_FALSE(load_dataset(cfg_with(other)).report.from_cache);
  // Same size, new content (and a new mtime): stale.
  t.write("r.csv", "user,item,rating\na,x,4\nb,y,3\nb,z,5\n");
  const Dataset c = load_dataset(cfg_with(sets));
  CHECK_FALSE(c.report.from_cache);
  CHECK(c.items.find("z") >= 0);
  CHECK(load_dataset(cfg_with(sets)).report.from_cache);
  // A side file changing also invalidates.
  t.write("items.csv", "item,title,genres\nx,X One,A\ny,Y Two,B\n");
  CHECK_FALSE(load_dataset(cfg_with(sets)).report.from_cache);
  // A damaged cache file is ignored (and rewritten).
  for (const auto& e : fs::directory_iterator(t.file("cache"))) {
    const auto size = fs::file_size(e.path());
    fs::resize_file(e.path(), size / 2);
  }
  const Dataset d = load_dataset(cfg_with(sets));
  CHECK_FALSE(d.report.from_cache);
  CHECK(d.n_interactions() == 3);
  CHECK(load_dataset(cfg_with(sets)).report.from_cache);
  // checksum verification mode agrees.
  auto verify = sets;
  verify.push_back("dataset.cache.verify=checksum");
  CHECK(load_dataset(cfg_with(verify)).report.from_cache);
}

TEST_CASE("column: a view is read in place and copied on first mutable access", "[data][cache]") {
  auto store = std::make_shared<std::vector<int32_t>>(std::vector<int32_t>{5, 6, 7});
  const Column<int32_t> v = Column<int32_t>::view(store, store->data(), 3);
  CHECK(v.is_view());
  CHECK(v.size() == 3);
  CHECK(v[2] == 7);
  CHECK(v.data() == store->data());  // no copy for reading
  Column<int32_t> w = v;             // copies of a view share it
  CHECK(w.is_view());
  CHECK(std::as_const(w).data() == store->data());
  w[0] = 9;                          // mutable access: w gets its own storage first
  CHECK_FALSE(w.is_view());
  CHECK(w == std::vector<int32_t>{9, 6, 7});
  CHECK((*store)[0] == 5);
  CHECK(v == std::vector<int32_t>{5, 6, 7});
  Column<int32_t> x = v;
  x.push_back(8);
  CHECK(x == std::vector<int32_t>{5, 6, 7, 8});
  Column<int32_t> y = v;
  y.assign(y.cbegin() + 1, y.cend());  // from its own view
  CHECK(y == std::vector<int32_t>{6, 7});
  Column<int32_t> z = v;
  z.resize(1);
  CHECK(z == std::vector<int32_t>{5});
  z = std::move(x);
  CHECK(z.size() == 4);
  CHECK(x.empty());
  CHECK(v.to_vector() == std::vector<int32_t>{5, 6, 7});
}

TEST_CASE("cache: arrays are views of the mapped cache file, never written through", "[data][cache]") {
  TempDir t;
  t.write("r.csv", "user,item,rating,ts\na,x,4,10\nb,y,3,20\nb,x,5,30\nc,y,1,40\nc,x,2,50\n");
  const std::vector<std::string> sets = {"dataset.format=csv", "dataset.path=" + t.file("r.csv"), "dataset.columns.rating=rating",
                                         "dataset.columns.timestamp=ts", "dataset.cache.dir=" + t.file("cache"),
                                         "dataset.cache.min_mb=0", "dataset.split.method=random", "dataset.split.ratios=[0.6,0.2,0.2]"};
  const Config cfg = cfg_with(sets);
  const Dataset a = load_dataset(cfg);
  REQUIRE_FALSE(a.report.from_cache);
  CHECK_FALSE(a.user.is_view());
  const Dataset b = load_dataset(cfg);
  REQUIRE(b.report.from_cache);
  for (bool view : {b.user.is_view(), b.item.is_view(), b.rating.is_view(), b.timestamp.is_view()}) CHECK(view);
  // Splitting and statistics only read: the views stay views, and give what parsing gave.
  const Split sa = split_dataset(a, cfg), sb = split_dataset(b, cfg);
  CHECK(b.user.is_view());
  CHECK(sb.train.indices == sa.train.indices);
  CHECK(sb.test.indices == sa.test.indices);
  std::string jb = stats_json(b, compute_stats(b, &sb), &sb);
  const auto at = jb.find("\"from_cache\": true");
  REQUIRE(at != std::string::npos);
  jb.replace(at, 18, "\"from_cache\": false");
  CHECK(jb == stats_json(a, compute_stats(a, &sa), &sa));
  CHECK(b.timestamp.is_view());
  // A copy changed in place does not change the original, nor the cache.
  Dataset c = b;
  c.user[0] = c.user[1];
  c.rating.vec().back() = 0.5f;
  CHECK(b.user == a.user);
  CHECK(b.rating == a.rating);
  const Dataset d = load_dataset(cfg);
  REQUIRE(d.report.from_cache);
  CHECK(d.user == a.user);
  CHECK(d.rating == a.rating);
  // The cache replaced (data changed) while a loaded dataset still uses the old one.
  t.write("r.csv", "user,item,rating,ts\nq,z,1,1\n");
  const Dataset e = load_dataset(cfg);
  CHECK_FALSE(e.report.from_cache);
  CHECK(e.n_interactions() == 1);
  CHECK(load_dataset(cfg).report.from_cache);
  CHECK(b.user == a.user);
  CHECK(b.timestamp == a.timestamp);
}

namespace {
// Resident kB of the mapping of this process that contains `p` (/proc/self/smaps), -1 if none.
long resident_kb_of_mapping(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < line.find(' ')) {
      inside = at >= lo && at < hi;
      continue;
    }
    long kb = 0;
    if (inside && std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}
}  // namespace

TEST_CASE("cache: given negatives are mapped columns, the split's pages can be given back", "[data][cache]") {
  // (Comparisons of whole arrays in double parentheses: Catch2 would print 0.3 M values each.)
  TempDir t;
  // Large enough for the mapping to span many pages: 3,000 users x 40 training items, 99
  // negatives each (about 1.7 MB of cache).
  std::string train, test, neg;
  for (int u = 0; u < 3000; ++u) {
    for (int k = 0; k < 40; ++k) train += fmt::format("{}\t{}\t4\t{}\n", u, (u * 7 + k * 13) % 2000, 100 + k);
    test += fmt::format("{}\t{}\t5\t999\n", u, (u * 7 + 40 * 13) % 2000);
    neg += fmt::format("({},{})", u, (u * 7 + 40 * 13) % 2000);
    for (int k = 0; k < 99; ++k) neg += fmt::format("\t{}", (u * 11 + k * 17 + 1) % 2000);
    neg += "\n";
  }
  t.write("x.train.rating", train);
  t.write("x.test.rating", test);
  t.write("x.test.negative", neg);
  const Config c = cfg_with({"dataset.format=ncf", "dataset.path=" + t.file("x"), "dataset.split.method=given",
                             "dataset.split.valid=none", "dataset.cache.dir=" + t.file("cache"), "dataset.cache.min_mb=0"});
  const Dataset parsed = load_dataset(c);
  REQUIRE_FALSE(parsed.report.from_cache);
  const Dataset d = load_dataset(c);
  REQUIRE(d.report.from_cache);
  CHECK(d.neg_user.is_view());
  CHECK(d.neg_item.is_view());
  CHECK((d.neg_user == parsed.neg_user));
  CHECK((d.neg_item == parsed.neg_item));
  const Split sp = split_dataset(parsed, c), sd = split_dataset(d, c);
  CHECK((sd.test_negatives.indices == sp.test_negatives.indices));
  CHECK((sd.test_negatives.indptr == sp.test_negatives.indptr));
  CHECK((sd.train.indices == sp.train.indices));
  CHECK(d.neg_user.is_view());  // the split only read them
  // The split read every column: their pages are resident. Given back, they are not, and
  // reading them again gives the same values.
  const long before = resident_kb_of_mapping(d.user.data());
  REQUIRE(before > 0);
  CHECK(resident_kb_of_mapping(d.neg_item.data()) > 0);
  d.release_mapped_pages();
  const long after = resident_kb_of_mapping(d.user.data());
  INFO("resident kB of the cache mapping: " << before << " before, " << after << " after");
  CHECK(after * 4 < before);
  // What stays: pages outside the columns that the kernel mapped along with a column's page
  // (fault-around maps up to 64 kB of neighbouring pages already in the page cache).
  CHECK(after <= 64);
  CHECK((d.user == parsed.user));
  CHECK((d.neg_item == parsed.neg_item));
  CHECK((split_dataset(d, c).test_negatives.indices == sp.test_negatives.indices));
  // Owned columns: nothing to give back, nothing changes.
  parsed.release_mapped_pages();
  CHECK((parsed.user == d.user));
}

TEST_CASE("rzoo data stats prints counts, distributions and the split", "[data][cli]") {
  TempDir t;
  t.write("r.csv", "user,item,rating,ts\na,x,4,0\na,y,3,86400\nb,x,5,172800\nb,z,1,259200\nc,x,2,345600\n");
  const std::string exp = t.write("e.yaml", "dataset: {name: mini, format: csv, path: " + t.file("r.csv") +
                                                ", columns: {rating: rating, timestamp: ts}, cache: {enabled: false}}\n");
  const CliResult r = run_cli("data stats '" + exp + "'");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK_THAT(r.output, Contains("users          3") && Contains("items          3") && Contains("interactions   5"));
  CHECK_THAT(r.output, Contains("per item       min 1, median 1, p90 3, max 3"));
  CHECK_THAT(r.output, Contains("time span      1970-01-01 to 1970-01-05 (4.0 days)"));
  const CliResult j = run_cli("data stats '" + exp + "' --json --no-split");
  CHECK(j.code == 0);
  CHECK_THAT(j.output, Contains("\"users\": 3,") && Contains("\"popularity_gini\": 0.266667"));
  CHECK(run_cli("data nosuch '" + exp + "'").code == 2);
}

TEST_CASE("text reader: edge cases from review", "[data][text]") {
  TempDir t;
  // A file whose size is a multiple of the block size and whose last line has no newline.
  std::string text;
  while (text.size() < 4096 - 8) text += "a,b,c\n";
  text += std::string(4096 - text.size() - 1, 'z') + "y";
  text.resize(4096);
  t.write("exact.csv", text);
  TextOptions o;
  o.block = 4096;
  TextReader r(t.file("exact.csv"), o);
  std::vector<std::string_view> f;
  int64_t n = 0;
  std::string_view last;
  while (r.next(f)) {
    ++n;
    last = f.back();
  }
  CHECK(n > 600);
  CHECK(r.last_unterminated());
  // A line of spaces is blank when spaces separate fields.
  t.write("s.txt", "1 10 5\n   \n  2 20 4\n");
  TextOptions sp;
  sp.sep = " ";
  sp.collapse = true;
  TextReader rs(t.file("s.txt"), sp);
  REQUIRE(rs.next(f));
  REQUIRE(rs.next(f));
  CHECK(f == std::vector<std::string_view>{"2", "20", "4"});
  CHECK(rs.line() == 3);
  CHECK_FALSE(rs.next(f));
  // The character after a closing quote is reported where it is.
  t.write("q.csv", "1,\"a\nb\"x,3\n");
  TextReader rq(t.file("q.csv"), TextOptions{});
  CHECK_THROWS_WITH(rq.next(f), Contains("q.csv:2:3: unexpected character after a closing quote"));
}

TEST_CASE("dedup keeps a pair that is both in a given train file and its test file", "[data][clean]") {
  TempDir t;
  t.write("tr.csv", "user,item,rating\na,x,4\na,y,3\na,y,5\n");
  t.write("te.csv", "user,item,rating\na,x,5\n");
  const Config c = cfg_with({"dataset.format=csv", "dataset.path=" + t.file("tr.csv"), "dataset.columns.rating=rating",
                             "dataset.split.method=given", "dataset.split.train_path=" + t.file("tr.csv"),
                             "dataset.split.test_path=" + t.file("te.csv"), "dataset.split.valid=none"});
  const Dataset d = load_dataset(c);
  CHECK(d.n_interactions() == 3);  // a-y deduplicated within train; a-x kept in train and test
  CHECK(split_dataset(d, c).test_rows.size() == 1);
}

TEST_CASE("sequence batcher: batches as wide as their longest row, length bucketing keeps every row once", "[data][sampler]") {
  // 300 users: user u has 2 + (u % 7 == 0 ? 40 : u % 5) items (a few long sequences, most short).
  Sequences seq;
  seq.n_rows = 300;
  seq.n_cols = 50;
  seq.indptr = {0};
  std::vector<int64_t> us, is;
  for (int64_t u = 0; u < 300; ++u) {
    const int64_t n = 2 + (u % 7 == 0 ? 40 : u % 5);
    for (int64_t k = 0; k < n; ++k) {
      seq.items.push_back((u + k) % 50);
      us.push_back(u);
      is.push_back((u + k) % 50);
    }
    seq.indptr.push_back(static_cast<int64_t>(seq.items.size()));
  }
  const Csr pos = Csr::from_pairs(300, 50, us, is);
  UniformSampler s(pos);
  for (const bool prefix : {false, true}) {
    DYNAMIC_SECTION("prefix " << prefix) {
      auto widths = [&](bool bucket, uint64_t seed, std::vector<int64_t>* users_seen) {
        SequenceBatcher sb(seq, s, SequenceOptions{30, prefix, bucket}, 32, 1);
        sb.start_epoch(seed, 0);
        Batch b;
        double total = 0;
        int64_t batches = 0, rows = 0;
        while (sb.next(b)) {
          // Trimmed: some row has a real item in the first column, none is wider than max_len.
          CHECK(b.seq.size(1) <= 30);
          CHECK((b.seq.select(1, 0) != 50).any().item<bool>());
          total += static_cast<double>(b.seq.size(1));
          ++batches;
          rows += b.size();
          if (users_seen)
            for (int64_t r = 0; r < b.size(); ++r) users_seen->push_back(b.users[r].item<int64_t>());
        }
        CHECK(rows == sb.rows_per_epoch());
        return total / static_cast<double>(batches);
      };
      std::vector<int64_t> plain_users, bucket_users, again;
      const double plain = widths(false, 1, &plain_users), bucketed = widths(true, 1, &bucket_users);
      widths(true, 1, &again);
      CHECK(again == bucket_users);  // seeded
      // The same rows, each once (as a multiset of users), in another order.
      std::sort(plain_users.begin(), plain_users.end());
      std::vector<int64_t> sorted = bucket_users;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == plain_users);
      INFO("mean width " << plain << " plain, " << bucketed << " bucketed");
      CHECK(bucketed < 0.6 * plain);
    }
  }
}
