// `rzoo tune`: hyperparameter search on the validation split (grid, random, successive halving),
// resumable and parallel, every trial an ordinary run folder trained by `rzoo train`.
//
// Why trials run as child processes of the rzoo program rather than in this process: a trial is
// then exactly the run a user gets from `rzoo train` with the same settings (same seeding of
// LibTorch's global generator, same thread pools, same resume), trials side by side cannot disturb
// each other, and a killed study leaves each trial in the state `rzoo train --resume` continues.
// Children die with the study (PR_SET_PDEATHSIG), so a rerun never races an orphan.
//
// The study folder (default output_dir/<run_name>, else output_dir/tune-<config name>; a config named
// tune* keeps its name):
//   study-config.yaml  the resolved configuration the study was made for (a rerun with another is
//                      refused unless --force, which moves the folder aside first)
//   trial-NNNN/        one run folder per trial (pause.json while halving pauses it)
//   logs/              each child's output
//   trials.csv         trial, status, each searched key, the validation value, best epoch, epochs,
//                      training seconds, run folder
//   rungs.json         halving: each completed rung (its epochs, members, values, promoted trials)
//   study.json         all of it as JSON (trainers/report.cpp draws it)
//   best.yaml          the experiment file with the chosen setting (`rzoo train best.yaml`)
//   seed-S/, refit-S/  the chosen setting re-run per search.seeds (and refit on train + valid)
//   test.md, test.csv  test metrics of the chosen setting: mean and spread over the seeds
//   tune.log           what was printed
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace rzoo {

class Config;
class Logger;

struct TuneOptions {
  std::string config;              // the experiment file, with its `search` block
  std::string config_dir;          // "" = found near the config (find_config_dir)
  std::vector<std::string> sets;   // --set, applied to every trial
  std::string out_dir;             // "" = output_dir/(run_name or tune-<config stem>)
  bool force = false;              // move a study folder made by another config aside
  std::string rzoo;                // the rzoo program that trains each trial (its argv[0])
  bool rzoo_is_self = false;       // rzoo is this process's program: trials exec /proc/self/exe
  int nproc = 1;                   // --nproc N: each trial trains in N processes (rzoo train --nproc N)
};

// One searched key: a list of values, or a range to draw from.
struct SearchDim {
  enum class Kind { List, Uniform, LogUniform, Int, LogInt };
  std::string key;                  // config key, e.g. train.lr
  Kind kind = Kind::List;
  std::vector<std::string> values;  // List: each value as YAML text
  double lo = 0, hi = 0;            // ranges
};

// search.space read and checked (an empty space, a value that is neither a list nor a range,
// low > high, a non-positive loguniform bound): errors name the key and where it was set.
std::vector<SearchDim> parse_space(const Config& cfg);
// The trials' settings, each a list of "key=value" in the space's key order. grid: every
// combination of the lists (first key slowest); random/halving: `trials` draws seeded by `seed`
// (the whole grid, in grid order, when every key is a list and trials covers it).
std::vector<std::vector<std::string>> draw_settings(const std::vector<SearchDim>& space, const std::string& method,
                                                    int64_t trials, uint64_t seed);

struct StudySummary {
  std::string dir;
  int64_t trials = 0, done = 0, failed = 0, best_trial = 0, total_epochs = 0;
  double best_value = std::numeric_limits<double>::quiet_NaN();
  bool interrupted = false;  // Ctrl-C / SIGTERM: rerun the command to continue
};

// Runs (or continues) the study. Throws on bad input before anything is written.
StudySummary run_study(const TuneOptions& o, Logger& log);

}  // namespace rzoo
