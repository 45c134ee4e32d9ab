#include "trainers/trainer.h"

#include <torch/torch.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/distributed.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/tensorboard.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "models/registry.h"
#include "trainers/fused_adam.h"
#include "trainers/lazy_adam.h"

namespace rzoo {

namespace {
std::atomic<bool> g_stop{false};
constexpr const char* kFormat = "rzoo-checkpoint-1";
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string thousands(double v) {
  std::string s = fmt::format("{:.0f}", v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0 && s[i - 1] != '-') out += ',';
    out += s[i];
  }
  return out;
}
}  // namespace

// The terms a model's loss is the mean of, for weighting a part of a batch: one per row, or with
// all-positions sequence batches one per target position (items [B, L], n_items where a
// position has none). BERT4Rec's cloze loss averages over the positions it masks, drawn inside
// the loss: its parts are weighted by rows (the expected share).
namespace {
int64_t loss_terms(const at::Tensor& items, int64_t rows, int64_t n_items) {
  return items.defined() && items.dim() == 2 ? (items < n_items).sum().item<int64_t>() : rows;
}
}  // namespace

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }

TrainOptions TrainOptions::from_config(const Config& cfg) {
  TrainOptions o;
  o.epochs = cfg.get_int("train.epochs", 0);
  o.batch_size = cfg.get_int("train.batch_size", 1);
  o.micro_batch_size = cfg.get_int("train.micro_batch_size", 0);
  o.neg_per_pos = cfg.get_int("train.neg_per_pos", 1);
  o.shuffle_samples = cfg.get_choice("train.shuffle", {"positives", "samples"}) == "samples";
  o.sampler = cfg.get_choice("train.sampler", {"uniform", "popularity"});
  o.sampler_alpha = cfg.get_double("train.sampler_alpha", 0.0);
  o.seq_max_len = cfg.get_int("train.sequence.max_len", 1);
  o.seq_prefix = cfg.get_choice("train.sequence.augment", {"prefix", "none"}) == "prefix";
  o.seq_bucket = cfg.get_bool("train.sequence.bucket");
  o.optimizer = cfg.get_choice("train.optimizer", {"adam", "lazy_adam", "sgd", "adagrad"});
  o.lr = cfg.get_double("train.lr", 0.0, 1e6);
  if (o.lr <= 0) cfg.bad("train.lr", fmt::format("must be > 0, got {}", o.lr));
  o.weight_decay = cfg.get_double("train.weight_decay", 0.0, 1e6);
  o.momentum = cfg.get_double("train.momentum", 0.0, 1.0);
  o.valid_every = cfg.get_int("train.valid_every", 1);
  o.early_stop_metric = cfg.get_string("train.early_stop.metric");
  o.patience = cfg.get_int("train.early_stop.patience", 0);
  o.min_epochs = cfg.get_int("train.early_stop.min_epochs", 0);
  o.progress = cfg.get_choice("train.progress", {"auto", "true", "false"});
  o.log_every = cfg.get_int("train.log_every", 0);
  o.seed = static_cast<uint64_t>(cfg.get_int("seed", 0));
  o.init_from = cfg.get_string("train.init_from");
  o.init_fold_in = cfg.get_choice("train.init_new_users", {"fold_in", "model"}) == "fold_in";
  // The early-stopping metric must be one the evaluator computes.
  const auto eval = EvalOptions::from_config(cfg);
  const auto at = o.early_stop_metric.find('@');
  const std::string name = o.early_stop_metric.substr(0, at);
  bool ok = std::find(eval.metrics.begin(), eval.metrics.end(), name) != eval.metrics.end() && metric_per_user(name);
  if (ok && metric_has_k(name)) {
    const std::string k = at == std::string::npos ? "" : o.early_stop_metric.substr(at + 1);
    ok = std::find_if(eval.ks.begin(), eval.ks.end(), [&](int64_t x) { return std::to_string(x) == k; }) != eval.ks.end();
  } else if (ok) {
    ok = at == std::string::npos;
  }
  if (!ok)
    cfg.bad("train.early_stop.metric",
            fmt::format("'{}' is not computed; use METRIC@K with METRIC in eval.metrics and K in eval.ks (or auc, gauc, "
                        "rmse, mae when listed in eval.metrics)",
                        o.early_stop_metric));
  return o;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, std::vector<at::Tensor> params,
                                                        double lr, double weight_decay, double momentum) {
  if (name == "adam")
    return std::make_unique<FusedAdam>(params, torch::optim::AdamOptions(lr).weight_decay(weight_decay));
  if (name == "lazy_adam")
    return std::make_unique<LazyAdam>(params, torch::optim::AdamOptions(lr).weight_decay(weight_decay));
  if (name == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).weight_decay(weight_decay).momentum(momentum));
  if (name == "adagrad")
    return std::make_unique<torch::optim::Adagrad>(params, torch::optim::AdagradOptions(lr).weight_decay(weight_decay));
  fail("unknown optimizer '{}' (known: adagrad, adam, lazy_adam, sgd)", name);
}

bool sparse_gradients_are_exact(const TrainOptions& o) {
  if (o.optimizer == "lazy_adam") return true;
  // Without weight decay and momentum, a zero gradient row leaves SGD's and Adagrad's parameter
  // (and Adagrad's sum) unchanged: the sparse update is the dense one, without touching the rest.
  return o.weight_decay == 0 && ((o.optimizer == "sgd" && o.momentum == 0) || o.optimizer == "adagrad");
}

void set_sparse_embeddings(torch::nn::Module& model, bool sparse) {
  for (const auto& m : model.modules(/*include_self=*/true))
    if (auto* e = m->as<torch::nn::EmbeddingImpl>()) e->options.sparse(sparse);
}

Trainer::Trainer(Recommender model, const Split& split, TrainOptions train, EvalOptions eval, c10::Device device,
                 std::string run_dir, Logger& log, const Dataset* data)
    : model_(std::move(model)),
      split_(split),
      data_(data),
      opt_(std::move(train)),
      eval_(std::move(eval)),
      device_(device),
      run_dir_(std::move(run_dir)),
      log_(log),
      dist_(Distributed::get()) {
  model_->to(device_);
  if (model_->input_type() != InputType::None && !model_->parameters().empty()) {
    optimizer_ = make_optimizer(opt_.optimizer, model_->parameters(), opt_.lr, opt_.weight_decay, opt_.momentum);
    // Distributed: embedding gradients travel sparse (the rows a batch touched, not the tables)
    // and become dense again after the sum when the optimizer needs them so (reduce_gradients).
    if (sparse_gradients_are_exact(opt_) || dist_) set_sparse_embeddings(*model_, true);
  }
}

Trainer::~Trainer() = default;

double Trainer::validate(EpochRecord& rec) {
  rec.valid_metrics.clear();
  if (split_.valid.nnz() == 0) return std::numeric_limits<double>::quiet_NaN();
  const EvalResult r = evaluate(*model_, split_, Target::Valid, eval_, device_, data_);
  for (const auto& [name, value] : r.metrics)
    if (!std::isnan(value)) rec.valid_metrics.emplace_back(name, value);
  return r.get(opt_.early_stop_metric);
}

double Trainer::current_lr() const {
  // The optimizer's own, so that a schedule would show; per-sample SGD steps use opt_.lr.
  if (optimizer_ && !optimizer_->param_groups().empty()) return optimizer_->param_groups()[0].options().get_lr();
  return opt_.lr;
}

namespace {
// The validation metrics of a history, the latest validation's order first (older runs resumed
// from a checkpoint without them only know the early-stopping metric of their first epochs).
std::vector<std::string> valid_metric_names(const std::vector<EpochRecord>& history) {
  std::vector<std::string> names;
  for (auto r = history.rbegin(); r != history.rend(); ++r)
    for (const auto& m : r->valid_metrics)
      if (std::find(names.begin(), names.end(), m.first) == names.end()) names.push_back(m.first);
  return names;
}

const double* find_metric(const EpochRecord& r, const std::string& name) {
  for (const auto& m : r.valid_metrics)
    if (m.first == name) return &m.second;
  return nullptr;
}
}  // namespace

void write_history_csv(const std::string& path, const std::vector<EpochRecord>& history) {
  const auto names = valid_metric_names(history);
  // Shortest text that reads back as the same double.
  const auto cell = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); };
  std::string out = "epoch,loss,seconds,lr";
  for (const auto& n : names) out += ",valid_" + n;
  out += '\n';
  for (const auto& r : history) {
    out += fmt::format("{},{},{},{}", r.epoch, cell(r.loss), cell(r.seconds), cell(r.lr));
    for (const auto& n : names) {
      const double* v = find_metric(r, n);
      out += ',';
      if (v) out += cell(*v);
    }
    out += '\n';
  }
  write_file_atomic(path, out);
}

void Trainer::write_epoch_logs(const EpochRecord& rec) {
  if (!writes_files()) return;
  if (!events_) {
    events_ = std::make_unique<EventWriter>(run_dir_);
    // Events a killed process wrote past last.pt's epoch are then dropped by TensorBoard.
    if (resumed_) events_->session_start(rec.epoch);
  }
  const auto put = [&](const std::string& tag, double v) {
    if (!std::isnan(v)) events_->scalar(tag, rec.epoch, v);
  };
  put("train/loss", rec.loss);
  put("train/lr", rec.lr);
  put("train/epoch_seconds", rec.seconds);
  for (const auto& [name, value] : rec.valid_metrics) put("valid/" + name, value);
  events_->flush();  // never throws: a full disk stops the events, not the training
  write_history_csv(run_dir_ + "/history.csv", history_);
}

void Trainer::save_best() {
  if (!writes_files()) return;
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string(kFormat)));
  ar.write("model_name", c10::IValue(model_->name()));
  ar.write("epoch", torch::tensor({epoch_}, torch::kLong));
  torch::serialize::OutputArchive m;
  model_->save(m);
  ar.write("model", m);
  save_archive_atomic(ar, run_dir_ + "/best.pt");
}

void Trainer::save_last() {
  if (!writes_files()) return;
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string(kFormat)));
  ar.write("model_name", c10::IValue(model_->name()));
  ar.write("state", torch::tensor({epoch_, best_epoch_, bad_validations_, int64_t{done_}}, torch::kLong));
  ar.write("scalars", torch::tensor({best_valid_, train_seconds_}, torch::kDouble));
  auto hist = torch::empty({static_cast<int64_t>(history_.size()), 5}, torch::kDouble);
  double* h = hist.data_ptr<double>();
  for (const auto& r : history_) {
    *h++ = static_cast<double>(r.epoch);
    *h++ = r.loss;
    *h++ = r.seconds;
    *h++ = r.samples_per_s;
    *h++ = r.valid;
  }
  ar.write("history", hist);
  // The processes that trained: a resume must use as many (each batch is split across them).
  ar.write("world_size", torch::tensor({int64_t{dist_ ? dist_->world() : 1}}, torch::kLong));
  // What history.csv shows beyond those 5 columns (absent from checkpoints of older versions).
  const auto names = valid_metric_names(history_);
  auto lrs = torch::empty({static_cast<int64_t>(history_.size())}, torch::kDouble);
  auto valid = torch::full({static_cast<int64_t>(history_.size()), static_cast<int64_t>(names.size())},
                           std::numeric_limits<double>::quiet_NaN(), torch::kDouble);
  double* l = lrs.data_ptr<double>();
  double* v = valid.data_ptr<double>();
  for (const auto& r : history_) {
    *l++ = r.lr;
    for (const auto& n : names) {
      if (const double* x = find_metric(r, n)) *v = *x;
      ++v;
    }
  }
  ar.write("history_lr", lrs);
  ar.write("history_valid_names", c10::IValue(fmt::format("{}", fmt::join(names, "\n"))));
  ar.write("history_valid", valid);
  torch::serialize::OutputArchive m;
  model_->save(m);
  ar.write("model", m);
  if (optimizer_) {
    torch::serialize::OutputArchive o;
    optimizer_->save(o);
    ar.write("optimizer", o);
  }
  save_archive_atomic(ar, run_dir_ + "/last.pt");
}

namespace {
void check_format(torch::serialize::InputArchive& ar, const std::string& path, const std::string& model_name) {
  c10::IValue format, name;
  if (!ar.try_read("format", format) || !format.isString() || format.toStringRef() != kFormat)
    fail("{}: not an rzoo checkpoint (format tag missing)", path);
  if (!ar.try_read("model_name", name) || !name.isString())
    fail("{}: checkpoint is corrupt (no model name)", path);
  if (name.toStringRef() != model_name)
    fail("{}: checkpoint holds model '{}', the config builds '{}'", path, name.toStringRef(), model_name);
}

void load_module(torch::serialize::InputArchive& ar, torch::nn::Module& module, const std::string& path) {
  torch::serialize::InputArchive m;
  // Loading replaces tensors without comparing shapes: compare them ourselves.
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const auto& p : module.named_parameters()) shapes.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers()) shapes.emplace_back(b.key(), b.value().sizes().vec());
  try {
    if (!ar.try_read("model", m)) fail("{}: checkpoint has no model weights", path);
    module.load(m);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    fail("{}: checkpoint does not match the model (different sizes or data?): {}", path, msg.substr(0, msg.find('\n')));
  }
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  for (const auto& [name, before] : shapes) {
    const at::Tensor* t = params.find(name);
    if (!t) t = buffers.find(name);
    if (!t || t->sizes().vec() != before)
      fail("{}: checkpoint does not match the model: '{}' has shape {} in the checkpoint, the model needs {} "
           "(different data or model settings?)", path, name, t ? fmt::format("{}", fmt::join(t->sizes().vec(), "x")) : "none",
           fmt::format("{}", fmt::join(before, "x")));
  }
}
}  // namespace

namespace {
struct Growth {
  int64_t old_users, old_items, new_users, new_items;
};

// The segments (source start, destination start, length) that carry a dimension of size `from`
// over to size `to`; empty when the sizes are not related as warm_start() describes.
std::vector<std::array<int64_t, 3>> dim_segments(int64_t from, int64_t to, const Growth& g) {
  if (from == to) return {{0, 0, from}};
  for (const auto& [o, n] : {std::pair{g.old_users, g.new_users}, std::pair{g.old_items, g.new_items}}) {
    const int64_t c = from - o;
    if (n > o && c >= 0 && c <= 2 && to - from == n - o) {
      std::vector<std::array<int64_t, 3>> seg{{0, 0, o}};
      if (c > 0) seg.push_back({o, n, c});
      return seg;
    }
  }
  return {};
}

int64_t copy_parameters(torch::nn::Module& m, torch::serialize::InputArchive& ar, const Growth& g, const std::string& path,
                        const std::string& prefix, const RecommenderImpl* top = nullptr) {
  int64_t grown = 0;
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters(/*recurse=*/false)) {
    const std::string name = prefix + p.key();
    at::Tensor src;
    if (!ar.try_read(p.key(), src)) fail("{}: train.init_from: the checkpoint has no parameter '{}'", path, name);
    at::Tensor dst = p.value();
    if (src.dim() != dst.dim())
      fail("{}: train.init_from: '{}' has shape {} in the checkpoint, this run's model has {}", path, name,
           fmt::join(src.sizes(), "x"), fmt::join(dst.sizes(), "x"));
    std::vector<std::vector<std::array<int64_t, 3>>> segs;
    for (int64_t d = 0; d < dst.dim(); ++d) {
      // The model's own row map for its dimension 0, when it has one: every checkpoint row goes
      // to a row of this model's.
      auto own = d == 0 && top ? top->warm_start_rows(p.key(), g.old_users, g.old_items) : std::vector<std::array<int64_t, 3>>{};
      if (!own.empty()) {
        int64_t carried = 0;
        bool fits = true;
        for (const auto& [from, to, len] : own) {
          fits = fits && from >= 0 && to >= 0 && len >= 0 && from + len <= src.size(0) && to + len <= dst.size(0);
          carried += len;
        }
        if (!fits || carried != src.size(0))
          fail("{}: train.init_from: '{}' has shape {} in the checkpoint, this run's model has {}; the model's map of "
               "its rows (by user, item and field) does not fit them (a field that changed size?)",
               path, name, fmt::join(src.sizes(), "x"), fmt::join(dst.sizes(), "x"));
        segs.push_back(own);
        continue;
      }
      segs.push_back(dim_segments(src.size(d), dst.size(d), g));
      if (segs.back().empty())
        fail("{}: train.init_from: '{}' has shape {} in the checkpoint, this run's model has {} (only tables of users "
             "and items may grow, by the new users and items)", path, name, fmt::join(src.sizes(), "x"),
             fmt::join(dst.sizes(), "x"));
    }
    if (src.sizes() == dst.sizes()) {
      dst.copy_(src);
      continue;
    }
    ++grown;
    // Every combination of the dimensions' segments is one block to copy.
    std::vector<size_t> at(segs.size(), 0);
    while (true) {
      at::Tensor s = src, t = dst;
      for (size_t d = 0; d < segs.size(); ++d) {
        const auto& [from, to, len] = segs[d][at[d]];
        s = s.narrow(static_cast<int64_t>(d), from, len);
        t = t.narrow(static_cast<int64_t>(d), to, len);
      }
      t.copy_(s);
      size_t d = 0;
      while (d < at.size() && ++at[d] == segs[d].size()) at[d++] = 0;
      if (d == at.size()) break;
    }
  }
  for (auto& c : m.named_children()) {
    torch::serialize::InputArchive sub;
    if (!ar.try_read(c.key(), sub)) fail("{}: train.init_from: the checkpoint has no module '{}'", path, prefix + c.key());
    grown += copy_parameters(*c.value(), sub, g, path, prefix + c.key() + ".");
  }
  return grown;
}
}  // namespace

int64_t warm_start(torch::nn::Module& module, const std::string& path, const std::string& model_name, int64_t old_users,
                   int64_t old_items, int64_t new_users, int64_t new_items, const c10::Device& device) {
  torch::serialize::InputArchive ar;
  load_archive(ar, path, device);
  check_format(ar, path, model_name);
  torch::serialize::InputArchive m;
  if (!ar.try_read("model", m)) fail("{}: checkpoint has no model weights", path);
  return copy_parameters(module, m, Growth{old_users, old_items, new_users, new_items}, path, "",
                         dynamic_cast<const RecommenderImpl*>(&module));
}

void load_model_checkpoint(const std::string& path, torch::nn::Module& module, const std::string& model_name,
                           const c10::Device& device) {
  torch::serialize::InputArchive ar;
  load_archive(ar, path, device);
  check_format(ar, path, model_name);
  load_module(ar, module, path);
}

std::optional<RunProgress> read_run_progress(const std::string& last_pt) {
  if (!std::filesystem::exists(last_pt)) return std::nullopt;
  at::Tensor state;
  try {
    torch::serialize::InputArchive ar;
    load_archive(ar, last_pt, torch::kCPU);
    if (!ar.try_read("state", state) || state.numel() != 4 || state.scalar_type() != torch::kLong) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  // The layout save_last() writes: epoch, best epoch, bad validations, done.
  return RunProgress{state[0].item<int64_t>(), state[3].item<int64_t>() != 0};
}

void Trainer::resume(bool announce, bool to_train) {
  const std::string path = run_dir_ + "/last.pt";
  torch::serialize::InputArchive ar;
  load_archive(ar, path, device_);
  check_format(ar, path, model_->name());
  at::Tensor state, scalars, hist;
  if (!ar.try_read("state", state) || state.numel() != 4 || !ar.try_read("scalars", scalars) || scalars.numel() != 2 ||
      !ar.try_read("history", hist) || hist.dim() != 2 || hist.size(1) != 5 || hist.scalar_type() != torch::kDouble ||
      state.scalar_type() != torch::kLong || scalars.scalar_type() != torch::kDouble)
    fail("{}: checkpoint is corrupt (training state missing or malformed)", path);
  {
    at::Tensor ws;
    const int64_t saved = ar.try_read("world_size", ws) && ws.numel() == 1 ? ws.cpu().item<int64_t>() : 1;
    const int64_t now = dist_ ? dist_->world() : 1;
    if (saved != now && to_train)
      fail("{}: the run was trained by {} process(es) and this resume has {}: resume it with the same number "
           "(each batch is split across the processes, so another number would not continue the same run)", path,
           saved, now);
  }
  load_module(ar, *model_, path);
  if (optimizer_) {
    torch::serialize::InputArchive o;
    if (!ar.try_read("optimizer", o)) fail("{}: checkpoint has no optimizer state", path);
    try {
      optimizer_->load(o);
    } catch (const c10::Error& e) {
      fail("{}: optimizer state does not match train.optimizer '{}'", path, opt_.optimizer);
    }
  }
  state = state.cpu();
  scalars = scalars.cpu();
  hist = hist.cpu().contiguous();
  epoch_ = state[0].item<int64_t>();
  best_epoch_ = state[1].item<int64_t>();
  bad_validations_ = state[2].item<int64_t>();
  done_ = state[3].item<int64_t>() != 0;
  best_valid_ = scalars[0].item<double>();
  train_seconds_ = scalars[1].item<double>();
  history_.clear();
  const double* h = hist.data_ptr<double>();
  for (int64_t r = 0; r < hist.size(0); ++r, h += 5)
    history_.push_back({static_cast<int64_t>(h[0]), h[1], h[2], h[3], h[4]});
  read_history_extras(ar, path);
  resumed_ = true;
  if (announce)
    log_.line(fmt::format("resumed from {} at epoch {} (best {} {:.4f} at epoch {})", path, epoch_,
                          opt_.early_stop_metric, best_valid_, best_epoch_));
}

// The learning rates and all validation metrics of the history. A checkpoint of an older version
// has neither: its epochs get train.lr and the early-stopping metric alone.
void Trainer::read_history_extras(torch::serialize::InputArchive& ar, const std::string& path) {
  at::Tensor lrs, valid;
  c10::IValue names_value;
  const auto n = static_cast<int64_t>(history_.size());
  if (!ar.try_read("history_lr", lrs)) {
    for (auto& r : history_) {
      if (model_->input_type() != InputType::None) r.lr = opt_.lr;
      if (!std::isnan(r.valid)) r.valid_metrics = {{opt_.early_stop_metric, r.valid}};
    }
    return;
  }
  std::vector<std::string> names;
  if (ar.try_read("history_valid_names", names_value) && names_value.isString()) {
    const std::string& text = names_value.toStringRef();
    for (size_t at = 0; !text.empty() && at <= text.size();) {
      const size_t end = std::min(text.find('\n', at), text.size());
      names.push_back(text.substr(at, end - at));
      at = end + 1;
    }
  }
  if (!names_value.isString() || !ar.try_read("history_valid", valid) || lrs.dim() != 1 || lrs.size(0) != n ||
      lrs.scalar_type() != torch::kDouble || valid.dim() != 2 || valid.size(0) != n ||
      valid.size(1) != static_cast<int64_t>(names.size()) || valid.scalar_type() != torch::kDouble)
    fail("{}: checkpoint is corrupt (history of learning rates and validation metrics malformed)", path);
  lrs = lrs.cpu().contiguous();
  valid = valid.cpu().contiguous();
  const double* l = lrs.data_ptr<double>();
  const double* v = valid.data_ptr<double>();
  for (auto& r : history_) {
    r.lr = *l++;
    for (const auto& name : names) {
      if (!std::isnan(*v)) r.valid_metrics.emplace_back(name, *v);
      ++v;
    }
  }
}

void Trainer::restore_best() {
  // Distributed: rank 0 reads best.pt (it wrote it) and every rank takes its parameters, so that
  // no rank reads a file rank 0 may still be writing, and other machines need no copy of it.
  if (writes_files()) load_model_checkpoint(run_dir_ + "/best.pt", *model_, model_->name(), device_);
  sync_model();
}

bool Trainer::fit(int64_t max_epochs) {
  namespace fs = std::filesystem;
  fs::create_directories(run_dir_);
  if (done_) return true;
  if (stop_requested()) fail("interrupted before training started");
  if (model_->input_type() == InputType::None) return fit_closed_form();

  if (!optimizer_) fail("model '{}' has no trainable parameters", model_->name());
  auto sampler = make_sampler(opt_.sampler, split_.train, opt_.sampler_alpha);
  const bool per_sample = use_per_sample_sgd();
  // Distributed: every rank draws the same batches of world x train.batch_size rows (the batchers'
  // order and negatives do not depend on the batch size) and trains on its block of each, so N
  // processes with batch_size B/N take the steps one process takes with B.
  const int64_t world = dist_ ? dist_->world() : 1;
  auto batcher_ptr = make_batcher(split_, model_->input_type(), *sampler, per_sample ? int64_t{8192} : opt_.batch_size * world,
                                  opt_.neg_per_pos,
                                  SequenceOptions{opt_.seq_max_len, opt_.seq_prefix, opt_.seq_bucket},
                                  opt_.shuffle_samples ? Batcher::Shuffle::Samples : Batcher::Shuffle::Positives);
  BatchSource& batcher = *batcher_ptr;
  const bool show_progress = opt_.progress == "true" || (opt_.progress == "auto" && log_.interactive());
  const bool has_valid = split_.valid.nnz() > 0;
  int64_t ran = 0;
  // The initial state, so that even a run stopped in its first epoch can be resumed (exactly:
  // epoch 0's order and negatives depend on (seed, 0) alone).
  if (epoch_ == 0 && history_.empty()) {
    if (opt_.init_from.empty()) {
      model_->before_training();
    } else {
      const int64_t grown = warm_start(*model_, opt_.init_from + "/best.pt", model_->name(), opt_.init_users,
                                       opt_.init_items, model_->n_users(), model_->n_items(), device_);
      if (opt_.init_fold_in) {
        const int64_t folded = model_->init_user_rows(split_.train, opt_.init_users);
        if (folded > 0)
          log_.line(fmt::format("train.init_new_users fold_in: {} new users start from their fold-in (the MAP vector "
                                "of their training items under the trained item side)", folded));
      }
      log_.line(fmt::format("warm start from {}/best.pt: {} users and {} items of {} and {} ({} new users, {} new items; "
                            "{} parameter tables grew, their new rows initialised as model.* says); each epoch goes "
                            "over {}", opt_.init_from, opt_.init_users, opt_.init_items, model_->n_users(),
                            model_->n_items(), model_->n_users() - opt_.init_users, model_->n_items() - opt_.init_items,
                            grown, split_.epoch.n_rows > 0
                                ? fmt::format("{} new training pairs and a replay sample of {} others", split_.replay_new,
                                              split_.replay_old)
                                : fmt::format("all {} training pairs", split_.train.nnz())));
    }
    save_last();
  }
  sync_model();
  int64_t step = 0;  // steps of this process (for log_every)

  while (epoch_ < opt_.epochs) {
    if (max_epochs >= 0 && ran >= max_epochs) return false;
    EpochRecord rec = train_epoch(batcher, per_sample, show_progress, step);
    ++ran;
    end_epoch(rec, has_valid);
    if (done_) break;
  }
  finish_fit(has_valid);
  return true;
}

bool Trainer::fit_closed_form() {
  const auto t0 = Clock::now();
  UpdateResult up;
  if (!opt_.init_from.empty()) {
    // An update (rzoo update): models that can update the parent's fit exactly do; the others,
    // or where the parent's training pairs are not known, refit in full.
    if (split_.parent_train.n_rows > 0) {
      const std::string path = opt_.init_from + "/best.pt";
      torch::serialize::InputArchive ar, m;
      load_archive(ar, path, torch::kCPU);
      check_format(ar, path, model_->name());
      if (!ar.try_read("model", m)) fail("{}: checkpoint has no model weights", path);
      ParentFit parent;
      parent.n_users = opt_.init_users;
      parent.n_items = opt_.init_items;
      parent.train = &split_.parent_train;
      parent.train_rows = &split_.parent_train_rows;
      parent.tensor = [&m](const std::string& name) {
        at::Tensor t;
        return m.try_read(name, t) ? t : at::Tensor();
      };
      up = model_->fit_update(parent, split_.train);
    } else if (model_updates_fit(model_->name())) {
      up.note = "the parent's training pairs are not known (its config does not append this run's files but the "
                "last, or its model.* settings differ)";
    }
    if (up.updated)
      log_.line(fmt::format("train.init_from {}: '{}' updated from the parent's fit ({} of its {} training pairs "
                            "new): {}", opt_.init_from, model_->name(),
                            split_.train.nnz() - split_.parent_train.nnz(), split_.train.nnz(), up.note));
    else
      log_.line(fmt::format("train.init_from {}: '{}' is fitted in closed form, so it refits in full on all {} "
                            "training pairs (exact: the same model as training from scratch on them){}",
                            opt_.init_from, model_->name(), split_.train.nnz(),
                            up.note.empty() ? std::string() : "; " + up.note));
  }
  // distributed: iALS splits its rows across ranks, the others fit on every rank
  if (!up.updated) model_->fit(split_.train);
  train_seconds_ = since(t0);
  epoch_ = best_epoch_ = 1;
  check_replicas();
  EpochRecord rec{1, std::numeric_limits<double>::quiet_NaN(), train_seconds_, 0.0};
  best_valid_ = rec.valid = validate(rec);
  history_.push_back(rec);
  log_.line(fmt::format("fit (closed form) | {:.2f} s | valid {} {:.4f}", train_seconds_, opt_.early_stop_metric,
                        best_valid_));
  done_ = true;
  write_epoch_logs(rec);
  save_best();
  save_last();
  return true;
}

// Plain SGD one sample at a time (Rendle et al.'s MF): applied natively by models that can,
// over the same sample sequence as batch_size 1 (the batchers' order and negatives do not
// depend on the batch size), handed over in chunks.
bool Trainer::use_per_sample_sgd() const {
  const bool sgd_one = opt_.optimizer == "sgd" && opt_.batch_size == 1 && model_->has_per_sample_sgd();
  const bool per_sample = sgd_one && opt_.momentum == 0.0 && opt_.weight_decay == 0.0 && device_.is_cpu() && !dist_;
  if (epoch_ == 0 && history_.empty()) {
    if (sgd_one && dist_)
      log_.line(fmt::format("sgd with batch_size 1 in {} processes: steps of {} samples (one per process) through "
                            "autograd; the native per-sample steps are sequential by definition", dist_->world(),
                            dist_->world()));
    else if (per_sample)
      log_.line("sgd with batch_size 1: the model's native per-sample SGD steps");
    else if (sgd_one)
      log_.line("sgd with batch_size 1 through autograd, one sample per step (slow): the model's native steps "
                "need train.momentum 0, train.weight_decay 0 and the CPU");
  }
  return per_sample;
}

// One epoch of gradient steps; advances epoch_ and train_seconds_ and returns the epoch's record
// (not yet validated).
EpochRecord Trainer::train_epoch(BatchSource& batcher, bool per_sample, bool show_progress, int64_t& step) {
  const auto t0 = Clock::now();
  comm_seconds_ = 0;
  model_->train();
  batcher.start_epoch(opt_.seed, static_cast<uint64_t>(epoch_));
  torch::manual_seed(mix_seed(opt_.seed, static_cast<uint64_t>(epoch_)));  // dropout etc.
  auto total = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  Batch b;
  auto window = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  int64_t batch_no = 0, rows = 0, window_rows = 0;
  double batch_seconds = 0;
  auto last_draw = Clock::now();
  for (;;) {
    const auto tb = Clock::now();
    if (!batcher.next(b)) break;
    batch_seconds += since(tb);
    // Distributed: only a stop every rank agreed on at the last step (reduce_gradients), so that
    // all leave at the same batch.
    if (dist_ ? stop_agreed_ : stop_requested()) fail("interrupted during epoch {}; the last complete epoch is saved in {}/last.pt "
                               "(continue with: rzoo train --resume {})", epoch_ + 1, run_dir_, run_dir_);
    int64_t steps = 1;
    const at::Tensor weighted = train_batch(b, per_sample, steps);
    trim_heap_if_due();  // the freed activations of large batches back to the system (core/memory.h)
    total += weighted;
    rows += b.size();
    ++batch_no;
    const int64_t before = step;
    step += steps;
    if (opt_.log_every > 0) log_loss_window(window, window_rows, weighted, b.size(), before, step, per_sample);
    if (show_progress && since(last_draw) > 0.2) {
      last_draw = Clock::now();
      draw_progress(batch_no, batcher.batches_per_epoch());
    }
  }
  const double loss = total.item<double>() / static_cast<double>(std::max<int64_t>(rows, 1));
  if (!std::isfinite(loss))
    fail("training diverged: the loss is {} in epoch {} (try a lower train.lr)", loss, epoch_ + 1);
  ++epoch_;
  EpochRecord rec{epoch_, loss, since(t0), 0.0};
  rec.batch_seconds = batch_seconds;
  rec.comm_seconds = comm_seconds_;
  rec.lr = current_lr();
  rec.samples_per_s = static_cast<double>(rows) / std::max(rec.seconds, 1e-9);
  train_seconds_ += rec.seconds;
  return rec;
}

// One step on batch b (moved to the device first); steps: how many steps it counts for.
at::Tensor Trainer::train_batch(Batch& b, bool per_sample, int64_t& steps) {
  if (device_.type() != c10::kCPU) {
    // Each input type fills only its own fields (user batches have no items): move those.
    const auto to_device = [&](const at::Tensor& t) { return t.defined() ? t.to(device_) : t; };
    b = Batch{to_device(b.users), to_device(b.items), to_device(b.neg_items), to_device(b.labels), to_device(b.seq), to_device(b.context)};
  }
  if (per_sample) {
    auto weighted = torch::full({}, model_->per_sample_sgd(b, opt_.lr), torch::kDouble);
    steps = b.size();
    return weighted;
  }
  // FusedAdam zeroes the gradients in its own pass; zero_grad would pass over them again.
  const auto* fused = dynamic_cast<const FusedAdam*>(optimizer_.get());
  if (fused == nullptr || !fused->gradients_zeroed()) optimizer_->zero_grad();
  if (dist_) {
    // No gradient kept from the last step: an embedding's sparse gradient would otherwise be added
    // into the dense one the optimizer was given (reduce_gradients), and travel dense.
    for (auto& p : model_->parameters()) p.mutable_grad() = at::Tensor();
    // This rank's block of the batch; its gradient weighted by the block's share, so that the sum
    // over ranks is the gradient of the batch's mean loss.
    const int64_t n = b.size();
    const auto [lo, hi] = rank_block(n, dist_->rank(), dist_->world());
    const auto terms = [&](const at::Tensor& items, int64_t rows) { return loss_terms(items, rows, model_->n_items()); };
    const int64_t all_terms = terms(b.items, n);
    double local = 0;
    if (hi > lo) {
      const auto part = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, lo, hi - lo) : t; };
      Batch mine{part(b.users), part(b.items), part(b.neg_items), part(b.labels), part(b.seq), part(b.context)};
      const int64_t my_terms = terms(mine.items, hi - lo);
      if (my_terms > 0) {
        at::Tensor loss = model_->fused_loss_backward(mine);
        if (!loss.defined() && opt_.micro_batch_size > 0 && hi - lo > opt_.micro_batch_size) {
          // In pieces, each weighted by its share of the whole batch (not only of this rank's block).
          local = backward_in_pieces(mine, all_terms).item<double>();
        } else {
          if (!loss.defined()) {
            loss = model_->loss(mine);
            loss.backward();
          }
          const double share = static_cast<double>(my_terms) / static_cast<double>(std::max<int64_t>(all_terms, 1));
          torch::NoGradGuard no_grad;
          for (auto& p : model_->parameters())
            if (p.grad().defined()) p.mutable_grad() = p.grad() * share;
          local = loss.detach().to(torch::kDouble).item<double>() * share;
        }
      }
    }
    // The batch's mean loss, times its rows (as one process reports it).
    const double total = reduce_gradients(local) * static_cast<double>(n);
    optimizer_->step();
    return torch::full({}, total, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  }
  at::Tensor loss = model_->fused_loss_backward(b);
  if (!loss.defined() && opt_.micro_batch_size > 0 && b.size() > opt_.micro_batch_size) {
    loss = backward_in_pieces(b, loss_terms(b.items, b.size(), model_->n_items()));
  } else if (!loss.defined()) {
    loss = model_->loss(b);
    loss.backward();
  }
  optimizer_->step();
  return loss.detach().to(torch::kDouble) * static_cast<double>(b.size());
}

// A model's loss is a mean; the gradient of a batch's mean is the sum of its pieces' gradients,
// each weighted by the piece's share of the terms. Only one piece's activations are alive at a time:
// the autograd graph of a piece is freed by its backward before the next piece's forward.
// Models with a native loss-and-backward (fused_loss_backward: BPR, GMF, NCF-MLP, NeuMF) take
// the batch whole: they keep a few floats per row. Dropout draws its masks per piece, so a
// model with dropout sees other (equally distributed) masks than with the batch whole.
at::Tensor Trainer::backward_in_pieces(const Batch& b, int64_t all_terms) {
  const int64_t n = b.size(), m = opt_.micro_batch_size;
  at::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  for (int64_t lo = 0; lo < n; lo += m) {
    const int64_t len = std::min(m, n - lo);
    const auto part = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, lo, len) : t; };
    const Batch piece{part(b.users), part(b.items), part(b.neg_items), part(b.labels), part(b.seq), part(b.context)};
    const int64_t t = loss_terms(piece.items, len, model_->n_items());
    if (t == 0) continue;  // all-positions rows without a target: no term of the mean
    const double share = static_cast<double>(t) / static_cast<double>(std::max<int64_t>(all_terms, 1));
    const at::Tensor loss = model_->loss(piece);
    (loss * share).backward();
    total += loss.detach().to(torch::kDouble) * share;
  }
  return total;
}

void Trainer::sync_model() {
  if (!dist_) return;
  std::vector<at::Tensor> ts;
  for (const auto& p : model_->parameters()) ts.push_back(p.data());
  for (const auto& b : model_->buffers()) ts.push_back(b);
  torch::NoGradGuard no_grad;
  dist_->broadcast(ts, 0, "the broadcast of rank 0's parameters");
}

double Trainer::reduce_gradients(double local_loss) {
  torch::NoGradGuard no_grad;
  auto params = model_->parameters();
  const auto np = static_cast<int64_t>(params.size());
  const int world = dist_->world(), rank = dist_->rank();
  // Sparse gradients (embedding rows) coalesced first: their row counts travel in the layout.
  std::vector<at::Tensor> local(static_cast<size_t>(np));
  for (int64_t i = 0; i < np; ++i) {
    const auto& g = params[static_cast<size_t>(i)].grad();
    if (g.defined() && g.is_sparse()) {
      local[static_cast<size_t>(i)] = g.coalesce();
      TORCH_CHECK(g.sparse_dim() == 1, "distributed step: a sparse gradient of ", g.sparse_dim(),
                  " sparse dimensions (only embedding rows are summed)");
    }
  }
  // What each rank has, summed over ranks: [dense grads (count), sparse grads (count), stop
  // requests, the shares of the loss, then per rank its rows of each sparse gradient].
  auto info = torch::zeros({2 * np + 2 + world * np}, torch::kDouble);
  double* in = info.data_ptr<double>();
  for (int64_t i = 0; i < np; ++i) {
    const auto& g = params[static_cast<size_t>(i)].grad();
    if (!g.defined()) continue;
    in[g.is_sparse() ? np + i : i] = 1;
    if (g.is_sparse()) in[2 * np + 2 + rank * np + i] = static_cast<double>(local[static_cast<size_t>(i)]._nnz());
  }
  in[2 * np] = stop_requested() ? 1 : 0;
  in[2 * np + 1] = local_loss;
  std::vector<at::Tensor> one{info};
  const auto t0 = Clock::now();
  dist_->allreduce_sum(one, fmt::format("step of epoch {} (gradient layout)", epoch_ + 1));
  comm_seconds_ += since(t0);
  const double* out = one[0].data_ptr<double>();
  const auto rows_of = [&](int r, int64_t i) { return static_cast<int64_t>(out[2 * np + 2 + r * np + i]); };
  // Every rank stops at the same step, whichever was asked (see train_epoch).
  if (out[2 * np] > 0) {
    request_stop();
    stop_agreed_ = true;
  }
  // Dense gradients: one flat bucket per type, all-reduced. Sparse ones (embedding rows): every
  // rank's rows of every table packed into one index and one value tensor, all-gathered (padded
  // to the longest), then summed per table.
  std::vector<std::pair<size_t, at::Tensor>> dense;
  std::vector<int64_t> sparse_at;
  for (int64_t i = 0; i < np; ++i) {
    auto& p = params[static_cast<size_t>(i)];
    const bool any_dense = out[i] > 0, any_sparse = out[np + i] > 0;
    if (any_dense && any_sparse)
      fail("distributed step: parameter {} has a dense gradient on some ranks and a sparse one on others", i);
    if (any_sparse) {
      sparse_at.push_back(i);
    } else if (any_dense) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      dense.emplace_back(static_cast<size_t>(i), p.grad());
    }
  }
  std::vector<std::vector<size_t>> members;
  for (size_t j = 0; j < dense.size(); ++j) {
    size_t k = 0;
    while (k < members.size() && dense[members[k][0]].second.scalar_type() != dense[j].second.scalar_type()) ++k;
    if (k == members.size()) members.emplace_back();
    members[k].push_back(j);
  }
  std::vector<at::Tensor> buckets;
  for (const auto& m : members) {
    std::vector<at::Tensor> flat;
    for (size_t j : m) flat.push_back(dense[j].second.reshape({-1}));
    buckets.push_back(torch::cat(flat));
  }
  const auto t1 = Clock::now();
  if (!buckets.empty()) dist_->allreduce_sum(buckets, fmt::format("gradient all-reduce of epoch {}", epoch_ + 1));
  std::vector<at::Tensor> idx_all, val_all;
  std::vector<int64_t> row_numel(static_cast<size_t>(np), 0);
  if (!sparse_at.empty()) {
    const auto& first = params[static_cast<size_t>(sparse_at[0])];
    int64_t max_idx = 0, max_val = 0;
    for (int r = 0; r < world; ++r) {
      int64_t ni = 0, nv = 0;
      for (int64_t i : sparse_at) {
        const auto& p = params[static_cast<size_t>(i)];
        TORCH_CHECK(p.scalar_type() == first.scalar_type(), "distributed step: sparse gradients of different types");
        row_numel[static_cast<size_t>(i)] = p.dim() > 1 ? p.numel() / p.size(0) : 1;
        ni += rows_of(r, i);
        nv += rows_of(r, i) * row_numel[static_cast<size_t>(i)];
      }
      max_idx = std::max(max_idx, ni);
      max_val = std::max(max_val, nv);
    }
    auto idx = torch::zeros({std::max<int64_t>(max_idx, 1)}, torch::TensorOptions().dtype(torch::kLong).device(first.device()));
    auto val = torch::zeros({std::max<int64_t>(max_val, 1)}, first.options());
    int64_t ai = 0, av = 0;
    for (int64_t i : sparse_at) {
      const at::Tensor& g = local[static_cast<size_t>(i)];
      const int64_t n = rows_of(rank, i);
      if (n == 0) continue;
      idx.narrow(0, ai, n).copy_(g._indices().reshape({-1}));
      val.narrow(0, av, n * row_numel[static_cast<size_t>(i)]).copy_(g._values().reshape({-1}));
      ai += n;
      av += n * row_numel[static_cast<size_t>(i)];
    }
    idx_all = dist_->allgather(idx, fmt::format("sparse gradient rows of epoch {}", epoch_ + 1));
    val_all = dist_->allgather(val, fmt::format("sparse gradient values of epoch {}", epoch_ + 1));
  }
  comm_seconds_ += since(t1);
  for (size_t k = 0; k < members.size(); ++k) {
    int64_t at = 0;
    for (size_t j : members[k]) {
      at::Tensor g = dense[j].second;
      g.copy_(buckets[k].narrow(0, at, g.numel()).view_as(g));
      at += g.numel();
    }
  }
  // The sum of the sparse gradients is the sum of their dense forms (rows no rank touched are 0).
  const bool to_dense = !sparse_gradients_are_exact(opt_);
  std::vector<int64_t> ai(static_cast<size_t>(world), 0), av(static_cast<size_t>(world), 0);
  for (int64_t i : sparse_at) {
    auto& p = params[static_cast<size_t>(i)];
    const int64_t rn = row_numel[static_cast<size_t>(i)];
    std::vector<at::Tensor> is, vs;
    for (int r = 0; r < world; ++r) {
      const int64_t n = rows_of(r, i);
      is.push_back(idx_all[static_cast<size_t>(r)].narrow(0, ai[static_cast<size_t>(r)], n));
      vs.push_back(val_all[static_cast<size_t>(r)].narrow(0, av[static_cast<size_t>(r)], n * rn));
      ai[static_cast<size_t>(r)] += n;
      av[static_cast<size_t>(r)] += n * rn;
    }
    std::vector<int64_t> vsize{-1};
    for (int64_t d = 1; d < p.dim(); ++d) vsize.push_back(p.size(d));
    const auto sum = at::sparse_coo_tensor(torch::cat(is).unsqueeze(0), torch::cat(vs).view(vsize), p.sizes()).coalesce();
    p.mutable_grad() = to_dense ? sum.to_dense() : sum;
  }
  return out[2 * np + 1];
}

void Trainer::check_replicas() {
  if (!dist_) return;
  // One number per parameter and buffer (its sum in double): rank 0's against this rank's.
  std::vector<at::Tensor> mine;
  std::vector<std::string> names;
  torch::NoGradGuard no_grad;
  for (const auto& p : model_->named_parameters()) {
    mine.push_back(p.value().detach().to(torch::kDouble).sum().cpu().reshape({1}));
    names.push_back(p.key());
  }
  for (const auto& b : model_->named_buffers()) {
    if (!b.value().is_floating_point()) continue;
    mine.push_back(b.value().to(torch::kDouble).nan_to_num(0.0).sum().cpu().reshape({1}));
    names.push_back(b.key());
  }
  if (mine.empty()) return;
  auto here = torch::cat(mine);
  std::vector<at::Tensor> root{here.clone()};
  dist_->broadcast(root, 0, fmt::format("the replica check after epoch {}", epoch_));
  if (!torch::equal(root[0], here)) {
    for (int64_t i = 0; i < here.size(0); ++i)
      if (root[0][i].item<double>() != here[i].item<double>())
        fail("distributed: after epoch {} rank {} holds other values of '{}' than rank 0 (sum {} against {})", epoch_,
             dist_->rank(), names[static_cast<size_t>(i)], here[i].item<double>(), root[0][i].item<double>());
  }
}

// train.log_every: the mean loss of the last log_every steps.
void Trainer::log_loss_window(at::Tensor& window, int64_t& window_rows, const at::Tensor& weighted, int64_t rows,
                              int64_t step_before, int64_t step, bool per_sample) {
  window += weighted;
  window_rows += rows;
  // Per-sample SGD advances `steps` steps per chunk: log when a multiple of log_every is passed.
  if (step / opt_.log_every != step_before / opt_.log_every) {  // reads the device only every log_every steps
    log_.line(fmt::format("epoch {:>4} step {:>7} | loss {:.6f} (mean of the last {} {})", epoch_ + 1, step,
                          window.item<double>() / static_cast<double>(window_rows),
                          per_sample ? window_rows : opt_.log_every, per_sample ? "samples" : "steps"));
    window.zero_();
    window_rows = 0;
  }
}

void Trainer::draw_progress(int64_t batch_no, int64_t n_batches) {
  const int64_t nb = n_batches, width = 30, done = width * batch_no / nb;
  log_.progress(fmt::format("epoch {:>4}/{} [{}{}] {}/{} batches", epoch_ + 1, opt_.epochs,
                            std::string(static_cast<size_t>(done), '='),
                            std::string(static_cast<size_t>(width - done), ' '), batch_no, nb));
}

void Trainer::end_epoch(EpochRecord& rec, bool has_valid) {
  check_replicas();
  std::string valid_text;
  if (has_valid && (epoch_ % opt_.valid_every == 0 || epoch_ == opt_.epochs)) {
    valid_text = validate_epoch(rec);
  } else if (!has_valid) {
    best_epoch_ = epoch_;  // nothing to select on: the last epoch is the model
    save_best();
  }
  history_.push_back(rec);
  log_.line(fmt::format("epoch {:>4}/{} | loss {:.6f} | {:.2f} s ({:.1f}% batching{}) | {} samples/s{}", epoch_,
                        opt_.epochs, rec.loss, rec.seconds, 100.0 * rec.batch_seconds / std::max(rec.seconds, 1e-9),
                        dist_ ? fmt::format(", {:.1f}% communication", 100.0 * rec.comm_seconds / std::max(rec.seconds, 1e-9))
                              : std::string(),
                        thousands(rec.samples_per_s), valid_text));
  if (done_)
    log_.line(fmt::format("early stop: no better {} in {} validations; best {:.4f} at epoch {}",
                          opt_.early_stop_metric, opt_.patience, best_valid_, best_epoch_));
  if (epoch_ >= opt_.epochs) done_ = true;
  // Before last.pt: a process killed in between redoes this epoch on resume, rewriting both.
  write_epoch_logs(history_.back());
  save_last();
}

std::string Trainer::validate_epoch(EpochRecord& rec) {
  rec.valid = validate(rec);
  // The first validation always counts (best_valid_ starts at -inf, which a lower-is-better
  // metric such as rmse could never beat).
  // A NaN (no user could be scored) never counts as better.
  const bool higher = metric_higher_is_better(opt_.early_stop_metric);
  const bool better = !std::isnan(rec.valid) && (best_epoch_ == 0 || std::isnan(best_valid_) ||
                                                 (higher ? rec.valid > best_valid_ : rec.valid < best_valid_));
  if (better) {
    best_valid_ = rec.valid;
    best_epoch_ = epoch_;
    bad_validations_ = 0;
    save_best();
  } else {
    ++bad_validations_;
  }
  // Never before min_epochs: a model that sits on a plateau at first (BERT4Rec's cloze task near
  // the popularity ranking) is not stopped before it can leave it.
  if (opt_.patience > 0 && bad_validations_ >= opt_.patience && epoch_ >= opt_.min_epochs) done_ = true;
  return fmt::format(" | valid {} {:.4f}{}", opt_.early_stop_metric, rec.valid, better ? " *" : "");
}

void Trainer::finish_fit(bool has_valid) {
  if (opt_.epochs == 0) {  // nothing to train: the initial model is the model
    best_epoch_ = 0;
    save_best();
  } else if (best_epoch_ == 0 && has_valid) {
    log_.line(fmt::format("validation {} was NaN at every validation: keeping the last epoch", opt_.early_stop_metric));
    best_epoch_ = epoch_;
    save_best();
  }
  done_ = true;
  save_last();
}

}  // namespace rzoo
