// rzoo: train, evaluate and compare recommender models from YAML.
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <filesystem>
#include <iostream>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "datasets/stats.h"
#include "models/registry.h"
#include "trainers/experiment.h"
#include "trainers/export.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;
using namespace rzoo;

namespace {

constexpr const char* kUsage = R"(usage: rzoo COMMAND [ARGS]

commands:
  train CONFIG [--set KEY=VALUE ...]   train one model (config names `model`); writes a run folder
  train --resume RUN_DIR               continue an interrupted run from its last checkpoint
  evaluate RUN_DIR                     re-evaluate a finished run's best model on valid and test
  compare CONFIG [--set KEY=VALUE ...] train every model listed under `compare` on one split; one table
  models                               list the built-in models
  data stats CONFIG [--set ...] [--json] load CONFIG's dataset and split; print their statistics
  export RUN_DIR --out model.pt        write the run's best model as TorchScript (PyTorch/C++ load it)
  recommend --model model.pt --user ID [-k 10]   top-k items for a raw user id (--users-file F: CSV)

options:
  --set KEY=VALUE    override any config key (dotted path, YAML value), e.g. --set train.epochs=5
  --config-dir DIR   folder with defaults.yaml, models/, datasets/ (default: the configs/ folder
                     above CONFIG, else $RZOO_CONFIG_DIR, else the one rzoo was built from)
  --quiet            print nothing but errors (the run folder's train.log still gets everything)
  -h, --help         this help (also after a command)
  --version          print the version

Configuration layers: configs/defaults.yaml < configs/models/<model>.yaml <
configs/datasets/<dataset>.yaml < CONFIG < --set. Exit status: 0 success, 1 error, 2 bad usage,
130 interrupted.
)";

// `rzoo COMMAND --help`.
const char* command_help(const std::string& command) {
  if (command == "train")
    return R"(usage: rzoo train CONFIG [--set KEY=VALUE ...] [--config-dir DIR] [--quiet]
       rzoo train --resume RUN_DIR [--set threads=N]

Trains the model named by `model` in CONFIG on its dataset and split, validating every
train.valid_every epochs with early stopping on train.early_stop.metric, then evaluates the best
checkpoint on valid and test. Prints the resolved config first; writes a run folder under
output_dir (config.yaml, train.log, last.pt, best.pt, metrics.json, users.txt, items.txt).
--resume continues an interrupted run from RUN_DIR/last.pt with the run's own config.yaml and
ends with the same numbers as an uninterrupted run (--set threads=N, the only key it takes, changes
the thread count). Ctrl-C stops after the current batch; the
last complete epoch stays saved.
)";
  if (command == "evaluate")
    return R"(usage: rzoo evaluate RUN_DIR [--set eval.KEY=VALUE ...]

Rebuilds the run's dataset and split from RUN_DIR/config.yaml (checking that users and items are
unchanged), loads RUN_DIR/best.pt and evaluates it on valid and test; writes RUN_DIR/eval.json.
--set changes evaluation settings only (e.g. --set eval.protocol=full to rank every item after
training under a sampled protocol); the results then go to RUN_DIR/eval-<settings>/.
)";
  if (command == "compare")
    return R"(usage: rzoo compare CONFIG [--set KEY=VALUE ...] [--config-dir DIR] [--quiet]

Trains every entry of CONFIG's `compare` list on one dataset and split and prints one table of
test metrics, a row per (K, model). An entry is a model name (pop) or a map of overrides applied after CONFIG
({model: {name: bpr, embedding_size: 32}, train: {lr: 0.01}}). --set applies to every entry.
Writes compare.md and compare.json beside the runs' folders.
)";
  if (command == "data")
    return R"(usage: rzoo data stats CONFIG [--set KEY=VALUE ...] [--json] [--no-split] [--config-dir DIR]

Loads the dataset of CONFIG (reader, cleaning and cache as configured under `dataset`), splits
it, and prints users, items, interactions, density, interactions per user and per item (min,
median, p90, max, mean), the Gini coefficient of item popularity, the time span, ratings, side
features, given negatives, what cleaning dropped and the split's sizes. --json prints the same
as JSON on stdout (without the log). --no-split skips splitting. CONFIG may be a dataset file such as
configs/datasets/ml-100k.yaml.
)";
  if (command == "models") return "usage: rzoo models\n\nLists the built-in models with their paper references.\n";
  if (command == "export")
    return R"(usage: rzoo export RUN_DIR --out model.pt

Writes the run's best model as one TorchScript file that torch.jit.load (Python) and
torch::jit::load (C++) load without rzoo. Methods: score(users, items), recommend(users, k) (the
user's known items masked), user_index(raw), item_index(raw), recommend_raw(raw_user, k,
fallback=False). Inside the archive: config.yaml, users.txt, items.txt, metrics.json, rzoo.txt.
The data is rebuilt from RUN_DIR/config.yaml (and must still give the run's users and items).
)";
  if (command == "recommend")
    return R"(usage: rzoo recommend --model model.pt --user RAW_ID [-k 10] [--fallback popular]
       rzoo recommend --model model.pt --users-file FILE [-k 10] [--out recs.csv] [--fallback popular]

Prints the top-k items (raw ids, scores, titles when the data had them) that an exported model
recommends to a user, never one the user already interacted with. --users-file reads one raw
user id per line and writes CSV (user,rank,item,score,title) to --out or stdout. An unknown user
is an error unless --fallback popular, which recommends the most popular items instead.
)";
  return nullptr;
}

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command;
  std::vector<std::string> positional, sets;
  std::string resume, config_dir;
  std::string out, model, user, users_file, fallback, k;
  bool quiet = false, help = false, json = false, no_split = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= argc) throw Usage(flag + " needs a value");
      return argv[++i];
    };
    if (s == "-h" || s == "--help") a.help = true;
    else if (s == "--version") a.command = "version";
    else if (s == "--quiet" || s == "-q") a.quiet = true;
    else if (s == "--set") a.sets.push_back(value(s));
    else if (s.rfind("--set=", 0) == 0) a.sets.push_back(s.substr(6));
    else if (s == "--resume") a.resume = value(s);
    else if (s == "--config-dir") a.config_dir = value(s);
    else if (s == "--json") a.json = true;
    else if (s == "--no-split") a.no_split = true;
    else if (s == "--out" || s == "-o") a.out = value(s);
    else if (s == "--model") a.model = value(s);
    else if (s == "--user") a.user = value(s);
    else if (s == "--users-file") a.users_file = value(s);
    else if (s == "--fallback") a.fallback = value(s);
    else if (s == "-k" || s == "--k") a.k = value(s);
    else if (s.size() > 1 && s[0] == '-') throw Usage("unknown option '" + s + "'");
    else if (a.command.empty()) a.command = s;
    else a.positional.push_back(s);
  }
  return a;
}

ConfigSources sources_for(const Args& a, size_t skip = 0) {
  if (a.positional.size() != 1 + skip) throw Usage(a.command + " takes one CONFIG file");
  ConfigSources s;
  s.experiment = load_layer(a.positional[skip]);
  s.config_dir = a.config_dir.empty() ? find_config_dir(a.positional[skip]) : a.config_dir;
  s.sets = a.sets;
  return s;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find("\nException raised from")); }

void log_line_stderr(const std::string& s, bool quiet) {
  if (!quiet) std::cerr << s << "\n";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// `rzoo recommend`: loads an exported model with torch::jit::load, as any C++ client would.
int recommend(const Args& a) {
  if (a.model.empty()) throw Usage("recommend needs --model FILE (from `rzoo export`)");
  if (a.user.empty() == a.users_file.empty()) throw Usage("recommend needs either --user RAW_ID or --users-file FILE");
  if (!a.positional.empty()) throw Usage("recommend takes no positional arguments (use --user or --users-file)");
  if (!a.fallback.empty() && a.fallback != "popular") throw Usage("--fallback takes 'popular', got '" + a.fallback + "'");
  int64_t k = 10;
  if (!a.k.empty()) {
    try {
      size_t used = 0;
      k = std::stoll(a.k, &used);
      if (used != a.k.size()) throw std::invalid_argument(a.k);
    } catch (const std::exception&) {
      throw Usage("-k takes a whole number >= 1, got '" + a.k + "'");
    }
    if (k < 1) throw Usage("-k takes a whole number >= 1, got '" + a.k + "'");
  }
  if (!fs::is_regular_file(a.model)) fail("{}: no such model file", a.model);
  torch::jit::Module m;
  try {
    m = torch::jit::load(a.model, torch::kCPU);
  } catch (const c10::Error& e) {
    fail("{}: not a readable TorchScript model (truncated or damaged?): {}", a.model,
         first_line(e.what_without_backtrace()).substr(0, 300));
  }
  for (const char* method : {"recommend", "user_index"})
    if (!m.find_method(method)) fail("{}: a TorchScript file, but not an rzoo model (no '{}' method)", a.model, method);
  // Errors raised inside the TorchScript interpreter come with its traceback: keep the message.
  auto call = [&](const std::string& method, std::vector<c10::IValue> args) {
    try {
      return m.get_method(method)(std::move(args));
    } catch (const std::exception& e) {
      std::string msg = e.what();
      const auto at = msg.rfind("Error: ");
      if (at != std::string::npos) msg = msg.substr(at + 7);
      fail("{}: {}", a.model, msg.substr(0, msg.find_last_not_of(" \n") + 1));
    }
  };
  const auto item_ids = m.attr("item_ids").toList();
  const auto titles = m.attr("item_titles").toList();
  const bool fallback = a.fallback == "popular";
  std::vector<std::string> users;
  if (!a.user.empty()) {
    users.push_back(a.user);
  } else {
    std::ifstream in(a.users_file);
    if (!in) fail("{}: cannot open users file", a.users_file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) users.push_back(line);
    }
    if (users.empty()) fail("{}: no user ids (one raw user id per line)", a.users_file);
  }
  // Every user first: an unknown one stops before anything is written.
  std::vector<int64_t> index(users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    index[i] = call("user_index", {users[i]}).toInt();
    if (index[i] < 0 && !fallback)
      fail("{}unknown user '{}': the model knows {} users (use --fallback popular to recommend the most popular items)",
           a.users_file.empty() ? "" : fmt::format("{}:{}: ", a.users_file, i + 1), users[i], m.attr("n_users").toInt());
  }
  const at::Tensor pop = m.attr("popularity").toTensor();
  const int64_t n_items = m.attr("n_items").toInt();
  std::string csv = "user,rank,item,score,title\n";
  for (size_t i = 0; i < users.size(); ++i) {
    at::Tensor values, items;
    if (index[i] >= 0) {
      const auto out = call("recommend", {torch::tensor({index[i]}, torch::kLong), k}).toTuple();
      values = out->elements()[0].toTensor()[0];
      items = out->elements()[1].toTensor()[0];
    } else {
      std::tie(values, items) = torch::topk(pop, std::min(k, n_items));
    }
    if (a.users_file.empty())
      std::cout << fmt::format("top {} for user {}{}:\n", k, users[i], index[i] < 0 ? " (unknown: most popular items)" : "");
    int64_t rank = 0;
    for (int64_t j = 0; j < items.size(0); ++j) {
      const float v = values[j].item<float>();
      if (std::isinf(v) && v < 0) break;  // only already-known items are left
      const int64_t it = items[j].item<int64_t>();
      const std::string id = item_ids.get(static_cast<size_t>(it)).toStringRef();
      const std::string title = titles.size() > static_cast<size_t>(it) ? titles.get(static_cast<size_t>(it)).toStringRef() : "";
      ++rank;
      if (a.users_file.empty())
        std::cout << fmt::format("{:>4}  {:<12} {:>10.4f}  {}\n", rank, id, v, title);
      else
        csv += fmt::format("{},{},{},{:.6g},{}\n", csv_field(users[i]), rank, csv_field(id), v, csv_field(title));
    }
  }
  if (!a.users_file.empty()) {
    if (a.out.empty()) std::cout << csv;
    else {
      write_file_atomic(a.out, csv);
      log_line_stderr(fmt::format("wrote {} recommendations for {} users to {}", std::count(csv.begin(), csv.end(), '\n') - 1, users.size(), a.out), a.quiet);
    }
  }
  return 0;
}

int run(const Args& a) {
  if (a.command == "version") {
    std::cout << "rzoo " << rzoo::version() << " (LibTorch " << TORCH_VERSION << ")\n";
    return 0;
  }
  if (a.help && command_help(a.command)) {
    std::cout << command_help(a.command);
    return 0;
  }
  if (a.help || a.command.empty() || a.command == "help") {
    std::cout << kUsage;
    return a.command.empty() && !a.help ? 2 : 0;
  }
  Logger log(a.quiet);
  if (a.command == "models") {
    for (const auto& m : registered_models()) std::cout << fmt::format("{:<8} {}\n         {}\n", m.name, m.description, m.paper);
    return 0;
  }
  if (a.command == "train") {
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
      const PreparedData data = prepare_data(cfg, log);
      train_model(cfg, data, a.resume, log, /*resume=*/true);
      return 0;
    }
    const Config cfg = resolve_config(sources_for(a));
    log.line("resolved config (each value with the file:line that set it):");
    log.line(cfg.dump());
    if (cfg.get_string("model.name").empty())
      fail("{}: no model named; set `model: NAME` (see `rzoo models`), or use `rzoo compare` for a `compare` list",
           a.positional[0]);
    const PreparedData data = prepare_data(cfg, log);
    train_model(cfg, data, new_run_dir(cfg), log);
    return 0;
  }
  if (a.command == "evaluate") {
    if (a.positional.size() != 1) throw Usage("evaluate takes one RUN_DIR");
    evaluate_run(a.positional[0], log, a.sets);
    return 0;
  }
  if (a.command == "compare") {
    compare_models(sources_for(a), log);
    return 0;
  }
  if (a.command == "export") {
    if (a.positional.size() != 1) throw Usage("export takes one RUN_DIR");
    if (a.out.empty()) throw Usage("export needs --out FILE (e.g. --out model.pt)");
    export_run(a.positional[0], a.out, log);
    return 0;
  }
  if (a.command == "recommend") return recommend(a);
  if (a.command == "data") {
    if (a.positional.empty() || a.positional[0] != "stats") throw Usage("data takes a subcommand: data stats CONFIG");
    const Config cfg = resolve_config(sources_for(a, 1));
    Logger quiet_log(true);
    Logger& l = a.json ? quiet_log : log;
    const PreparedData data = prepare_data(cfg, l, !a.no_split);
    const Split* split = a.no_split ? nullptr : &data.split;
    const DataStats st = compute_stats(data.data, split);
    std::cout << (a.json ? stats_json(data.data, st, split) : stats_text(data.data, st, split));
    return 0;
  }
  throw Usage("unknown command '" + a.command + "'");
}


}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, [](int) {
    request_stop();
    std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
  });
  try {
    return run(parse(argc, argv));
  } catch (const Usage& e) {
    std::cerr << "rzoo: " << e.what() << "\n(run `rzoo --help` for usage)\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "rzoo: error: " << e.what() << "\n";
    return stop_requested() ? 130 : 1;
  } catch (const c10::Error& e) {
    std::cerr << "rzoo: error: " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const YAML::Exception& e) {
    std::cerr << "rzoo: error: YAML: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "rzoo: error: " << e.what() << "\n";
    return 1;
  }
}
