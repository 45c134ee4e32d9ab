#include "trainers/experiment.h"

#include <cctype>
#include <torch/torch.h>

#include <sys/resource.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <tuple>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/distributed.h"
#include "core/hash.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/log.h"
#include "core/table.h"
#include "core/threads.h"
#include "datasets/fields.h"
#include "models/registry.h"
#include "trainers/compare_report.h"
#include "trainers/eval/bounds.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;

namespace rzoo {

c10::Device setup_runtime(const Config& cfg) {
  set_thread_pools(static_cast<int>(resolve_threads(cfg)));  // LibTorch, OpenMP and BLAS
  const std::string d = cfg.get_string("device");
  if (d == "cpu") return c10::Device(c10::kCPU);
  // A distributed launch's processes on one machine each take their own GPU (LOCAL_RANK modulo
  // the GPUs there) when the config names none.
  const auto local_gpu = [] {
    const DistEnv env = dist_env_from_environment();
    const int n = static_cast<int>(torch::cuda::device_count());
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.world > 1 && n > 0 ? env.local_rank % n : 0));
  };
  if (d == "auto") return torch::cuda::is_available() ? local_gpu() : c10::Device(c10::kCPU);
  if (d == "cuda" && torch::cuda::is_available()) return local_gpu();
  if (d == "cuda" || d.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      cfg.bad("device", fmt::format("'{}' requested but CUDA is not available (no GPU, or LibTorch built without "
                                    "CUDA); use device: cpu or auto", d));
    try {
      c10::Device dev(d);
      if (dev.has_index() && dev.index() >= static_cast<int>(torch::cuda::device_count()))
        cfg.bad("device", fmt::format("'{}': only {} CUDA device(s)", d, torch::cuda::device_count()));
      return dev;
    } catch (const c10::Error&) {
      cfg.bad("device", fmt::format("'{}' is not a device name", d));
    }
  }
  cfg.bad("device", fmt::format("'{}' is not one of: cpu, cuda, cuda:N, auto", d));
}

double peak_rss_mb() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KB on Linux
}

namespace {
// The training pairs of the run train.init_from names, as its own split made them, when that run
// is this one's data minus the last appended file (rzoo update's parent): its config appends the
// files before the last, with its own dataset.append_valid, and has this run's model.* settings.
// Left unknown (closed-form models then refit in full) when the parent's config says otherwise,
// and for models that do not update a parent's fit (model_updates_fit).
void parent_split(const Config& cfg, const Dataset& d, const Split& base, const Appended& app, Split& out) {
  const std::string parent = cfg.get_string("train.init_from");
  if (parent.empty() || app.files.empty() || !model_updates_fit(cfg.get_string("model.name"))) return;
  std::error_code ec;
  if (!fs::exists(parent + "/config.yaml", ec)) return;
  Config pc;
  try {
    pc = load_resolved_config(parent + "/config.yaml");
  } catch (const std::exception&) {
    return;  // an unreadable parent config: refit in full (train.init_from's own checks report the rest)
  }
  std::vector<std::string> files = cfg.get_string_list("dataset.append");
  files.pop_back();
  if (pc.get_string_list("dataset.append") != files) return;
  // The parent's fit is only this run's minus the new pairs with the same model settings.
  const auto text = [](const YAML::Node& n) {
    YAML::Emitter e;
    e << YAML::Flow << n;
    return std::string(e.c_str());
  };
  if (text(pc.node("model")) != text(cfg.node("model"))) return;
  Split ps;
  if (files.empty()) {
    ps.train = base.train;
    ps.train_rows = base.train_rows;
  } else {
    const auto [b, e] = app.files[files.size() - 1];
    const bool newest = pc.get_choice("dataset.append_valid", {"run", "newest"}) == "newest";
    ps = extend_split(d, base, app.base_rows, newest ? b : 0, newest ? e : 0, e);
  }
  // In this run's shape: the parent's users and items come first, the new ones have no pairs.
  ps.train.indptr.resize(static_cast<size_t>(d.n_users()) + 1, ps.train.indptr.back());
  ps.train.n_rows = d.n_users();
  ps.train.n_cols = d.n_items();
  out.parent_train = std::move(ps.train);
  out.parent_train_rows = std::move(ps.train_rows);
}
}  // namespace

PreparedData prepare_data(const Config& cfg, Logger& log, bool split, bool sequences, bool train_rows) {
  const auto t0 = std::chrono::steady_clock::now();
  PreparedData p{load_dataset(cfg), {}};
  const double load_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& d = p.data;
  log.line(fmt::format("dataset {}: {} users, {} items, {} interactions ({}; loaded in {:.3f} s)", d.name, d.n_users(),
                       d.n_items(), d.n_interactions(), d.report.summary(), load_secs));
  if (!d.report.from_cache && d.report.parse_seconds > 0)
    log.line(fmt::format("  parsed {} rows in {:.2f} s ({:.2f} M rows/s), cleaned in {:.2f} s; peak memory so far {:.0f} MB",
                         d.report.rows_read, d.report.parse_seconds,
                         static_cast<double>(d.report.rows_read) / d.report.parse_seconds / 1e6, d.report.clean_seconds,
                         peak_rss_mb()));
  else
    log.line(fmt::format("  peak memory so far {:.0f} MB", peak_rss_mb()));
  const bool appending = !cfg.get_string_list("dataset.append").empty();
  if (!split) {
    if (appending)
      for (const auto& note : append_interactions(cfg, p.data).notes) log.line("  " + note);
    return p;
  }
  const auto t1 = std::chrono::steady_clock::now();
  p.split = split_dataset(p.data, cfg, sequences);
  Appended app;
  if (appending) {
    // New interactions (rzoo update): after the split, all of them training rows.
    app = append_interactions(cfg, p.data);
    for (const auto& note : app.notes) log.line("  " + note);
    const bool newest = cfg.get_choice("dataset.append_valid", {"run", "newest"}) == "newest";
    Split base = std::move(p.split);
    p.split = extend_split(p.data, base, app.base_rows, newest ? app.files.back().first : 0,
                           newest ? app.files.back().second : 0);
    parent_split(cfg, p.data, base, app, p.split);
  }
  const double replay = cfg.get_double("train.replay");
  if (replay != -1.0 && !(replay >= 0 && std::isfinite(replay)))
    cfg.bad("train.replay", fmt::format("expected a number >= 0, or -1 for every training pair; got {}", replay));
  if (replay >= 0 && !cfg.get_string("train.init_from").empty()) {
    if (!appending)
      cfg.bad("train.replay", "replays old pairs beside the new ones of the last dataset.append file, and there is none "
                              "(set train.replay: -1 to train on every pair)");
    const auto [b, e] = app.files.back();
    replay_subset(p.split, p.data, b, e, replay, static_cast<uint64_t>(cfg.get_int("seed", 0)));
    log.line(fmt::format("  train.replay {}: each epoch goes over the {} new training pairs and {} of the {} others",
                         replay, p.split.replay_new, p.split.replay_old, p.split.train.nnz() - p.split.replay_new));
  }
  if (!sequences) {  // after the replay subset, which is made from them
    p.split.train_seq = Sequences{};
    p.split.epoch_seq = Sequences{};
  }
  p.data.release_mapped_pages();  // the split has read the interaction table; see Dataset
  const double split_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  log.line(fmt::format("split {} (seed {}): train {} / valid {} / test {} interactions{} ({:.2f} s)", p.split.method,
                       cfg.get_int("dataset.split.seed"), p.split.train_rows.size(), p.split.valid_rows.size(),
                       p.split.test_rows.size(),
                       p.split.test_negatives.nnz() > 0 ? fmt::format(", {} given test negatives", p.split.test_negatives.nnz()) : "",
                       split_secs));
  if (!train_rows) release_train_rows(p.split);  // after the log line, which counts them
  // Loading and splitting freed blocks between others that stay: those pages go back to the
  // system before the model allocates its own (W3's iALS run, bench/peers: peak RSS 193.4 ->
  // 190.3 MB).
  trim_heap_if_due(0.0);
  return p;
}

namespace {

std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

std::string unique_dir(const fs::path& base) {
  fs::path p = base;
  for (int i = 2; fs::exists(p); ++i) p = base.string() + "-" + std::to_string(i);
  fs::create_directories(p);
  return p.string();
}

void write_ids(const std::string& path, const IdMap& ids) {
  std::string text;
  for (const auto& s : ids.raws()) text += s + "\n";
  write_file_atomic(path, text);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: missing (is this an rzoo run folder?)", path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// train.init_from RUN: its users and items must be the first ones of this run's data, in order
// (dataset.append numbers new ones after them); returns their numbers.
std::pair<int64_t, int64_t> check_init_from(const std::string& run, const Dataset& d) {
  std::error_code ec;
  if (!fs::is_directory(run, ec)) fail("train.init_from {}: no such run folder", run);
  if (!fs::exists(run + "/best.pt", ec))
    fail("train.init_from {}: the run has no best.pt (not finished, or not an rzoo run folder)", run);
  auto check = [&](const char* file, const IdMap& ids, const char* what) {
    const std::vector<std::string> old = read_lines(run + "/" + file);
    if (static_cast<int64_t>(old.size()) > ids.size())
      fail("train.init_from {}: the run has {} {}, this run's data only {} (not the same data plus new interactions)",
           run, old.size(), what, ids.size());
    for (size_t k = 0; k < old.size(); ++k)
      if (old[k] != ids.raw(static_cast<int64_t>(k)))
        fail("train.init_from {}: {} line {} is '{}', this run's data has '{}' there (not the same data plus new "
             "interactions)", run, file, k + 1, old[k], ids.raw(static_cast<int64_t>(k)));
    return static_cast<int64_t>(old.size());
  };
  const int64_t nu = check("users.txt", d.users, "users");
  return {nu, check("items.txt", d.items, "items")};
}

// The fields a model reads from the data now (describe()) against those it was trained with
// (RUN/fields.txt): token vocabularies, float statistics and the fields themselves must agree, or
// the trained rows would be read as other tokens. Runs without fields.txt (no fields) pass.
void check_fields_schema(const std::string& run_dir, const std::vector<std::string>& now) {
  const std::string path = run_dir + "/fields.txt";
  if (!fs::exists(path)) return;
  const std::vector<std::string> saved = read_lines(path);
  if (saved == now) return;
  const size_t n = std::max(saved.size(), now.size());
  for (size_t k = 0; k < n; ++k) {
    const std::string a = k < saved.size() ? saved[k] : "(none)", b = k < now.size() ? now[k] : "(none)";
    if (a != b)
      fail("{}:{}: the data no longer gives the fields this run was trained with: trained '{}', the data now gives "
           "'{}' (dataset.fields and the side-feature files must be those of the training run)",
           path, k + 1, a, b);
  }
}

Json metrics_json_value(const RunResult& r) {
  // "rzoo": the build that wrote the file (for a resumed run, the one that finished it).
  return Json{{"model", r.model},          {"best_epoch", r.best_epoch}, {"epochs_run", r.epochs_run},
              {"train_seconds", json_rounded(r.train_seconds, 4)}, {"valid", r.valid.json()}, {"test", r.test.json()},
              {"rzoo", build_string()}};
}

std::string metrics_json(const RunResult& r) { return json_dump(metrics_json_value(r), 2) + "\n"; }

// Metric names ("ndcg@10") grouped by K, in first-seen order; metrics without K ("auc") form
// the group "-".
std::vector<std::pair<std::string, std::vector<std::string>>> by_k(const EvalResult& r) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& [name, v] : r.metrics) {
    const auto at = name.find('@');
    const std::string k = at == std::string::npos ? "-" : name.substr(at + 1);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == k; });
    if (it == out.end()) out.push_back({k, {}}), it = out.end() - 1;
    it->second.push_back(name);
  }
  return out;
}

}  // namespace

std::string eval_table(const EvalResult& res) {
  // A row per K; metrics without K (auc, rmse, ...) in a last row "all".
  const auto groups = by_k(res);
  if (groups.empty()) return "";
  std::vector<std::string> bases;
  for (const auto& [name, v] : res.metrics)
    if (std::find(bases.begin(), bases.end(), name.substr(0, name.find('@'))) == bases.end())
      bases.push_back(name.substr(0, name.find('@')));
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header{"K"};
  header.insert(header.end(), bases.begin(), bases.end());
  rows.push_back(header);
  for (const auto& [k, names] : groups) {
    std::vector<std::string> row{k == "-" ? "all" : "@" + k};
    for (const auto& b : bases) {
      const std::string n = k == "-" ? b : b + "@" + k;
      row.push_back(res.has(n) ? fmt::format("{:.4f}", res.get(n)) : "");
    }
    rows.push_back(row);
  }
  std::stable_partition(rows.begin() + 1, rows.end(), [](const auto& r) { return r[0] != "all"; });
  return fmt::format("{} ({} users; {})\n", res.split, res.n_users, res.protocol) + render_table(rows, false);
}

namespace {
// A generated folder name's part (a model or dataset name) as one safe path component: only
// letters, digits, '-', '_' and '.' survive, so `dataset.name=../../x` cannot leave output_dir.
std::string safe_component(const std::string& s) {
  std::string out;
  for (const char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  if (out.empty() || out == "." || out == "..") out = std::string(std::max<size_t>(out.size(), 1), '_');
  return out;
}

// `s` printable on one line: control characters as \n, \t or \xNN.
std::string escaped(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return out;
}
}  // namespace

void check_run_name(const Config& cfg) {
  const std::string name = cfg.get_string("run_name");
  if (name.empty()) return;  // "" = the generated name
  std::string why;
  if (name == "." || name == "..") why = "is not a folder name";
  else if (name.find('/') != std::string::npos) why = "contains '/'";
  else if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    why = "contains a control character";
  // The run folder must stay a single folder directly under output_dir.
  if (!why.empty())
    cfg.bad("run_name", fmt::format("'{}' ({}); it must be one folder name under output_dir (no '/', not '.' or '..', "
                                    "no control characters), or \"\" for <model>-<dataset>-<time>",
                                    escaped(name), why));
}

std::string new_run_dir(const Config& cfg, const std::string& parent) {
  check_run_name(cfg);
  std::string name = cfg.get_string("run_name");
  if (name.empty())
    name = fmt::format("{}-{}-{}", safe_component(cfg.get_string("model.name")),
                       safe_component(cfg.get_string("dataset.name")), timestamp());
  const fs::path base = parent.empty() ? fs::path(cfg.get_string("output_dir")) / name : fs::path(parent) / name;
  return unique_dir(base);
}

namespace {
// Per-user values (and with eval.save_rankings the rankings and item facts) beside metrics.json.
void write_eval_files(const RunResult& r, const PreparedData& p, const EvalOptions& eval, const std::string& run_dir) {
  for (const EvalResult* e : {&r.valid, &r.test}) {
    write_user_values(*e, fmt::format("{}/{}.users.csv", run_dir, e->split));
    if (eval.save_rankings) write_rankings(*e, fmt::format("{}/{}.rankings.tsv", run_dir, e->split));
  }
  if (eval.save_rankings) write_item_facts(p.split, &p.data, eval, run_dir + "/items.tsv");
}
}  // namespace

namespace {
// Was a validation part asked for? (A split may deliberately have none: then training runs its
// epochs without early stopping.)
bool validation_asked(const Config& cfg) {
  const std::string method = cfg.get_string("dataset.split.method");
  if (method == "random" || method == "temporal") {
    const YAML::Node cut = cfg.node("dataset.split.cut");
    if (method == "temporal" && cut.IsSequence() && cut.size() == 2) return cut[0].Scalar() != cut[1].Scalar();
    const auto r = cfg.get_double_list("dataset.split.ratios");
    return r.size() < 2 || r[1] > 0;
  }
  if (method == "leave_last") return cfg.get_int("dataset.split.valid_k") > 0;
  if (!cfg.get_string("dataset.split.valid_path").empty()) return true;
  return cfg.get_string("dataset.split.valid") != "none" &&
         (cfg.get_int("dataset.split.valid_k") > 0 || cfg.get_double("dataset.split.valid_ratio") > 0);
}
}  // namespace

bool check_evaluable(const Config& cfg, const Split& split, bool allow_empty) {
  std::vector<std::string> empty;
  if (validation_asked(cfg) && split.valid.nnz() == 0) empty.push_back("valid");
  if (split.test.nnz() == 0) empty.push_back("test");
  if (empty.empty()) return false;
  const std::string parts = empty.size() == 2 ? "valid and test parts" : "'" + empty[0] + "' part";
  const std::string what = fmt::format("the {} of the split ({}) {} no user with a target: {} metrics would be NaN",
                                       parts, split.method, empty.size() == 2 ? "have" : "has",
                                       empty.size() == 2 ? "their" : "its");
  if (!allow_empty)
    fail("{}; change dataset.split (or the data), or pass --allow-empty to run anyway (exit status 3)", what);
  // Loud: on stderr even with --quiet, and the exit status says so too.
  std::cerr << "rzoo: WARNING: " << what << " (--allow-empty given; exit status 3)\n";
  return true;
}

RunResult train_model(const Config& cfg, const PreparedData& p, const std::string& run_dir, Logger& log, bool resume,
                      bool allow_empty, int64_t pause_at_epoch) {
  const std::string name = cfg.get_string("model.name");
  if (name.empty()) fail("model.name is not set: name a model in the experiment (model: bpr) or with --set model=NAME");
  // The runtime, the model and the trainer are built before anything is written: a config error
  // (a bad model option, say) must not leave a half-made run folder behind. A folder reserved
  // for this run by new_run_dir and still empty is removed on such an error.
  std::optional<Trainer> trainer;
  Recommender model{nullptr};
  EvalOptions eval;
  c10::Device device(c10::kCPU);
  bool empty_split = false;
  try {
    check_distributed_data(p);
    empty_split = check_evaluable(cfg, p.split, allow_empty);
    device = setup_runtime(cfg);
    const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed", 0));
    torch::manual_seed(seed);
    // Before the model allocates anything: a size nobody bounded fails here, not in the OOM killer.
    check_memory_estimate(cfg, p.data.n_users(), p.data.n_items());
    ModelContext ctx{p.data.n_users(), p.data.n_items(), &cfg, &p.data, &p.split};
    model = make_model(name, ctx);
    // Size-like keys against the data (eval.ks, train.neg_per_pos): before anything is trained.
    const InputType in = model->input_type();
    if (in == InputType::Sequence && p.split.train_seq.n_rows != p.data.n_users())
      fail("model {} trains on sequences, and the data was prepared without them (prepare_data(..., sequences = "
           "false)); its class must declare kSequenceInput (models/registry.h)", name);
    if (p.split.train_rows_released && model_reads_train_rows(name))
      fail("model {} reads the training rows, and the data was prepared without them (prepare_data(..., train_rows = "
           "false)); only a class that declares kReadsTrainRows = false runs so (models/registry.h)", name);
    int64_t max_seen = 0;
    for (int64_t u = 0; u < p.split.train.n_rows; ++u) max_seen = std::max(max_seen, p.split.train.row_size(u));
    check_data_bounds(cfg, p.data.n_items(),
                      in == InputType::Pointwise || in == InputType::Pairwise || in == InputType::Sequence, max_seen);
    eval = EvalOptions::from_config(cfg);
    TrainOptions topt = TrainOptions::from_config(cfg);
    if (!topt.init_from.empty()) std::tie(topt.init_users, topt.init_items) = check_init_from(topt.init_from, p.data);
    trainer.emplace(model, p.split, topt, eval, device, run_dir, log, &p.data);
  } catch (...) {
    std::error_code ec;
    if (writes_files() && !resume && fs::is_directory(run_dir, ec) && fs::is_empty(run_dir, ec)) fs::remove(run_dir, ec);
    throw;
  }
  // Distributed: rank 0 writes the run folder; the other ranks only read it (--resume).
  const bool writer = writes_files();
  if (writer) {
    fs::create_directories(run_dir);
    // The temporary files of a write that was killed (kill -9, power loss) in this folder: every
    // file of a run folder is rzoo's, so those of dead processes go.
    remove_stale_temps(run_dir, [](const std::string&) { return true; });
    log.open(run_dir + "/train.log");
  }
  // A run stopped before its first checkpoint was written (a full disk, a kill while it set up)
  // has nothing to resume from: --resume starts it at epoch 0 from its own config.yaml, which
  // gives what an uninterrupted run would (epoch 0 depends on the seed alone). A run that has a
  // best.pt or metrics.json but lost its last.pt is not that: resume() refuses it by name.
  const bool fresh_start = resume && !fs::exists(run_dir + "/last.pt") && !fs::exists(run_dir + "/best.pt") &&
                           !fs::exists(run_dir + "/metrics.json");
  if (fresh_start && writer) {
    log.line(fmt::format("{}/last.pt: no checkpoint yet (the run stopped before its first one was written): "
                         "starting it at epoch 0 from its config.yaml", run_dir));
    if (!fs::exists(run_dir + "/users.txt")) write_ids(run_dir + "/users.txt", p.data.users);
    if (!fs::exists(run_dir + "/items.txt")) write_ids(run_dir + "/items.txt", p.data.items);
  }
  if (!resume && writer) {
    write_file_atomic(run_dir + "/config.yaml", cfg.dump());
    write_ids(run_dir + "/users.txt", p.data.users);
    write_ids(run_dir + "/items.txt", p.data.items);
  }
  log.line(fmt::format("run {}: model {} on {} | device {} | {} threads{}", run_dir, name, p.data.name, device.str(),
                       torch::get_num_threads(),
                       Distributed::get() ? fmt::format(" | {} processes (distributed)", Distributed::get()->world()) : ""));
  log.line("rzoo " + build_string());  // each start and resume: the build that trained what follows
  if (const auto facts = model->describe(); !facts.empty()) {
    std::string text;
    for (const auto& f : facts) log.line(f), text += f + "\n";
    if ((!resume || fresh_start) && writer) write_file_atomic(run_dir + "/fields.txt", text);
  }
  if (resume && !fresh_start) trainer->resume();
  RunResult r;
  r.model = name;
  r.run_dir = run_dir;
  r.empty_split = empty_split;
  if (pause_at_epoch > 0) {
    if (trainer->epoch() < pause_at_epoch) trainer->fit(pause_at_epoch - trainer->epoch());
    if (!trainer->done()) {
      // A rung of successive halving ends here: the tuner reads pause.json, and either stops this
      // trial or resumes it (last.pt) for more epochs. Nothing is evaluated on test.
      r.paused = true;
      r.best_epoch = trainer->best_epoch();
      r.epochs_run = trainer->epoch();
      r.train_seconds = trainer->train_seconds();
      Json j;
      j["epoch"] = r.epochs_run;
      j["best_epoch"] = r.best_epoch;
      j["best_valid"] = json_number(trainer->best_valid());
      j["metric"] = cfg.get_string("train.early_stop.metric");
      j["train_seconds"] = json_rounded(r.train_seconds, 6);
      if (writer) write_file_atomic(run_dir + "/pause.json", json_dump(j) + "\n");
      log.line(fmt::format("paused after epoch {} (--pause-at-epoch {}); best {} {:.4f} at epoch {}; continue with "
                           "rzoo train --resume {}", r.epochs_run, pause_at_epoch, j["metric"].get<std::string>(),
                           trainer->best_valid(), r.best_epoch, run_dir));
      log.close();
      return r;
    }
  } else {
    trainer->fit();
  }
  trainer->restore_best();

  r.best_epoch = trainer->best_epoch();
  r.epochs_run = trainer->epoch();
  r.train_seconds = trainer->train_seconds();
  r.valid = evaluate(*model, p.split, Target::Valid, eval, device, &p.data);
  r.test = evaluate(*model, p.split, Target::Test, eval, device, &p.data);
  log.line(fmt::format("best epoch {} of {}; {:.2f} s training", r.best_epoch, r.epochs_run, r.train_seconds));
  log.line(eval_table(r.valid));
  log.result(eval_table(r.test));
  if (!writer) return r;
  write_eval_files(r, p, eval, run_dir);
  write_file_atomic(run_dir + "/metrics.json", metrics_json(r));
  {
    std::error_code ec;  // a paused rung's marker is stale once the run is complete
    fs::remove(run_dir + "/pause.json", ec);
  }
  log.close();
  return r;
}

bool is_runtime_set(const std::string& set) {
  const std::string key = set.substr(0, set.find('='));
  return key == "threads" || key == "device";
}

std::string eval_folder_name(const std::vector<std::string>& eval_sets) {
  std::string tag = "eval";
  for (const auto& s : eval_sets) {
    tag += "-";
    for (const char c : s.substr(s.rfind("eval.", 0) == 0 ? 5 : 0))
      tag += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ? c : '-';
  }
  return tag;
}

std::unique_ptr<OpenedRun> open_run(const std::string& run_dir, Logger& log, const std::vector<std::string>& eval_sets) {
  const std::string cfg_path = run_dir + "/config.yaml";
  if (!fs::is_directory(run_dir)) fail("{}: no such run folder", run_dir);
  if (!fs::exists(cfg_path)) fail("{}: not an rzoo run folder (no config.yaml)", run_dir);
  if (!fs::exists(run_dir + "/best.pt")) fail("{}: the run has no best.pt yet (train it first, or --resume it)", run_dir);
  const Config trained = load_resolved_config(cfg_path);  // the training settings, as run
  Config loaded = trained;
  for (const auto& s : eval_sets) {
    if (s.rfind("eval.", 0) != 0 && !is_runtime_set(s))
      fail("--set {}: only eval.* settings (and threads, device: where it runs) can change when re-evaluating a run "
           "(other keys would change the model or its data; train a new run instead)", s);
    loaded = loaded.with_set(s);
  }
  auto r = std::make_unique<OpenedRun>(OpenedRun{std::move(loaded), {}, nullptr, c10::Device(c10::kCPU), 0, 0, 0});
  const Config& cfg = r->cfg;
  r->device = setup_runtime(cfg);
  r->data = prepare_data(cfg, log);
  const PreparedData& p = r->data;
  check_distributed_data(p);
  if (read_lines(run_dir + "/users.txt") != p.data.users.raws() || read_lines(run_dir + "/items.txt") != p.data.items.raws())
    fail("{}: the data files no longer give the users and items this run was trained on", run_dir);
  ModelContext ctx{p.data.n_users(), p.data.n_items(), &cfg, &p.data, &p.split};
  r->model = make_model(cfg.get_string("model.name"), ctx);
  check_fields_schema(run_dir, r->model->describe());
  // The trainer only restores the checkpoint: it reads the run's own settings (its early-stopping
  // metric need not be among overridden eval settings).
  Trainer trainer(r->model, p.split, TrainOptions::from_config(trained), EvalOptions::from_config(trained), r->device, run_dir,
                  log, &p.data);
  if (fs::exists(run_dir + "/last.pt")) trainer.resume(/*announce=*/false, /*to_train=*/false);  // best epoch, epochs, seconds
  trainer.restore_best();
  r->best_epoch = trainer.best_epoch();
  r->epochs_run = trainer.epoch();
  r->train_seconds = trainer.train_seconds();
  return r;
}

RunResult evaluate_run(const std::string& run_dir, Logger& log, const std::vector<std::string>& eval_sets,
                       bool allow_empty) {
  const auto o = open_run(run_dir, log, eval_sets);
  const PreparedData& p = o->data;
  check_data_bounds(o->cfg, p.data.n_items(), /*samples_negatives=*/false);  // eval.ks, perhaps overridden
  RunResult r;
  r.empty_split = check_evaluable(o->cfg, p.split, allow_empty);
  r.model = o->cfg.get_string("model.name");
  r.run_dir = run_dir;
  r.best_epoch = o->best_epoch;
  r.epochs_run = o->epochs_run;
  r.train_seconds = o->train_seconds;
  const EvalOptions eval = EvalOptions::from_config(o->cfg);
  r.valid = evaluate(*o->model, p.split, Target::Valid, eval, o->device, &p.data);
  r.test = evaluate(*o->model, p.split, Target::Test, eval, o->device, &p.data);
  log.line(eval_table(r.valid));
  log.result(eval_table(r.test));
  if (!writes_files()) return r;
  std::string out = run_dir;
  // Where it ran (threads, device) does not name the results; evaluation settings do.
  std::vector<std::string> named;
  for (const auto& s : eval_sets)
    if (!is_runtime_set(s)) named.push_back(s);
  if (!named.empty()) {  // e.g. RUN_DIR/eval-protocol-full
    out = run_dir + "/" + eval_folder_name(named);
    fs::create_directories(out);
    write_file_atomic(out + "/config.yaml", o->cfg.dump(true));
  }
  write_eval_files(r, p, eval, out);
  write_file_atomic(out + "/eval.json", metrics_json(r));
  if (out != run_dir) log.line(fmt::format("wrote {}/eval.json", out));
  return r;
}

namespace {
// The dotted key of each line of a YAML dump (block mappings, two-space indents), for naming
// where two ranks' configs differ.
std::vector<std::pair<std::string, std::string>> dotted_lines(const std::string& yaml) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::pair<size_t, std::string>> parents;  // (indent, key)
  size_t at = 0;
  while (at < yaml.size()) {
    const size_t end = std::min(yaml.find('\n', at), yaml.size());
    const std::string line = yaml.substr(at, end - at);
    at = end + 1;
    const size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos) continue;
    while (!parents.empty() && parents.back().first >= indent) parents.pop_back();
    const size_t colon = line.find(':', indent);
    std::string key = colon == std::string::npos ? line.substr(indent) : line.substr(indent, colon - indent);
    std::string path;
    for (const auto& pk : parents) path += pk.second + ".";
    path += key;
    out.emplace_back(path, line.substr(indent));
    if (colon != std::string::npos && line.find_first_not_of(' ', colon + 1) == std::string::npos)
      parents.emplace_back(indent, key);
  }
  return out;
}
}  // namespace

void start_distributed(const Config& cfg, Logger& log) {
  const DistEnv env = dist_env_from_environment();
  if (!env.present || env.world <= 1) return;
  const std::string backend = cfg.get_choice("distributed.backend", {"auto", "gloo", "nccl"});
  const double timeout = cfg.get_double("distributed.timeout", 1.0, 1e7);
  // The device the run's tensors will live on (as setup_runtime resolves it): nccl needs CUDA.
  const std::string device = cfg.get_string("device");
  const bool cuda = device != "cpu" && torch::cuda::is_available();
  Distributed::init(env, backend, cuda, timeout);
  Distributed& d = *Distributed::get();
  if (!d.root()) log.silence();
  // Every rank must run the same experiment: the resolved configs (without where each value was
  // set, which may differ between machines' paths) compared with rank 0's.
  const auto texts = d.gather_texts("config", cfg.dump(/*with_origins=*/false));
  for (int r = 1; r < d.world(); ++r) {
    if (texts[static_cast<size_t>(r)] == texts[0]) continue;
    const auto a = dotted_lines(texts[0]), b = dotted_lines(texts[static_cast<size_t>(r)]);
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    const std::string key = i < a.size() ? a[i].first : i < b.size() ? b[i].first : "?";
    fail("distributed: rank {}'s resolved config differs from rank 0's at '{}' (rank 0: {}; rank {}: {}); every rank "
         "must be started with the same config and --set", r, key, i < a.size() ? a[i].second : "(absent)", r,
         i < b.size() ? b[i].second : "(absent)");
  }
  log.line(fmt::format("distributed: {} processes, {} process group over {}:{} (distributed.timeout {} s); rank 0 "
                       "logs and writes the run folder", d.world(), d.backend() == "nccl" ? "NCCL" : "Gloo", env.addr,
                       env.port, timeout));
}

void check_distributed_data(const PreparedData& p) {
  Distributed* d = Distributed::get();
  if (!d) return;
  const auto digest = [](const auto& fill) {
    Sha256 h;
    fill(h);
    return h.hex().substr(0, 16);
  };
  const auto ids = [&](const IdMap& m) {
    return digest([&](Sha256& h) {
      for (const auto& s : m.raws()) h.update(s.data(), s.size() + 1);  // with the terminating NUL as separator
    });
  };
  const auto csr = [&](const Csr& c) {
    return digest([&](Sha256& h) {
      h.update(&c.n_rows, sizeof(c.n_rows));
      h.update(&c.n_cols, sizeof(c.n_cols));
      h.update(c.indptr.data(), c.indptr.size() * sizeof(int64_t));
      h.update(c.indices.data(), c.indices.size() * sizeof(Csr::Index));
    });
  };
  const std::vector<std::pair<std::string, std::string>> mine{{"users", ids(p.data.users)},
                                                              {"items", ids(p.data.items)},
                                                              {"train", csr(p.split.train)},
                                                              {"valid", csr(p.split.valid)},
                                                              {"test", csr(p.split.test)}};
  // The digests in this fixed order, 16 hex digits each: part k of every rank's text is at 16 k.
  std::string text;
  for (const auto& kv : mine) text += kv.second;
  const auto all = d->gather_texts("data", text);
  for (int r = 1; r < d->world(); ++r)
    for (size_t k = 0; k < mine.size(); ++k) {
      const std::string a = all[0].substr(16 * k, 16), b = all[static_cast<size_t>(r)].substr(16 * k, 16);
      if (a != b)
        fail("distributed: rank {}'s data differ from rank 0's: {} checksum {} against rank 0's {} (every rank must "
             "read the same files with the same dataset settings)", r, mine[k].first, b, a);
    }
}

// unique_dir on rank 0, the same folder on every rank.
std::string shared_unique_dir(const fs::path& base) {
  Distributed* d = Distributed::get();
  if (!d) return unique_dir(base);
  const std::string mine = d->root() ? unique_dir(base) : std::string();
  return d->gather_texts("folder", mine)[0];
}

std::string shared_run_dir(const Config& cfg) {
  Distributed* d = Distributed::get();
  if (!d) return new_run_dir(cfg);
  const std::string mine = d->root() ? new_run_dir(cfg) : std::string();
  return d->gather_texts("run_dir", mine)[0];
}

std::string config_summary(const Config& cfg, const std::string& config_dir) {
  const std::string changes = cfg.dump_changes(config_dir);
  const size_t n = static_cast<size_t>(std::count(changes.begin(), changes.end(), '\n'));
  return fmt::format("config: the {} keys the experiment and --set chose (every key, with where it was set: the run "
                     "folder's config.yaml, or --show-config):\n{}", n, changes.empty() ? std::string() : changes.substr(0, changes.size() - 1));
}

std::vector<RunResult> compare_models(const ConfigSources& sources, Logger& log, std::string* out_dir,
                                      bool allow_empty, bool show_config) {
  const Config base = resolve_config(sources);
  check_run_name(base);  // before anything is written
  start_distributed(base, log);
  const YAML::Node list = base.node("compare");
  if (!list.IsSequence() || list.size() == 0)
    fail("{}: 'compare' must list the models to compare (e.g. compare: [pop, bpr])", sources.experiment.source);
  // The shared dataset and split.
  PreparedData data = prepare_data(base, log);
  check_evaluable(base, data.split, allow_empty);  // before the comparison's folder (warned once)
  check_data_bounds(base, data.data.n_items(), /*samples_negatives=*/false);  // eval.ks, shared by every model
  // What the data and split depend on: dataset.* without the keys only the feature models read
  // (dataset.fields and its options), with the context fields kept, as they are part of the
  // labelled rows prepare_data builds. Compared models may differ in the rest.
  auto dataset_identity = [](const Config& c) {
    YAML::Node ds = YAML::Clone(c.node("dataset"));
    for (const char* k : {"fields", "field_buckets", "history_max"}) ds.remove(k);
    YAML::Node ctx(YAML::NodeType::Sequence);
    for (const auto& f : context_fields(c)) ctx.push_back(f);
    ds["context_fields"] = ctx;
    return YAML::Dump(ds);
  };
  const std::string base_dataset = dataset_identity(base);
  // What makes evaluations comparable: every eval key but the memory and output ones.
  auto eval_identity = [](const Config& c) {
    YAML::Node e = YAML::Clone(c.node("eval"));
    for (const char* k : {"memory_mb", "batch_users", "save_rankings"}) e.remove(k);
    return YAML::Dump(e);
  };
  const std::string base_eval = eval_identity(base);

  std::string stem = base.get_string("run_name");
  if (stem.empty()) stem = fs::path(sources.experiment.source).stem().string() + "-" + timestamp();
  const std::string dir = shared_unique_dir(fs::path(base.get_string("output_dir")) / stem);
  if (out_dir) *out_dir = dir;

  std::vector<RunResult> results;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    YAML::Node overlay(YAML::NodeType::Map);
    if (entry.IsScalar()) {
      overlay["model"]["name"] = entry.Scalar();
    } else if (entry.IsMap()) {
      overlay = YAML::Clone(entry);
      if (!entry["model"].IsDefined()) fail("{}: compare[{}] needs a 'model' key (or just a model name)", sources.experiment.source, i);
    } else {
      fail("{}: compare[{}] must be a model name or a map of overrides", sources.experiment.source, i);
    }
    ConfigSources s = sources;
    s.extra.push_back(Layer{overlay, fmt::format("{} compare[{}]", sources.experiment.source, i), true});
    const Config cfg = resolve_config(s);
    if (dataset_identity(cfg) != base_dataset)
      fail("{}: compare[{}] changes dataset settings; all compared models share one dataset and split (an entry "
           "may change dataset.fields, field_buckets and history_max, but not the context fields)",
           sources.experiment.source, i);
    if (eval_identity(cfg) != base_eval)
      fail("{}: compare[{}] changes eval settings (protocol, metrics, ks, seed, ...); all compared models are "
           "evaluated alike so that their per-user results are paired (set eval in the experiment, not per entry)",
           sources.experiment.source, i);
    const std::string name = cfg.get_string("model.name");
    const int n = ++seen[name];
    const std::string run_name = safe_component(n == 1 ? name : fmt::format("{}-{}", name, n));
    log.line(fmt::format("\n=== compare [{}/{}]: {}", i + 1, list.size(), run_name));
    log.line(show_config ? cfg.dump() : config_summary(cfg, sources.config_dir));
    log.hold_results(true);  // each model's own table is a log line here: the comparison is the result
    RunResult r = train_model(cfg, data, shared_unique_dir(fs::path(dir) / run_name), log, false, allow_empty);
    r.model = run_name;
    results.push_back(std::move(r));
  }
  std::vector<std::string> names;
  std::vector<const EvalResult*> tests;
  std::vector<int64_t> epochs;
  std::vector<double> secs;
  for (const auto& r : results) {
    names.push_back(r.model), tests.push_back(&r.test), epochs.push_back(r.best_epoch), secs.push_back(r.train_seconds);
  }
  const CompareReport report = compare_report(names, tests, epochs, secs, CompareOptions::from_config(base));
  Json all = Json::array();
  for (const auto& r : results) all.push_back(metrics_json_value(r));
  const std::string json = json_dump(all, 2) + "\n";
  const std::string protocol = results[0].test.protocol;
  if (!writes_files()) return results;
  write_file_atomic(dir + "/compare.md", fmt::format("# {}\n\nDataset {}; test split ({} users); {}.\n\n{}", stem, data.data.name,
                                                     results[0].test.n_users, protocol, report_markdown(report)));
  write_file_atomic(dir + "/compare.csv", report_csv(report));
  write_file_atomic(dir + "/compare.tex", report_latex(report));
  write_file_atomic(dir + "/compare.json", json);
  log.hold_results(false);
  log.result(fmt::format("\ncomparison on {} (test split, {} users; {})\n", data.data.name, results[0].test.n_users, protocol));
  log.result(report_text(report));
  log.line(fmt::format("written: {0}/compare.md, compare.csv, compare.tex, compare.json (per-user values: each run's test.users.csv)", dir));
  return results;
}

}  // namespace rzoo
