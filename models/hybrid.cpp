#include "models/hybrid.h"

#include <torch/torch.h>

#include <regex>

#include "datasets/dataset.h"
#include "models/registry.h"
#include "trainers/config.h"
#include "trainers/error.h"

namespace rzoo {

namespace {

// The run config with `model` replaced by one entry of model.models, resolved through the
// layers, so the sub-model gets its own defaults (configs/models/<name>.yaml) and its keys are
// checked like any model's.
Config sub_config(const Config& run, const YAML::Node& entry, size_t i) {
  YAML::Node model(YAML::NodeType::Map);
  if (entry.IsScalar()) model["name"] = entry.Scalar();
  else if (entry.IsMap() && entry["name"]) model = YAML::Clone(entry);
  else run.bad("model.models", fmt::format("entry {} must be a model name or a map with a `name`", i));
  const std::string name = model["name"].as<std::string>();
  if (name == "hybrid") run.bad("model.models", fmt::format("entry {}: a hybrid cannot contain a hybrid", i));
  YAML::Node exp = YAML::Clone(run.root());
  exp["model"] = model;
  exp.remove("compare");
  ConfigSources s;
  s.config_dir = find_config_dir();
  const std::string where = run.origin("model.models");
  s.experiment = Layer{exp, fmt::format("{}model.models[{}]", where.empty() ? "" : where + ": ", i), false};
  return resolve_config(s);
}

// Prefixes every attribute (self.x) and method (def x) of a sub-model's TorchScript, so that
// several sub-models live side by side in one exported module.
std::string prefix_script(const std::string& code, const std::string& p) {
  std::string out = std::regex_replace(code, std::regex(R"(\bself\.([A-Za-z_][A-Za-z0-9_]*))"), "self." + p + "$1");
  return std::regex_replace(out, std::regex(R"(\bdef ([A-Za-z_][A-Za-z0-9_]*)\()"), "def " + p + "$1(");
}

}  // namespace

HybridImpl::HybridImpl(const ModelContext& ctx) : RecommenderImpl("hybrid", ctx) {
  TORCH_CHECK(ctx.config != nullptr, "hybrid: needs its configuration (model.models)");
  const Config& cfg = *ctx.config;
  options.method(cfg.get_choice("model.method", {"weighted", "rrf"}));
  options.normalize(cfg.get_choice("model.normalize", {"minmax", "zscore", "none"}));
  options.rrf_k(cfg.get_double("model.rrf_k", 0.0));
  options.weights(cfg.get_double_list("model.weights"));
  const YAML::Node list = cfg.node("model.models");
  if (!list.IsSequence() || list.size() < 1)
    cfg.bad("model.models", "needs at least one sub-model (e.g. [content, {name: itemknn, neighbors: 50}])");
  if (!options.weights().empty() && options.weights().size() != list.size())
    cfg.bad("model.weights", fmt::format("has {} weights for {} sub-models", options.weights().size(), list.size()));
  if (options.weights().empty()) options.weights(std::vector<double>(list.size(), 1.0 / static_cast<double>(list.size())));
  configs_.reserve(list.size());  // stable addresses: each sub-model's ctx.config points here
  for (size_t i = 0; i < list.size(); ++i) {
    configs_.push_back(sub_config(cfg, list[i], i));
    const Config& sub = configs_.back();
    ModelContext c = ctx;
    c.config = &sub;
    Recommender m = make_model(sub.get_string("model.name"), c);
    if (m->input_type() != InputType::None)
      cfg.bad("model.models", fmt::format("entry {}: '{}' is trained by gradient steps; a hybrid blends closed-form models "
                                          "(fitted in one step)", i, m->name()));
    parts_.push_back(register_module("part" + std::to_string(i), m.ptr()));
    part_names_.push_back(m->name());
  }
}

void HybridImpl::fit(const Csr& train) {
  for (auto& m : parts_) m->fit(train);
}

namespace {
// Per-user normalisation of a [B, I] score matrix.
at::Tensor normalized(const at::Tensor& s, const std::string& how) {
  if (how == "minmax") {
    const auto lo = std::get<0>(s.min(1, true)), hi = std::get<0>(s.max(1, true));
    return (s - lo) / (hi - lo).clamp_min(1e-12);
  }
  if (how == "zscore") return (s - s.mean(1, true)) / s.std(1, false, true).clamp_min(1e-12);
  return s;
}
// Rank of every item per row, 1 = highest score; ties by item index (stable sort).
at::Tensor ranks(const at::Tensor& s) {
  const auto order = std::get<1>(s.sort(/*stable=*/true, 1, /*descending=*/true));
  auto r = torch::empty_like(order);
  r.scatter_(1, order, torch::arange(1, s.size(1) + 1, order.options()).expand_as(order).contiguous());
  return r.to(torch::kFloat);
}
}  // namespace

at::Tensor HybridImpl::score_all(const at::Tensor& users) {
  at::Tensor total;
  for (size_t m = 0; m < parts_.size(); ++m) {
    const auto s = parts_[m]->score_all(users).to(torch::kFloat);  // [B, I]
    const auto part = options.method() == "rrf" ? 1.0 / (ranks(s) + options.rrf_k()) : normalized(s, options.normalize());
    const auto w = part * options.weights()[m];
    total = total.defined() ? total + w : w;
  }
  return total;
}

at::Tensor HybridImpl::score(const at::Tensor& users, const at::Tensor& items) {
  // Normalisation and ranks are per user over all items: score every item of each distinct
  // user once (in slices of ~64 MB of rows), then pick the pairs.
  const auto [uniq, inverse] = [&] {
    auto r = at::_unique2(users, /*sorted=*/true, /*return_inverse=*/true);
    return std::make_pair(std::get<0>(r), std::get<1>(r));
  }();
  const int64_t n = uniq.size(0), step = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(n_items_, 1));
  std::vector<at::Tensor> rows;
  for (int64_t b = 0; b < n; b += step) rows.push_back(score_all(uniq.narrow(0, b, std::min(step, n - b))));
  const auto all = torch::cat(rows);  // [distinct users, I]
  return all.index({inverse.to(all.device()), items.to(all.device())});
}

ScriptExport HybridImpl::script_export() const {
  ScriptExport e;
  std::string body;
  for (size_t m = 0; m < parts_.size(); ++m) {
    const std::string p = fmt::format("p{}_", m);
    ScriptExport sub = parts_[m]->script_export();
    for (auto& [name, t] : sub.tensors) e.tensors.emplace_back(p + name, t);
    e.code += prefix_script(sub.code, p);
    const std::string s = fmt::format("self.{}_score_all(users).float()", p);
    std::string part;
    if (options.method() == "rrf") part = fmt::format("1.0 / (self._ranks({}) + {:.17g})", s, options.rrf_k());
    else if (options.normalize() == "minmax") part = fmt::format("self._minmax({})", s);
    else if (options.normalize() == "zscore") part = fmt::format("self._zscore({})", s);
    else part = s;
    body += fmt::format("    t{} = {} * {:.17g}\n", m, part, options.weights()[m]);
  }
  std::string sum = "t0";
  for (size_t m = 1; m < parts_.size(); ++m) sum += fmt::format(" + t{}", m);
  e.code += R"PY(
def _minmax(self, s: Tensor) -> Tensor:
    lo = torch.min(s, 1, True)[0]
    hi = torch.max(s, 1, True)[0]
    return (s - lo) / (hi - lo).clamp_min(1e-12)

def _zscore(self, s: Tensor) -> Tensor:
    return (s - s.mean(1, True)) / s.std(1, False, True).clamp_min(1e-12)

def _ranks(self, s: Tensor) -> Tensor:
    order = torch.sort(s, stable=True, dim=1, descending=True)[1]
    r = torch.empty_like(order)
    r.scatter_(1, order, torch.arange(1, s.size(1) + 1, dtype=order.dtype).expand_as(order).contiguous())
    return r.float()

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return self._score_all(users).gather(1, items.unsqueeze(1)).squeeze(1)

def _score_all(self, users: Tensor) -> Tensor:
)PY" + body + "    return " + sum + "\n";
  return e;
}

}  // namespace rzoo
