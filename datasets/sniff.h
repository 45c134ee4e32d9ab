// `rzoo train --data FILE`: what a ratings file looks like, inferred from its first lines, as
// the dataset keys a config would give (format, sep, header, columns), so that a user's own CSV
// trains without writing a YAML file first. Like Python's csv.Sniffer: a guess from the data,
// printed, and overridable key by key with --set.
#pragma once
#include <string>
#include <vector>

namespace rzoo {

struct SniffedData {
  std::string path;      // absolute
  std::string format;    // "csv", or "movielens" for a MovieLens folder
  std::string sep;       // as dataset.sep takes it: ",", "\t", "::", ";", "|", "space"
  bool header = false;
  // Columns: header names when there is a header, else 0-based positions; "" = none.
  std::string user, item, rating, timestamp;
  std::vector<std::string> notes;  // what was inferred and why, one line each
};

// Reads the first lines (at most 1 MB) of `path`: the separator is the candidate that splits
// every line into the same number (>= 2) of fields; a header is a first line whose fields are
// known column names or are not numbers where the rest of the column is; columns are found by name
// (user/userId/user_id/..., item/movieId/itemId/asin/..., rating/score/stars, timestamp/time/ts)
// or, without a header, by position and content (user, item, then a rating: numbers in a small
// range, and a timestamp: integers >= 1e8, Unix seconds). A folder holding u.data, ratings.dat
// or ratings.csv is a MovieLens folder. Fails with a clear message when no reading fits.
SniffedData sniff_data(const std::string& path);

// One line for people: "separator tab, no header, columns user=0 item=1 rating=2 timestamp=3".
std::string describe(const SniffedData& s);

}  // namespace rzoo
