#include "helpers.h"

#include <algorithm>
#include <limits>
#include <array>
#include <map>
#include <random>
#include <set>

#include <torch/torch.h>

#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {
// A CSV experiment over files in `t`.
Config csv_config(const TempDir& t, const std::string& file, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"dataset.format=csv", "dataset.path=" + t.file(file),
                                   "dataset.columns={user: userId, item: movieId, rating: rating, timestamp: timestamp}",
                                   "dataset.items.columns.id=movieId", "dataset.tags.columns.item=movieId"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return make_config("model: pop\n", sets);
}
}  // namespace

TEST_CASE("csv reader: header names, quoted fields, raw ids kept", "[data]") {
  TempDir t;
  t.write("r.csv", "userId,movieId,rating,timestamp\r\nu1,m1,4.0,10\r\nu1,m2,2.5,11\r\n\r\nu2,m1,5,12\r\n");
  t.write("movies.csv", "movieId,title,genres\nm1,\"Heat, the \"\"remake\"\"\",Action|Crime\nm2,Plain,(no genres listed)\nm9,Unrated,Drama\n");
  t.write("tags.csv", "userId,movieId,tag,timestamp\nu1,m2,funny,1\nu2,m9,ignored,2\n");
  const Config c = csv_config(t, "r.csv", {"dataset.items.path=" + t.file("movies.csv"), "dataset.tags.path=" + t.file("tags.csv")});
  const Dataset d = load_dataset(c);
  REQUIRE(d.n_interactions() == 3);
  CHECK(d.n_users() == 2);
  CHECK(d.n_items() == 2);  // m9 has no interactions: not part of the dataset
  CHECK(d.users.raw(d.user[2]) == "u2");
  CHECK(d.items.raw(d.item[1]) == "m2");
  CHECK(d.rating == std::vector<float>{4.0f, 2.5f, 5.0f});
  CHECK(d.timestamp == std::vector<int64_t>{10, 11, 12});
  CHECK(d.item_info.title[static_cast<size_t>(d.items.find("m1"))] == "Heat, the \"remake\"");
  const Feature* g = d.item_info.find("genres");
  REQUIRE(g != nullptr);
  CHECK(g->vocab == std::vector<std::string>{"Action", "Crime"});
  CHECK(g->offsets == std::vector<int64_t>{0, 2, 2});  // m2's "(no genres listed)" is no genre
  const Feature* tags = d.item_info.find("tags");
  REQUIRE(tags != nullptr);
  CHECK(tags->vocab == std::vector<std::string>{"funny"});
  CHECK(tags->offsets == std::vector<int64_t>{0, 0, 1});
  const Feature* words = d.item_info.find("title");
  REQUIRE(words != nullptr);
  CHECK(words->vocab == std::vector<std::string>{"heat", "the", "remake", "plain"});
}

TEST_CASE("csv reader: TSV without header, columns by position, threshold", "[data]") {
  TempDir t;
  t.write("u.data", "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n");
  const Config c = csv_config(t, "u.data", {"dataset.sep=\\t", "dataset.header=false", "dataset.columns.user=0",
                                            "dataset.columns.item=1", "dataset.columns.rating=2",
                                            "dataset.columns.timestamp=3", "dataset.threshold=4"});
  const Dataset d = load_dataset(c);
  CHECK(d.n_interactions() == 2);
  CHECK(d.report.rows_read == 3);
  REQUIRE(d.report.dropped.size() == 2);  // dedup (none found), then the threshold
  CHECK(d.report.dropped[1].second == 1);
  CHECK_THAT(d.report.dropped[1].first, Contains("threshold 4"));
  CHECK(d.n_items() == 1);
}

TEST_CASE("the bundled ml-latest-small loads with the published counts", "[data]") {
  const Dataset d = load_dataset(make_config("model: pop\n"));
  CHECK(d.n_interactions() == 100836);
  CHECK(d.n_users() == 610);
  CHECK(d.n_items() == 9724);  // of 9,742 movies, 18 have no rating
  CHECK(d.item_info.title[static_cast<size_t>(d.items.find("1"))] == "Toy Story (1995)");
  CHECK(d.item_info.find("genres")->vocab.size() == 19);
  CHECK(d.items.integer_ids());
}

TEST_CASE("data errors name the file, line and column", "[data]") {
  TempDir t;
  t.write("bad_rating.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n1,2,abc,2\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "bad_rating.csv")),
                    Contains("bad_rating.csv:3:5: rating 'abc' is not a finite number"));
  t.write("nan.csv", "userId,movieId,rating,timestamp\n1,1,nan,1\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "nan.csv")), Contains("nan.csv:2:5: rating 'nan'"));
  t.write("short.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n2;3;4;5\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "short.csv")), Contains("short.csv:3:1: column 'timestamp' is field 4") &&
                                                                   Contains("contains ';'"));
  t.write("header.csv", "user,item\n1,1\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "header.csv")), Contains("no column 'userId'") && Contains("user, item"));
  t.write("quote.csv", "userId,movieId,rating,timestamp\n1,\"1,4,1\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "quote.csv")), Contains("quote.csv:2:3: unterminated quoted field"));
  t.write("empty.csv", "");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "empty.csv")), Contains("empty file"));
  t.write("header_only.csv", "userId,movieId,rating,timestamp\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "header_only.csv")), Contains("header_only.csv: no data rows after the header line"));
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "missing.csv")), Contains("missing.csv: ratings file not found"));
  t.write("low.csv", "userId,movieId,rating,timestamp\n1,1,1,1\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "low.csv", {"dataset.threshold=4"})),
                    Contains("no interactions left after cleaning"));
}

TEST_CASE("CSR rows are sorted and unique", "[data]") {
  const Csr m = Csr::from_pairs(3, 5, {2, 0, 2, 2, 0}, {4, 1, 0, 4, 1});
  CHECK(m.indptr == std::vector<int64_t>{0, 1, 1, 3});
  CHECK(m.indices == std::vector<Csr::Index>{1, 0, 4});
  CHECK(m.contains(2, 4));
  CHECK_FALSE(m.contains(1, 4));
  // Column indices are 32-bit: a matrix with more columns is refused, naming the limit.
  CHECK(Csr::from_pairs(1, std::numeric_limits<Csr::Index>::max(), {0}, {5}).nnz() == 1);
  CHECK_THROWS_WITH(Csr::from_pairs(1, int64_t{1} << 31, {0}, {5}),
                    Contains("a matrix of 2147483648 columns") && Contains("at most 2147483647"));
}

TEST_CASE("CSR from interaction rows: each row's columns sorted and unique, as from pairs", "[data]") {
  // Repeats within a row and rows in any order: the in-place dedup moves later rows down over
  // the duplicates removed before them, which these cases cross.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int n_rows = 1 + trial % 7, n_cols = 1 + (trial * 3) % 11;
    const int n = trial * 13;
    std::vector<int32_t> ru(static_cast<size_t>(n)), ci(static_cast<size_t>(n));
    std::vector<int64_t> ru64, ci64, which;
    std::vector<std::set<int64_t>> want(static_cast<size_t>(n_rows));
    for (int k = 0; k < n; ++k) {
      ru[static_cast<size_t>(k)] = static_cast<int32_t>(rng() % static_cast<unsigned>(n_rows));
      ci[static_cast<size_t>(k)] = static_cast<int32_t>(rng() % static_cast<unsigned>(n_cols));
      if (rng() % 3 != 0) which.push_back(k);  // a subset of the rows, in order
    }
    std::shuffle(which.begin(), which.end(), rng);  // and in any order
    for (int64_t k : which) {
      ru64.push_back(ru[static_cast<size_t>(k)]);
      ci64.push_back(ci[static_cast<size_t>(k)]);
      want[static_cast<size_t>(ru[static_cast<size_t>(k)])].insert(ci[static_cast<size_t>(k)]);
    }
    const Csr a = Csr::from_rows(n_rows, n_cols, Column<int32_t>(ru), Column<int32_t>(ci), which);
    const Csr b = Csr::from_pairs(n_rows, n_cols, ru64, ci64);
    CHECK(a.indptr == b.indptr);
    CHECK(a.indices == b.indices);
    REQUIRE(a.indptr.size() == static_cast<size_t>(n_rows) + 1);
    for (int r = 0; r < n_rows; ++r)
      CHECK(std::vector<int64_t>(a.row_begin(r), a.row_end(r)) ==
            std::vector<int64_t>(want[static_cast<size_t>(r)].begin(), want[static_cast<size_t>(r)].end()));
    const Csr all = Csr::from_interactions(n_rows, n_cols, Column<int32_t>(ru), Column<int32_t>(ci));
    CHECK(all.nnz() >= a.nnz());
  }
}

TEST_CASE("random split: disjoint, complete, seeded, by ratio", "[data][split]") {
  SyntheticOptions o;
  o.n_users = 100;
  o.per_user = 30;
  const Dataset d = make_synthetic(o);
  const Split a = split_random_per_user(d, {0.8, 0.1, 0.1}, 7);
  const Split b = split_random_per_user(d, {0.8, 0.1, 0.1}, 7);
  const Split c = split_random_per_user(d, {0.8, 0.1, 0.1}, 8);
  CHECK(a.train.indices == b.train.indices);
  CHECK(a.test.indices == b.test.indices);
  CHECK(a.test.indices != c.test.indices);
  const Csr all = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  CHECK(a.train.nnz() + a.valid.nnz() + a.test.nnz() == all.nnz());
  for (int64_t u = 0; u < d.n_users(); ++u) {
    CHECK(a.train.row_size(u) == 24);
    CHECK(a.valid.row_size(u) == 3);
    CHECK(a.test.row_size(u) == 3);
    for (const Csr::Index* p = a.test.row_begin(u); p != a.test.row_end(u); ++p) {
      CHECK_FALSE(a.train.contains(u, *p));
      CHECK_FALSE(a.valid.contains(u, *p));
      CHECK(all.contains(u, *p));
    }
    for (const Csr::Index* p = a.valid.row_begin(u); p != a.valid.row_end(u); ++p) CHECK_FALSE(a.train.contains(u, *p));
  }
  CHECK_THROWS_WITH(split_random_per_user(d, {0.5, 0.1, 0.1}, 1), Contains("sum to 1"));
}

TEST_CASE("uniform sampler never returns a positive", "[data][sampler]") {
  SyntheticOptions o;
  o.n_items = 40;
  o.per_user = 35;  // most items are positives: rejection has to work hard
  const Dataset d = make_synthetic(o);
  const Csr pos = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  UniformSampler s(pos);
  Rng rng(3);
  std::vector<int64_t> users(20000), negs(users.size());
  for (auto& u : users) u = rng.uniform(d.n_users());
  s.sample(users.data(), static_cast<int64_t>(users.size()), negs.data(), rng);
  std::set<int64_t> seen;
  for (size_t k = 0; k < users.size(); ++k) {
    REQUIRE_FALSE(pos.contains(users[k], negs[k]));
    REQUIRE(negs[k] >= 0);
    REQUIRE(negs[k] < d.n_items());
    seen.insert(negs[k]);
  }
  CHECK(seen.size() > 20);
  // The bitset (the default at this size) and the binary search of the user's row reject the
  // same draws: the same negatives from the same generator state.
  UniformSampler searched(pos, /*max_bitset_bytes=*/0);
  std::vector<int64_t> again(users.size());
  Rng a(11), b(11);
  s.sample(users.data(), static_cast<int64_t>(users.size()), negs.data(), a);
  searched.sample(users.data(), static_cast<int64_t>(users.size()), again.data(), b);
  CHECK(negs == again);
  CHECK(a.next() == b.next());
  // A user who has every item cannot be sampled for.
  const Csr full = Csr::from_pairs(1, 2, {0, 0}, {0, 1});
  CHECK_THROWS_WITH(UniformSampler(full), Contains("all 2 items"));
  CHECK_THROWS_WITH(make_sampler("popular", pos), Contains("known samplers: popularity, uniform"));
}

TEST_CASE("batcher: pairwise and pointwise batches cover every positive", "[data][sampler]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Csr train = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  UniformSampler s(train);
  Batcher pair(train, InputType::Pairwise, s, 1000, 1);
  pair.start_epoch(1, 0);
  Batch b;
  int64_t rows = 0;
  std::set<std::pair<int64_t, int64_t>> seen;
  while (pair.next(b)) {
    const auto* u = b.users.data_ptr<int64_t>();
    const auto* i = b.items.data_ptr<int64_t>();
    const auto* n = b.neg_items.data_ptr<int64_t>();
    for (int64_t k = 0; k < b.size(); ++k) {
      REQUIRE(train.contains(u[k], i[k]));
      REQUIRE_FALSE(train.contains(u[k], n[k]));
      seen.insert({u[k], i[k]});
    }
    rows += b.size();
  }
  CHECK(rows == train.nnz());
  CHECK(static_cast<int64_t>(seen.size()) == train.nnz());

  Batcher point(train, InputType::Pointwise, s, 999, 3);
  point.start_epoch(1, 0);
  int64_t pos = 0, neg = 0;
  while (point.next(b)) {
    const auto* u = b.users.data_ptr<int64_t>();
    const auto* i = b.items.data_ptr<int64_t>();
    const auto* l = b.labels.data_ptr<float>();
    for (int64_t k = 0; k < b.size(); ++k) {
      REQUIRE(train.contains(u[k], i[k]) == (l[k] == 1.0f));
      (l[k] == 1.0f ? pos : neg) += 1;
    }
  }
  CHECK(pos == train.nnz());
  CHECK(neg == 3 * train.nnz());
  // The same (seed, epoch) gives the same batches; another epoch another order.
  Batcher again(train, InputType::Pairwise, s, 1000, 1);
  Batch x, y;
  pair.start_epoch(5, 2);
  again.start_epoch(5, 2);
  pair.next(x);
  again.next(y);
  CHECK(torch::equal(x.items, y.items));
  CHECK(torch::equal(x.neg_items, y.neg_items));
  again.start_epoch(5, 3);
  again.next(y);
  CHECK_FALSE(torch::equal(x.items, y.items));
}

TEST_CASE("batcher: shuffle samples spreads a positive's rows over the epoch, independent of batch size",
          "[data][sampler]") {
  const Dataset d = make_synthetic(SyntheticOptions{});
  const Csr train = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  UniformSampler s(train);
  // Every row of the epoch, in order: (user, item, label); pairwise rows have label = negative.
  const auto epoch = [&](InputType type, Batcher::Shuffle shuffle, int64_t batch) {
    Batcher bt(train, type, s, batch, 3, shuffle);
    bt.start_epoch(4, 1);
    std::vector<std::array<int64_t, 3>> rows;
    Batch b;
    while (bt.next(b)) {
      const auto* u = b.users.data_ptr<int64_t>();
      const auto* i = b.items.data_ptr<int64_t>();
      for (int64_t k = 0; k < b.size(); ++k) {
        const int64_t third = type == InputType::Pairwise ? b.neg_items.data_ptr<int64_t>()[k]
                                                          : static_cast<int64_t>(b.labels.data_ptr<float>()[k]);
        rows.push_back({u[k], i[k], third});
      }
    }
    return rows;
  };
  for (const auto type : {InputType::Pointwise, InputType::Pairwise}) {
    INFO(to_string(type));
    const auto rows = epoch(type, Batcher::Shuffle::Samples, 1000);
    const int64_t per_pos = type == InputType::Pointwise ? 4 : 3;
    REQUIRE(static_cast<int64_t>(rows.size()) == per_pos * train.nnz());
    // Every positive the right number of times; every negative a non-positive of its user.
    std::map<std::pair<int64_t, int64_t>, int64_t> count;
    int64_t same_user_next = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& [u, i, t] = rows[r];
      if (type == InputType::Pairwise) {
        REQUIRE(train.contains(u, i));
        REQUIRE_FALSE(train.contains(u, t));
        ++count[{u, i}];
      } else if (t == 1) {
        REQUIRE(train.contains(u, i));
        ++count[{u, i}];
      } else {
        REQUIRE_FALSE(train.contains(u, i));
      }
      if (r + 1 < rows.size() && rows[r + 1][0] == u) ++same_user_next;
    }
    CHECK(static_cast<int64_t>(count.size()) == train.nnz());
    for (const auto& kv : count) REQUIRE(kv.second == (type == InputType::Pairwise ? 3 : 1));
    // Kept together (positives), at least per_pos - 1 of every per_pos rows follow a row of the
    // same user; shuffled samples follow one about as often as users repeat at random (~1 / 50).
    CHECK(same_user_next < static_cast<int64_t>(rows.size()) / 10);
    const auto kept = epoch(type, Batcher::Shuffle::Positives, 1000);
    int64_t kept_next = 0;
    for (size_t r = 0; r + 1 < kept.size(); ++r) kept_next += kept[r + 1][0] == kept[r][0];
    CHECK(kept_next >= (per_pos - 1) * train.nnz());
    // The same rows (order and negatives) whatever the batch size: per-sample SGD relies on it.
    const bool same_1 = epoch(type, Batcher::Shuffle::Samples, 1) == rows;
    const bool same_77 = epoch(type, Batcher::Shuffle::Samples, 77) == rows;
    CHECK(same_1);
    CHECK(same_77);
    // Likewise with a positive's rows kept together, batches starting inside a positive's group
    // (77 is no multiple of 3 or 4).
    const bool kept_1 = epoch(type, Batcher::Shuffle::Positives, 1) == kept;
    const bool kept_77 = epoch(type, Batcher::Shuffle::Positives, 77) == kept;
    CHECK(kept_1);
    CHECK(kept_77);
  }
}
