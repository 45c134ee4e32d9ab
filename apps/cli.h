// The `rzoo` command line: what was asked for (Args), parsed with CLI11, and the help texts.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace rzoo::cli {

// Bad usage: printed as "rzoo: <what>" with a pointer to --help; exit status 2.
struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command;  // train, evaluate, compare, tune, report, models, data, export, recommend, help; version for --version
  std::vector<std::string> positional, sets;
  std::string resume, config_dir;
  std::string out, model, user, users_file, fallback, k;
  std::string history;        // recommend --history: comma-separated raw item ids, the most recent last
  bool history_given = false;  // --history appeared (an empty value is an error, not "absent")
  bool skip_unknown = false;   // recommend --skip-unknown
  bool explain = false;        // recommend --explain: the evidence behind each recommended item
  std::string evidence;        // recommend --evidence N: evidence lines per item (default 3)
  bool quiet = false, help = false, json = false, no_split = false;
  bool allow_empty = false;  // an evaluation part without users: a warning and exit 3, not an error
  bool show_config = false;  // train/compare --show-config: print the whole resolved config
  bool force = false;        // tune --force: a study folder made by another config is moved aside
  std::string pause_at_epoch;  // train --pause-at-epoch N (rzoo tune's successive halving)
  int nproc = 1;               // tune --nproc N: every trial in N processes (set by main, not parsed)
  std::string data;     // train/compare --data FILE: a ratings file (or MovieLens folder) without a config
  std::string models;   // compare --data FILE --models pop,bpr,ease
  bool runs = false;    // compare --runs DIR...: finished runs, from their stored results
  std::string dir;      // data fetch --dir DIR: the data folder (default: $RZOO_DATA, ~/.cache/rzoo/data)
  std::string sources;  // data fetch/sources --sources FILE: more catalogue entries
};

// Every option is accepted after any command (and before it), as `rzoo train x.yaml --set k=v`
// and `rzoo --quiet train x.yaml` both read naturally; each command checks what it uses.
// Throws Usage for an unknown command or option, or an option without its value.
Args parse(int argc, char** argv);

// `rzoo --help`.
extern const char* const kUsage;
// `rzoo COMMAND --help`; nullptr for an unknown command.
const char* command_help(const std::string& command);

// A LibTorch message without the C++ stack trace that follows it.
std::string first_line(const std::string& s);

// `rzoo recommend` (apps/recommend.cpp).
int recommend(const Args& a);

}  // namespace rzoo::cli
