#include "models/general/hybrid.h"

#include <torch/torch.h>

#include <limits>
#include <algorithm>
#include <regex>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "models/registry.h"

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
  if (cfg.has("model.cold_start_threshold")) options.cold_start_threshold(cfg.get_double("model.cold_start_threshold", 0.0, 1e12));
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
  // The users' training items: blending is over the items a user could be recommended, so they
  // are left out of normalisation and ranks (sized from the split, so checkpoints load).
  if (options.cold_start_threshold() > 0.0) {
    if (std::none_of(parts_.begin(), parts_.end(), [](const Recommender& m) { return m->scores_cold_items(); }))
      cfg.bad("model.cold_start_threshold",
              fmt::format("{} needs a part that scores items from their features (content); the parts are {}",
                          options.cold_start_threshold(), [&] {
                            std::string s;
                            for (const auto& n : part_names_) s += (s.empty() ? "" : ", ") + n;
                            return s;
                          }()));
    support_ = register_buffer("support", torch::ones({n_items_}));
  }
  const int64_t nnz = ctx.split ? ctx.split->train.nnz() : 0;
  seen_indptr_ = register_buffer("seen_indptr", torch::zeros({n_users_ + 1}, torch::kLong));
  seen_items_ = register_buffer("seen_items", torch::zeros({nnz}, torch::kLong));
}

void HybridImpl::fit(const Csr& train) {
  for (auto& m : parts_) m->fit(train);
  torch::NoGradGuard no_grad;
  if (seen_items_.numel() != train.nnz()) seen_items_.resize_({train.nnz()});  // built without a split
  seen_indptr_.copy_(torch::tensor(train.indptr, torch::kLong));
  seen_items_.copy_(torch::tensor(train.indices, torch::kLong));
  if (support_.defined()) {
    // g_i = min(1, n_i / T).
    std::vector<float> n(static_cast<size_t>(n_items_), 0.0f);
    for (const int64_t i : train.indices) n[static_cast<size_t>(i)] += 1.0f;
    support_.copy_((torch::tensor(n) / options.cold_start_threshold()).clamp_max(1.0).to(support_.device()));
  }
}

double HybridImpl::cold_shift() const {
  double cf = 0.0, content = 0.0;
  for (size_t m = 0; m < parts_.size(); ++m) (parts_[m]->scores_cold_items() ? content : cf) += options.weights()[m];
  return content > 0.0 ? cf / content : 0.0;
}

at::Tensor HybridImpl::term(const at::Tensor& part_in, const at::Tensor& known, size_t m) const {
  const auto part = part_in.masked_fill(known, 0.0);
  if (!support_.defined()) return part * options.weights()[m];
  const auto g = support_.to(part.device()).unsqueeze(0);  // [1, I]
  if (parts_[m]->scores_cold_items()) return part * ((1.0 - g) * cold_shift() + 1.0) * options.weights()[m];
  return part * g * options.weights()[m];
}

at::Tensor HybridImpl::seen(const at::Tensor& users) const {
  // [B, I] bool: the users' training items, from their CSR rows by tensor ops only (the same
  // ops as the exported TorchScript): positions start[b] + 0..count[b]-1 of seen_items.
  const auto u = users.to(seen_indptr_.device());
  const auto start = seen_indptr_.index_select(0, u), count = seen_indptr_.index_select(0, u + 1) - start;
  const auto rows = torch::repeat_interleave(torch::arange(u.size(0), u.options()), count);
  const auto first = torch::repeat_interleave(count.cumsum(0) - count, count);
  const auto pos = torch::repeat_interleave(start, count) + torch::arange(rows.size(0), u.options()) - first;
  const auto cols = seen_items_.index_select(0, pos);
  auto mask = torch::zeros({u.size(0) * n_items_}, torch::kFloat).to(seen_items_.device());
  mask.index_fill_(0, rows * n_items_ + cols, 1.0);
  return mask.view({u.size(0), n_items_}) > 0.5;
}

namespace {
// Per-user normalisation of a [B, I] score matrix over the items not `seen`.
at::Tensor normalized(const at::Tensor& s, const at::Tensor& seen, const std::string& how) {
  const double inf = std::numeric_limits<double>::infinity();
  if (how == "minmax") {
    const auto lo = std::get<0>(s.masked_fill(seen, inf).min(1, true)), hi = std::get<0>(s.masked_fill(seen, -inf).max(1, true));
    return (s - lo) / (hi - lo).clamp_min(1e-12);
  }
  if (how == "zscore") {
    const auto n = (~seen).sum(1, true).to(s.scalar_type()).clamp_min(1.0);
    const auto mean = s.masked_fill(seen, 0.0).sum(1, true) / n;
    const auto var = (s - mean).pow(2).masked_fill(seen, 0.0).sum(1, true) / n;
    return (s - mean) / var.sqrt().clamp_min(1e-12);
  }
  return s;
}
// Rank of every item per row, 1 = highest score; ties by item index (stable sort). Scores equal
// up to float noise count as ties: items with identical vectors can get scores a few ulps apart
// depending on how BLAS blocks a batch, which would otherwise decide their order (and differ
// between batch shapes). So rank the scores rounded to 2^-20 of the row's largest magnitude.
at::Tensor ranks(const at::Tensor& s_in) {
  const auto fin = torch::isfinite(s_in);
  const auto scale = s_in.masked_fill(~fin, 0.0).abs().amax(1, true).clamp_min(1e-30);
  const auto s = torch::where(fin, torch::round(s_in / scale * 1048576.0), s_in);
  const auto order = std::get<1>(s.sort(/*stable=*/true, 1, /*descending=*/true));
  auto r = torch::empty_like(order);
  r.scatter_(1, order, torch::arange(1, s.size(1) + 1, order.options()).expand_as(order).contiguous());
  return r.to(torch::kFloat);
}
}  // namespace

at::Tensor HybridImpl::score_all(const at::Tensor& users) {
  at::Tensor total;
  const auto known = seen(users);  // [B, I]
  for (size_t m = 0; m < parts_.size(); ++m) {
    const auto s = parts_[m]->score_all(users).to(torch::kFloat).to(known.device());  // [B, I]
    // rrf: training items rank last (they are never recommended), so candidates rank 1, 2, ...
    const auto part = options.method() == "rrf"
                          ? 1.0 / (ranks(s.masked_fill(known, -std::numeric_limits<double>::infinity())) + options.rrf_k())
                          : normalized(s, known, options.normalize());
    const auto w = term(part, known, m);
    total = total.defined() ? total + w : w;
  }
  return total;
}

bool HybridImpl::folds_in() const {
  return std::all_of(parts_.begin(), parts_.end(), [](const Recommender& m) { return m->folds_in(); });
}

at::Tensor HybridImpl::score_fold_in(const at::Tensor& items) {
  std::string cannot;
  for (size_t m = 0; m < parts_.size(); ++m)
    if (!parts_[m]->folds_in()) cannot += (cannot.empty() ? "" : ", ") + part_names_[m];
  TORCH_CHECK(cannot.empty(), "model 'hybrid' cannot fold in a new user's history (its part(s) ", cannot, " cannot)");
  auto known = torch::zeros({1, n_items_}, torch::kBool);
  known[0].index_fill_(0, items.to(torch::kCPU, torch::kLong), true);
  at::Tensor total;
  for (size_t m = 0; m < parts_.size(); ++m) {
    const auto s = parts_[m]->score_fold_in(items).to(torch::kFloat).to(torch::kCPU).unsqueeze(0);  // [1, I]
    const auto part = options.method() == "rrf"
                          ? 1.0 / (ranks(s.masked_fill(known, -std::numeric_limits<double>::infinity())) + options.rrf_k())
                          : normalized(s, known, options.normalize());
    const auto w = term(part, known, m);
    total = total.defined() ? total + w : w;
  }
  return total[0];
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
  e.fold_in = folds_in();
  std::string body, fold_body;
  // One part's term of the blend, from its scores s [B, I] and the known items `known`.
  auto term = [&](size_t m, const std::string& s) {
    std::string part;
    if (options.method() == "rrf") part = fmt::format("1.0 / (self._ranks({}.masked_fill(known, float(\"-inf\"))) + {:.17g})", s, options.rrf_k());
    else if (options.normalize() == "minmax") part = fmt::format("self._minmax({}, known)", s);
    else if (options.normalize() == "zscore") part = fmt::format("self._zscore({}, known)", s);
    else part = s;
    if (support_.defined() && parts_[m]->scores_cold_items())
      return fmt::format("    t{} = ({}).masked_fill(known, 0.0) * ((1.0 - self.support.unsqueeze(0)) * {:.17g} + 1.0) * {:.17g}\n",
                         m, part, cold_shift(), options.weights()[m]);
    if (support_.defined())
      return fmt::format("    t{} = ({}).masked_fill(known, 0.0) * self.support.unsqueeze(0) * {:.17g}\n", m, part, options.weights()[m]);
    return fmt::format("    t{} = ({}).masked_fill(known, 0.0) * {:.17g}\n", m, part, options.weights()[m]);
  };
  for (size_t m = 0; m < parts_.size(); ++m) {
    const std::string p = fmt::format("p{}_", m);
    ScriptExport sub = parts_[m]->script_export();
    for (auto& [name, t] : sub.tensors) e.tensors.emplace_back(p + name, t);
    e.code += prefix_script(sub.code, p);
    body += term(m, fmt::format("self.{}_score_all(users).float()", p));
    fold_body += term(m, fmt::format("self.{}_score_fold_in(items).float().unsqueeze(0)", p));
  }
  std::string sum = "t0";
  for (size_t m = 1; m < parts_.size(); ++m) sum += fmt::format(" + t{}", m);
  if (support_.defined()) e.tensors.emplace_back("support", support_.detach().to(torch::kCPU).clone());
  e.tensors.emplace_back("train_indptr", seen_indptr_.detach().to(torch::kCPU).clone());
  e.tensors.emplace_back("train_items", seen_items_.detach().to(torch::kCPU).clone());
  e.code += R"PY(
def _seen(self, users: Tensor) -> Tensor:
    n_items = self.p0__score_all(users[:1]).size(1)
    start = self.train_indptr.index_select(0, users)
    count = self.train_indptr.index_select(0, users + 1) - start
    rows = torch.repeat_interleave(torch.arange(users.size(0)), count)
    first = torch.repeat_interleave(count.cumsum(0) - count, count)
    pos = torch.repeat_interleave(start, count) + torch.arange(rows.size(0)) - first
    cols = self.train_items.index_select(0, pos)
    mask = torch.zeros(users.size(0) * n_items)
    mask.index_fill_(0, rows * n_items + cols, 1.0)
    return mask.view(users.size(0), n_items) > 0.5

def _minmax(self, s: Tensor, known: Tensor) -> Tensor:
    lo = torch.min(s.masked_fill(known, float("inf")), 1, True)[0]
    hi = torch.max(s.masked_fill(known, float("-inf")), 1, True)[0]
    return (s - lo) / (hi - lo).clamp_min(1e-12)

def _zscore(self, s: Tensor, known: Tensor) -> Tensor:
    n = (1.0 - known.float()).sum(1, True).clamp_min(1.0)
    mean = s.masked_fill(known, 0.0).sum(1, True) / n
    var = (s - mean).pow(2).masked_fill(known, 0.0).sum(1, True) / n
    return (s - mean) / var.sqrt().clamp_min(1e-12)

def _ranks(self, s_in: Tensor) -> Tensor:
    fin = torch.isfinite(s_in)
    scale = s_in.masked_fill(~fin, 0.0).abs().amax(1, True).clamp_min(1e-30)
    s = torch.where(fin, torch.round(s_in / scale * 1048576.0), s_in)
    order = torch.sort(s, stable=True, dim=1, descending=True)[1]
    r = torch.empty_like(order)
    r.scatter_(1, order, torch.arange(1, s.size(1) + 1, dtype=order.dtype).expand_as(order).contiguous())
    return r.float()

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    # Each distinct user once, as score() does (the same batches, so the same float rounding).
    uniq, inverse, counts = torch._unique2(users, sorted=True, return_inverse=True, return_counts=False)
    return self._score_all(uniq)[inverse, items]

def _score_all(self, users: Tensor) -> Tensor:
    known = self._seen(users)
)PY" + body + "    return " + sum + "\n";
  if (e.fold_in)
    e.code += fmt::format("\ndef _score_fold_in(self, items: Tensor) -> Tensor:\n    mark = torch.zeros(1, {})\n"
                          "    mark[0].index_fill_(0, items, 1.0)\n    known = mark > 0.5\n",
                          n_items_) +
              fold_body + "    return (" + sum + ")[0]\n";
  return e;
}

}  // namespace rzoo
