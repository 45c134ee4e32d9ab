// rzoo: train, evaluate and compare recommender models from YAML. This file runs the commands;
// apps/cli.cpp parses the command line, apps/recommend.cpp serves exported models.
#include <torch/torch.h>

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <iostream>

#include "apps/cli.h"
#include "apps/launch.h"
#include "core/distributed.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/threads.h"
#include "core/log.h"
#include "datasets/fetch.h"
#include "datasets/sniff.h"
#include "datasets/stats.h"
#include "models/registry.h"
#include "trainers/compare_runs.h"
#include "trainers/experiment.h"
#include "trainers/export.h"
#include "trainers/report.h"
#include "trainers/trainer.h"
#include "trainers/tune.h"

namespace fs = std::filesystem;
using namespace rzoo;
using rzoo::cli::Args;
using rzoo::cli::Usage;

namespace {

ConfigSources sources_for(const Args& a, size_t skip = 0) {
  if (a.positional.size() != 1 + skip) throw Usage(a.command + " takes one CONFIG file");
  ConfigSources s;
  s.experiment = load_layer(a.positional[skip]);
  s.config_dir = a.config_dir.empty() ? find_config_dir(a.positional[skip]) : a.config_dir;
  s.sets = a.sets;
  return s;
}

// train/compare --data FILE: the experiment a user would have written for FILE, its layout
// inferred (datasets/sniff.h) and printed.
ConfigSources sources_for_data(const Args& a, Logger& log) {
  if (!a.positional.empty())
    throw Usage(fmt::format("{} takes a CONFIG file or --data FILE, not both", a.command));
  const bool compare = a.command == "compare";
  if (!compare && a.model.empty()) throw Usage("train --data FILE needs --model NAME (rzoo models lists them)");
  if (compare && a.models.empty()) throw Usage("compare --data FILE needs --models NAME,NAME,... (e.g. pop,bpr,ease)");
  const SniffedData d = sniff_data(a.data);
  ConfigSources s;
  s.config_dir = a.config_dir.empty() ? find_config_dir() : a.config_dir;
  // The dataset's name (run folders are named after it): the file's stem, or its folder's when the
  // stem says nothing (u.data, ratings.csv); never the name of a dataset config in configs/datasets,
  // whose keys would then apply too.
  fs::path p(d.path);
  std::string name = d.format == "movielens" ? p.filename().string() : p.stem().string();
  for (const char* generic : {"u", "ratings", "data", "interactions", "train", "events"})
    if (name == generic && p.has_parent_path()) name = p.parent_path().filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  if (name.empty() || name[0] == '.') name = "data" + name;
  {
    std::error_code ec;
    if (fs::exists(fs::path(s.config_dir) / "datasets" / (name + ".yaml"), ec)) name += "-data";
  }
  YAML::Node e(YAML::NodeType::Map);
  YAML::Node ds(YAML::NodeType::Map);
  ds["name"] = name;
  ds["format"] = d.format;
  ds["path"] = d.path;
  if (d.format == "csv") {
    ds["sep"] = d.sep;
    ds["header"] = d.header;
    YAML::Node cols(YAML::NodeType::Map);
    cols["user"] = d.user;
    cols["item"] = d.item;
    cols["rating"] = d.rating;
    cols["timestamp"] = d.timestamp;
    ds["columns"] = cols;
  }
  e["dataset"] = ds;
  if (compare) {
    YAML::Node list(YAML::NodeType::Sequence);
    std::string m;
    for (size_t i = 0; i <= a.models.size(); ++i) {
      if (i == a.models.size() || a.models[i] == ',') {
        if (m.empty()) throw Usage(fmt::format("--models {}: an empty name in the list", a.models));
        list.push_back(m);
        m.clear();
      } else if (a.models[i] != ' ') {
        m += a.models[i];
      }
    }
    e["compare"] = list;
  } else {
    e["model"] = a.model;
  }
  s.experiment = Layer{e, "--data " + a.data, true};
  s.sets = a.sets;
  log.line(fmt::format("data: {}: {}", a.data, describe(d)));
  for (const auto& n : d.notes) log.line("  " + n);
  if (d.format == "csv")
    log.line("  (change any of it with --set dataset.sep=..., dataset.header=..., dataset.columns.rating=...)");
  return s;
}

// compare --runs ENTRY...: finished runs from their stored results (trainers/compare_runs.h).
int compare_runs_command(const Args& a, Logger& log) {
  if (!a.data.empty() || !a.models.empty()) throw Usage("compare --runs takes run folders, not --data or --models");
  if (a.positional.size() < 2) throw Usage("compare --runs needs at least two run folders ([NAME=]RUN_DIR[,RUN_DIR...])");
  // Only what a comparison of stored results reads may be set; the runs' own settings are fixed.
  for (const auto& kv : a.sets) {
    const std::string key = kv.substr(0, kv.find('='));
    if (key.rfind("compare_stats.", 0) != 0 && key != "compare_stats" && key != "output_dir" && key != "run_name" &&
        key != "threads")
      throw Usage(fmt::format("compare --runs: --set {}: stored runs are compared as they were trained and evaluated; "
                              "only compare_stats.*, output_dir, run_name and threads may be set here (re-evaluate a run with "
                              "rzoo evaluate RUN --set eval.KEY=VALUE and compare its eval-... folder)", kv));
  }
  ConfigSources s;
  s.config_dir = a.config_dir.empty() ? find_config_dir() : a.config_dir;
  s.experiment = Layer{YAML::Node(YAML::NodeType::Map), "compare --runs", true};
  s.sets = a.sets;
  const Config cfg = resolve_config(s);
  check_run_name(cfg);
  std::vector<StoredEntry> entries;
  for (const auto& p : a.positional) entries.push_back(parse_stored_entry(p));
  std::string out = a.out;
  std::error_code ec;
  if (out.empty()) {
    std::string stem = cfg.get_string("run_name");
    if (stem.empty()) {
      const std::time_t t = std::time(nullptr);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
      stem = std::string("compare-runs-") + buf;
    }
    fs::path base = fs::path(cfg.get_string("output_dir")) / stem;
    fs::path p = base;
    for (int i = 2; fs::exists(p, ec); ++i) p = base.string() + "-" + std::to_string(i);
    out = p.string();
  } else if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec))) {
    fail("compare --runs --out {}: exists and is not an empty folder (give a new folder: nothing is overwritten)", out);
  }
  compare_stored_runs(std::move(entries), CompareOptions::from_config(cfg), out, log);
  try {
    log.line("report: " + write_report(out));
  } catch (const std::exception& e) {
    std::cerr << "rzoo: warning: no report.html: " << e.what() << "\n";
  }
  return 0;
}

// train --pause-at-epoch N: 0 when absent.
int64_t pause_epoch(const Args& a) {
  if (a.pause_at_epoch.empty()) return 0;
  int64_t n = 0;
  size_t used = 0;
  try {
    n = std::stoll(a.pause_at_epoch, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != a.pause_at_epoch.size() || n < 1)
    throw Usage(fmt::format("--pause-at-epoch {}: expected an epoch number >= 1", a.pause_at_epoch));
  return n;
}

// The data for a run of cfg's model: the training sequences and the training rows (an int64 per
// training interaction each) are kept only for the models that read them.
PreparedData prepare_model_data(const Config& cfg, Logger& log) {
  const std::string model = cfg.get_string("model.name");
  return prepare_data(cfg, log, true, model_reads_sequences(model), model_reads_train_rows(model));
}

int train(const Args& a, Logger& log) {
  const int64_t pause_at = pause_epoch(a);
  if (!a.resume.empty()) {
    if (!a.positional.empty()) throw Usage("train --resume RUN_DIR takes no CONFIG: the run's own config.yaml is used");
    // Only the thread count may change (e.g. to share the machine with other runs): it does
    // not change what is computed, beyond float rounding.
    for (const auto& s : a.sets)
      if (s.substr(0, s.find('=')) != "threads")
        throw Usage(fmt::format("train --resume RUN_DIR: --set {} refused; the run's own config.yaml is used "
                                "(only --set threads=N may change)", s));
    if (!fs::is_directory(a.resume)) fail("{}: no such run folder", a.resume);
    const std::string cfg_path = a.resume + "/config.yaml";
    if (!fs::exists(cfg_path)) fail("{}: not an rzoo run folder (no config.yaml)", a.resume);
    Config cfg = load_resolved_config(cfg_path);
    for (const auto& s : a.sets) cfg = cfg.with_set(s);
    start_distributed(cfg, log);
    const PreparedData data = prepare_model_data(cfg, log);
    return train_model(cfg, data, a.resume, log, /*resume=*/true, a.allow_empty, pause_at).empty_split ? 3 : 0;
  }
  if (!a.data.empty() && !a.resume.empty()) throw Usage("train --resume RUN_DIR takes no --data");
  if (a.data.empty() && !a.model.empty())
    throw Usage("train --model NAME goes with --data FILE; with a CONFIG, set `model: NAME` in it or --set model.name=NAME");
  const ConfigSources sources = a.data.empty() ? sources_for(a) : sources_for_data(a, log);
  const Config cfg = resolve_config(sources);
  check_run_name(cfg);  // before the data is loaded (and maybe cached): a bad name writes nothing
  start_distributed(cfg, log);
  if (a.show_config) {
    log.line("resolved config (each value with the file:line that set it):");
    log.line(cfg.dump());
  } else {
    log.line(config_summary(cfg, sources.config_dir));
  }
  if (cfg.get_string("model.name").empty())
    fail("{}: no model named; set `model: NAME` (see `rzoo models`), or use `rzoo compare` for a `compare` list",
         a.positional.empty() ? a.data : a.positional[0]);
  const PreparedData data = prepare_model_data(cfg, log);
  return train_model(cfg, data, shared_run_dir(cfg), log, /*resume=*/false, a.allow_empty, pause_at).empty_split ? 3 : 0;
}

// A YAML double-quoted scalar of `s` (for a --set value).
std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// rzoo update RUN_DIR --data FILE: the run's config plus the new file, warm-started from the run.
int update(const Args& a, Logger& log) {
  if (a.positional.size() != 1) throw Usage("update takes one RUN_DIR (the finished run to update) and --data FILE");
  if (a.data.empty()) throw Usage("update RUN_DIR needs --data FILE (the new interactions)");
  if (!a.resume.empty() || !a.model.empty()) throw Usage("update takes RUN_DIR and --data FILE (no --resume, --model)");
  std::error_code ec;
  fs::path parent = fs::absolute(a.positional[0], ec).lexically_normal();
  if (!parent.has_filename()) parent = parent.parent_path();  // "runs/x/" names runs/x
  if (!fs::is_directory(parent, ec)) fail("{}: no such run folder", a.positional[0]);
  if (!fs::exists(parent / "config.yaml", ec)) fail("{}: not an rzoo run folder (no config.yaml)", a.positional[0]);
  if (!fs::exists(parent / "best.pt", ec))
    fail("{}: the run has no best.pt: it has not finished (rzoo train --resume {} finishes it), so there is no model to "
         "update", a.positional[0], a.positional[0]);
  if (!fs::is_regular_file(a.data, ec)) fail("--data {}: no such file", a.data);
  for (const auto& s : a.sets) {
    const std::string key = s.substr(0, s.find('='));
    const std::string top = key.substr(0, key.find('.'));
    if ((top == "dataset" && key != "dataset.append_valid") || top == "model" || key == "train.init_from")
      throw Usage(fmt::format("update: --set {} refused: it would change the data or the model the update starts from "
                              "(update.*, train.*, eval.*, dataset.append_valid, seed, threads, device, run_name and "
                              "output_dir may change)", s));
  }
  Config cfg = load_resolved_config((parent / "config.yaml").string());
  std::string files;
  for (const auto& f : cfg.get_string_list("dataset.append")) files += yaml_quoted(f) + ",";
  files += yaml_quoted(fs::absolute(a.data, ec).lexically_normal().string());
  const std::string origin = "rzoo update " + parent.string();
  cfg = cfg.with_set("dataset.append=[" + files + "]", origin);
  cfg = cfg.with_set("train.init_from=" + yaml_quoted(parent.string()), origin);
  // The update's training, from the run's update section (defaults.yaml, or the model's YAML): the
  // new pairs and update.replay times as many old ones, update.epochs epochs, validated once at the
  // end: early stopping on the run's validation part (old interactions) stopped before the new
  // users and items were learnt. Chosen on validation replays; --set changes any of it.
  for (const auto& s : a.sets)
    if (s.rfind("update.", 0) == 0) cfg = cfg.with_set(s);
  const double replay = cfg.get_double("update.replay");
  if (replay != -1.0 && !(replay >= 0 && std::isfinite(replay)))
    cfg.bad("update.replay", fmt::format("expected a number >= 0, or -1 for every training pair; got {}", replay));
  const int64_t epochs = cfg.get_int("update.epochs", 1);
  for (const std::string& s : {fmt::format("train.replay={}", replay), fmt::format("train.epochs={}", epochs),
                               fmt::format("train.valid_every={}", epochs), std::string("train.early_stop.patience=0")})
    cfg = cfg.with_set(s, origin);
  // The new run sits beside its parent: RUN-u1, and RUN-uN+1 for an update of RUN-uN.
  std::string name = parent.filename().string();
  int64_t n = 1;
  if (const size_t at = name.rfind("-u"); at != std::string::npos && at + 2 < name.size() &&
                                          name.find_first_not_of("0123456789", at + 2) == std::string::npos &&
                                          name.size() - at - 2 <= 9) {
    n = std::stoll(name.substr(at + 2)) + 1;
    name.resize(at);
  }
  cfg = cfg.with_set("run_name=" + yaml_quoted(fmt::format("{}-u{}", name, n)), origin);
  cfg = cfg.with_set("output_dir=" + yaml_quoted(parent.parent_path().string()), origin);
  for (const auto& s : a.sets) cfg = cfg.with_set(s);
  check_run_name(cfg);
  log.line(fmt::format("update {} with {} (train.replay {}, train.epochs {})", parent.string(), a.data,
                       cfg.get_double("train.replay"), cfg.get_int("train.epochs")));
  const PreparedData data = prepare_model_data(cfg, log);
  const std::string dir = new_run_dir(cfg);
  const RunResult r = train_model(cfg, data, dir, log, /*resume=*/false, a.allow_empty);
  log.line(fmt::format("updated run: {} (parent {})", dir, parent.string()));
  if (!a.out.empty()) export_run(dir, a.out, log);
  return r.empty_split ? 3 : 0;
}

// The catalogue of `data fetch`: configs/data-sources.yaml, then --sources FILE.
std::vector<DataSource> data_sources(const Args& a) {
  const std::string dir = a.config_dir.empty() ? find_config_dir() : a.config_dir;
  return load_data_sources(dir + "/data-sources.yaml", a.sources);
}

int data_fetch(const Args& a, Logger& log) {
  if (a.positional.size() != 2) throw Usage("data fetch takes one NAME (rzoo data sources lists them)");
  const auto sources = data_sources(a);
  FetchOptions o;
  o.dir = a.dir;
  o.force = a.force;
  o.progress = !a.quiet;
  const FetchResult r = fetch_data(find_data_source(sources, a.positional[1]), o, log);
  std::cout << r.config << "\n";  // the result: where the dataset config is (also when --quiet)
  return 0;
}

int data_list(const Args& a) {
  if (a.positional.size() != 1) throw Usage("data sources takes no argument");
  const std::string home = a.dir.empty() ? data_home() : a.dir;
  for (const auto& s : data_sources(a)) {
    std::error_code ec;
    const bool have = fs::exists(fs::path(home) / s.folder / kFetchStamp, ec);
    std::cout << fmt::format("{:<16} {:>9} {}{}\n{:<16} {:>9} {}\n", s.name,
                             s.bytes > 0 ? fmt::format("{:.1f} MB", double(s.bytes) / 1e6) : "?",
                             s.description, have ? " [fetched]" : "", "", "", s.license);
  }
  std::cout << "data folder: " << home << "\n";
  return 0;
}

int data_stats(const Args& a, Logger& log) {
  if (!a.positional.empty() && a.positional[0] == "fetch") return data_fetch(a, log);
  if (!a.positional.empty() && a.positional[0] == "sources") return data_list(a);
  if (a.positional.empty() || a.positional[0] != "stats")
    throw Usage("data takes a subcommand: data stats CONFIG, data fetch NAME, data sources");
  const Config cfg = resolve_config(sources_for(a, 1));
  Logger quiet_log(true);
  Logger& l = a.json ? quiet_log : log;
  const PreparedData data = prepare_data(cfg, l, !a.no_split);
  const Split* split = a.no_split ? nullptr : &data.split;
  const DataStats st = compute_stats(data.data, split);
  std::cout << (a.json ? stats_json(data.data, st, split) : stats_text(data.data, st, split));
  return 0;
}

int run(const Args& a) {
  if (a.command == "version") {
    std::cout << "rzoo " << rzoo::version() << " (git " << rzoo::git_id() << "; LibTorch " << TORCH_VERSION << ")\n";
    // The runtime facts that decide speed (see core/threads.h).
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const char* spin = std::getenv("GOMP_SPINCOUNT");
    const char* blas_timeout = std::getenv("OPENBLAS_THREAD_TIMEOUT");
    const int blas = rzoo::blas_threads();
    const std::string blas_core = rzoo::openblas_core();
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::cout << fmt::format("threads: {} cores; OpenMP wait policy {}{}; BLAS threads {}{}{}; denormals {}\n",
                             std::thread::hardware_concurrency(), policy ? policy : "(runtime default)",
                             spin ? fmt::format(", spin count {}", spin) : std::string(),
                             blas < 0 ? std::string("(no known BLAS)") : std::to_string(blas),
                             blas_core.empty() ? std::string()
                                               : fmt::format(", OpenBLAS kernels {}{}", blas_core,
                                                             coretype ? fmt::format(" (OPENBLAS_CORETYPE={})", coretype)
                                                                      : std::string()),
                             blas_timeout ? fmt::format(", OpenBLAS thread timeout 2^{} cycles", blas_timeout) : std::string(),
                             rzoo::flush_denormals() ? "flushed to zero" : "kept (IEEE)");
    return 0;
  }
  if (a.help && cli::command_help(a.command)) {
    std::cout << cli::command_help(a.command);
    return 0;
  }
  if (a.help || a.command.empty() || a.command == "help") {
    std::cout << cli::kUsage;
    return a.command.empty() && !a.help ? 2 : 0;
  }
  Logger log(a.quiet);
  if (a.command == "models") {
    for (const auto& m : registered_models())
      std::cout << fmt::format("{:<8} {}\n         {}\n", m.name, m.description, m.paper);
    return 0;
  }
  // Distributed launches (torchrun, --nproc): train and evaluate; the other commands run as one
  // process and refuse a distributed launch rather than run N times side by side.
  if (dist_env_from_environment().world > 1 && a.command != "train" && a.command != "evaluate" && a.command != "compare")
    fail("rzoo {}: distributed launches run `rzoo train`, `rzoo evaluate` and `rzoo compare` (WORLD_SIZE is set); run "
         "{} as one process{}", a.command, a.command,
         a.command == "tune" ? " (rzoo tune CONFIG --nproc N trains each trial in N processes)" : "");
  if (a.command == "train") {
    const int status = train(a, log);
    Distributed::finish();
    return status;
  }
  if (a.command == "update") return update(a, log);
  if (a.command == "evaluate") {
    if (a.positional.size() != 1) throw Usage("evaluate takes one RUN_DIR");
    if (dist_env_from_environment().world > 1) {
      const std::string cfg_path = a.positional[0] + "/config.yaml";
      if (!fs::exists(cfg_path)) fail("{}: not an rzoo run folder (no config.yaml)", a.positional[0]);
      start_distributed(load_resolved_config(cfg_path), log);
    }
    const int status = evaluate_run(a.positional[0], log, a.sets, a.allow_empty).empty_split ? 3 : 0;
    Distributed::finish();
    return status;
  }
  if (a.command == "compare" && a.runs) return compare_runs_command(a, log);
  if (a.command == "compare") {
    std::string dir;
    const auto results = compare_models(a.data.empty() ? sources_for(a) : sources_for_data(a, log), log, &dir,
                                        a.allow_empty, a.show_config);
    const bool writer = writes_files();
    Distributed::finish();
    if (!writer) return 0;
    // The comparison is written by now: a report that fails costs a warning, not the result.
    try {
      log.line("report: " + write_report(dir));
    } catch (const std::exception& e) {
      std::cerr << "rzoo: warning: no report.html: " << e.what() << "\n";
    }
    return std::any_of(results.begin(), results.end(), [](const RunResult& r) { return r.empty_split; }) ? 3 : 0;
  }
  if (a.command == "tune") {
    if (a.positional.size() != 1) throw Usage("tune takes one CONFIG file (with a `search` block)");
    TuneOptions o;
    o.config = a.positional[0];
    o.config_dir = a.config_dir;
    o.sets = a.sets;
    o.out_dir = a.out;
    o.force = a.force;
    o.nproc = a.nproc;
    std::error_code ec;
    o.rzoo = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) fail("tune: cannot find the rzoo program itself (/proc/self/exe: {})", ec.message());
    o.rzoo_is_self = true;
    const StudySummary r = run_study(o, log);
    // The study's files are written by now (also when interrupted): the report is extra.
    try {
      log.line("report: " + write_report(r.dir));
    } catch (const std::exception& e) {
      std::cerr << "rzoo: warning: no report.html: " << e.what() << "\n";
    }
    if (r.interrupted) return stop_requested() ? 130 : 1;
    return 0;
  }
  if (a.command == "export") {
    if (a.positional.size() != 1) throw Usage("export takes one RUN_DIR");
    if (a.out.empty()) throw Usage("export needs --out FILE (e.g. --out model.pt)");
    export_run(a.positional[0], a.out, log);
    return 0;
  }
  if (a.command == "report") {
    if (a.positional.size() != 1) throw Usage("report takes one folder (a run, comparison or study folder)");
    std::cout << write_report(a.positional[0], a.out) << "\n";
    return 0;
  }
  if (a.command == "recommend") return cli::recommend(a);
  if (a.command == "data") return data_stats(a, log);
  throw Usage("unknown command '" + a.command + "'");
}

}  // namespace

namespace {
// "rzoo: " or, in a distributed launch, "rzoo: rank R: " (every rank's errors reach stderr).
std::string rank_prefix() {
  const char* ws = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  if (ws && rank && std::string(ws) != "1") return fmt::format("rzoo: rank {}: ", rank);
  return "rzoo: ";
}

// One write per message: the ranks of a distributed launch share the terminal.
void say(const std::string& text) {
  std::fflush(stderr);
  for (size_t at = 0; at < text.size();) {
    const ssize_t n = ::write(2, text.data() + at, text.size() - at);
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
}

// The signal that asked training to stop (SIGINT or SIGTERM), for the exit status 128 + signal.
volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
  g_stop_signal = sig;
  request_stop();
  std::signal(sig, SIG_DFL);  // a second Ctrl-C (or SIGTERM) ends the process at once
}
}  // namespace

namespace {
int run_main(int argc, char** argv) {
  // Before anything else: threads that sleep rather than spin at OpenMP barriers, and OpenBLAS's
  // kernels for this CPU where it would fall back to its oldest (see threads.h).
  rzoo::reexec_with_runtime_settings(argv);
  // Large CPU blocks reused between training steps instead of mapped afresh (core/memory.h).
  rzoo::install_cpu_block_cache();
  // SIGTERM (kill, a batch scheduler, docker stop) stops like Ctrl-C: after the current batch,
  // with the last complete epoch saved for --resume and a message; exit status 143 (130 for SIGINT).
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  try {
    // --nproc N: this command in N local processes (apps/launch.h).
    std::string nproc;
    const std::vector<std::string> rest = cli::without_nproc(argc, argv, nproc);
    if (!nproc.empty()) {
      std::vector<std::string> words{argv[0]};
      words.insert(words.end(), rest.begin(), rest.end());
      std::vector<char*> ptrs;
      for (auto& w : words) ptrs.push_back(w.data());
      const Args a = cli::parse(static_cast<int>(ptrs.size()), ptrs.data());
      if (a.command != "train" && a.command != "evaluate" && a.command != "compare" && a.command != "tune")
        throw Usage(fmt::format("--nproc goes with train, evaluate, compare or tune, not '{}'", a.command));
      char* end = nullptr;
      const long n = std::strtol(nproc.c_str(), &end, 10);
      if (nproc.empty() || *end != '\0' || n < 1 || n > 1024)
        throw Usage(fmt::format("--nproc {}: expected a number of processes in [1, 1024]", nproc == " " ? "" : nproc));
      if (n == 1) return run(a);
      if (a.command == "tune") {  // the study stays one process; each of its trials runs in n
        Args t = a;
        t.nproc = static_cast<int>(n);
        return run(t);
      }
      return cli::launch_local(static_cast<int>(n), rest, a.quiet);
    }
    return run(cli::parse(argc, argv));
  } catch (const Usage& e) {
    std::cerr << "rzoo: " << e.what() << "\n(run `rzoo --help` for usage)\n";
    return 2;
  } catch (const Error& e) {
    say(rank_prefix() + "error: " + e.what() + "\n");
    if (!stop_requested()) return 1;
    const int sig = g_stop_signal == 0 ? SIGINT : static_cast<int>(g_stop_signal);
    std::cerr << fmt::format("rzoo: stopped by {} (exit status {})\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", 128 + sig);
    return 128 + sig;
  } catch (const c10::Error& e) {
    say(rank_prefix() + "error: " + cli::first_line(e.what_without_backtrace()) + "\n");
    return 1;
  } catch (const YAML::Exception& e) {
    std::cerr << "rzoo: error: YAML: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    say(rank_prefix() + "error: " + e.what() + "\n");
    return 1;
  }
}
}  // namespace

// The process ends without C++ static destructors: they would only tear down LibTorch's
// operator registry (hundreds of thousands of frees) and page its code in again, at the end of
// every command (W3's iALS run, bench/peers: 0.14 s, and the process's peak memory 7 MB higher
// than at the end of its work). rzoo's files are all written, synced and closed by then (atomic
// writers), and its distributed group is never destroyed (core/distributed.cpp). The output
// streams are flushed first. Sanitizer builds return normally, for LeakSanitizer's check at exit.
int main(int argc, char** argv) {
  const int rc = run_main(argc, argv);
#if defined(__SANITIZE_ADDRESS__)
  return rc;
#else
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(rc);
#endif
}
