// The sequence reader's two layouts (dataset.sequence_layout): S3-Rec's `user i1 i2 ...` lines
// and SASRec's own `user item` pairs, told apart by `auto`.
#include "helpers.h"

#include <map>
#include <string>
#include <vector>

#include "datasets/dataset.h"

using namespace rzoo;
using namespace rzoo::test;
using Catch::Matchers::Contains;

namespace {

Config layout_config(const std::string& path, const std::string& layout, const std::string& id_type = "int",
                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"dataset.format=sequence", "dataset.path=" + path, "dataset.sep=space",
                                   "dataset.id_type=" + id_type, "dataset.sequence_layout=" + layout,
                                   "dataset.items.path=", "dataset.tags.path=", "dataset.cache.enabled=false",
                                   "dataset.split.method=leave_last", "dataset.split.test_k=1", "dataset.split.valid_k=1"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return make_config("model: pop\n", sets);
}

// Five users' sequences (raw ids), listed in the order the users first appear in the pairs file
// below; items repeat within and across users, as real sequences do.
const std::vector<std::pair<std::string, std::vector<std::string>>> kSequences = {
    {"3", {"7", "2", "7", "9"}},
    {"1", {"5", "9", "4"}},
    {"5", {"2", "11", "5", "8", "3", "2"}},
    {"2", {"6", "6", "1"}},
    {"4", {"9", "10", "12", "13", "7"}},
};

// SASRec's layout: one `user item` per line, users interleaved (round robin, each user starting a
// round later than the one before), each user's items in order.
std::string pairs_text(int64_t& lines) {
  std::string text;
  lines = 0;
  std::vector<size_t> next(kSequences.size(), 0);
  for (size_t round = 0; lines < 21; ++round)
    for (size_t u = 0; u < kSequences.size() && u <= round; ++u)
      if (next[u] < kSequences[u].second.size()) {
        text += kSequences[u].first + " " + kSequences[u].second[next[u]++] + "\n";
        ++lines;
      }
  return text;
}

// S3-Rec's layout of the same sequences: one line per user.
std::string per_user_text() {
  std::string text;
  for (const auto& [user, items] : kSequences) {
    text += user;
    for (const auto& i : items) text += " " + i;
    text += "\n";
  }
  return text;
}

// Each user's items in row order, by raw ids.
std::map<std::string, std::vector<std::string>> sequences_of(const Dataset& d) {
  std::map<std::string, std::vector<std::string>> s;
  for (size_t k = 0; k < d.user.size(); ++k) s[d.users.raw(d.user[k])].push_back(d.items.raw(d.item[k]));
  return s;
}

}  // namespace

TEST_CASE("sequence layout: SASRec's user-item pairs, read by auto and per_pair, match the per_user file", "[data][readers]") {
  TempDir t;
  int64_t lines = 0;
  const std::string pairs = t.write("pairs.txt", pairs_text(lines));
  const std::string per_user = t.write("per_user.txt", per_user_text());
  REQUIRE(lines == 21);
  // The generator interleaves users: user 3's third line comes after user 1's first.
  REQUIRE(read_file(pairs).rfind("3 7\n3 2\n1 5\n3 7\n1 9\n5 2\n", 0) == 0);
  std::map<std::string, std::vector<std::string>> expected;
  for (const auto& [user, items] : kSequences) expected[user] = items;

  for (const std::string id_type : {"int", "string"}) {
    const Dataset ref = load_dataset(layout_config(per_user, "per_user", id_type));
    for (const std::string layout : {"auto", "per_pair"}) {
      CAPTURE(id_type, layout);
      const Config c = layout_config(pairs, layout, id_type);
      const Dataset d = load_dataset(c);
      CHECK(d.n_users() == 5);
      CHECK(d.n_items() == 13);
      CHECK(d.n_interactions() == lines);  // every line is one interaction, repeats included
      CHECK(sequences_of(d) == expected);
      // Users in order of first appearance, as the per_user file lists them.
      CHECK(d.users.raws() == std::vector<std::string>{"3", "1", "5", "2", "4"});
      // The same dataset as the per_user file: ids, indices and row order.
      CHECK(d.users.raws() == ref.users.raws());
      CHECK(d.items.raws() == ref.items.raws());
      CHECK(std::vector<int32_t>(d.user.begin(), d.user.end()) == std::vector<int32_t>(ref.user.begin(), ref.user.end()));
      CHECK(std::vector<int32_t>(d.item.begin(), d.item.end()) == std::vector<int32_t>(ref.item.begin(), ref.item.end()));
      // leave_last by file order: each user's last line is test, the one before it validation.
      const Split s = split_dataset(d, c);
      REQUIRE(s.test_rows.size() == 5);
      REQUIRE(s.valid_rows.size() == 5);
      for (size_t k = 0; k < 5; ++k) {
        const auto& seq = expected.at(d.users.raw(d.user[static_cast<size_t>(s.test_rows[k])]));
        CHECK(d.items.raw(d.item[static_cast<size_t>(s.test_rows[k])]) == seq.back());
        const auto& vseq = expected.at(d.users.raw(d.user[static_cast<size_t>(s.valid_rows[k])]));
        CHECK(d.items.raw(d.item[static_cast<size_t>(s.valid_rows[k])]) == vseq[vseq.size() - 2]);
      }
    }
  }
  // auto on a per_user file stays per_user (no user repeats there).
  const Dataset a = load_dataset(layout_config(per_user, "auto"));
  CHECK(a.n_interactions() == lines);
  CHECK(sequences_of(a) == expected);
}

TEST_CASE("sequence layout: a file of single pairs with no repeated user reads the same under every layout", "[data][readers]") {
  TempDir t;
  const std::string p = t.write("single.txt", "1 10\n2 11\n3 10\n");
  for (const std::string layout : {"auto", "per_user", "per_pair"}) {
    CAPTURE(layout);
    const Dataset d = load_dataset(layout_config(p, layout));
    CHECK(d.n_users() == 3);
    CHECK(d.n_items() == 2);
    CHECK(d.n_interactions() == 3);
  }
}

TEST_CASE("sequence layout: errors name the layout, the line and the fix", "[data][readers]") {
  TempDir t;
  const std::string pairs = t.write("pairs.txt", "1 5\n2 3\n1 9\n");
  SECTION("per_user declared on a pairs file: the repeated user, with the per_pair hint") {
    CHECK_THROWS_WITH(load_dataset(layout_config(pairs, "per_user")),
                      Contains("pairs.txt:3:") && Contains("user '1' has a second line") &&
                          Contains("one `user item` pair per line, as SASRec's files? set dataset.sequence_layout: per_pair"));
  }
  SECTION("an unknown layout names the key") {
    CHECK_THROWS_WITH(load_dataset(layout_config(pairs, "pairs")), Contains("dataset.sequence_layout") && Contains("'pairs'"));
  }
  SECTION("per_pair declared on a per_user line: the field count and the per_user hint") {
    const std::string p = t.write("wide.txt", "1 5\n2 3 4\n");
    CHECK_THROWS_WITH(load_dataset(layout_config(p, "per_pair")),
                      Contains("wide.txt:2:") && Contains("3 fields") && Contains("dataset.sequence_layout: per_pair") &&
                          Contains("per_user"));
  }
  SECTION("auto on a file that is neither layout: a repeated user after a wide line") {
    const std::string p = t.write("mixed1.txt", "1 5 6\n2 3\n1 9\n");
    CHECK_THROWS_WITH(load_dataset(layout_config(p, "auto")),
                      Contains("mixed1.txt:3:") && Contains("user '1' has a second line") && Contains("line 1 holds 3 fields"));
  }
  SECTION("auto on a file that is neither layout: a wide line after a repeated user") {
    const std::string p = t.write("mixed2.txt", "1 5\n2 3\n1 9\n2 4 4\n");
    CHECK_THROWS_WITH(load_dataset(layout_config(p, "auto")),
                      Contains("mixed2.txt:4:") && Contains("3 fields") && Contains("user '1' has a second line at line 3") &&
                          Contains("dataset.sequence_layout"));
  }
  SECTION("per_pair: a user without an item") {
    const std::string p = t.write("short.txt", "1 5\n2\n");
    CHECK_THROWS_WITH(load_dataset(layout_config(p, "per_pair")), Contains("short.txt:2:") && Contains("a line without an item"));
  }
}
