// Layered YAML configuration.
//
// A run's configuration is resolved from layers, each overriding the one before:
//   configs/defaults.yaml < configs/models/<model>.yaml < configs/datasets/<dataset>.yaml
//   < the experiment file < per-model entries of `compare` < `--set a.b=value`.
// The defaults file (and, for keys under `model`, the model file) define which keys exist and
// their types; any later layer may only override them. An unknown key or a value of the wrong
// type is an error naming the key path and the file:line that set it. Every key remembers the
// file:line it came from, so the resolved config printed at start says where each value is from.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rzoo {

// One layer: a parsed YAML document and the name of where it came from (file path or "--set").
struct Layer {
  YAML::Node node;
  std::string source;
  bool relative_to_cwd = true;  // relative paths in it are taken from the CWD (else project root)
};

// Parses a YAML file; a syntax error names the file, line and column.
Layer load_layer(const std::string& path);
// Parses YAML text (tests, --set values); `source` names it in errors.
Layer parse_layer(const std::string& text, const std::string& source);

// The folder holding defaults.yaml, models/ and datasets/: `$RZOO_CONFIG_DIR`, else the nearest
// `configs/` above `near_path` that has a defaults.yaml, else an installed one (PREFIX/share/rzoo/configs
// beside PREFIX/bin/ of the running program), else the one rzoo was built from.
std::string find_config_dir(const std::string& near_path = "");

struct ConfigSources {
  std::string config_dir;          // see find_config_dir
  Layer experiment;                // may hold an empty node
  std::vector<Layer> extra;        // applied after the experiment (a `compare` entry)
  std::vector<std::string> sets;   // "a.b=value"; value parsed as YAML
};

class Config {
 public:
  Config() = default;
  Config(YAML::Node root, std::map<std::string, std::string> origins)
      : root_(std::move(root)), origins_(std::move(origins)) {}
  Config(const Config&) = default;  // shares the (never modified) tree
  // yaml-cpp's Node::operator= writes through to the node it refers to, so `b = a.with_set(..)`
  // would change every Config sharing b's tree (a copy b was made from): assignment rebinds.
  Config& operator=(const Config& o) {
    root_.reset(o.root_);
    origins_ = o.origins_;
    return *this;
  }

  const YAML::Node& root() const { return root_; }
  bool has(const std::string& path) const;
  YAML::Node node(const std::string& path) const;  // throws naming the path if absent

  // Typed getters; a bad value is an error naming the path, the value and where it was set.
  int64_t get_int(const std::string& path, int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double get_double(const std::string& path, double min = -1e300, double max = 1e300) const;
  bool get_bool(const std::string& path) const;
  std::string get_string(const std::string& path) const;
  std::string get_choice(const std::string& path, const std::vector<std::string>& choices) const;
  std::vector<int64_t> get_int_list(const std::string& path, int64_t min = INT64_MIN) const;
  std::vector<double> get_double_list(const std::string& path) const;
  std::vector<std::string> get_string_list(const std::string& path) const;

  // "file:line" that set `path` ("" if unknown, e.g. a config read back from a run folder).
  std::string origin(const std::string& path) const;
  // Throws "<origin>: <path>: <message>".
  [[noreturn]] void bad(const std::string& path, const std::string& message) const;

  // A copy with one "a.b=value" assignment (value parsed as YAML) replacing the value of an
  // existing key; an unknown key is an error naming it. For overrides of a resolved config.
  // `origin` replaces "--set <assignment>" as where the value came from.
  Config with_set(const std::string& assignment, const std::string& origin = "") const;

  // YAML text; with origins, each value carries a `# file:line` comment.
  std::string dump(bool with_origins = true) const;
  // The keys a user chose: set by a layer other than config_dir's defaults.yaml, models/*.yaml and
  // datasets/*.yaml (so by the experiment file, a compare entry or --set), plus model.name and
  // dataset.name; one `key: value  # where` line each, dotted keys, in the config's order.
  std::string dump_changes(const std::string& config_dir) const;

 private:
  YAML::Node root_;
  std::map<std::string, std::string> origins_;
};

// Resolves the layers described above. Throws rzoo::Error on any unknown key or wrong type.
Config resolve_config(const ConfigSources& sources);

// A config saved by a run (config.yaml in a run folder), read back without layering.
Config load_resolved_config(const std::string& path);

// rzoo's version ("0.1.0"), the git commit it was built from ("d1161e6", "d1161e6-dirty" with
// uncommitted changes to tracked files, "unknown" when built outside a git checkout), and both as
// runs record them ("0.1.0 (git d1161e6)"). core/version.cpp.
const char* version();
const char* git_id();
std::string build_string();

// Number of threads for `threads` ("auto" = all cores).
int64_t resolve_threads(const Config& cfg);
// Whether an origin ("file:line:column", or "--set ...") is one of the project's own layers in
// config_dir: defaults.yaml, models/*.yaml or datasets/*.yaml (a default, not a user's choice).
bool is_project_default(const std::string& origin, const std::string& config_dir);
// Keys holding file paths (`path`, `*_path`): relative ones are resolved against their layer.
bool is_path_key(const std::string& key);

// The folder `rzoo data fetch` puts datasets in: $RZOO_DATA, else $XDG_CACHE_HOME/rzoo/data, else
// ~/.cache/rzoo/data.
std::string data_home();
// The stamp file inside each fetched dataset folder: lines name, url, digest, dataset format.
// resolve_config uses DATA_HOME/<folder> for a dataset.path `.../<folder>` that does not exist
// when that folder holds a stamp of the same format (a dataset config written for a machine that
// keeps the data elsewhere, e.g. ../shared/data/ml-100k).
inline constexpr const char* kFetchStamp = ".rzoo-fetch";

}  // namespace rzoo
