// `rzoo train --data FILE`: the layout of a ratings file inferred from its first lines
// (datasets/sniff.h), on the bundled ratings.csv, a TSV without header, a `::` file and others.
#include "helpers.h"

#include <fmt/format.h>

#include "datasets/sniff.h"

using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {
std::string q(const std::string& s) { return "'" + s + "'"; }
}  // namespace

TEST_CASE("sniff: the bundled ratings.csv, a headerless TSV, a :: file", "[sniff]") {
  const std::string bundled = std::string(RZOO_TEST_SOURCE_DIR) + "/datasets/ml-latest-small/ratings.csv";
  auto s = rzoo::sniff_data(bundled);
  CHECK(s.format == "csv");
  CHECK(s.sep == ",");
  CHECK(s.header);
  CHECK(s.user == "0");
  CHECK(s.item == "1");
  CHECK(s.rating == "2");
  CHECK(s.timestamp == "3");
  CHECK(rzoo::describe(s) == "format csv, separator comma, a header line, columns user=0 item=1 rating=2 timestamp=3");

  TempDir t;
  // MovieLens 100K's u.data: user, item, rating, Unix time; tabs; no header.
  s = rzoo::sniff_data(t.write("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"));
  CHECK(s.sep == "\\t");
  CHECK_FALSE(s.header);
  CHECK((s.user == "0" && s.item == "1" && s.rating == "2" && s.timestamp == "3"));
  // MovieLens 1M's ratings.dat: `::`.
  s = rzoo::sniff_data(t.write("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n"));
  CHECK(s.sep == "::");
  CHECK_FALSE(s.header);
  CHECK((s.user == "0" && s.item == "1" && s.rating == "2" && s.timestamp == "3"));
  // Columns in another order, named another way, semicolons, string ids.
  s = rzoo::sniff_data(t.write("x.csv", "Timestamp;Book-Rating;ISBN;User-ID\n1500000000;4;034545104X;u1\n"
                                        "1500000100;5;0155061224;u2\n"));
  CHECK(s.sep == ";");
  CHECK(s.header);
  CHECK((s.user == "3" && s.item == "2" && s.rating == "1" && s.timestamp == "0"));
  // Two fields separated by spaces (SASRec's `user item` files): no rating, no time.
  s = rzoo::sniff_data(t.write("Video.txt", "1 1\n1 2\n2 3\n2 1\n"));
  CHECK(s.sep == "space");
  CHECK((s.user == "0" && s.item == "1" && s.rating.empty() && s.timestamp.empty()));
  // Quoted fields may hold the separator; a date column is not taken as Unix seconds.
  s = rzoo::sniff_data(t.write("q.csv", "user,item,date\n\"a, b\",i1,2020-01-02\nc,i2,2020-01-03\n"));
  CHECK(s.header);
  CHECK((s.user == "0" && s.item == "1" && s.timestamp.empty()));
  CHECK_THAT(s.notes.front(), Contains("column 'date' is not in Unix seconds"));
  // Unknown names above numbers: still a header; columns by position and content.
  s = rzoo::sniff_data(t.write("h.tsv", "a\tb\tc\n1\t2\t4.5\n3\t4\t2.0\n"));
  CHECK(s.header);
  CHECK((s.user == "0" && s.item == "1" && s.rating == "2"));
  // RecBole's .inter header: names with their type.
  s = rzoo::sniff_data(t.write("ml.inter", "item_id:token\tuser_id:token\trating:float\ttimestamp:float\n"
                                           "242\t196\t3\t881250949\n302\t186\t3\t891717742\n"));
  CHECK(s.header);
  CHECK((s.user == "1" && s.item == "0" && s.rating == "2" && s.timestamp == "3"));
  // A MovieLens folder.
  fs::create_directories(t.file("ml"));
  t.write("ml/u.data", "1\t2\t3\t881250949\n");
  CHECK(rzoo::sniff_data(t.file("ml")).format == "movielens");

  CHECK_THROWS_WITH(rzoo::sniff_data(t.write("one.txt", "abc\ndef\n")), Contains("cannot tell its separator"));
  CHECK_THROWS_WITH(rzoo::sniff_data(t.write("ragged.csv", "1,2,3\n1,2\n")), Contains("cannot tell its separator"));
  CHECK_THROWS_WITH(rzoo::sniff_data(t.write("empty.csv", "")), Contains("the file is empty"));
  CHECK_THROWS_WITH(rzoo::sniff_data(t.write("hdr.csv", "user,item\n")), Contains("only a header line"));
  CHECK_THROWS_WITH(rzoo::sniff_data(t.file("nope.csv")), Contains("no such file"));
  fs::create_directories(t.file("plain"));
  CHECK_THROWS_WITH(rzoo::sniff_data(t.file("plain")), Contains("not a MovieLens one"));
}

TEST_CASE("cli: train --data and compare --data on files without a config", "[sniff][cli]") {
  TempDir t;
  std::string tsv, colons;
  for (int u = 1; u <= 40; ++u)
    for (int i = 1; i <= 30; ++i)
      if ((u + 2 * i) % 3 != 0) {
        tsv += fmt::format("{}\t{}\t{}\t{}\n", u, i, 1 + (u * i) % 5, 900000000 + u * 50 + i);
        colons += fmt::format("{}::{}::{}::{}\n", u, i, 1 + (u * i) % 5, 900000000 + u * 50 + i);
      }
  const std::string runs = " --set threads=1 --set output_dir=" + q(t.file("runs"));
  const std::string f_tsv = t.write("plays.tsv", tsv);
  auto r = run_cli("train --data " + q(f_tsv) + " --model pop" + runs);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("separator tab, no header, columns user=0 item=1 rating=2 timestamp=3") != std::string::npos);
  CHECK(r.output.find("dataset plays: 40 users, 30 items") != std::string::npos);
  CHECK(r.output.find("test (") != std::string::npos);

  const std::string f_dat = t.write("ratings.dat", colons);
  r = run_cli("train --data " + q(f_dat) + " --model bpr --set train.epochs=2 --set dataset.threshold=3" + runs);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("separator '::'") != std::string::npos);
  CHECK(r.output.find("dataset.threshold: 3  # --set") != std::string::npos);  // --set overrides what was inferred

  const std::string bundled = std::string(RZOO_TEST_SOURCE_DIR) + "/datasets/ml-latest-small/ratings.csv";
  r = run_cli("compare --data " + q(bundled) + " --models pop,itemknn --quiet" + runs);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("comparison on ml-latest-small-data (test split, 610 users") != std::string::npos);
  CHECK(r.output.find("itemknn") != std::string::npos);

  // Usage errors: exit status 2, one line saying what is missing.
  CHECK(run_cli("train --data " + q(f_tsv) + runs).output.find("needs --model NAME") != std::string::npos);
  CHECK(run_cli("train --data " + q(f_tsv) + runs).code == 2);
  CHECK(run_cli("compare --data " + q(f_tsv) + runs).code == 2);
  CHECK(run_cli("train x.yaml --data " + q(f_tsv) + " --model pop" + runs).code == 2);
  CHECK(run_cli("train --model pop" + runs).code == 2);
  r = run_cli("train --data " + q(t.file("missing.csv")) + " --model pop" + runs);
  CHECK(r.code == 1);
  CHECK(r.output.find("missing.csv: no such file") != std::string::npos);
}
