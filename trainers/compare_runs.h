// `rzoo compare --runs`: a comparison of runs that have already finished, from the test results
// they stored (metrics.json, or eval.json of an `rzoo evaluate --set ...` folder, and
// test.users.csv), without training anything again: the same table, intervals and paired tests as
// `rzoo compare` (trainers/compare_report.h), for runs made by `rzoo train`, `rzoo tune` studies
// or earlier comparisons.
//
// The tests pair users, so every run must have been evaluated on the same users with the same
// candidates: the runs' users.txt and items.txt (the index order of the ids) must be identical,
// and so must their test protocols and the users, target counts and candidate counts of
// test.users.csv. Anything else is refused, naming the two runs and what differs.
//
// An entry may stand for several runs (seeds of one setting; an `rzoo tune` study folder stands
// for the seed runs of its chosen setting, study.json's test.runs): its per-user values are then
// the mean over those runs, user by user, and its aggregates the mean of the runs' aggregates.
#pragma once
#include <string>
#include <vector>

#include "trainers/compare_report.h"
#include "trainers/evaluator.h"

namespace rzoo {

class Logger;

struct StoredEntry {
  std::string name;               // the label in the table; "" = from the runs (model name, else folder)
  std::vector<std::string> dirs;  // run folders, evaluation folders inside runs (RUN/eval-...), studies
};

// "DIR" or "NAME=DIR[,DIR...]" (a command-line entry of --runs).
StoredEntry parse_stored_entry(const std::string& arg);

// The test part stored in `dir`: metrics and protocol from metrics.json (eval.json in an
// evaluation folder), per-user values from test.users.csv. Errors name the file and line.
EvalResult read_stored_test(const std::string& dir);

// Compares the entries (at least two) and writes compare.md, compare.csv, compare.tex and
// compare.json into `out_dir` (created; must not exist yet, or be empty). Returns the report.
CompareReport compare_stored_runs(std::vector<StoredEntry> entries, const CompareOptions& opts,
                                  const std::string& out_dir, Logger& log);

}  // namespace rzoo
