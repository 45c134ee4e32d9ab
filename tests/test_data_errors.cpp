// Bad input data: every malformed file gives one rzoo::Error naming the file, the line and the
// 1-based character column (or the JSON position / the config key), with a hint at the cause.
#include "helpers.h"

#include "datasets/dataset.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

// A CSV experiment reading `file` in `t` (header userId,movieId,rating,timestamp by default).
Config csv_config(const TempDir& t, const std::string& file, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"dataset.format=csv", "dataset.path=" + t.file(file),
                                   "dataset.columns={user: userId, item: movieId, rating: rating, timestamp: timestamp}",
                                   "dataset.items.path=", "dataset.tags.path=", "dataset.cache.enabled=false"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return make_config("model: pop\n", sets);
}

// The same without a header: columns by 0-based position.
Config csv_config_no_header(const TempDir& t, const std::string& file, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"dataset.header=false", "dataset.columns.user=0", "dataset.columns.item=1",
                                   "dataset.columns.rating=2", "dataset.columns.timestamp=3"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return csv_config(t, file, sets);
}

// A sequence experiment (`user item item ...` per line, space separated, integer ids).
Config sequence_config(const TempDir& t, const std::string& file, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"dataset.format=sequence", "dataset.path=" + t.file(file), "dataset.sep=space",
                                   "dataset.id_type=int",     "dataset.items.path=",          "dataset.tags.path=",
                                   "dataset.cache.enabled=false"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return make_config("model: pop\n", sets);
}

// An NCF split under prefix t/ncf: two users, one held-out test item each (user 1: 12, user 2: 11).
Config ncf_config(const TempDir& t, const std::string& negatives) {
  t.write("ncf.train.rating", "1\t10\t5\t100\n1\t11\t4\t101\n2\t10\t3\t102\n2\t12\t5\t103\n");
  t.write("ncf.test.rating", "1\t12\t5\t104\n2\t11\t4\t105\n");
  t.write("ncf.test.negative", negatives);
  return make_config("model: pop\n", {"dataset.format=ncf", "dataset.path=" + t.file("ncf"), "dataset.items.path=",
                                      "dataset.tags.path=", "dataset.cache.enabled=false"});
}

const char* const kHeader = "userId,movieId,rating,timestamp\n";

}  // namespace

TEST_CASE("data errors: wrong separator names the field count and the separator seen", "[data][errors]") {
  TempDir t;
  SECTION("a TSV file read with ','") {
    t.write("tabs.tsv", "1\t10\t4.0\t100\n2\t11\t3.5\t101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config_no_header(t, "tabs.tsv")),
                      Contains("tabs.tsv:1:1: column 'timestamp' is field 4 but the line has 1 field(s) separated by ','") &&
                          Contains("the line contains '\\t': is the separator right?"));
  }
  SECTION("a pipe-separated file read with ','") {
    t.write("pipes.txt", "1|10|4.0|100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config_no_header(t, "pipes.txt")),
                      Contains("pipes.txt:1:1: column 'timestamp' is field 4") && Contains("contains '|'"));
  }
}

TEST_CASE("data errors: a configured column missing from the header names the key", "[data][errors]") {
  TempDir t;
  SECTION("header lacks the column") {
    t.write("nocol.csv", "user,movieId,rating,timestamp\n1,10,4,100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "nocol.csv")),
                      Contains("dataset.columns.user: ") &&
                          Contains("nocol.csv:1: no column 'userId' in the header (columns: user, movieId, rating, timestamp)"));
  }
  SECTION("the first line is data, not a header") {
    t.write("datafirst.csv", "1,10,4,100\n2,11,3,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "datafirst.csv")),
                      Contains("dataset.columns.user: ") && Contains("datafirst.csv:1: no column 'userId'") &&
                          Contains("the first line looks like data: set header: false"));
  }
}

TEST_CASE("data errors: a non-numeric rating", "[data][errors]") {
  TempDir t;
  t.write("words.csv", std::string(kHeader) + "1,10,4.0,100\n2,11,good,101\n");
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "words.csv")),
                    Contains("words.csv:3:6: rating 'good' is not a finite number"));
}

TEST_CASE("data errors: a NaN or infinite rating", "[data][errors]") {
  TempDir t;
  SECTION("nan") {
    t.write("nan.csv", std::string(kHeader) + "1,10,nan,100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "nan.csv")), Contains("nan.csv:2:6: rating 'nan' is not a finite number"));
  }
  SECTION("inf") {
    t.write("inf.csv", std::string(kHeader) + "1,10,4,100\n1,11,inf,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "inf.csv")), Contains("inf.csv:3:6: rating 'inf' is not a finite number"));
  }
}

TEST_CASE("data errors: negative and non-integer ids with id_type int", "[data][errors]") {
  TempDir t;
  SECTION("negative user id") {
    t.write("neguser.csv", std::string(kHeader) + "1,10,4,100\n-3,11,4,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "neguser.csv", {"dataset.id_type=int"})),
                      Contains("neguser.csv:3:1: negative user id -3"));
  }
  SECTION("negative item id") {
    t.write("negitem.csv", std::string(kHeader) + "1,-7,4,100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "negitem.csv", {"dataset.id_type=int"})),
                      Contains("negitem.csv:2:3: negative item id -7"));
  }
  SECTION("text id") {
    t.write("textid.csv", std::string(kHeader) + "1,10,4,100\nu2,11,4,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "textid.csv", {"dataset.id_type=int"})),
                      Contains("textid.csv:3:1: user id 'u2' is not an integer") &&
                          Contains("set dataset.id_type: string for text ids"));
  }
}

TEST_CASE("data errors: an empty file and a header-only file", "[data][errors]") {
  TempDir t;
  SECTION("0 bytes, header expected") {
    t.write("zero.csv", "");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "zero.csv")), Contains("zero.csv: empty file (expected a header line)"));
  }
  SECTION("0 bytes, no header") {
    t.write("zero_nh.csv", "");
    CHECK_THROWS_WITH(load_dataset(csv_config_no_header(t, "zero_nh.csv")),
                      Contains("zero_nh.csv: no data rows (empty file)"));
  }
  SECTION("only the header line") {
    t.write("onlyhead.csv", kHeader);
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "onlyhead.csv")),
                      Contains("onlyhead.csv: no data rows after the header line"));
  }
}

TEST_CASE("data errors: a truncated last line", "[data][errors]") {
  TempDir t;
  t.write("cut.csv", std::string(kHeader) + "1,10,4,100\n2,11,3,101\n3,4");  // no newline at the end
  CHECK_THROWS_WITH(load_dataset(csv_config(t, "cut.csv")),
                    Contains("cut.csv:4:3: column 'timestamp' is field 4 but the line has 2 field(s)") &&
                        Contains("the file ends here without a newline: truncated last line?"));
}

TEST_CASE("data errors: invalid UTF-8 names line and character column", "[data][errors]") {
  TempDir t;
  SECTION("bad byte inside an item id") {
    t.write("latin.csv", std::string(kHeader) + "u1,m1,4,100\nu2,m\xff" "9,3,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "latin.csv")),
                      Contains("latin.csv:3:5: invalid UTF-8 (byte 0xFF)") && Contains("latin-1"));
  }
  SECTION("columns count characters, not bytes") {
    // "é" is two bytes but one column: the bad byte is the 5th character.
    t.write("wide.csv", std::string(kHeader) + "\xc3\xa9" "1,m\xfe" "9,3,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "wide.csv")), Contains("wide.csv:2:5: invalid UTF-8 (byte 0xFE)"));
  }
}

TEST_CASE("data errors: an unexpected or repeated header row", "[data][errors]") {
  TempDir t;
  SECTION("header row read with header: false and integer ids") {
    t.write("head_int.csv", std::string(kHeader) + "1,10,4,100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config_no_header(t, "head_int.csv", {"dataset.id_type=int"})),
                      Contains("head_int.csv:1:1: user id 'userId' is not an integer") &&
                          Contains("this looks like a header row: set header: true"));
  }
  SECTION("header row read with header: false and string ids") {
    t.write("head_str.csv", std::string(kHeader) + "1,10,4,100\n");
    CHECK_THROWS_WITH(load_dataset(csv_config_no_header(t, "head_str.csv")),
                      Contains("head_str.csv:1:16: rating 'rating' is not a finite number") &&
                          Contains("this looks like a header row: set header: true"));
  }
  SECTION("the header repeated mid-file") {
    t.write("twice.csv", std::string(kHeader) + "1,10,4,100\n" + kHeader + "2,11,3,101\n");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "twice.csv")),
                      Contains("twice.csv:3:16: rating 'rating' is not a finite number; a repeated header row?"));
  }
}

TEST_CASE("data errors: unreadable ratings files", "[data][errors]") {
  TempDir t;
  SECTION("a folder") {
    fs::create_directory(t.path / "folder.csv");
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "folder.csv")),
                      Contains("folder.csv: is a folder, expected a ratings file"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(load_dataset(csv_config(t, "absent.csv")), Contains("absent.csv: ratings file not found"));
  }
  SECTION("no read permission") {
    const std::string p = t.write("locked.csv", std::string(kHeader) + "1,10,4,100\n");
    fs::permissions(p, fs::perms::none);
    if (::geteuid() != 0) {  // root reads anything
      CHECK_THROWS_WITH(load_dataset(csv_config(t, "locked.csv")),
                        Contains("locked.csv: cannot open ratings file") && Contains("Permission denied"));
    }
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  }
}

TEST_CASE("data errors: attribute JSON of the wrong shape", "[data][errors]") {
  TempDir t;
  t.write("seq.txt", "1 10 11 12\n2 11 12 13\n");
  auto with_attrs = [&](const std::string& json) {
    return sequence_config(t, "seq.txt", {"dataset.items.attributes_path=" + t.file(json)});
  };
  SECTION("a top-level list") {
    t.write("list.json", "[[\"a\", \"b\"], [\"c\"]]\n");
    CHECK_THROWS_WITH(load_dataset(with_attrs("list.json")),
                      Contains("list.json:1:1: expected a JSON object") && Contains("found a list"));
  }
  SECTION("a value that is not a list") {
    t.write("scalar.json", "{\n  \"10\": [\"a\", \"b\"],\n  \"11\": \"c\"\n}\n");
    CHECK_THROWS_WITH(load_dataset(with_attrs("scalar.json")),
                      Contains("scalar.json:3:9: key \"11\": expected a list of attributes, found a scalar"));
  }
  SECTION("a key that is not an item id") {
    t.write("keys.json", "{\"abc\": [\"a\"]}\n");
    CHECK_THROWS_WITH(load_dataset(with_attrs("keys.json")),
                      Contains("keys.json:1:") && Contains("key \"abc\" is not a non-negative integer item id"));
  }
  SECTION("invalid JSON") {
    t.write("broken.json", "{\"10\": [\"a\", \"b\"\n");
    CHECK_THROWS_WITH(load_dataset(with_attrs("broken.json")), Contains("broken.json:") && Contains("not valid JSON"));
  }
}

TEST_CASE("data errors: a negatives file naming an unknown user", "[data][errors]") {
  TempDir t;
  t.write("seq.txt", "1 10 11 12\n2 11 12 13\n");
  t.write("neg.txt", "1 50 51\n9 52 53\n");
  CHECK_THROWS_WITH(load_dataset(sequence_config(t, "seq.txt", {"dataset.negatives_path=" + t.file("neg.txt")})),
                    Contains("neg.txt:2:1: unknown user '9' (not in the interactions)"));
}

TEST_CASE("data errors: NCF negatives that do not match the split", "[data][errors]") {
  TempDir t;
  SECTION("a user missing from the data") {
    const Config c = ncf_config(t, "(1,12)\t20\t21\n(7,10)\t22\t23\n");
    CHECK_THROWS_WITH(load_dataset(c), Contains("ncf.test.negative:2:1: unknown user '7' (not in the interactions)"));
  }
  SECTION("a (user,item) head that is not the user's test item") {
    const Config c = ncf_config(t, "(1,12)\t20\t21\n(2,10)\t22\t23\n");
    CHECK_THROWS_WITH(load_dataset(c), Contains("ncf.test.negative:2:1: (2,10) is not user 2's held-out test item"));
  }
}

TEST_CASE("data errors: the CLI reports a bad data file cleanly", "[data][errors][cli]") {
  TempDir t;
  const std::string data = t.write("file.csv", std::string(kHeader) + "1,10,4,100\n2,11,abc,101\n");
  const std::string exp = t.write(
      "e.yaml", "model: pop\ndataset:\n  format: csv\n  path: '" + data +
                    "'\n  columns: {user: userId, item: movieId, rating: rating, timestamp: timestamp}\n");
  const auto r = run_cli("data stats " + q(exp) + " --config-dir " + q(config_dir()) + " --set dataset.cache.enabled=false");
  require_clean_failure(r, "file.csv:3:6: rating 'abc' is not a finite number");
}
