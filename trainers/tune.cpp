// `rzoo tune` (see tune.h). Grid and random search as in Bergstra & Bengio (JMLR 2012); successive
// halving over epochs as in Jamieson & Talwalkar (AISTATS 2016) and Li et al.'s ASHA (MLSys 2020),
// run synchronously rung by rung so that the same seed always gives the same trials and the same
// promotions (ASHA's asynchronous promotions depend on which trial happens to finish first).
#include "trainers/tune.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/random.h"
#include "core/table.h"
#include "trainers/evaluator.h"
#include "trainers/experiment.h"
#include "trainers/trainer.h"

namespace rzoo {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kMaxTrials = 100000;

// YAML text of a value, one line (lists and maps in flow style).
std::string yaml_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

bool is_range_spec(const YAML::Node& n) {
  if (!n.IsMap() || n.size() != 1) return false;
  const std::string k = n.begin()->first.as<std::string>();
  return k == "uniform" || k == "loguniform" || k == "int" || k == "logint";
}

void read_space(const Config& cfg, const YAML::Node& node, const std::string& prefix, std::vector<SearchDim>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it->first.as<std::string>() : prefix + "." + it->first.as<std::string>();
    const std::string path = "search.space." + key;
    const YAML::Node v = it->second;
    SearchDim d;
    d.key = key;
    if (v.IsSequence()) {
      if (v.size() == 0) cfg.bad(path, "an empty list: give the values to try");
      for (size_t i = 0; i < v.size(); ++i) d.values.push_back(yaml_text(v[i]));
      const std::set<std::string> unique(d.values.begin(), d.values.end());
      if (unique.size() != d.values.size()) cfg.bad(path, fmt::format("a value is listed twice in {}", yaml_text(v)));
    } else if (is_range_spec(v)) {
      const std::string kind = v.begin()->first.as<std::string>();
      const YAML::Node b = v.begin()->second;
      double lo = 0, hi = 0;
      bool ok = b.IsSequence() && b.size() == 2;
      if (ok) {
        try {
          lo = b[0].as<double>();
          hi = b[1].as<double>();
        } catch (const YAML::Exception&) {
          ok = false;
        }
      }
      if (!ok || !std::isfinite(lo) || !std::isfinite(hi))
        cfg.bad(path, fmt::format("{{{}: [low, high]}} needs two finite numbers, got {}", kind, yaml_text(b)));
      if (lo > hi) cfg.bad(path, fmt::format("{}: low {} is above high {}", kind, yaml_text(b[0]), yaml_text(b[1])));
      if ((kind == "loguniform" || kind == "logint") && lo <= 0)
        cfg.bad(path, fmt::format("{}: the low bound must be > 0 (a log scale), got {}", kind, yaml_text(b[0])));
      if ((kind == "int" || kind == "logint") && (lo != std::floor(lo) || hi != std::floor(hi)))
        cfg.bad(path, fmt::format("{}: the bounds must be integers, got {}", kind, yaml_text(b)));
      d.kind = kind == "uniform" ? SearchDim::Kind::Uniform
               : kind == "loguniform" ? SearchDim::Kind::LogUniform
               : kind == "int" ? SearchDim::Kind::Int
                               : SearchDim::Kind::LogInt;
      d.lo = lo;
      d.hi = hi;
    } else if (v.IsMap() && v.size() > 0) {
      // `--set search.space.train.lr=[...]` nests the key: train: {lr: [...]}.
      read_space(cfg, v, key, out);
      continue;
    } else {
      cfg.bad(path, fmt::format("expected a list of values or a range ({{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, "
                                "{{int: [lo, hi]}}, {{logint: [lo, hi]}}), got '{}'", yaml_text(v)));
    }
    out.push_back(std::move(d));
  }
}

std::string draw(const SearchDim& d, Rng& rng) {
  const double u = rng.uniform01();
  switch (d.kind) {
    case SearchDim::Kind::List:
      return d.values[std::min(d.values.size() - 1, static_cast<size_t>(u * static_cast<double>(d.values.size())))];
    case SearchDim::Kind::Uniform:
      return fmt::format("{:.6g}", d.lo + u * (d.hi - d.lo));
    case SearchDim::Kind::LogUniform:
      return fmt::format("{:.6g}", std::exp(std::log(d.lo) + u * (std::log(d.hi) - std::log(d.lo))));
    case SearchDim::Kind::Int:
      return std::to_string(static_cast<int64_t>(d.lo) +
                            std::min(static_cast<int64_t>(d.hi - d.lo), static_cast<int64_t>(u * (d.hi - d.lo + 1))));
    case SearchDim::Kind::LogInt: {
      const double x = std::exp(std::log(d.lo) + u * (std::log(d.hi + 1) - std::log(d.lo)));
      return std::to_string(std::clamp(static_cast<int64_t>(std::floor(x)), static_cast<int64_t>(d.lo), static_cast<int64_t>(d.hi)));
    }
  }
  return "";
}

double grid_size(const std::vector<SearchDim>& space) {
  double n = 1;
  for (const auto& d : space) n *= d.kind == SearchDim::Kind::List ? static_cast<double>(d.values.size()) : INFINITY;
  return n;
}

std::vector<std::vector<std::string>> grid(const std::vector<SearchDim>& space) {
  std::vector<std::vector<std::string>> out{{}};
  for (const auto& d : space) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : out)
      for (const auto& v : d.values) {
        next.push_back(prefix);
        next.back().push_back(d.key + "=" + v);
      }
    out = std::move(next);
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::string fmt_value(double v) { return std::isnan(v) ? std::string() : fmt::format("{:.6f}", v); }

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// A child `rzoo train`, its output appended to log_path.
struct Job {
  int64_t id = 0;  // the caller's: a trial number, a seed
  std::vector<std::string> argv;
  std::string exe;  // the program to exec, when not argv[0] (/proc/self/exe)
  std::string log_path;
  int64_t units = 1;  // work units it stands for (trials, or epochs for halving), for the ETA
};

pid_t spawn(const Job& j) {
  std::vector<char*> argv;
  for (const auto& a : j.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start a trial: fork: {}", std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls until exec. The child dies with the study: a rerun after
    // kill -9 of the study never trains beside an orphan writing the same folder.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int fd = ::open(j.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (null >= 0) ::dup2(null, 0);
    ::execv(j.exe.empty() ? argv[0] : j.exe.c_str(), argv.data());
    // Only async-signal-safe calls: say which program could not start, with errno's number.
    const int err = errno;
    char num[16];
    int n = 0;
    for (int e = err; n < 15 && (e > 0 || n == 0); e /= 10) num[n++] = static_cast<char>('0' + e % 10);
    const char* msg = "rzoo tune: cannot run the trial's program (errno ";
    (void)!::write(2, msg, std::strlen(msg));
    while (n > 0) (void)!::write(2, &num[--n], 1);
    (void)!::write(2, "): ", 3);
    (void)!::write(2, argv[0], std::strlen(argv[0]));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  }
  return pid;
}

// Runs the jobs, at most `parallel` at once; `done(job, exit status)` after each (in this thread).
// On Ctrl-C or SIGTERM the children still running get SIGTERM (they save their last epoch and
// exit) and no new job starts. Returns false when stopped so.
bool run_jobs(const std::vector<Job>& jobs, int64_t parallel, const std::function<void(const Job&, int)>& done,
              const std::function<void(int64_t running)>& tick = {}) {
  auto last_tick = std::chrono::steady_clock::now();
  std::map<pid_t, const Job*> running;
  size_t next = 0;
  bool forwarded = false;
  while (next < jobs.size() || !running.empty()) {
    if (stop_requested() && !forwarded) {
      for (const auto& [pid, job] : running) ::kill(pid, SIGTERM);
      forwarded = true;
    }
    while (!stop_requested() && next < jobs.size() && static_cast<int64_t>(running.size()) < parallel) {
      const Job& j = jobs[next++];
      running.emplace(spawn(j), &j);
    }
    if (running.empty()) break;
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (tick && std::chrono::steady_clock::now() - last_tick > std::chrono::seconds(1)) {
        last_tick = std::chrono::steady_clock::now();
        tick(static_cast<int64_t>(running.size()));
      }
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const Job* j = it->second;
    running.erase(it);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    done(*j, code);
  }
  return !stop_requested();
}

// The last non-empty lines of a child's log (its error message).
std::string log_tail(const std::string& path, size_t lines = 3) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += (out.empty() ? "" : " | ") + all[i];
  return out;
}

// Sets a dotted key in an experiment's YAML (best.yaml), turning `model: bpr` into
// `model: {name: bpr}` where a key below it is set.
void set_path(YAML::Node node, const std::vector<std::string>& parts, size_t i, const YAML::Node& value) {
  if (i + 1 == parts.size()) {
    node[parts[i]] = value;
    return;
  }
  YAML::Node child = node[parts[i]];
  if (!child.IsDefined() || !child.IsMap()) {
    YAML::Node m(YAML::NodeType::Map);
    if (child.IsDefined() && child.IsScalar() && (parts[i] == "model" || parts[i] == "dataset")) m["name"] = child.Scalar();
    set_path(m, parts, i + 1, value);
    node[parts[i]] = m;
    return;
  }
  set_path(child, parts, i + 1, value);
}

void set_assignment(YAML::Node root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  std::vector<std::string> parts;
  std::stringstream ks(assignment.substr(0, eq));
  for (std::string p; std::getline(ks, p, '.');) parts.push_back(p);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(text);
  }
  set_path(root, parts, 0, value);
}

// Relative data paths of the experiment, made absolute as the study resolved them: best.yaml
// lives in the study folder, and must read the same files from wherever it is run.
void absolute_paths(YAML::Node node, const Config& cfg, const std::string& prefix) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    if (it->second.IsMap()) {
      absolute_paths(it->second, cfg, path);
    } else if (is_path_key(key) && it->second.IsScalar() && cfg.has(path)) {
      it->second = cfg.get_string(path);
    }
  }
}

// What a trial folder says about its state.
struct TrialState {
  std::string run;                 // its run folder's name ("" before it has one)
  int64_t cost = 0;                // epochs (or search.resource units) spent on it, all rungs
  int64_t prior_cost = 0;          // search.resource halving: the cost of its earlier rungs' runs...
  double prior_seconds = 0;        // ...and their training seconds
  std::string status = "pending";  // pending | paused | done | failed | stopped
  double value = kNaN;             // best validation value so far (done: of the selected epoch)
  int64_t best_epoch = 0, epochs = 0;
  double seconds = 0;
  std::string error;
  std::string reused_from;  // search.reuse: the finished run it was copied from ("" = trained here)
};

double metric_of(const Json& metrics, const std::string& metric) {
  if (!metrics.contains(metric) || metrics[metric].is_null()) return kNaN;
  return metrics[metric].get<double>();
}

TrialState read_trial(const std::string& dir, const std::string& metric) {
  TrialState s;
  if (exists(dir + "/metrics.json")) {
    const Json j = json_parse(read_text(dir + "/metrics.json"), dir + "/metrics.json");
    s.status = "done";
    s.value = metric_of(j["valid"]["metrics"], metric);
    s.best_epoch = j.value("best_epoch", int64_t{0});
    s.epochs = j.value("epochs_run", int64_t{0});
    s.seconds = j["train_seconds"].is_number() ? j["train_seconds"].get<double>() : 0.0;
    if (exists(dir + "/reused.json"))
      s.reused_from = json_parse(read_text(dir + "/reused.json"), dir + "/reused.json").value("from", std::string());
  } else if (exists(dir + "/pause.json") && exists(dir + "/last.pt")) {
    const Json j = json_parse(read_text(dir + "/pause.json"), dir + "/pause.json");
    s.status = "paused";
    s.value = j["best_valid"].is_number() ? j["best_valid"].get<double>() : kNaN;
    s.best_epoch = j.value("best_epoch", int64_t{0});
    s.epochs = j.value("epoch", int64_t{0});
    s.seconds = j["train_seconds"].is_number() ? j["train_seconds"].get<double>() : 0.0;
  }
  return s;
}

class Study {
 public:
  Study(const TuneOptions& o, Logger& log) : o_(o), log_(log) {}
  StudySummary run();

 private:
  Config resolve(const std::vector<std::string>& extra) const;
  void check_settings();
  void open_folder();
  std::string trial_dir(int64_t t) const { return fmt::format("{}/trial-{:04}", dir_, t); }
  std::vector<std::string> train_argv(const std::string& run_name, const std::vector<std::string>& sets) const;
  // The jobs side by side for a phase of `n` runs (trials, seed runs): search.jobs, at most n, and
  // the study's threads shared between them. n counts the phase's runs, done or not, so a resumed
  // study gives each run the same threads as an uninterrupted one.
  void set_phase_jobs(int64_t n) {
    jobs_ = std::max<int64_t>(1, std::min(jobs_asked_, n));
    threads_ = std::max<int64_t>(1, total_threads_ / (jobs_ * std::max(o_.nproc, 1)));  // per process of a run
  }
  // A job training `run` in the study folder: resumed from its last.pt, else started with `sets`.
  Job job_for(int64_t id, const std::string& run, const std::vector<std::string>& sets) const;
  // What the trials exec: this very program when it is rzoo (/proc/self/exe, which holds even
  // after the file is rebuilt or deleted), so a study's runs all use the build that started it
  // and none fails to start while a linker rewrites the file (exec of a half-written file:
  // EACCES, seen on 2026-12-07 as a study's evaluate job exiting 127).
  std::string exe() const { return o_.rzoo_is_self ? "/proc/self/exe" : std::string(); }
  Job trial_job(int64_t t, const std::string& run, const std::vector<std::string>& extra, int64_t pause_at, int64_t units);
  // Trains the trials `ids` in run folders trial-NNNN<suffix>. pause_at: --pause-at-epoch (0: to
  // the end); target: the epochs (or search.resource) the trials reach; a suffix marks a rung's
  // run of search.resource halving.
  void run_trials(const std::vector<int64_t>& ids, int64_t pause_at, int64_t target, const std::string& phase,
                  const std::string& suffix);
  // state_ of trial t from its run folder `run` (rung_run: one rung's run; its cost adds up).
  void load(int64_t t, const std::string& run, bool rung_run, int64_t target);
  int64_t resource_value(int64_t t) const;  // search.resource in trial t's setting
  void run_grid_or_random();
  void run_halving();
  bool better(double a, double b) const;  // a better than b (NaN is worst)
  void pick_best();
  void write_files();
  void write_best_yaml();
  void run_seeds();
  void link_own_seed(const std::vector<int64_t>& seeds, int64_t own_seed) const;
  std::string setting_text(int64_t t) const;
  // search.reuse: the finished runs (config.yaml + metrics.json) of the folders it names (and
  // of search.base).
  void collect_reuse();
  // search.base: the assignments that study chose (its base's and its own best setting), into
  // base_sets_.
  void read_base(const std::string& base);
  // The assignments chosen so far: search.base's, then this study's best setting (a space of
  // `seed` alone is a placeholder, not a choice).
  std::vector<std::string> chosen_sets() const;
  // When a finished run of search.reuse was trained with the configuration that `run` of this
  // study would train with (`sets`), copies it to DIR/run (reused.json names the source) and
  // returns the source; "" otherwise (and always when DIR/run exists: it is this study's own).
  std::string take_reused(const std::string& run, const std::vector<std::string>& sets);

  const TuneOptions& o_;
  Logger& log_;
  Config base_;
  std::string method_, metric_, resource_;
  bool higher_ = true;
  std::vector<SearchDim> space_;
  std::vector<std::vector<std::string>> settings_;
  std::vector<TrialState> state_;  // [trial - 1]
  std::string dir_;
  int64_t jobs_ = 1, threads_ = 1, best_ = 0;
  int64_t jobs_asked_ = 1, total_threads_ = 1;  // search.jobs and the study's threads, before a phase caps them
  Json rungs_ = Json::array();
  Json test_;
  struct ReuseCandidate {
    std::string dir;                           // the run folder, canonical
    std::map<std::string, std::string> config;  // its config.yaml by key, less the keys that do not change a run
  };
  std::vector<ReuseCandidate> reuse_;
  std::vector<std::string> base_sets_;  // search.base's chosen assignments, applied after --set
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t units_total_ = 0, units_done_ = 0;
  bool interrupted_ = false;
};

Config Study::resolve(const std::vector<std::string>& extra) const {
  ConfigSources s;
  s.experiment = load_layer(o_.config);
  s.config_dir = o_.config_dir.empty() ? find_config_dir(o_.config) : o_.config_dir;
  s.sets = o_.sets;
  s.sets.insert(s.sets.end(), base_sets_.begin(), base_sets_.end());  // search.base's choices win over --set
  s.sets.insert(s.sets.end(), extra.begin(), extra.end());
  return resolve_config(s);
}

bool Study::better(double a, double b) const {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return higher_ ? a > b : a < b;
}

// Every trial's configuration resolves (known keys, right types) and its training and evaluation
// settings read, before any trial runs or the study folder is touched.
void Study::check_settings() {
  for (size_t t = 0; t < settings_.size(); ++t) {
    std::vector<std::string> sets = settings_[t];
    sets.push_back("train.early_stop.metric=" + metric_);
    try {
      const Config c = resolve(sets);
      (void)TrainOptions::from_config(c);
      (void)EvalOptions::from_config(c);
      if (c.get_string("model.name").empty()) fail("no model named (set `model: NAME` in the experiment)");
    } catch (const Error& e) {
      std::string s;
      for (const auto& a : settings_[t]) s += (s.empty() ? "" : " ") + a;
      fail("search trial {} ({}): {}", t + 1, s, e.what());
    }
  }
}

namespace {
// Every leaf of a YAML tree by dotted path (a list as one flow-style value).
void flatten(const YAML::Node& n, const std::string& path, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      flatten(it->second, path.empty() ? it->first.as<std::string>() : path + "." + it->first.as<std::string>(), out);
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out[path] = e.c_str();
}

// Whether `stored` (a study's study-config.yaml) and `now` describe the same study. Beyond equal
// texts: a key the stored config lacks is one this rzoo added since; it is the same study when that
// key is at its default (set by defaults.yaml or a model or dataset file, not by the experiment or
// --set), or is one of the keys every identity sets alike. A key only in the stored config was
// removed since (nothing can set it any more).
bool same_study(const std::string& stored, const Config& now, const std::string& now_text,
                const std::set<std::string>& neutral_keys, const std::string& config_dir) {
  if (stored == now_text) return true;
  std::map<std::string, std::string> a, b;
  try {
    flatten(YAML::Load(stored), "", a);
  } catch (const YAML::Exception&) {
    return false;
  }
  flatten(now.root(), "", b);
  for (const auto& [key, value] : b) {
    const auto it = a.find(key);
    if (it != a.end()) {
      if (it->second != value) return false;
      continue;
    }
    if (neutral_keys.count(key)) continue;  // set alike for every study's identity
    if (!is_project_default(now.origin(key), config_dir)) return false;
  }
  return true;
}
}  // namespace

void Study::open_folder() {
  // What identifies the study: the resolved configuration, less what only changes speed, the
  // seeds of the final re-runs (adding a seed later keeps every trial; seed-S folders are per seed)
  // and the final runs' extra evaluations.
  const std::vector<std::string> neutral = {"threads=1", "search.jobs=1", "search.seeds=[]", "search.also_eval=[]",
                                            "search.reuse=[]", "search.base="};
  const Config id_config = resolve(neutral);
  const std::string identity = id_config.dump(false);
  const std::string id_file = dir_ + "/study-config.yaml";
  std::error_code ec;
  if (fs::exists(dir_, ec)) {
    const bool ours = fs::exists(id_file, ec);
    std::set<std::string> neutral_keys;
    for (const auto& a : neutral) neutral_keys.insert(a.substr(0, a.find('=')));
    const bool same = ours && same_study(read_text(id_file), id_config, identity, neutral_keys,
                                         o_.config_dir.empty() ? find_config_dir(o_.config) : o_.config_dir);
    if (!same && !fs::is_empty(dir_, ec)) {
      if (!o_.force)
        fail("{}: {}; rerun with --force to move it aside ({}.old-N) and start a new study, or give another --out", dir_,
             ours ? "this study folder was made by another config (study-config.yaml differs)"
                  : "exists and is not an rzoo study folder (no study-config.yaml)",
             dir_);
      std::string aside;
      for (int n = 1;; ++n)
        if (!fs::exists(aside = fmt::format("{}.old-{}", dir_, n), ec)) break;
      fs::rename(dir_, aside);
      log_.line(fmt::format("--force: moved the earlier study to {}", aside));
    }
  }
  fs::create_directories(dir_ + "/logs");
  // Written afresh when it differs only by keys added since (see same_study).
  if (!exists(id_file) || read_text(id_file) != identity) write_file_atomic(id_file, identity);
  log_.open(dir_ + "/tune.log");
}

namespace {
// The keys of a run's configuration that do not change what it trains: where it is written, its
// threads, the progress display, and `search` (read by rzoo tune only).
bool reuse_neutral(const std::string& key) {
  return key == "output_dir" || key == "run_name" || key == "threads" || key == "train.progress" || key == "search" ||
         key.rfind("search.", 0) == 0;
}

std::map<std::string, std::string> run_identity(const YAML::Node& root) {
  std::map<std::string, std::string> m;
  flatten(root, "", m);
  for (auto it = m.begin(); it != m.end();) it = reuse_neutral(it->first) ? m.erase(it) : std::next(it);
  return m;
}

// Puts the assignment KEY=VALUE in `out`: over the same key's earlier one, else at the end.
void put_assignment(std::vector<std::string>& out, const std::string& a) {
  const std::string prefix = a.substr(0, a.find('=') + 1);
  const auto it = std::find_if(out.begin(), out.end(), [&](const std::string& b) { return b.compare(0, prefix.size(), prefix) == 0; });
  if (it != out.end()) *it = a;
  else out.push_back(a);
}

// A setting of `seed` alone is the placeholder space of a one-setting study, not a choice.
bool placeholder_seed(const std::string& key, size_t keys_in_setting) { return key == "seed" && keys_in_setting == 1; }

bool finished_run(const fs::path& d) {
  std::error_code ec;
  return fs::is_regular_file(d / "config.yaml", ec) && fs::is_regular_file(d / "metrics.json", ec);
}

// A run folder copied: checkpoints (rewritten only by rename, never in place) hard-linked where the
// file system allows, everything else copied (train.log and the event file are appended to).
void copy_run(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path dst = to / fs::relative(it->path(), from);
    if (it->is_symlink()) {
      fs::copy_symlink(it->path(), dst);
    } else if (it->is_directory()) {
      fs::create_directories(dst);
    } else if (it->is_regular_file()) {
      std::error_code ec;
      if (it->path().extension() == ".pt") fs::create_hard_link(it->path(), dst, ec);
      if (it->path().extension() != ".pt" || ec) fs::copy_file(it->path(), dst, fs::copy_options::overwrite_existing);
    }
  }
}
}  // namespace

void Study::collect_reuse() {
  std::error_code ec;
  const std::string own = fs::weakly_canonical(dir_, ec).string();
  std::set<std::string> seen;
  // (folder, the key that named it)
  std::vector<std::pair<std::string, std::string>> dirs;
  for (const auto& d : base_.get_string_list("search.reuse")) dirs.emplace_back(d, "search.reuse");
  const std::string based_on = base_.get_string("search.base");
  if (!based_on.empty()) {
    if (fs::weakly_canonical(based_on, ec).string() == own)
      base_.bad("search.base", fmt::format("'{}' is this study's own folder (--out): give the earlier study", based_on));
    dirs.emplace_back(based_on, "search.base");
  }
  for (const auto& [d, key] : dirs) {
    if (!fs::is_directory(d, ec))
      base_.bad(key, fmt::format("'{}': no such folder (give study folders, or run folders, whose finished runs this "
                                 "study may take)", d));
    std::vector<fs::path> runs;
    if (finished_run(d)) {
      runs.push_back(d);
    } else if (fs::is_regular_file(fs::path(d) / "study-config.yaml", ec)) {
      for (const auto& e : fs::directory_iterator(d, ec))
        if (e.is_directory(ec) && finished_run(e.path())) runs.push_back(e.path());
    } else {
      base_.bad(key, fmt::format("'{}': neither a finished run (config.yaml and metrics.json) nor an rzoo study folder "
                                 "(study-config.yaml)", d));
    }
    std::sort(runs.begin(), runs.end());
    for (const auto& r : runs) {
      const std::string c = fs::canonical(r, ec).string();
      if (ec || !seen.insert(c).second || fs::path(c).parent_path().string() == own) continue;  // not this study's own
      try {
        reuse_.push_back({c, run_identity(YAML::LoadFile(c + "/config.yaml"))});
      } catch (const YAML::Exception& e) {
        log_.line(fmt::format("search.reuse: {}/config.yaml: not read ({}); that run is not taken", c, e.what()));
      }
    }
  }
}

std::string Study::take_reused(const std::string& run, const std::vector<std::string>& sets) {
  if (reuse_.empty()) return {};
  const std::string target = dir_ + "/" + run;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(target, ec))) return {};  // this study's own run (finished, or to resume)
  std::vector<std::string> all = sets;
  all.push_back("train.early_stop.metric=" + metric_);  // as train_argv sets it
  const auto want = run_identity(resolve(all).root());
  // A copy cut short by a kill (TARGET.reuse-tmpPID) counts for nothing.
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().filename().string().rfind(run + ".reuse-tmp", 0) == 0) stale.push_back(e.path());
  for (const auto& p : stale) fs::remove_all(p, ec);
  for (const auto& cand : reuse_) {
    if (cand.config != want) continue;
    const std::string tmp = fmt::format("{}.reuse-tmp{}", target, static_cast<long>(::getpid()));
    fs::remove_all(tmp, ec);
    try {
      copy_run(cand.dir, tmp);
    } catch (const fs::filesystem_error& e) {
      fs::remove_all(tmp, ec);
      fail("search.reuse: copying {} to {}: {}", cand.dir, target, e.code().message());
    }
    Json j;
    j["from"] = cand.dir;
    j["why"] = "search.reuse: trained with the same configuration (all but output_dir, run_name, threads, train.progress "
               "and search); copied, not trained again. Its metrics.json names the build that trained it.";
    write_file_atomic(tmp + "/reused.json", json_dump(j) + "\n");
    fs::rename(tmp, target, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      fail("search.reuse: cannot put the copy of {} in place as {}", cand.dir, target);
    }
    return cand.dir;
  }
  return {};
}

void Study::read_base(const std::string& base) {
  const std::string path = base + "/study.json";
  if (!exists(path))
    base_.bad("search.base", fmt::format("'{}': not a study folder of rzoo tune (no study.json)", base));
  const Json st = json_parse(read_text(path), path);
  if (!st.contains("best") || !st["best"].is_object())
    base_.bad("search.base", fmt::format("'{}': that study has no chosen setting yet (finish it first)", base));
  // The assignments in the order chosen; a key chosen again later keeps its latest value.
  base_sets_.clear();
  const auto text = [](const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (st.contains("chosen") && st["chosen"].is_object()) {
    for (const auto& [k, v] : st["chosen"].items()) put_assignment(base_sets_, k + "=" + text(v));
  } else {  // a study of an rzoo before search.base: its best setting
    for (const auto& t : st["trials"])
      if (t["trial"] == st["best"]["trial"])
        for (const auto& [k, v] : t["setting"].items())
          if (!placeholder_seed(k, t["setting"].size())) put_assignment(base_sets_, k + "=" + text(v));
  }
}

std::vector<std::string> Study::chosen_sets() const {
  std::vector<std::string> out = base_sets_;
  if (best_ == 0) return out;
  const auto& own = settings_[static_cast<size_t>(best_ - 1)];
  for (const auto& a : own)
    if (!placeholder_seed(a.substr(0, a.find('=')), own.size())) put_assignment(out, a);
  return out;
}

std::vector<std::string> Study::train_argv(const std::string& run_name, const std::vector<std::string>& sets) const {
  std::vector<std::string> a{o_.rzoo, "train", o_.config, "--quiet"};
  if (!o_.config_dir.empty()) a.insert(a.end(), {"--config-dir", o_.config_dir});
  for (const auto& s : o_.sets) a.insert(a.end(), {"--set", s});
  for (const auto& s : base_sets_) a.insert(a.end(), {"--set", s});
  for (const auto& s : sets) a.insert(a.end(), {"--set", s});
  a.insert(a.end(), {"--set", "output_dir=" + dir_, "--set", "run_name=" + run_name, "--set",
                     "train.early_stop.metric=" + metric_, "--set", fmt::format("threads={}", threads_)});
  if (o_.nproc > 1) a.insert(a.end(), {"--nproc", std::to_string(o_.nproc)});
  return a;
}

Job Study::job_for(int64_t id, const std::string& run, const std::vector<std::string>& sets) const {
  Job j;
  j.id = id;
  j.exe = exe();
  j.log_path = fmt::format("{}/logs/{}.log", dir_, run);
  const std::string dir = dir_ + "/" + run;
  if (exists(dir + "/last.pt")) {
    // Interrupted, or paused by a rung: continue where it stopped (same numbers as uninterrupted).
    j.argv = {o_.rzoo, "train", "--resume", dir, "--quiet", "--set", fmt::format("threads={}", threads_)};
    if (o_.nproc > 1) j.argv.insert(j.argv.end(), {"--nproc", std::to_string(o_.nproc)});
  } else {
    // Never got to its first checkpoint: nothing to keep (a folder left would make `rzoo train`
    // pick RUN-2).
    std::error_code ec;
    fs::remove_all(dir, ec);
    j.argv = train_argv(run, sets);
  }
  return j;
}

Job Study::trial_job(int64_t t, const std::string& run, const std::vector<std::string>& extra, int64_t pause_at,
                     int64_t units) {
  std::vector<std::string> sets = settings_[static_cast<size_t>(t - 1)];
  sets.insert(sets.end(), extra.begin(), extra.end());
  Job j = job_for(t, run, sets);
  j.units = units;
  if (pause_at > 0) j.argv.insert(j.argv.end(), {"--pause-at-epoch", std::to_string(pause_at)});
  return j;
}

std::string Study::setting_text(int64_t t) const {
  std::string s;
  for (const auto& a : settings_[static_cast<size_t>(t - 1)]) s += (s.empty() ? "" : " ") + a;
  return s;
}

int64_t Study::resource_value(int64_t t) const {
  for (const auto& a : settings_[static_cast<size_t>(t - 1)])
    if (a.compare(0, resource_.size() + 1, resource_ + "=") == 0) return std::stoll(a.substr(resource_.size() + 1));
  return base_.get_int(resource_, 0);
}

void Study::load(int64_t t, const std::string& run, bool rung_run, int64_t target) {
  TrialState& s = state_[static_cast<size_t>(t - 1)];
  const int64_t prior_cost = s.prior_cost;
  const double prior_seconds = s.prior_seconds;
  s = read_trial(dir_ + "/" + run, metric_);
  s.prior_cost = prior_cost;
  s.prior_seconds = prior_seconds;
  s.run = s.status == "pending" ? std::string() : run;
  // What the trial cost: epochs trained, or with search.resource the resource of each of its runs.
  if (resource_.empty()) s.cost = s.epochs;
  else s.cost = prior_cost + (s.status == "pending" ? 0 : target > 0 ? target : resource_value(t));
  s.seconds += prior_seconds;
  // A rung's run (search.resource) is complete but the trial may go on: paused until promoted.
  if (rung_run && s.status == "done") s.status = "paused";
}

void Study::run_trials(const std::vector<int64_t>& ids, int64_t pause_at, int64_t target, const std::string& phase,
                       const std::string& suffix) {
  const bool rung_run = !suffix.empty();
  std::vector<std::string> extra;
  if (!resource_.empty() && target > 0) extra.push_back(fmt::format("{}={}", resource_, target));
  std::vector<Job> jobs;
  for (int64_t t : ids) {
    const int64_t units = method_ != "halving"          ? 1
                          : resource_.empty()           ? std::max<int64_t>(1, target - state_[t - 1].epochs)
                                                        : target;
    jobs.push_back(trial_job(t, fmt::format("trial-{:04}{}", t, suffix), extra, pause_at, units));
  }
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done_here = 0, units_here = 0;
  const auto bar = [&](int64_t done, int64_t running, double eta) {
    const int64_t width = 30, filled = units_total_ > 0 ? std::min<int64_t>(width, width * units_done_ / units_total_) : 0;
    log_.progress(fmt::format("[{}{}] {}{} of {} finished, {} running, {} | ETA {}", std::string(static_cast<size_t>(filled), '#'),
                              std::string(static_cast<size_t>(width - filled), ' '), phase, done, jobs.size(), running,
                              fmt_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()),
                              fmt_duration(eta)));
  };
  const bool ok = run_jobs(jobs, jobs_, [&](const Job& j, int code) {
    TrialState& s = state_[static_cast<size_t>(j.id - 1)];
    if (code == 130 || code == 143 || stop_requested()) {
      interrupted_ = true;  // stopped by us: it resumes on the next run
      return;
    }
    if (code != 0 && code != 3) {
      s = TrialState{};
      s.status = "failed";
      s.error = log_tail(j.log_path);
      log_.line(fmt::format("trial {} failed (exit status {}): {} (log: {})", j.id, code, s.error, j.log_path));
    } else {
      load(j.id, fmt::format("trial-{:04}{}", j.id, suffix), rung_run, target);
      if (s.status == "pending") {
        s.status = "failed";
        s.error = "the run wrote neither metrics.json nor pause.json";
      }
    }
    ++done_here;
    units_here += j.units;
    units_done_ += j.units;
    if (s.status == "done" && (best_ == 0 || better(s.value, state_[best_ - 1].value))) best_ = j.id;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = units_here > 0 ? elapsed / static_cast<double>(units_here) *
                                            static_cast<double>(std::max<int64_t>(0, units_total_ - units_done_))
                                      : kNaN;
    log_.line(fmt::format("{}trial {:>3}/{} {:<7} {} | {} {} | epochs {} | best {} (trial {}) | ETA {}", phase, j.id,
                          settings_.size(), s.status, setting_text(j.id), metric_, fmt_value(s.value), s.cost,
                          best_ ? fmt_value(state_[best_ - 1].value) : std::string("-"), best_, fmt_duration(eta)));
    bar(done_here, std::min<int64_t>(jobs_, static_cast<int64_t>(jobs.size()) - done_here), eta);
    write_files();
  }, [&](int64_t running) {
    // The live bar (a terminal only): elapsed time keeps moving while trials train.
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = units_here > 0 ? elapsed / static_cast<double>(units_here) *
                                            static_cast<double>(std::max<int64_t>(0, units_total_ - units_done_))
                                      : kNaN;
    bar(done_here, running, eta);
  });
  if (!ok) interrupted_ = true;
}

void Study::run_grid_or_random() {
  std::vector<int64_t> todo;
  for (size_t t = 1; t <= settings_.size(); ++t) {
    const TrialState& s = state_[t - 1];
    if (s.status != "done") todo.push_back(static_cast<int64_t>(t));
  }
  if (todo.size() < settings_.size())
    log_.line(fmt::format("continuing: {} of {} trials already done", settings_.size() - todo.size(), settings_.size()));
  // search.reuse: a trial whose configuration a finished run elsewhere already trained takes it.
  std::vector<int64_t> train;
  for (int64_t t : todo) {
    const std::string run = fmt::format("trial-{:04}", t), from = take_reused(run, settings_[static_cast<size_t>(t - 1)]);
    if (from.empty()) {
      train.push_back(t);
      continue;
    }
    load(t, run, false, 0);
    const TrialState& s = state_[static_cast<size_t>(t - 1)];
    if (s.status == "done" && (best_ == 0 || better(s.value, state_[best_ - 1].value))) best_ = t;
    log_.line(fmt::format("trial {:>3}/{} reused  {} | {} {} | epochs {} | from {} (the same configuration)", t,
                          settings_.size(), setting_text(t), metric_, fmt_value(s.value), s.cost, from));
  }
  if (train.size() < todo.size()) write_files();
  units_total_ = static_cast<int64_t>(train.size());
  run_trials(train, 0, 0, "", "");
}

// Successive halving. By default over train.epochs: a trial pauses at each rung (pause.json,
// last.pt) and a promoted one resumes where it stopped. With search.resource (a closed-form
// model's iterations, e.g. model.epochs of ials, which fits in one go) each rung trains the trial
// afresh with that key set to the rung's budget, in trial-NNNN-rK (the last rung in trial-NNNN).
void Study::run_halving() {
  const bool by_resource = !resource_.empty();
  const int64_t budget = by_resource ? base_.get_int(resource_, 1) : base_.get_int("train.epochs", 0);
  const int64_t eta = base_.get_int("search.eta", 2, 1000);
  int64_t r0 = base_.get_int("search.min_epochs", 0);
  // Three rungs by default. (A first rung at 1/27 of the budget, tried on BPR, dropped the best
  // setting after 2 epochs: bench/tune_halving.sh.)
  if (r0 == 0) r0 = std::max<int64_t>(1, budget / (eta * eta));
  std::vector<int64_t> targets;
  for (int64_t r = r0; r < budget; r *= eta) targets.push_back(r);
  targets.push_back(budget);  // the last rung trains to the end (early stopping as configured)
  log_.line(fmt::format("successive halving over {}: {} trials, eta {}, rungs at {}", by_resource ? resource_ : "train.epochs",
                        settings_.size(), eta, [&] {
                          std::string s;
                          for (auto t : targets) s += (s.empty() ? "" : ", ") + std::to_string(t);
                          return s;
                        }()));
  // With search.resource the trials' states are rebuilt rung by rung from their rung folders.
  if (by_resource)
    for (auto& s : state_) s = TrialState{};
  // Completed rungs of an earlier run of this study (kept only while they still match).
  std::vector<Json> rungs;
  if (exists(dir_ + "/rungs.json"))
    for (const auto& r : json_parse(read_text(dir_ + "/rungs.json"), dir_ + "/rungs.json")) rungs.push_back(r);
  std::vector<int64_t> members;
  for (size_t t = 1; t <= settings_.size(); ++t) members.push_back(static_cast<int64_t>(t));
  // The work planned, in epochs, for the ETA: each rung's members trained up to its epochs.
  {
    int64_t n = static_cast<int64_t>(members.size()), prev = 0;
    units_total_ = 0;
    for (int64_t target : targets) {
      units_total_ += n * (by_resource ? target : target - prev);
      prev = target;
      n = std::max<int64_t>(1, n / eta);
    }
  }
  for (size_t k = 0; k < targets.size(); ++k) {
    const bool last = k + 1 == targets.size();
    const int64_t prev = k ? targets[k - 1] : 0;
    const std::string suffix = by_resource && !last ? fmt::format("-r{}", k + 1) : std::string();
    if (k < rungs.size() && rungs[k]["epochs"].get<int64_t>() == targets[k] &&
        rungs[k]["members"].get<std::vector<int64_t>>() == members && (last || rungs[k].contains("promoted"))) {
      units_done_ += static_cast<int64_t>(members.size()) * (by_resource ? targets[k] : targets[k] - prev);
      if (by_resource)
        for (int64_t t : members) load(t, fmt::format("trial-{:04}{}", t, suffix), !last, targets[k]);
    } else {
      std::vector<int64_t> todo;
      for (int64_t t : members) {
        if (by_resource) {
          // A rung's run finished before an interruption is read, not run again.
          load(t, fmt::format("trial-{:04}{}", t, suffix), !last, targets[k]);
          const std::string st = state_[t - 1].status;
          if (st != "done" && st != "paused") todo.push_back(t);
        } else if (state_[t - 1].status != "done" && (last || state_[t - 1].epochs < targets[k])) {
          todo.push_back(t);
        } else if (state_[t - 1].status == "paused" && state_[t - 1].epochs > targets[k]) {
          fail("{}: trial {} is paused after epoch {}, past this rung's {} epochs: the study was run with other halving "
               "settings (search.min_epochs, search.eta); rerun with --force to start it again",
               dir_, t, state_[t - 1].epochs, targets[k]);
        }
      }
      run_trials(todo, by_resource || last ? 0 : targets[k], targets[k], fmt::format("rung {} ({} epochs) ", k + 1, targets[k]),
                 suffix);
      if (interrupted_) return;
      if (k == 0 && !by_resource)
        for (int64_t t : members) {
          const TrialState& s = state_[t - 1];
          // One epoch that completed the run: a closed-form model (fit once), not halvable by epochs.
          if (s.status == "done" && s.epochs == 1 && budget > 1 && s.best_epoch == 1 && targets[0] < budget &&
              exists(trial_dir(t) + "/metrics.json") && read_text(trial_dir(t) + "/train.log").find("closed form") != std::string::npos)
            fail("search.method halving: model {} fits in one go (closed form), so halving over train.epochs "
                 "cannot stop it early; set search.resource to the key of its iterations (e.g. model.epochs)",
                 base_.get_string("model.name"));
        }
      Json rung;
      rung["epochs"] = targets[k];
      rung["members"] = members;
      Json values = Json::object();
      for (int64_t t : members) values[std::to_string(t)] = json_number(state_[t - 1].value);
      rung["values"] = values;
      if (!last) {
        // The best 1/eta go on (at least one); ties: the earlier trial; NaN last.
        std::vector<int64_t> order = members;
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return better(state_[a - 1].value, state_[b - 1].value); });
        const size_t keep = std::max<size_t>(1, members.size() / static_cast<size_t>(eta));
        std::vector<int64_t> promoted(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep));
        std::sort(promoted.begin(), promoted.end());
        rung["promoted"] = promoted;
      }
      rungs.resize(k);
      rungs.push_back(rung);
      Json all = Json::array();
      for (const auto& r : rungs) all.push_back(r);
      write_file_atomic(dir_ + "/rungs.json", json_dump(all) + "\n");
    }
    rungs_ = Json::array();
    for (size_t i = 0; i <= k; ++i) rungs_.push_back(rungs[i]);
    if (last) break;
    const std::vector<int64_t> promoted = rungs[k]["promoted"].get<std::vector<int64_t>>();
    for (int64_t t : members) {
      TrialState& s = state_[t - 1];
      if (!std::binary_search(promoted.begin(), promoted.end(), t)) {
        if (s.status == "paused") s.status = "stopped";
      } else if (by_resource) {
        s.prior_cost = s.cost;  // its next run starts afresh; the cost so far stays counted
        s.prior_seconds = s.seconds;
      }
    }
    log_.line(fmt::format("rung {} ({} epochs): {} of {} trials go on", k + 1, targets[k], promoted.size(), members.size()));
    members = promoted;
    write_files();
  }
}

void Study::pick_best() {
  best_ = 0;
  for (size_t t = 1; t <= state_.size(); ++t)
    if (state_[t - 1].status == "done" && (best_ == 0 || better(state_[t - 1].value, state_[best_ - 1].value)))
      best_ = static_cast<int64_t>(t);
}

void Study::write_files() {
  // trials.csv
  std::string csv = "trial,status";
  for (const auto& d : space_) csv += "," + csv_field(d.key);
  csv += "," + csv_field(metric_) + ",best_epoch,epochs,seconds,run\n";
  Json trials = Json::array();
  int64_t total_epochs = 0;
  for (size_t t = 1; t <= state_.size(); ++t) {
    const TrialState& s = state_[t - 1];
    csv += fmt::format("{},{}", t, s.status);
    Json setting = Json::object();
    for (const auto& a : settings_[t - 1]) {
      const std::string k = a.substr(0, a.find('=')), v = a.substr(a.find('=') + 1);
      csv += "," + csv_field(v);
      // Numbers as numbers (the report plots them), everything else as its YAML text.
      char* end = nullptr;
      const long long i = std::strtoll(v.c_str(), &end, 10);
      if (!v.empty() && end == v.c_str() + v.size()) {
        setting[k] = static_cast<int64_t>(i);
      } else {
        const double x = std::strtod(v.c_str(), &end);
        setting[k] = !v.empty() && end == v.c_str() + v.size() && std::isfinite(x) ? Json(x) : Json(v);
      }
    }
    const std::string& run = s.run;
    csv += fmt::format(",{},{},{},{:.3f},{}\n", fmt_value(s.value), s.best_epoch, s.cost, s.seconds, run);
    total_epochs += s.cost;
    Json j;
    j["trial"] = t;
    j["run"] = run;
    j["status"] = s.status;
    j["setting"] = setting;
    j["value"] = json_number(s.value);
    j["best_epoch"] = s.best_epoch;
    j["epochs"] = s.cost;
    j["seconds"] = json_rounded(s.seconds, 3);
    if (!s.error.empty()) j["error"] = s.error;
    if (!s.reused_from.empty()) j["reused_from"] = s.reused_from;
    trials.push_back(j);
  }
  write_file_atomic(dir_ + "/trials.csv", csv);
  Json st;
  st["method"] = method_;
  st["metric"] = metric_;
  st["higher_is_better"] = higher_;
  Json keys = Json::array();
  for (const auto& d : space_) keys.push_back(d.key);
  st["keys"] = keys;
  st["config"] = o_.config;
  st["total_epochs"] = total_epochs;
  st["trials"] = trials;
  if (method_ == "halving") st["rungs"] = rungs_;
  if (best_) {
    Json b;
    b["trial"] = best_;
    b["run"] = fmt::format("trial-{:04}", best_);
    b["value"] = json_number(state_[best_ - 1].value);
    st["best"] = b;
  }
  if (!base_.get_string("search.base").empty()) st["base"] = base_.get_string("search.base");
  if (best_) {
    Json chosen = Json::object();
    for (const auto& a : chosen_sets()) chosen[a.substr(0, a.find('='))] = a.substr(a.find('=') + 1);
    st["chosen"] = chosen;
  }
  if (!test_.is_null()) st["test"] = test_;
  write_file_atomic(dir_ + "/study.json", json_dump(st) + "\n");
}

void Study::write_best_yaml() {
  YAML::Node exp = YAML::Clone(load_layer(o_.config).node);
  exp.remove("search");
  for (const auto& s : o_.sets)
    if (s.rfind("search.", 0) != 0) set_assignment(exp, s);
  for (const auto& s : base_sets_) set_assignment(exp, s);
  for (const auto& a : settings_[best_ - 1]) set_assignment(exp, a);
  absolute_paths(exp, base_, "");
  YAML::Emitter e;
  e << exp;
  const std::string text = fmt::format(
      "# Chosen by `rzoo tune {}` on validation: trial {} of {} ({}), {} {}.\n# Train it with: rzoo train {}/best.yaml\n{}\n",
      o_.config, best_, settings_.size(), setting_text(best_), metric_, fmt_value(state_[best_ - 1].value), dir_, e.c_str());
  write_file_atomic(dir_ + "/best.yaml", text);
}

// seed-S names seed S's run of the chosen setting for every seed: for the study's own seed the
// best trial stands for it, and seed-S is a link to that trial (replaced when the best changes).
void Study::link_own_seed(const std::vector<int64_t>& seeds, int64_t own_seed) const {
  if (std::find(seeds.begin(), seeds.end(), own_seed) == seeds.end()) return;
  const std::string link = fmt::format("{}/seed-{}", dir_, own_seed), target = fmt::format("trial-{:04}", best_);
  std::error_code ec;
  if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec) == target) return;
  if (fs::exists(link, ec) && !fs::is_symlink(link, ec)) return;  // a run folder of that name: keep it
  const std::string tmp = link + ".tmp";
  fs::remove(tmp, ec);
  fs::create_directory_symlink(target, tmp, ec);
  if (!ec) fs::rename(tmp, link, ec);
  if (ec) fail("{}: cannot link it to {}: {}", link, target, ec.message());
}

namespace {
// The test table of some runs: every test metric's mean, sample standard deviation and values.
// Appends its Markdown rows (and, with csv, its CSV rows) and returns it as JSON.
Json test_table(const std::vector<Json>& metrics, const std::vector<std::string>& labels, std::string& md, std::string* csv) {
  md += "| metric | mean | sd |";
  if (csv) *csv += "metric,mean,sd,n";
  for (const auto& label : labels) {
    md += " " + label + " |";
    if (csv) *csv += "," + csv_field(label);
  }
  md += "\n|---|---|---|";
  for (size_t i = 0; i < labels.size(); ++i) md += "---|";
  md += "\n";
  if (csv) *csv += "\n";
  Json table = Json::object();
  for (auto it = metrics[0].begin(); it != metrics[0].end(); ++it) {
    std::vector<double> v;
    for (const auto& m : metrics) v.push_back(metric_of(m, it.key()));
    double mean = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double sd = kNaN;
    if (v.size() > 1) {
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
    }
    md += fmt::format("| {} | {} | {} |", it.key(), fmt_value(mean), fmt_value(sd));
    if (csv) *csv += fmt::format("{},{},{},{}", it.key(), fmt_value(mean), fmt_value(sd), v.size());
    Json vals = Json::array();
    for (double x : v) {
      md += " " + fmt_value(x) + " |";
      if (csv) *csv += "," + fmt_value(x);
      vals.push_back(json_number(x));
    }
    md += "\n";
    if (csv) *csv += "\n";
    Json e;
    e["mean"] = json_number(mean);
    e["sd"] = json_number(sd);
    e["values"] = vals;
    table[it.key()] = e;
  }
  return table;
}
}  // namespace

// The chosen setting with each of search.seeds (the best trial itself stands for its own seed),
// optionally refit on train + validation, optionally also evaluated under search.also_eval; their
// test metrics' mean and spread.
void Study::run_seeds() {
  std::vector<int64_t> seeds = base_.get_int_list("search.seeds", 0);
  const bool refit = base_.get_bool("search.refit");
  const std::vector<std::string> also = base_.get_string_list("search.also_eval");
  const int64_t own_seed = base_.get_int("seed", 0);
  std::vector<std::string> runs;
  std::vector<Job> jobs;
  // Seed runs side by side as search.jobs allows (a one-setting grid's trial ran alone).
  set_phase_jobs(static_cast<int64_t>(std::count_if(seeds.begin(), seeds.end(), [&](int64_t s) { return s != own_seed; })));
  for (int64_t s : seeds) {
    const std::string run = s == own_seed ? fmt::format("trial-{:04}", best_) : fmt::format("seed-{}", s);
    runs.push_back(run);
    if (exists(dir_ + "/" + run + "/metrics.json")) continue;
    std::vector<std::string> sets = settings_[best_ - 1];
    sets.push_back(fmt::format("seed={}", s));
    const std::string from = take_reused(run, sets);
    if (!from.empty()) {
      log_.line(fmt::format("seed {}: reused {} (the same configuration)", s, from));
      continue;
    }
    jobs.push_back(job_for(s, run, sets));
  }
  if (seeds.empty()) runs.push_back(fmt::format("trial-{:04}", best_));
  link_own_seed(seeds, own_seed);
  const std::vector<int64_t> run_seeds = seeds.empty() ? std::vector<int64_t>{own_seed} : seeds;
  auto finish = [&](const Job& j, int code) {
    if (code == 130 || code == 143 || stop_requested()) return;
    if (code != 0 && code != 3) fail("seed {} run failed (exit status {}): {} (log: {})", j.id, code, log_tail(j.log_path), j.log_path);
    log_.line(fmt::format("seed {} done", j.id));
  };
  if (!jobs.empty())
    log_.line(fmt::format("re-running the chosen setting with seeds {}; {} side by side, {} threads each",
                          yaml_text(base_.node("search.seeds")), jobs_, threads_));
  if (!run_jobs(jobs, jobs_, finish)) {
    interrupted_ = true;
    return;
  }
  const std::vector<std::string> validated = runs;
  if (refit) {
    std::vector<Job> rj;
    std::vector<std::string> refit_runs;
    set_phase_jobs(static_cast<int64_t>(runs.size()));
    const std::vector<std::string> refit_sets = base_.get_string_list("search.refit_sets");
    for (size_t i = 0; i < runs.size(); ++i) {
      const int64_t s = run_seeds[i];
      const Json m = json_parse(read_text(dir_ + "/" + runs[i] + "/metrics.json"), runs[i] + "/metrics.json");
      const std::string run = fmt::format("refit-{}", s);
      refit_runs.push_back(run);
      if (exists(dir_ + "/" + run + "/metrics.json")) continue;
      std::vector<std::string> sets = settings_[best_ - 1];
      sets.push_back(fmt::format("seed={}", s));
      sets.insert(sets.end(), refit_sets.begin(), refit_sets.end());
      sets.push_back(fmt::format("train.epochs={}", std::max<int64_t>(1, m.value("best_epoch", int64_t{1}))));
      sets.push_back("train.early_stop.patience=0");
      const std::string from = take_reused(run, sets);
      if (!from.empty()) {
        log_.line(fmt::format("refit {}: reused {} (the same configuration)", s, from));
        continue;
      }
      rj.push_back(job_for(s, run, sets));
    }
    log_.line("refitting on train + validation for the epochs validation chose");
    if (!run_jobs(rj, jobs_, finish)) {
      interrupted_ = true;
      return;
    }
    for (const auto& run : refit_runs) {
      const Json m = json_parse(read_text(dir_ + "/" + run + "/metrics.json"), run + "/metrics.json");
      if (m["valid"].value("n_users", int64_t{0}) > 0)
        fail("{}/{}: search.refit: the refit's split still has {} validation users: search.refit_sets ({}) does not "
             "merge validation into training for this split (dataset.split.method {})",
             dir_, run, m["valid"].value("n_users", int64_t{0}), yaml_text(base_.node("search.refit_sets")),
             base_.get_string("dataset.split.method"));
    }
    runs = refit_runs;
  }
  // search.also_eval: `rzoo evaluate RUN --set ...` of every final run (and, with a refit, of the
  // validated runs too), into RUN/eval-<settings>/ (kept: a rerun of the study reuses it).
  const std::string also_dir = also.empty() ? std::string() : eval_folder_name(also);
  if (!also.empty()) {
    std::vector<Job> ej;
    std::vector<std::string> all = runs;
    if (refit) all.insert(all.end(), validated.begin(), validated.end());
    for (size_t i = 0; i < all.size(); ++i) {
      if (exists(dir_ + "/" + all[i] + "/" + also_dir + "/eval.json")) continue;
      Job j;
      j.id = static_cast<int64_t>(i);
      j.log_path = fmt::format("{}/logs/{}-{}.log", dir_, all[i], also_dir);
      j.exe = exe();
      j.argv = {o_.rzoo, "evaluate", dir_ + "/" + all[i], "--quiet"};  // threads: as the run trained
      for (const auto& a : also) j.argv.insert(j.argv.end(), {"--set", a});
      ej.push_back(j);
    }
    set_phase_jobs(static_cast<int64_t>(all.size()));
    if (!ej.empty()) log_.line(fmt::format("evaluating the final runs with {}", yaml_text(base_.node("search.also_eval"))));
    const bool ok = run_jobs(ej, jobs_, [&](const Job& j, int code) {
      if (code == 130 || code == 143 || stop_requested()) return;
      if (code != 0) fail("rzoo evaluate {} failed (exit status {}): {} (log: {})", all[j.id], code, log_tail(j.log_path), j.log_path);
    });
    if (!ok) {
      interrupted_ = true;
      return;
    }
  }
  // The test tables: the reported runs; with a refit, the validated runs beside them; each also
  // under search.also_eval.
  auto read_test = [&](const std::string& run, const std::string& sub) {
    const std::string file = sub.empty() ? dir_ + "/" + run + "/metrics.json" : dir_ + "/" + run + "/" + sub + "/eval.json";
    return json_parse(read_text(file), file)["test"]["metrics"];
  };
  auto all_of = [&](const std::vector<std::string>& rs, const std::string& sub) {
    std::vector<Json> ms;
    for (const auto& r : rs) ms.push_back(read_test(r, sub));
    return ms;
  };
  auto joined = [](const std::vector<std::string>& rs) {
    std::string s;
    for (const auto& r : rs) s += (s.empty() ? "" : ", ") + r;
    return s;
  };
  std::vector<std::string> labels;
  for (int64_t s : run_seeds) labels.push_back(fmt::format("seed {}", s));
  std::string md = fmt::format("# Test metrics of the setting chosen on validation\n\n`rzoo tune {}`: trial {} ({}), validation {} {}; "
                               "{}; runs: {}.\n\n",
                               o_.config, best_, setting_text(best_), metric_, fmt_value(state_[best_ - 1].value),
                               refit ? "refit on train + validation" : "as validated", joined(runs));
  std::string csv;
  test_ = Json::object();
  test_["metrics"] = test_table(all_of(runs, ""), labels, md, &csv);
  if (refit) {
    md += fmt::format("\n## As validated, before the refit (runs: {})\n\n", joined(validated));
    test_["validated_metrics"] = test_table(all_of(validated, ""), labels, md, nullptr);
  }
  if (!also.empty()) {
    Json a = Json::object();
    a["sets"] = also;
    a["folder"] = also_dir;
    md += fmt::format("\n## With {} (`rzoo evaluate`, {}/)\n\n", yaml_text(base_.node("search.also_eval")), also_dir);
    a["metrics"] = test_table(all_of(runs, also_dir), labels, md, nullptr);
    if (refit) {
      md += fmt::format("\n## With {}, as validated, before the refit\n\n", yaml_text(base_.node("search.also_eval")));
      a["validated_metrics"] = test_table(all_of(validated, also_dir), labels, md, nullptr);
    }
    test_["also_eval"] = a;
  }
  write_file_atomic(dir_ + "/test.md", md);
  write_file_atomic(dir_ + "/test.csv", csv);
  test_["seeds"] = run_seeds;
  test_["runs"] = runs;
  if (refit) test_["validated_runs"] = validated;
  test_["refit"] = refit;
}

StudySummary Study::run() {
  base_ = resolve({});
  if (!base_.get_string("search.base").empty()) {
    read_base(base_.get_string("search.base"));
    base_ = resolve({});
  }
  method_ = base_.get_choice("search.method", {"grid", "random", "halving"});
  const int64_t trials = base_.get_int("search.trials", 1, kMaxTrials);
  metric_ = base_.get_string("search.metric");
  if (metric_.empty()) metric_ = base_.get_string("train.early_stop.metric");
  higher_ = metric_higher_is_better(metric_);
  jobs_asked_ = base_.get_int("search.jobs", 1, 1024);
  resource_ = base_.get_string("search.resource");
  if (!resource_.empty()) {
    if (!base_.has(resource_)) base_.bad("search.resource", fmt::format("no config key '{}'", resource_));
    (void)base_.get_int(resource_, 1);
  }
  (void)base_.get_int("search.seed", 0);
  (void)base_.get_int_list("search.seeds", 0);
  (void)base_.get_bool("search.refit");
  (void)base_.get_string_list("search.refit_sets");
  for (const auto& a : base_.get_string_list("search.also_eval")) {
    if (a.rfind("eval.", 0) != 0 || a.find('=') == std::string::npos)
      base_.bad("search.also_eval", fmt::format("'{}': each entry is an eval.KEY=VALUE assignment (only evaluation "
                                                "settings can change when re-evaluating a run)", a));
    (void)base_.with_set(a);  // an unknown key fails here, before any trial
  }
  if (base_.get_string("model.name").empty())
    fail("{}: no model named; set `model: NAME` (rzoo tune searches one model's settings)", o_.config);
  space_ = parse_space(base_);
  if (space_.empty()) base_.bad("search.space", "empty: give at least one key to search, e.g. {train.lr: [0.001, 0.01]}");
  if (method_ == "halving" && base_.get_int("train.epochs", 0) < 2)
    base_.bad("train.epochs", "successive halving needs a model trained for several epochs (train.epochs >= 2)");
  settings_ = draw_settings(space_, method_, trials, static_cast<uint64_t>(base_.get_int("search.seed", 0)));
  total_threads_ = resolve_threads(base_);
  set_phase_jobs(static_cast<int64_t>(settings_.size()));
  check_settings();

  if (o_.out_dir.empty()) {
    const std::string name = base_.get_string("run_name");
    const std::string stem = fs::path(o_.config).stem().string();
    dir_ = (fs::path(base_.get_string("output_dir")) /
            (!name.empty() ? name : stem.rfind("tune", 0) == 0 ? stem : "tune-" + stem)).string();
  } else {
    dir_ = o_.out_dir;
  }
  collect_reuse();  // its errors come before the study folder is touched
  open_folder();
  log_.line(fmt::format("study {}: {} search of {} trials on validation {} ({} is better); {} side by side, {} threads each{}",
                        dir_, method_, settings_.size(), metric_, higher_ ? "higher" : "lower", jobs_, threads_,
                        o_.nproc > 1 ? fmt::format(" in each of {} processes per trial (--nproc)", o_.nproc) : ""));
  // Which build ran this part of the study (a resumed study may run on a newer one; each run's
  // train.log and metrics.json say which build trained it).
  log_.line("rzoo " + build_string());
  if (!base_sets_.empty()) {
    std::string fixed;
    for (const auto& a : base_sets_) fixed += (fixed.empty() ? "" : " ") + a;
    log_.line(fmt::format("search.base {}: its choices fixed: {}", base_.get_string("search.base"), fixed));
  }
  if (!base_.get_string_list("search.reuse").empty() || !base_.get_string("search.base").empty())
    log_.line(fmt::format("search.reuse: {} finished runs; a run of the same configuration is copied from them, not trained",
                          reuse_.size()));
  state_.assign(settings_.size(), TrialState{});
  for (size_t t = 1; t <= settings_.size(); ++t) load(static_cast<int64_t>(t), fmt::format("trial-{:04}", t), false, 0);
  pick_best();
  write_files();
  if (method_ == "halving") run_halving();
  else run_grid_or_random();
  pick_best();
  write_files();

  StudySummary r;
  r.dir = dir_;
  r.trials = static_cast<int64_t>(settings_.size());
  for (const auto& s : state_) {
    r.done += s.status == "done";
    r.failed += s.status == "failed";
    r.total_epochs += s.cost;
  }
  if (interrupted_) {
    r.interrupted = true;
    log_.line(fmt::format("interrupted: run the same `rzoo tune` command again to continue ({} of {} trials done)", r.done, r.trials));
    return r;
  }
  if (best_ == 0) fail("{}: no trial finished with a validation value (see {}/logs/)", dir_, dir_);
  r.best_trial = best_;
  r.best_value = state_[best_ - 1].value;
  write_best_yaml();
  run_seeds();
  write_files();
  if (interrupted_) {
    r.interrupted = true;
    log_.line("interrupted: run the same `rzoo tune` command again to continue");
    return r;
  }
  log_.line(fmt::format("best: trial {} ({}) with validation {} {}; {} trials done, {} failed, {} epochs in all", best_,
                        setting_text(best_), metric_, fmt_value(r.best_value), r.done, r.failed, r.total_epochs));
  log_.result(read_text(dir_ + "/test.md"));  // the study's result: printed even with --quiet
  log_.line(fmt::format("wrote {0}/trials.csv, {0}/best.yaml, {0}/study.json, {0}/test.md, {0}/test.csv", dir_));
  return r;
}

}  // namespace

std::vector<SearchDim> parse_space(const Config& cfg) {
  std::vector<SearchDim> out;
  const YAML::Node space = cfg.node("search.space");
  if (!space.IsMap()) cfg.bad("search.space", "expected a map of config keys to values or ranges");
  read_space(cfg, space, "", out);
  std::set<std::string> keys;
  for (const auto& d : out)
    if (!keys.insert(d.key).second) cfg.bad("search.space." + d.key, "the key is given twice");
  return out;
}

std::vector<std::vector<std::string>> draw_settings(const std::vector<SearchDim>& space, const std::string& method,
                                                    int64_t trials, uint64_t seed) {
  const double n_grid = grid_size(space);
  if (method == "grid") {
    for (const auto& d : space)
      if (d.kind != SearchDim::Kind::List)
        fail("search.space.{}: a range; method grid takes lists of values (list them, or use method random or halving)",
             d.key);
    if (n_grid > static_cast<double>(kMaxTrials))
      fail("search.space: the grid has {:.0f} combinations, more than {} (use method random or halving)", n_grid, kMaxTrials);
    return grid(space);
  }
  if (n_grid <= static_cast<double>(trials)) return grid(space);  // draws would only repeat the grid
  Rng rng(seed, /*stream=*/0x7475'6e65);  // "tune": its own stream of the seed
  std::vector<std::vector<std::string>> out;
  std::set<std::vector<std::string>> seen;
  while (static_cast<int64_t>(out.size()) < trials) {
    std::vector<std::string> s;
    // A repeated setting is drawn again (a few times: a small space may not have enough).
    for (int attempt = 0; attempt < 100; ++attempt) {
      s.clear();
      for (const auto& d : space) s.push_back(d.key + "=" + draw(d, rng));
      if (!seen.count(s)) break;
    }
    seen.insert(s);
    out.push_back(s);
  }
  return out;
}

StudySummary run_study(const TuneOptions& o, Logger& log) {
  Study s(o, log);
  return s.run();
}

}  // namespace rzoo
