// What the apps run: prepare data, train one model into a run folder, evaluate a run folder,
// and compare several models on one dataset and split.
//
// A run folder holds: config.yaml (the resolved config, each value with the file:line it came
// from), train.log, last.pt (full training state, for --resume), best.pt (the selected model),
// metrics.json (valid and test results with their protocol), valid.users.csv and test.users.csv
// (per-user metric values), users.txt and items.txt (raw ids in index order); with
// eval.save_rankings also valid/test.rankings.tsv and items.tsv (see evaluator.h);
// history.csv, one row per epoch so far, rewritten atomically after each: the header
//   epoch,loss,seconds,lr,valid_<metric>...   (e.g. valid_ndcg@10, valid_hr@20)
//   with one valid_ column per validation metric in evaluator order, numbers as the shortest
//   text that reads back as the same double, and an empty cell where the epoch was not
//   validated or the value is NaN (a closed-form fit's loss and lr; its one row is epoch 1);
//   kept across --resume (last.pt holds the history);
// events.out.tfevents.<unix seconds>.<hostname>[.N], TensorBoard scalars per epoch (step = epoch):
//   train/loss, train/lr, train/epoch_seconds and valid/<metric>; one file per process that
//   trained (a resume adds one), read together by `tensorboard --logdir`.
#pragma once
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/evaluator.h"

namespace rzoo {

class Logger;

struct PreparedData {
  Dataset data;
  Split split;
};

struct RunResult {
  std::string model, run_dir;
  EvalResult valid, test;
  int64_t best_epoch = 0, epochs_run = 0;
  double train_seconds = 0;
  bool empty_split = false;  // valid or test had no user with a target (allowed by allow_empty)
  bool paused = false;       // stopped at pause_at_epoch before the end: no valid/test results
};

// Sets LibTorch's thread count from `threads` and returns the device named by `device`
// (cpu, cuda, cuda:N, or auto = cuda when available).
c10::Device setup_runtime(const Config& cfg);
// split = false: data only. sequences = false: the split keeps no training sequences
// (Split::train_seq, epoch_seq: an int64 per training interaction, read only by the models of
// InputType::Sequence; models/registry.h: model_reads_sequences), for a run of any other model.
// train_rows = false: Split::train_rows is released once the split is made (an int64 per training
// interaction; models/registry.h: model_reads_train_rows).
PreparedData prepare_data(const Config& cfg, Logger& log, bool split = true, bool sequences = true,
                          bool train_rows = true);
// Peak resident memory of this process so far, in MB.
double peak_rss_mb();
// A new, unique run folder under output_dir (named run_name, or <model>-<dataset>-<time> with
// unsafe characters of the names replaced by '_').
std::string new_run_dir(const Config& cfg, const std::string& parent = "");
// Refuses a run_name that is not one safe folder name (contains '/', is '.' or '..', or has a
// control character): run folders stay directly under output_dir.
void check_run_name(const Config& cfg);

// Trains `model.name` into run_dir (resuming from its last.pt if `resume`), restores the best
// checkpoint and evaluates it on valid and test.
// A valid (when the split asks for one) or test part without any user with a target is an error
// naming it, before anything is written, unless allow_empty (then a warning on stderr, and the
// result's empty_split is set: the CLI exits 3).
// pause_at_epoch N > 0 (rzoo tune's successive halving): once N epochs are done and training is
// not complete, writes run_dir/pause.json ({"epoch", "best_epoch", "best_valid", "metric",
// "train_seconds"}) and returns with `paused` set, without evaluating; --resume continues.
RunResult train_model(const Config& cfg, const PreparedData& data, const std::string& run_dir, Logger& log,
                      bool resume = false, bool allow_empty = false, int64_t pause_at_epoch = 0);
// That check: throws naming the empty part(s), or with allow_empty warns on stderr and returns
// true; false when every part has users to evaluate.
bool check_evaluable(const Config& cfg, const Split& split, bool allow_empty);
// A finished run reopened: its config, data and split rebuilt (users and items checked against
// the run's), and its best model loaded.
struct OpenedRun {
  Config cfg;
  PreparedData data;
  Recommender model;
  c10::Device device;
  int64_t best_epoch = 0, epochs_run = 0;
  double train_seconds = 0;
};
// eval_sets: "eval.KEY=VALUE" overrides of the run's evaluation settings (any other key is an
// error: it would change the model or its data).
std::unique_ptr<OpenedRun> open_run(const std::string& run_dir, Logger& log, const std::vector<std::string>& eval_sets = {});
// Re-evaluates a finished run from its folder (rebuilding its data split from config.yaml) and
// writes RUN_DIR/eval.json and the per-user files. With eval_sets (e.g. eval.protocol=full), the
// files go to RUN_DIR/eval-<overrides>/ instead, next to the run's own results.
RunResult evaluate_run(const std::string& run_dir, Logger& log, const std::vector<std::string>& eval_sets = {},
                       bool allow_empty = false);
// The folder evaluate_run writes to for eval_sets inside the run folder: "eval-" and each
// assignment less its "eval." with unsafe characters as "-", e.g. eval-protocol-full.
std::string eval_folder_name(const std::vector<std::string>& eval_sets);
// `threads=...` or `device=...`: where a re-evaluation runs, accepted beside eval.* settings and
// not part of the results' folder name.
bool is_runtime_set(const std::string& set);
// Trains every entry of the experiment's `compare` list on one dataset and split. Writes
// compare.md, compare.csv, compare.tex (test metrics with bootstrap intervals and paired tests
// against compare_stats.baseline) and compare.json in the comparison's folder (out_dir).
// show_config: print each entry's whole resolved config (else config_summary).
std::vector<RunResult> compare_models(const ConfigSources& sources, Logger& log, std::string* out_dir = nullptr,
                                      bool allow_empty = false, bool show_config = false);
// What a run prints of its config by default: the keys set by the experiment and --set (and the
// model and dataset names), each with where it was set (Config::dump_changes).
std::string config_summary(const Config& cfg, const std::string& config_dir);

std::string eval_table(const EvalResult& res);

// Distributed runs (core/distributed.h). Joins the process group when launched so (torchrun's
// variables), with cfg's distributed.backend and distributed.timeout, silences `log` on the ranks
// other than 0, and refuses ranks whose resolved configs differ (naming the first differing key
// and the rank). No-op in a single-process run.
void start_distributed(const Config& cfg, Logger& log);
// Refuses ranks whose data differ (users, items, the split's parts: checksums named by part).
void check_distributed_data(const PreparedData& p);
// new_run_dir on rank 0, the same folder on every rank.
std::string shared_run_dir(const Config& cfg);

}  // namespace rzoo
