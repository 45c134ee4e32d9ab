#include "core/config.h"

#include <sched.h>
#include <stdlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/strings.h"
#include "rzoo_build.h"

namespace fs = std::filesystem;

namespace rzoo {
namespace {

enum class Kind { Null, Bool, Int, Float, String, Seq, Map };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "a bool (true/false)";
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::String: return "a string";
    case Kind::Seq: return "a list";
    case Kind::Map: return "a map";
  }
  return "?";
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char* b = s.data();
  if (*b == '+' && s.size() > 1 && s[1] != '-') ++b;
  auto [p, ec] = std::from_chars(b, s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  if (s == ".inf" || s == "+.inf") { *out = INFINITY; return true; }
  if (s == "-.inf") { *out = -INFINITY; return true; }
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !std::isnan(*out);
}

bool parse_bool(const std::string& s, bool* out) {
  if (s == "true" || s == "True" || s == "TRUE") { *out = true; return true; }
  if (s == "false" || s == "False" || s == "FALSE") { *out = false; return true; }
  return false;
}

Kind kind_of(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return Kind::Null;
  if (n.IsSequence()) return Kind::Seq;
  if (n.IsMap()) return Kind::Map;
  if (n.Tag() == "!") return Kind::String;  // quoted scalar: always a string
  const std::string& s = n.Scalar();
  int64_t i; double d; bool b;
  if (parse_bool(s, &b)) return Kind::Bool;
  if (parse_int(s, &i)) return Kind::Int;
  if (parse_double(s, &d)) return Kind::Float;
  return Kind::String;
}

bool is_scalar_kind(Kind k) { return k == Kind::Bool || k == Kind::Int || k == Kind::Float || k == Kind::String; }

// May a value of kind `v` replace a default of kind `d`?
bool compatible(Kind d, Kind v) {
  if (d == Kind::Null) return true;
  if (d == Kind::String) return is_scalar_kind(v);
  if (d == Kind::Float) return v == Kind::Float || v == Kind::Int;
  return d == v;
}

std::string where(const Layer& layer, const YAML::Node& n) {
  if (layer.source.rfind("--set", 0) == 0) return layer.source;
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return layer.source;
  return fmt::format("{}:{}:{}", layer.source, m.line + 1, m.column + 1);
}

std::string join_keys(const YAML::Node& map) {
  std::vector<std::string> keys;
  for (auto it = map.begin(); it != map.end(); ++it) keys.push_back(it->first.as<std::string>());
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}


struct Merger {
  std::map<std::string, std::string>& origins;
  std::string project_root;
  // The type of each key as its defining layer gave it (path -> kind; "path[]" for list
  // elements): later layers are checked against this, not against whatever value came last.
  std::map<std::string, Kind> schema;

  void define(const YAML::Node& n, const std::string& path) {
    schema[path] = kind_of(n);
    if (n.IsMap())
      for (auto it = n.begin(); it != n.end(); ++it) define(it->second, path + "." + it->first.as<std::string>());
    else if (n.IsSequence() && n.size() > 0 && is_scalar_kind(kind_of(n[0])))
      schema[path + "[]"] = kind_of(n[0]);
  }
  Kind defined_kind(const std::string& path, const YAML::Node& current) const {
    auto it = schema.find(path);
    return it == schema.end() ? kind_of(current) : it->second;
  }

  // Records the origin of every leaf under `n`.
  void record(const Layer& layer, const YAML::Node& n, const std::string& path) {
    origins[path] = where(layer, n);
    if (n.IsMap())
      for (auto it = n.begin(); it != n.end(); ++it)
        record(layer, it->second, path + "." + it->first.as<std::string>());
  }

  YAML::Node fix_paths(const Layer& layer, const std::string& key, const YAML::Node& value) {
    if (!is_path_key(key) || !value.IsScalar() || value.Scalar().empty()) return YAML::Clone(value);
    fs::path p(value.Scalar());
    if (p.is_absolute()) return YAML::Clone(value);
    fs::path base = layer.relative_to_cwd ? fs::current_path() : fs::path(project_root);
    return YAML::Node((base / p).lexically_normal().string());
  }

  // Merges `over` into `base` (both maps). New keys are allowed only below `allow_new`.
  void merge(YAML::Node base, const YAML::Node& over, const Layer& layer, const std::string& prefix,
             const std::string& allow_new) {
    if (!over.IsMap()) fail("{}: expected a map of keys{}", where(layer, over), prefix.empty() ? "" : " under '" + prefix + "'");
    for (auto it = over.begin(); it != over.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      YAML::Node value = it->second;
      const YAML::Node& cbase = base;
      const YAML::Node existing = cbase[key];
      if (!existing.IsDefined()) {
        // search.space maps config keys (any of them) to values to try: rzoo tune checks them
        // against this schema itself, each as a --set.
        bool may_add = (!allow_new.empty() && (path.rfind(allow_new + ".", 0) == 0)) || path.rfind("search.space.", 0) == 0;
        if (!may_add) {
          std::string known = join_keys(cbase);
          fail("{}: unknown key '{}'{}", where(layer, it->first), path,
               known.empty() ? std::string() : fmt::format(" (known keys{}: {})", prefix.empty() ? "" : " under '" + prefix + "'", known));
        }
        base[key] = fix_paths(layer, key, value);
        record(layer, value, path);
        define(value, path);
        continue;
      }
      // `model: bpr` is shorthand for `model: {name: bpr}` (likewise for dataset).
      if (existing.IsMap() && existing["name"].IsDefined() && value.IsDefined() && value.IsScalar()) {
        base[key]["name"] = value.Scalar();
        origins[path + ".name"] = where(layer, value);
        continue;
      }
      const Kind dk = defined_kind(path, existing), vk = kind_of(value);
      if (dk == Kind::Map) {
        if (vk != Kind::Map)
          fail("{}: '{}' must be a map, got {} ('{}')", where(layer, value), path, kind_name(vk), YAML::Dump(value));
        merge(base[key], value, layer, path, allow_new);
        continue;
      }
      if (!compatible(dk, vk))
        fail("{}: '{}' must be {}, got {} ('{}')", where(layer, value), path, kind_name(dk), kind_name(vk),
             YAML::Dump(value));
      if (dk == Kind::Seq && vk == Kind::Seq && schema.count(path + "[]")) {
        const Kind ek = schema.at(path + "[]");
        if (is_scalar_kind(ek))
          for (size_t i = 0; i < value.size(); ++i)
            if (!compatible(ek, kind_of(value[i])))
              fail("{}: '{}[{}]' must be {}, got '{}'", where(layer, value[i]), path, i, kind_name(ek), YAML::Dump(value[i]));
      }
      base[key] = fix_paths(layer, key, value);
      record(layer, value, path);
    }
  }
};

// The name chosen for `section` (model or dataset) by the layers after the defaults.
std::string selected_name(const std::vector<const Layer*>& layers, const std::string& section,
                          std::string current) {
  for (const Layer* l : layers) {
    const YAML::Node& n = l->node;
    if (!n.IsMap()) continue;
    const YAML::Node s = n[section];
    if (!s.IsDefined()) continue;  // IsScalar() etc. throw on a missing key's (invalid) node
    if (s.IsScalar()) {
      current = s.Scalar();
    } else if (s.IsMap()) {
      const YAML::Node name = s["name"];
      if (name.IsDefined() && name.IsScalar()) current = name.Scalar();
    }
  }
  return current;
}

// yaml-cpp keeps both entries of a key given twice in one map, and a lookup finds only one of
// them: `model: bpr` then `model: pop` would silently train one of the two. Refused, naming both
// lines (`where` is the file, or the --set text whose value was parsed).
void check_duplicate_keys(const YAML::Node& n, const std::string& where, const std::string& path = "") {
  if (n.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      // A list, map or null as a key would fail later as yaml-cpp's "bad conversion" naming no key.
      if (!it->first.IsScalar())
        fail("{}:{}:{}: a key must be a name, not a list, map or null{}", where, it->first.Mark().line + 1,
             it->first.Mark().column + 1, path.empty() ? "" : " (under '" + path + "')");
      const std::string key = it->first.Scalar();
      const std::string sub = path.empty() ? key : path + "." + key;
      const auto [first, fresh] = seen.emplace(key, it->first.Mark());
      if (!fresh)
        fail("{}: duplicate key '{}' at line {} and line {} (a key may appear once in a map; remove one)", where, sub,
             first->second.line + 1, it->first.Mark().line + 1);
      check_duplicate_keys(it->second, where, sub);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) check_duplicate_keys(n[i], where, fmt::format("{}[{}]", path, i));
  }
}

Layer set_layer(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set {}: expected KEY=VALUE (e.g. --set train.epochs=5)", assignment);
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(text);
  }
  if (text.empty()) value = YAML::Node(std::string());  // `--set a.path=` clears a string
  check_duplicate_keys(value, "--set " + assignment, key);
  // Build {a: {b: value}} from "a.b".
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    const std::string p = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (p.empty()) fail("--set {}: empty key component in '{}'", assignment, key);
    parts.push_back(p);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  YAML::Node node = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    YAML::Node m(YAML::NodeType::Map);
    m[*it] = node;
    node = m;
  }
  return Layer{node, "--set " + assignment, true};
}

std::vector<std::string> yaml_stems(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".yaml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}


}  // namespace

Layer parse_layer(const std::string& text, const std::string& source) {
  YAML::Node n;
  try {
    n = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  check_duplicate_keys(n, source);
  if (n.IsNull()) n = YAML::Node(YAML::NodeType::Map);
  return Layer{n, source, true};
}

Layer load_layer(const std::string& path) {
  {
    // A folder opens as an empty stream on Linux and would read as an empty config.
    std::error_code ec;
    if (fs::is_directory(path, ec))
      fail("{}: is a folder, not a config file (give a YAML file, e.g. configs/experiments/quickstart.yaml)", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open config file ({})", path, fs::exists(path) ? "not readable" : "no such file");
  std::stringstream buf;
  buf << in.rdbuf();
  Layer layer = parse_layer(buf.str(), path);
  if (!layer.node.IsMap()) fail("{}: a config file must be a map of keys at the top level", path);
  return layer;
}

namespace {

// The project's own layers (defaults, a model's, a dataset's) as resolve_config reads them. One
// process resolves them many times (rzoo tune checks every trial's config before any runs; a
// comparison resolves one config per model), so each parsed file is kept, keyed by its path and
// its exact text (not its mtime, whose granularity is coarser than a quick rewrite). The kept node
// is shared, not cloned, because a clone loses the line marks that origins and errors name:
// resolve_config only reads these layers (the merged tree is a clone). Per thread, so no two
// threads walk one yaml-cpp node; bounded, for a long-lived process reading many files.
Layer load_config_layer(const std::string& path) {
  thread_local std::map<std::string, std::pair<std::string, Layer>> parsed;
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::stringstream buf;
    buf << in.rdbuf();
    const auto it = parsed.find(path);
    if (it != parsed.end() && it->second.first == buf.str()) return it->second.second;
    // The text just read, parsed and checked as load_layer does (a folder reads as empty text
    // and load_layer names it).
    if (buf.str().empty()) return load_layer(path);
    Layer layer = parse_layer(buf.str(), path);
    if (!layer.node.IsMap()) fail("{}: a config file must be a map of keys at the top level", path);
    if (parsed.size() >= 64) parsed.clear();
    parsed[path] = {buf.str(), layer};
    return layer;
  }
  return load_layer(path);
}

}  // namespace

std::string find_config_dir(const std::string& near_path) {
  if (const char* env = std::getenv("RZOO_CONFIG_DIR"); env && *env) return env;
  if (!near_path.empty()) {
    std::error_code ec;
    fs::path p = fs::absolute(near_path, ec).parent_path();
    for (; !p.empty(); p = p.parent_path()) {
      if (fs::exists(p / "configs" / "defaults.yaml")) return (p / "configs").string();
      if (p.filename() == "configs" && fs::exists(p / "defaults.yaml")) return p.string();
      if (p == p.root_path()) break;
    }
  }
  // An installed rzoo (cmake --install): PREFIX/bin/rzoo beside PREFIX/share/rzoo/configs.
  {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      const fs::path installed = exe.parent_path().parent_path() / "share" / "rzoo" / "configs";
      if (fs::exists(installed / "defaults.yaml", ec)) return installed.string();
    }
  }
#ifdef RZOO_SOURCE_DIR
  return std::string(RZOO_SOURCE_DIR) + "/configs";
#else
  return "configs";
#endif
}

namespace {
// Replaces "{seed}" in every string scalar below `node` by `seed` (yaml-cpp: assigning to an
// iterator's node rewrites the value in place).
void substitute_seed(YAML::Node node, const std::string& seed) {
  static const std::string kSeed = "{seed}";
  auto fix = [&](YAML::Node v) {
    if (!v.IsScalar()) {
      substitute_seed(v, seed);
      return;
    }
    std::string text = v.Scalar();
    size_t at = text.find(kSeed);
    if (at == std::string::npos) return;
    for (; at != std::string::npos; at = text.find(kSeed, at + seed.size())) text.replace(at, kSeed.size(), seed);
    v = text;
  };
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) fix(it->second);
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) fix(node[i]);
  }
}
}  // namespace

Config resolve_config(const ConfigSources& src) {
  const fs::path dir(src.config_dir);
  std::map<std::string, std::string> origins;
  Merger merger{origins, (dir / "..").lexically_normal().string(), {}};

  Layer defaults = load_config_layer((dir / "defaults.yaml").string());
  defaults.relative_to_cwd = false;
  YAML::Node root = YAML::Clone(defaults.node);
  {
    // The schema and origins of the defaults depend on the defaults alone: kept with the parsed
    // layer (the same shared node while the file is unchanged), per thread like it.
    struct Stage {
      YAML::Node node;
      std::map<std::string, std::string> origins;
      std::map<std::string, Kind> schema;
    };
    thread_local std::map<std::string, Stage> stages;
    Stage& st = stages[defaults.source];
    if (!st.node.IsDefined() || !st.node.is(defaults.node)) {
      std::map<std::string, std::string> o;
      Merger m{o, merger.project_root, {}};
      for (auto it = defaults.node.begin(); it != defaults.node.end(); ++it) {
        m.record(defaults, it->second, it->first.as<std::string>());
        m.define(it->second, it->first.as<std::string>());
      }
      st = Stage{defaults.node, std::move(o), std::move(m.schema)};
    }
    origins = st.origins;
    merger.schema = st.schema;
  }

  std::vector<Layer> sets;
  for (const auto& s : src.sets) sets.push_back(set_layer(s));
  // An experiment file kept inside the config folder (e.g. `rzoo data stats
  // configs/datasets/ml-100k.yaml`) reads its paths like every file there: from the project root.
  Layer experiment = src.experiment;
  {
    std::error_code ec;
    const std::string f = fs::weakly_canonical(experiment.source, ec).string();
    const std::string d = fs::weakly_canonical(dir, ec).string() + "/";
    if (!experiment.source.empty() && f.compare(0, d.size(), d) == 0) experiment.relative_to_cwd = false;
  }
  std::vector<const Layer*> later{&experiment};
  for (const auto& l : src.extra) later.push_back(&l);
  for (const auto& l : sets) later.push_back(&l);

  const std::vector<const Layer*> with_defaults{&defaults};
  const std::string model = selected_name(later, "model", selected_name(with_defaults, "model", ""));
  const std::string dataset = selected_name(later, "dataset", selected_name(with_defaults, "dataset", ""));

  if (!model.empty()) {
    const fs::path file = dir / "models" / (model + ".yaml");
    std::error_code ec;  // a name too long for a file name is an unknown model, not a filesystem_error
    if (!fs::exists(file, ec))
      fail("unknown model '{}': no {} (known models: {})", model, file.string(), join(yaml_stems(dir / "models")));
    Layer l = load_config_layer(file.string());
    l.relative_to_cwd = false;
    merger.merge(root, l.node, l, "", "model");
  }
  bool dataset_file = false;
  if (!dataset.empty()) {
    const fs::path file = dir / "datasets" / (dataset + ".yaml");
    std::error_code ec;
    if (fs::exists(file, ec)) {
      Layer l = load_config_layer(file.string());
      l.relative_to_cwd = false;
      merger.merge(root, l.node, l, "", "");
      dataset_file = true;
    }
  }
  for (const Layer* l : later)
    if (l->node.IsDefined() && !l->node.IsNull()) merger.merge(root, l->node, *l, "", "");
  {
    // "{seed}" in a string value is the run's seed (e.g. pre-training from the same seed's run:
    // model.pretrain.gmf: runs/gmf/seed-{seed}). search.* is left as written: its assignments are
    // templates for the trials and seeds of `rzoo tune`, each resolved with its own seed.
    const YAML::Node& croot = root;
    const YAML::Node seed = croot["seed"];
    if (seed.IsScalar())
      for (auto it = root.begin(); it != root.end(); ++it)
        if (it->first.as<std::string>() != "search") substitute_seed(it->second, seed.Scalar());
  }
  Config cfg(root, origins);
  // A dataset named without a configs/datasets/<name>.yaml is fine when the experiment gives its
  // files itself; when nothing gives a path, the name is what is wrong, so say that rather than
  // "dataset.path: no interactions file given".
  if (!dataset.empty() && !dataset_file && cfg.get_string("dataset.path").empty() &&
      cfg.get_string("dataset.format") != "synthetic")
    cfg.bad("dataset.name", fmt::format("unknown dataset '{}': no {} (known datasets: {}); or give the data's "
                                        "files with dataset.path and dataset.format",
                                        dataset, (dir / "datasets" / (dataset + ".yaml")).string(),
                                        join(yaml_stems(dir / "datasets"))));
  // The data where the config says, else a copy `rzoo data fetch` made of the same folder.
  if (const std::string path = cfg.get_string("dataset.path"); !path.empty()) {
    std::error_code ec;
    const fs::path name = fs::path(path).lexically_normal().filename();
    if (!fs::exists(path, ec) && !name.empty() && name != "." && name != "..") {
      const fs::path fetched = fs::path(data_home()) / name;
      std::ifstream stamp(fetched / kFetchStamp);
      std::string line, format;
      for (int i = 0; i < 4 && std::getline(stamp, line); ++i) format = line;
      if (stamp && format == cfg.get_string("dataset.format")) {
        std::string quoted = "'";
        for (char c : fetched.string()) quoted += c == '\'' ? std::string("''") : std::string(1, c);
        cfg = cfg.with_set("dataset.path=" + quoted + "'",
                           fmt::format("the copy fetched by rzoo data fetch ({} does not exist)", path));
      }
    }
  }
  return cfg;
}

std::string data_home() {
  if (const char* d = std::getenv("RZOO_DATA"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/rzoo/data";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/rzoo/data";
  return ".rzoo-data";
}

Config Config::with_set(const std::string& assignment, const std::string& origin) const {
  const Layer l = set_layer(assignment);
  const std::string key = assignment.substr(0, assignment.find('='));
  if (!has(key)) fail("--set {}: unknown key '{}'", assignment, key);
  YAML::Node root = YAML::Clone(root_);
  // Walk the single-path layer {a: {b: value}} and the clone together; replace at the leaf.
  YAML::Node src, dst;
  src.reset(l.node);
  dst.reset(root);
  for (;;) {
    const auto it = src.begin();
    const std::string k = it->first.as<std::string>();
    const YAML::Node next_src = it->second;
    if (!next_src.IsMap() || !YAML::Node(dst[k]).IsMap()) {
      dst[k] = next_src;
      break;
    }
    const YAML::Node next_dst = dst[k];
    src.reset(next_src);
    dst.reset(next_dst);
  }
  auto origins = origins_;
  origins[key] = origin.empty() ? "--set " + assignment : origin;
  return Config(root, origins);
}

namespace {
// Adds to the map `dst` the keys of the map `src` it lacks, recursively (values cloned).
void add_missing_keys(YAML::Node dst, const YAML::Node& src) {
  if (!dst.IsMap() || !src.IsMap()) return;
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const YAML::Node& cdst = dst;  // const lookup: operator[] on a non-const node would insert
    YAML::Node have = cdst[key];
    if (!have.IsDefined()) dst[key] = YAML::Clone(it->second);
    else if (have.IsMap() && it->second.IsMap()) add_missing_keys(have, it->second);
  }
}
}  // namespace

Config load_resolved_config(const std::string& path) {
  Layer l = load_layer(path);
  // A run folder written by an older rzoo lacks the keys added since: they take today's defaults
  // (defaults.yaml, and the model's own file for model.*), which reproduce the older behaviour.
  // (Those project files as resolve_config keeps them parsed: add_missing_keys only clones from them.)
  try {
    const std::string dir = find_config_dir();
    if (l.node.IsMap()) {
      add_missing_keys(l.node, load_config_layer(dir + "/defaults.yaml").node);
      const YAML::Node& cn = l.node;
      const YAML::Node model = cn["model"];
      if (model.IsMap() && model["name"].IsScalar()) {
        const std::string file = dir + "/models/" + model["name"].as<std::string>() + ".yaml";
        std::error_code ec;
        if (fs::exists(file, ec)) {
          const YAML::Node m = load_config_layer(file).node;
          const YAML::Node& cm = m;
          if (m.IsMap() && cm["model"].IsMap()) add_missing_keys(model, cm["model"]);
        }
      }
    }
  } catch (const std::exception&) {
    // No configs folder to fill from: the run's keys alone (as before).
  }
  return Config(l.node, {});
}

// ----------------------------------------------------------------------------------------------
// Config accessors

// Walks `path` through const nodes (operator[] on a non-const node would insert keys) and
// rebinds with reset() (operator= on a yaml-cpp node overwrites the node it refers to).
static bool lookup(const YAML::Node& root, const std::string& path, YAML::Node* out) {
  YAML::Node cur;
  cur.reset(root);
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    const YAML::Node& c = cur;
    if (!c.IsMap()) return false;
    const YAML::Node next = c[p];
    if (!next.IsDefined()) return false;
    cur.reset(next);
  }
  out->reset(cur);
  return true;
}

bool Config::has(const std::string& path) const {
  YAML::Node n;
  return lookup(root_, path, &n);
}

YAML::Node Config::node(const std::string& path) const {
  YAML::Node n;
  if (!lookup(root_, path, &n)) fail("config: missing key '{}'", path);
  return n;
}

std::string Config::origin(const std::string& path) const {
  auto it = origins_.find(path);
  return it == origins_.end() ? std::string() : it->second;
}

void Config::bad(const std::string& path, const std::string& message) const {
  const std::string o = origin(path);
  fail("{}{}: {}", o.empty() ? "" : o + ": ", path, message);
}

int64_t Config::get_int(const std::string& path, int64_t min, int64_t max) const {
  const YAML::Node n = node(path);
  int64_t v;
  if (!n.IsScalar() || !parse_int(n.Scalar(), &v)) bad(path, fmt::format("expected an integer, got '{}'", YAML::Dump(n)));
  if (v < min || v > max)
    bad(path, max == INT64_MAX ? fmt::format("must be >= {}, got {}", min, v)
                               : fmt::format("must be in [{}, {}], got {}", min, max, v));
  return v;
}

double Config::get_double(const std::string& path, double min, double max) const {
  const YAML::Node n = node(path);
  double v;
  if (!n.IsScalar() || !parse_double(n.Scalar(), &v)) bad(path, fmt::format("expected a number, got '{}'", YAML::Dump(n)));
  if (v < min || v > max) bad(path, fmt::format("must be in [{}, {}], got {}", min, max, v));
  return v;
}

bool Config::get_bool(const std::string& path) const {
  const YAML::Node n = node(path);
  bool v;
  if (!n.IsScalar() || !parse_bool(n.Scalar(), &v)) bad(path, fmt::format("expected true or false, got '{}'", YAML::Dump(n)));
  return v;
}

std::string Config::get_string(const std::string& path) const {
  const YAML::Node n = node(path);
  if (n.IsNull()) return "";
  if (!n.IsScalar()) bad(path, fmt::format("expected a string, got '{}'", YAML::Dump(n)));
  return n.Scalar();
}

std::string Config::get_choice(const std::string& path, const std::vector<std::string>& choices) const {
  const std::string v = get_string(path);
  if (std::find(choices.begin(), choices.end(), v) == choices.end())
    bad(path, fmt::format("'{}' is not one of: {}", v, join(choices)));
  return v;
}

std::vector<int64_t> Config::get_int_list(const std::string& path, int64_t min) const {
  const YAML::Node n = node(path);
  if (!n.IsSequence()) bad(path, fmt::format("expected a list of integers, got '{}'", YAML::Dump(n)));
  std::vector<int64_t> out;
  for (size_t i = 0; i < n.size(); ++i) {
    int64_t v;
    if (!n[i].IsScalar() || !parse_int(n[i].Scalar(), &v) || v < min)
      bad(path, fmt::format("element {} must be an integer >= {}, got '{}'", i, min, YAML::Dump(n[i])));
    out.push_back(v);
  }
  return out;
}

std::vector<double> Config::get_double_list(const std::string& path) const {
  const YAML::Node n = node(path);
  if (!n.IsSequence()) bad(path, fmt::format("expected a list of numbers, got '{}'", YAML::Dump(n)));
  std::vector<double> out;
  for (size_t i = 0; i < n.size(); ++i) {
    double v;
    if (!n[i].IsScalar() || !parse_double(n[i].Scalar(), &v))
      bad(path, fmt::format("element {} must be a number, got '{}'", i, YAML::Dump(n[i])));
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> Config::get_string_list(const std::string& path) const {
  const YAML::Node n = node(path);
  if (!n.IsSequence()) bad(path, fmt::format("expected a list of strings, got '{}'", YAML::Dump(n)));
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) bad(path, fmt::format("element {} must be a string", i));
    out.push_back(n[i].Scalar());
  }
  return out;
}

namespace {
// A comment's text that reads back: control characters (from a --set value) would end the YAML
// stream or, as \r, start a new line, and bytes that are not UTF-8 stop yaml-cpp's emitter
// (the rest of the file would silently be missing). Each such byte becomes '?'; valid UTF-8
// (a path with accents) is kept.
std::string comment_text(const std::string& s) {
  std::string c;
  c.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      c += (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f ? '?' : char(b);
      ++i;
      continue;
    }
    // The length of a well-formed sequence (RFC 3629: no overlong forms, no surrogates, at most
    // U+10FFFF), else 0.
    size_t len = 0;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) len = 3;
    else if (b >= 0xF0 && b <= 0xF4) len = 4;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len == 3) ok = !(b == 0xE0 && p[i + 1] < 0xA0) && !(b == 0xED && p[i + 1] >= 0xA0);
    if (ok && len == 4) ok = !(b == 0xF0 && p[i + 1] < 0x90) && !(b == 0xF4 && p[i + 1] >= 0x90);
    if (ok) {
      c.append(s, i, len);
      i += len;
    } else {
      c += '?';
      ++i;
    }
  }
  return c;
}

void emit(YAML::Emitter& out, const YAML::Node& n, const std::string& path,
          const std::map<std::string, std::string>* origins) {
  auto comment = [&] {
    if (!origins) return;
    auto it = origins->find(path);
    if (it == origins->end()) return;
    out << YAML::Comment(comment_text(it->second));
  };
  if (n.IsMap()) {
    out << YAML::BeginMap;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      out << YAML::Key << k << YAML::Value;
      emit(out, it->second, path.empty() ? k : path + "." + k, origins);
    }
    out << YAML::EndMap;
  } else if (n.IsSequence()) {
    bool flat = true;
    for (size_t i = 0; i < n.size(); ++i) flat = flat && n[i].IsScalar();
    if (flat) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (size_t i = 0; i < n.size(); ++i) emit(out, n[i], path + "[]", nullptr);
    out << YAML::EndSeq;
    comment();
  } else {
    // A scalar holding a control character (\r alone is a line break to a YAML reader) is
    // written double-quoted, with escapes: yaml-cpp would write some of them plain, and the
    // saved config.yaml would read back another value.
    const bool control = n.IsScalar() && std::any_of(n.Scalar().begin(), n.Scalar().end(), [](char ch) {
                           return (static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f;
                         });
    if (control) out << YAML::DoubleQuoted << n.Scalar();
    else out << n;
    comment();
  }
}
}  // namespace

namespace {
void changed_leaves(const YAML::Node& n, const std::string& path, const std::map<std::string, std::string>& origins,
                    const std::function<bool(const std::string&)>& is_default, std::string& out) {
  if (n.IsMap() && n.size() > 0) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      changed_leaves(it->second, path.empty() ? k : path + "." + k, origins, is_default, out);
    }
    return;
  }
  const auto o = origins.find(path);
  const std::string origin = o == origins.end() ? std::string() : o->second;
  if (path != "model.name" && path != "dataset.name" && (origin.empty() || is_default(origin))) return;
  std::string value;
  if (n.IsScalar()) {
    value = n.Scalar().empty() ? "\"\"" : n.Scalar();
  } else {
    YAML::Emitter e;
    e << YAML::Flow << n;
    value = e.c_str();
  }
  std::string where = origin;
  for (auto& ch : where)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  for (auto& ch : value)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  out += fmt::format("  {}: {}{}\n", path, value, where.empty() ? "" : "  # " + where);
}
}  // namespace

bool is_path_key(const std::string& key) {
  return key == "path" || (key.size() > 5 && key.compare(key.size() - 5, 5, "_path") == 0);
}

bool is_project_default(const std::string& origin, const std::string& config_dir) {
  if (origin.empty() || origin.rfind("--set", 0) == 0) return false;
  // "file:line:column" (a file name may itself hold ':'): the file is before the last two.
  std::string file = origin;
  for (int i = 0; i < 2; ++i) {
    const auto colon = file.rfind(':');
    if (colon == std::string::npos) break;
    file = file.substr(0, colon);
  }
  std::error_code ec;
  const fs::path dir = fs::weakly_canonical(config_dir, ec), f = fs::weakly_canonical(file, ec);
  return f == dir / "defaults.yaml" || f.parent_path() == dir / "models" || f.parent_path() == dir / "datasets";
}

std::string Config::dump_changes(const std::string& config_dir) const {
  const auto is_default = [&](const std::string& origin) { return is_project_default(origin, config_dir); };
  std::string out;
  changed_leaves(root_, "", origins_, is_default, out);
  return out;
}

std::string Config::dump(bool with_origins) const {
  YAML::Emitter out;
  emit(out, root_, "", with_origins ? &origins_ : nullptr);
  // yaml-cpp stops writing at its first error: never hand out a truncated config.
  if (!out.good()) fail("cannot write the configuration as YAML: {}", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

// auto: the cores this process may run on (its CPU affinity: taskset, a container's cpuset)
// less those other processes keep busy (the 1-minute load average, rounded down), at least 1.
// A thread on a core that is not free only waits for its partner at every parallel region:
// measured on 2 cores under a load of ~5, a second thread made small-batch training 1.2-1.5x
// slower even with OpenMP's passive waiting (bench/peers, T2=1), while on idle cores it helps.
int64_t resolve_threads(const Config& cfg) {
  if (cfg.get_string("threads") == "auto") {
    int64_t n = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    double load[1] = {0.0};
    if (::getloadavg(load, 1) == 1 && load[0] > 0) n -= static_cast<int64_t>(std::floor(load[0]));
    // The processes of a distributed launch on this machine share its cores (torchrun and
    // `rzoo train --nproc N` set LOCAL_WORLD_SIZE).
    if (const char* lws = std::getenv("LOCAL_WORLD_SIZE")) {
      const long k = std::strtol(lws, nullptr, 10);
      if (k > 1) n /= k;
    }
    return std::max<int64_t>(1, n);
  }
  return cfg.get_int("threads", 1, 4096);
}

}  // namespace rzoo
