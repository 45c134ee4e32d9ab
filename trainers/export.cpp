// TorchScript export (see export.h). The module is built directly in C++: a torch::jit::Module
// whose attributes are the model's tensors and the id maps, and whose methods are TorchScript
// source compiled by define(): the model's own _score/_score_all (ScriptExport) and the shared
// wrapper below. Nothing of rzoo is needed to load it.
#include "trainers/export.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/experiment.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

// Shared by every model: input checks (assert: the one error statement TorchScript compiles
// without a Python resolver), masking of known items, raw ids.
constexpr const char* kWrapper = R"PY(
def _check_users(self, users: Tensor):
    assert users.dim() == 1, "users must be a 1-D tensor of user indices"
    if users.numel() > 0:
        lo = int(users.min())
        hi = int(users.max())
        assert lo >= 0 and hi < self.n_users, "user index out of range: " + str(lo if lo < 0 else hi) + " not in [0, " + str(self.n_users) + ")"

def _check_items(self, items: Tensor):
    assert items.dim() == 1, "items must be a 1-D tensor of item indices"
    if items.numel() > 0:
        lo = int(items.min())
        hi = int(items.max())
        assert lo >= 0 and hi < self.n_items, "item index out of range: " + str(lo if lo < 0 else hi) + " not in [0, " + str(self.n_items) + ")"

def score(self, users: Tensor, items: Tensor) -> Tensor:
    users = users.long()
    items = items.long()
    self._check_users(users)
    self._check_items(items)
    assert users.size(0) == items.size(0), "score: users and items must have the same length, got " + str(users.size(0)) + " and " + str(items.size(0))
    return self._score(users, items).float()

def recommend(self, users: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    users = users.long()
    self._check_users(users)
    assert k >= 1, "recommend: k must be >= 1, got " + str(k)
    scores = self._score_all(users).float()
    for b in range(users.size(0)):
        u = int(users[b])
        s = int(self.seen_indptr[u])
        e = int(self.seen_indptr[u + 1])
        if e > s:
            scores[b].index_fill_(0, self.seen_indices[s:e], float("-inf"))
    return torch.topk(scores, min(k, self.n_items), 1)

def user_index(self, user: str) -> int:
    if user in self.user_map:
        return self.user_map[user]
    return -1

def item_index(self, item: str) -> int:
    if item in self.item_map:
        return self.item_map[item]
    return -1

def recommend_raw(self, user: str, k: int, fallback: bool = False) -> Tuple[List[str], List[float]]:
    assert k >= 1, "recommend_raw: k must be >= 1, got " + str(k)
    u = self.user_index(user)
    items: List[str] = []
    scores: List[float] = []
    if u < 0:
        assert fallback, "unknown user '" + user + "' (the model knows " + str(self.n_users) + " users); pass fallback=True for the most popular items"
        values, idx = torch.topk(self.popularity, min(k, self.n_items))
        for j in range(idx.size(0)):
            items.append(self.item_ids[int(idx[j])])
            scores.append(float(values[j]))
        return items, scores
    values, idx = self.recommend(torch.tensor([u]), k)
    for j in range(idx.size(1)):
        v = float(values[0, j])
        if v == float("-inf"):
            break
        items.append(self.item_ids[int(idx[0, j])])
        scores.append(v)
    return items, scores
)PY";

// Added for models that rank from a history of items (ScriptExport::history_len > 0: the
// sequential models; fold_in: the models that fold in a new user): a history in raw item ids,
// not in the training data (a new user, a session), the most recent last. Its items are masked
// from the ranking, as the evaluator masks a user's history.
constexpr const char* kHistoryWrapper = R"PY(
def history_indices(self, items: List[str], skip_unknown: bool = False) -> Tensor:
    idx: List[int] = []
    for it in items:
        if it in self.item_map:
            idx.append(self.item_map[it])
        else:
            assert skip_unknown, "unknown item id '" + it + "' in the history (the model knows " + str(self.n_items) + " items); pass skip_unknown=True to skip unknown ids"
    assert len(idx) > 0, "the history is empty" + (" (every id was unknown and skipped)" if len(items) > 0 else "") + ": give at least one known item id"
    return torch.tensor(idx)
)PY";

// score_history() of the sequential models: the history's last L items as a left-padded window.
constexpr const char* kSequenceScore = R"PY(
def score_history(self, history: Tensor) -> Tensor:
    history = history.long()
    assert history.dim() == 1 and history.numel() > 0, "score_history: a non-empty 1-D tensor of item indices, the most recent last"
    self._check_items(history)
    L = self.history_len
    n = history.size(0)
    take = min(n, L)
    seq = history.new_full([1, L], self.n_items)
    seq[0, L - take:] = history[n - take:]
    return self._score_seq(seq).float()[0]
)PY";

// score_history() of the models that fold in a history (ScriptExport::fold_in): its distinct
// items, order ignored.
constexpr const char* kFoldInScore = R"PY(
def score_history(self, history: Tensor) -> Tensor:
    history = history.long()
    assert history.dim() == 1 and history.numel() > 0, "score_history: a non-empty 1-D tensor of item indices"
    self._check_items(history)
    s, order = torch.sort(history)
    keep = torch.cat([s.new_ones([1]), (s[1:] != s[:-1]).to(s.dtype)])
    return self._score_fold_in(s[keep.nonzero().squeeze(1)]).float()
)PY";

constexpr const char* kRecommendHistory = R"PY(
def recommend_history(self, items: List[str], k: int, skip_unknown: bool = False) -> Tuple[List[str], List[float]]:
    assert k >= 1, "recommend_history: k must be >= 1, got " + str(k)
    idx = self.history_indices(items, skip_unknown)
    scores = self.score_history(idx)
    scores.index_fill_(0, idx, float("-inf"))
    values, top = torch.topk(scores, min(k, self.n_items))
    out_items: List[str] = []
    out_scores: List[float] = []
    for j in range(top.size(0)):
        v = float(values[j])
        if v == float("-inf"):
            break
        out_items.append(self.item_ids[int(top[j])])
        out_scores.append(v)
    return out_items, out_scores
)PY";

// Added for models that explain (ScriptExport::explain_kind): the evidence behind an item's
// score, for a known user (from the user's known items, the history recommend() masks) or for a
// history of raw item ids; the n strongest, as raw item ids, user ids or feature names, with
// their weights.
constexpr const char* kExplain = R"PY(
def _explain_top(self, history: Tensor, item: str, n: int) -> Tuple[List[str], List[float]]:
    assert n >= 1, "explain: n must be >= 1, got " + str(n)
    i = self.item_index(item)
    assert i >= 0, "unknown item id '" + item + "' (the model knows " + str(self.n_items) + " items)"
    assert history.numel() > 0, "explain: the history is empty"
    ev, w = self._explain(self._explain_input(history.long()), i)
    w = w.double()
    top = torch.sort(w, descending=True, stable=True)[1][:n]
    names: List[str] = self.explain_names
    if self.explain_kind == "items":
        names = self.item_ids
    elif self.explain_kind == "users":
        names = self.user_ids
    out_ids: List[str] = []
    out_w: List[float] = []
    for j in range(top.size(0)):
        out_ids.append(names[int(ev[int(top[j])])])
        out_w.append(float(w[int(top[j])]))
    return out_ids, out_w

def explain_history(self, items: List[str], item: str, n: int, skip_unknown: bool = False) -> Tuple[List[str], List[float]]:
    return self._explain_top(self.history_indices(items, skip_unknown), item, n)
)PY";

// A set of items (order ignored: the models that fold in): the history's distinct items; a known
// user's known items.
constexpr const char* kExplainSet = R"PY(
def _explain_input(self, history: Tensor) -> Tensor:
    s, order = torch.sort(history)
    keep = torch.cat([s.new_ones([1]), (s[1:] != s[:-1]).to(s.dtype)])
    return s[keep.nonzero().squeeze(1)]

def explain(self, user: str, item: str, n: int) -> Tuple[List[str], List[float]]:
    u = self.user_index(user)
    assert u >= 0, "unknown user id '" + user + "' (the model knows " + str(self.n_users) + " users)"
    s = int(self.seen_indptr[u])
    e = int(self.seen_indptr[u + 1])
    assert e > s, "user '" + user + "' has no known items to explain from"
    return self._explain_top(self.seen_indices[s:e], item, n)
)PY";

// A sequence (the sequential models): the history's last history_len items in order; a known
// user's window of known items (`hist`, what recommend() ranks from).
constexpr const char* kExplainSequence = R"PY(
def _explain_input(self, history: Tensor) -> Tensor:
    n = history.size(0)
    take = min(n, self.history_len)
    return history.narrow(0, n - take, take)

def explain(self, user: str, item: str, n: int) -> Tuple[List[str], List[float]]:
    u = self.user_index(user)
    assert u >= 0, "unknown user id '" + user + "' (the model knows " + str(self.n_users) + " users)"
    window = self.hist[u]
    h = window.index_select(0, torch.nonzero(window != self.n_items).reshape(-1))
    assert h.numel() > 0, "user '" + user + "' has no known items to explain from"
    return self._explain_top(h, item, n)
)PY";

c10::List<std::string> string_list(const std::vector<std::string>& v) {
  c10::List<std::string> l;
  l.reserve(v.size());
  for (const auto& s : v) l.push_back(s);
  return l;
}

c10::Dict<std::string, int64_t> index_map(const std::vector<std::string>& v) {
  c10::Dict<std::string, int64_t> d;
  d.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) d.insert(v[i], static_cast<int64_t>(i));
  return d;
}

std::string lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void export_model(const RecommenderImpl& model, const ExportInputs& in, const std::string& out) {
  if (!in.data || !in.split || !in.config) fail("export: needs the model's data, split and config");
  const Dataset& d = *in.data;
  if (d.n_users() != model.n_users() || d.n_items() != model.n_items())
    fail("export: the data has {} users and {} items, the model {} and {}", d.n_users(), d.n_items(), model.n_users(),
         model.n_items());
  ScriptExport parts = model.script_export();

  torch::jit::Module m("rzoo_model");
  // The exporter's own attributes: a model tensor of the same name would be silently replaced.
  static const std::vector<std::string> reserved = {"seen_indptr", "seen_indices", "popularity", "model_name", "n_users",
                                                    "n_items",     "user_ids",     "item_ids",   "item_titles", "user_map",
                                                    "item_map",    "history_len",  "explain_kind", "explain_names"};
  for (auto& [name, t] : parts.tensors) {
    if (std::find(reserved.begin(), reserved.end(), name) != reserved.end())
      fail("export of model '{}': its tensor '{}' has a name the exporter reserves", model.name(), name);
    m.register_buffer(name, t.detach().to(torch::kCPU).contiguous());
  }
  // Known items per user (every interaction of the data), masked by recommend().
  const Csr seen = Csr::from_interactions(d.n_users(), d.n_items(), d.user, d.item);
  m.register_buffer("seen_indptr", torch::tensor(seen.indptr, torch::kLong));
  m.register_buffer("seen_indices", torch::tensor(seen.indices, torch::kLong));
  auto pop = torch::zeros({d.n_items()}, torch::kFloat);
  float* pp = pop.data_ptr<float>();
  for (int64_t i : in.split->train.indices) pp[i] += 1.0f;
  m.register_buffer("popularity", pop);
  m.register_attribute("model_name", c10::StringType::get(), model.name());
  m.register_attribute("n_users", c10::IntType::get(), d.n_users());
  m.register_attribute("n_items", c10::IntType::get(), d.n_items());
  m.register_attribute("user_ids", c10::ListType::ofStrings(), string_list(d.users.raws()));
  m.register_attribute("item_ids", c10::ListType::ofStrings(), string_list(d.items.raws()));
  m.register_attribute("item_titles", c10::ListType::ofStrings(), string_list(d.item_info.title));
  const auto dict_type = c10::DictType::create(c10::StringType::get(), c10::IntType::get());
  m.register_attribute("user_map", dict_type, index_map(d.users.raws()));
  m.register_attribute("item_map", dict_type, index_map(d.items.raws()));
  // 0: the model ranks from a user index only (no recommend_history).
  m.register_attribute("history_len", c10::IntType::get(), parts.history_len);
  // "": the model does not explain (no explain methods); "items", "users" or "features" (explain_names).
  if (!parts.explain_kind.empty() && parts.explain_kind != "items" && parts.explain_kind != "users" &&
      parts.explain_kind != "features")
    fail("export of model '{}': explain kind '{}' is none of 'items', 'users', 'features'", model.name(), parts.explain_kind);
  m.register_attribute("explain_kind", c10::StringType::get(), parts.explain_kind);
  m.register_attribute("explain_names", c10::ListType::ofStrings(), string_list(parts.explain_features));
  try {
    m.define(parts.code);
    m.define(kWrapper);
    if (parts.history_len > 0 && parts.fold_in)
      fail("export of model '{}': it sets both history_len and fold_in", model.name());
    if (parts.history_len > 0 || parts.fold_in || !parts.explain_kind.empty()) m.define(kHistoryWrapper);
    if (parts.history_len > 0 || parts.fold_in) {
      m.define(parts.fold_in ? kFoldInScore : kSequenceScore);
      m.define(kRecommendHistory);
    }
    if (!parts.explain_kind.empty()) {
      // One definition: _explain_top and explain call each other's halves.
      m.define(std::string(parts.history_len > 0 ? kExplainSequence : kExplainSet) + kExplain);
    }
  } catch (const std::exception& e) {  // torch::jit::ErrorReport or c10::Error
    fail("export of model '{}': its TorchScript does not compile: {}", model.name(), e.what());
  }

  torch::jit::ExtraFilesMap extra;
  extra["config.yaml"] = in.config->dump();
  extra["users.txt"] = lines(d.users.raws());
  extra["items.txt"] = lines(d.items.raws());
  if (!in.metrics_json.empty()) extra["metrics.json"] = in.metrics_json;
  extra["rzoo.txt"] = fmt::format("rzoo {}\nmodel {}\nusers {}\nitems {}\n", build_string(), model.name(), d.n_users(), d.n_items());

  check_output_path(out, "export --out");
  // Streamed into rzoo's durable atomic writer (core/atomic_file.h: AtomicOStream keeps a write
  // error from LibTorch's writer, which could throw it from its destructor): any I/O error is a
  // clean error naming the file, no temporary file is left, and a previous export at `out` stays
  // as it was.
  AtomicFile file(out);
  AtomicOStream os(file);
  try {
    m.save(os, extra);
  } catch (const c10::Error& e) {
    fail("{}: cannot serialise the export: {}", out, e.what_without_backtrace());
  }
  os.check();
  file.commit();
}

void export_run(const std::string& run_dir, const std::string& out, Logger& log) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto run = open_run(run_dir, log);
  run->model->to(torch::kCPU);
  ExportInputs in;
  in.config = &run->cfg;
  in.data = &run->data.data;
  in.split = &run->data.split;
  if (fs::exists(run_dir + "/metrics.json")) in.metrics_json = read_text(run_dir + "/metrics.json");
  export_model(*run->model, in, out);
  log.line(fmt::format("exported {} ({}, {} users, {} items) to {} ({:.1f} MB) in {:.2f} s", run_dir, run->model->name(),
                       run->data.data.n_users(), run->data.data.n_items(), out,
                       static_cast<double>(fs::file_size(out)) / 1e6,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
}

}  // namespace rzoo
