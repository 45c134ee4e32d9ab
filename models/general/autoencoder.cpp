// mlp: the MLP recommender (a denoising autoencoder with Bernoulli outputs; cf. Wu, DuBois, Zheng
// & Ester, "Collaborative Denoising Auto-Encoders for Top-N Recommender Systems", WSDM 2016).
// multvae, multdae: Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
// Collaborative Filtering", WWW 2018. See autoencoder.h.
#include "models/general/autoencoder.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/strings.h"
#include "datasets/dataset.h"
#include "models/dropout.h"

namespace rzoo {

namespace {

constexpr double kNormEps = 1e-12;  // x / max(|x|, eps): a user without training items stays 0


void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

at::Tensor activate(const at::Tensor& x, const std::string& name) {
  if (name == "sigmoid") return torch::sigmoid(x);
  if (name == "relu") return torch::relu(x);
  return torch::tanh(x);
}

// x [B, I] -> x / max(|x_b|_2, eps) row by row (the same formula as the TorchScript below).
at::Tensor l2_normalise(const at::Tensor& x) { return x / torch::sqrt((x * x).sum(1, true)).clamp_min(kNormEps); }
constexpr const char* kNormaliseCode = "h = h / torch.sqrt((h * h).sum(1, keepdim=True)).clamp_min(1e-12)";

// -mean_u sum_i log_softmax(logits)_ui x_ui: logits, x [B, I] -> [].
at::Tensor multinomial_nll(const at::Tensor& logits, const at::Tensor& x) {
  return -(torch::log_softmax(logits, 1) * x).sum(1).mean();
}

// Shared option checks (direct options as well as from_config); `model` names the model.
void check_sizes(const char* model, const std::vector<int64_t>& hidden, bool allow_empty) {
  if (hidden.empty() && !allow_empty) fail("{}: model.hidden must list at least one hidden layer size (e.g. [256])", model);
  for (size_t l = 0; l < hidden.size(); ++l)
    if (hidden[l] < 1) fail("{}: model.hidden[{}] must be >= 1, got {}", model, l, hidden[l]);
}

void check_dropout(const char* model, const char* key, double p) {
  if (!(p >= 0.0 && p < 1.0)) fail("{}: model.{} must be in [0, 1), got {}", model, key, p);
}

// model.<key> as a dropout probability in [0, 1).
double read_dropout(const Config* cfg, const std::string& key) {
  const double p = cfg->get_double(key);
  if (!(p >= 0.0 && p < 1.0)) cfg->bad(key, fmt::format("must be in [0, 1) (a dropout probability; 1 would drop every input), got {}", p));
  return p;
}

std::vector<int64_t> read_hidden(const Config* cfg, bool allow_empty) {
  auto h = cfg->get_int_list("model.hidden", 1);
  if (h.empty() && !allow_empty) cfg->bad("model.hidden", "must list at least one hidden layer size (e.g. [256])");
  return h;
}

}  // namespace

const std::vector<std::string>& autoencoder_activations() {
  static const std::vector<std::string> names = {"sigmoid", "relu", "tanh"};
  return names;
}

// ---------------------------------------------------------------------------------------------
// The shared part

AutoencoderBaseImpl::AutoencoderBaseImpl(const std::string& name, const ModelContext& ctx) : RecommenderImpl(name, ctx) {
  if (!ctx.split)
    fail("{}: needs the training split (it reads each user's training items), but the model was built without one", name);
  const Csr& train = ctx.split->train;
  if (train.n_rows != n_users_ || train.n_cols != n_items_)
    fail("{}: the training matrix is {} x {}, the model {} x {}", name, train.n_rows, train.n_cols, n_users_, n_items_);
  train_indptr = register_buffer("train_indptr", torch::tensor(train.indptr, torch::kLong));
  train_items = register_buffer("train_items", torch::tensor(train.indices, torch::kLong).reshape({train.nnz()}));
}

at::Tensor AutoencoderBaseImpl::history(const at::Tensor& users_in) const {
  const auto dev = train_indptr.device();
  const auto users = users_in.to(dev, torch::kLong).reshape({-1});
  if (users.device().is_cpu() && users.numel() > 0) {
    const int64_t lo = users.min().item<int64_t>(), hi = users.max().item<int64_t>();
    if (lo < 0 || hi >= n_users_) fail("{}: user index {} out of range [0, {})", name(), lo < 0 ? lo : hi, n_users_);
  }
  const int64_t b = users.size(0);
  const auto starts = train_indptr.index_select(0, users);              // [B]
  const auto counts = train_indptr.index_select(0, users + 1) - starts;  // [B]
  // One entry per (user of the batch, training item): its row and its position in train_items.
  const auto row = torch::repeat_interleave(torch::arange(b, users.options()), counts);  // [n]
  const auto first = torch::cumsum(counts, 0) - counts;                                 // [B]
  const auto pos = starts.index_select(0, row) + torch::arange(row.size(0), users.options()) - first.index_select(0, row);
  auto x = torch::zeros({b, n_items_}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  x.view({-1}).index_fill_(0, row * n_items_ + train_items.index_select(0, pos), 1.0);
  return x;
}

at::Tensor AutoencoderBaseImpl::score_fold_in(const at::Tensor& items) {
  TORCH_CHECK(folds_in(), "model '", name(), "' cannot fold in a new user's history (the network reads user "
              "features, model.user_features, which a new user does not have)");
  torch::NoGradGuard no_grad;
  const auto dev = train_indptr.device();
  auto x = torch::zeros({1, n_items_}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  x[0].index_fill_(0, items.to(dev, torch::kLong), 1.0);
  return logits_of(x)[0];  // [I]
}

at::Tensor AutoencoderBaseImpl::score_all(const at::Tensor& users) {
  torch::NoGradGuard no_grad;
  return logits(users, false);
}

at::Tensor AutoencoderBaseImpl::score(const at::Tensor& users, const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  const auto dev = train_indptr.device();
  const auto u = users.to(dev, torch::kLong).reshape({-1}), it = items.to(dev, torch::kLong).reshape({-1});
  TORCH_CHECK(u.size(0) == it.size(0), name(), ": score needs as many users as items, got ", u.size(0), " and ", it.size(0));
  // score_all of the distinct users, then each pair's entry.
  const auto unique = at::_unique(u, true, true);
  const auto all = logits(std::get<0>(unique), false);  // [n_unique, I]
  return all.reshape({-1}).index_select(0, std::get<1>(unique) * n_items_ + it);
}

torch::nn::Linear AutoencoderBaseImpl::add_layer(const std::string& name, int64_t in, int64_t out) {
  auto layer = register_module(name, torch::nn::Linear(in, out));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(layer->weight);
  layer->bias.normal_(0.0, 0.001);
  return layer;
}

void AutoencoderBaseImpl::export_layer(ScriptExport& e, const std::string& name, const torch::nn::Linear& layer) {
  e.tensors.emplace_back(name + "_weight", layer->weight.detach().to(torch::kCPU).clone());
  e.tensors.emplace_back(name + "_bias", layer->bias.detach().to(torch::kCPU).clone());
}

std::string AutoencoderBaseImpl::layer_code(const std::string& name, const std::string& x) {
  return fmt::format("torch.addmm(self.{0}_bias, {1}, self.{0}_weight.t())", name, x);
}

std::string AutoencoderBaseImpl::script_code(const std::string& score_all_code) const {
  // Exactly history() and score() above.
  std::string code = R"PY(
def _history(self, users: Tensor) -> Tensor:
    b = users.size(0)
    starts = self.train_indptr.index_select(0, users)
    counts = self.train_indptr.index_select(0, users + 1) - starts
    row = torch.repeat_interleave(torch.arange(b), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = starts.index_select(0, row) + torch.arange(row.size(0)) - first.index_select(0, row)
    x = torch.zeros(b, N_ITEMS)
    x.view(-1).index_fill_(0, row * N_ITEMS + self.train_items.index_select(0, pos), 1.0)
    return x

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    uniq, inverse = torch._unique(users, True, True)
    scores = self._score_all(uniq)
    return scores.reshape(-1).index_select(0, inverse * N_ITEMS + items)
)PY";
  // Fold-in (folds_in()): the network part as _forward(h) on multi-hot inputs, which _score_all
  // runs on the users' histories and _score_fold_in on a new history's vector.
  const std::string head = "\ndef _score_all(self, users: Tensor) -> Tensor:\n    h = self._history(users)\n";
  if (folds_in() && score_all_code.rfind(head, 0) == 0) {
    code += "\ndef _forward(self, h: Tensor) -> Tensor:\n" + score_all_code.substr(head.size());
    code += R"PY(
def _score_all(self, users: Tensor) -> Tensor:
    return self._forward(self._history(users))

def _score_fold_in(self, items: Tensor) -> Tensor:
    h = torch.zeros(1, N_ITEMS)
    h[0].index_fill_(0, items, 1.0)
    return self._forward(h)[0]
)PY";
  } else {
    code += score_all_code;
  }
  replace_all(code, "N_ITEMS", std::to_string(n_items_));
  return code;
}

// ---------------------------------------------------------------------------------------------
// mlp

MLPRecOptions MLPRecOptions::from_config(const Config* cfg) {
  MLPRecOptions o;
  if (!cfg) return o;
  o.hidden(read_hidden(cfg, false));
  o.activation(cfg->get_choice("model.activation", autoencoder_activations()));
  o.input_dropout(read_dropout(cfg, "model.input_dropout"));
  o.user_features(cfg->get_string_list("model.user_features"));
  return o;
}

MLPRecImpl::MLPRecImpl(const ModelContext& ctx) : MLPRecImpl(ctx, MLPRecOptions::from_config(ctx.config)) {}

MLPRecImpl::MLPRecImpl(const ModelContext& ctx, MLPRecOptions opts) : AutoencoderBaseImpl("mlp", ctx), options(std::move(opts)) {
  check_sizes("mlp", options.hidden(), false);
  const auto& acts = autoencoder_activations();
  if (std::find(acts.begin(), acts.end(), options.activation()) == acts.end())
    fail("mlp: model.activation '{}' is not one of: {}", options.activation(), join(acts));
  check_dropout("mlp", "input_dropout", options.input_dropout());

  // User side features [U, F].
  std::vector<at::Tensor> blocks;
  if (!options.user_features().empty()) {
    if (!ctx.data) fail("mlp: model.user_features needs the dataset's user features, but the model was built without its dataset");
    const SideInfo& info = ctx.data->user_info;
    std::vector<std::string> known;
    for (const auto& f : info.features) known.push_back(f.name);
    std::set<std::string> seen;
    for (const auto& name : options.user_features()) {
      const Feature* f = info.find(name);
      if (!f) {
        const std::string msg = fmt::format("the dataset '{}' has no user feature '{}' (it has: {})", ctx.data->name, name,
                                            known.empty() ? "none" : join(known));
        if (ctx.config) ctx.config->bad("model.user_features", msg);
        fail("mlp: model.user_features: {}", msg);
      }
      if (!seen.insert(name).second) fail("mlp: model.user_features lists '{}' twice", name);
      const int64_t n = std::min(f->n(), n_users_);  // users beyond the table have no value
      if (f->kind == Feature::Kind::Float) {
        // Standardised over the users with a value; missing -> 0 (the mean).
        double sum = 0, sq = 0;
        int64_t cnt = 0;
        for (int64_t e = 0; e < n; ++e) {
          const double v = f->values[static_cast<size_t>(e)];
          if (std::isnan(v)) continue;
          sum += v, sq += v * v, ++cnt;
        }
        const double mean = cnt ? sum / static_cast<double>(cnt) : 0.0;
        const double var = cnt ? std::max(sq / static_cast<double>(cnt) - mean * mean, 0.0) : 0.0;
        const double sd = var > 1e-24 ? std::sqrt(var) : 1.0;  // a constant feature becomes 0
        auto col = torch::zeros({n_users_, 1}, torch::kFloat);
        float* c = col.data_ptr<float>();
        for (int64_t e = 0; e < n; ++e) {
          const double v = f->values[static_cast<size_t>(e)];
          c[e] = std::isnan(v) ? 0.0f : static_cast<float>((v - mean) / sd);
        }
        blocks.push_back(col);
        side_columns.push_back(f->name);
      } else {
        const auto v = static_cast<int64_t>(f->vocab.size());
        auto m = torch::zeros({n_users_, v}, torch::kFloat);
        float* p = m.data_ptr<float>();
        for (int64_t e = 0; e < n; ++e)
          for (int64_t k = f->offsets[static_cast<size_t>(e)]; k < f->offsets[static_cast<size_t>(e) + 1]; ++k)
            p[e * v + f->tokens[static_cast<size_t>(k)]] = 1.0f;
        blocks.push_back(m);
        for (const auto& t : f->vocab) side_columns.push_back(f->name + ":" + t);
      }
    }
  }
  user_side = register_buffer("user_side", blocks.empty() ? torch::zeros({n_users_, 0}, torch::kFloat) : torch::cat(blocks, 1));

  int64_t width = input_width();
  for (size_t l = 0; l < options.hidden().size(); ++l) {
    hidden.push_back(add_layer("hidden" + std::to_string(l), width, options.hidden()[l]));
    width = options.hidden()[l];
  }
  out = add_layer("out", width, n_items_);
}

at::Tensor MLPRecImpl::input(const at::Tensor& users, const at::Tensor& x, bool training) const {
  auto h = fast_dropout(x, options.input_dropout(), training);  // [B, I]
  if (user_side.size(1) == 0) return h;
  return torch::cat({h, user_side.index_select(0, users.to(user_side.device(), torch::kLong).reshape({-1}))}, 1);  // [B, I + F]
}

at::Tensor MLPRecImpl::network(const at::Tensor& users, const at::Tensor& x, bool training) {
  auto h = input(users, x, training);  // [B, I + F]
  for (auto& layer : hidden) h = activate(layer(h), options.activation());
  return out(h);  // [B, I]
}

at::Tensor MLPRecImpl::logits(const at::Tensor& users, bool training) { return network(users, history(users), training); }

at::Tensor MLPRecImpl::logits_of(const at::Tensor& x) {
  TORCH_CHECK(user_side.size(1) == 0, "mlp: logits_of needs the users when model.user_features are read");
  return network(torch::empty({0}, torch::kLong), x, false);
}

at::Tensor MLPRecImpl::loss(const Batch& b) {
  const auto x = history(b.users);  // [B, I]: the input before dropout, and the target
  const auto z = network(b.users, x, is_training());
  return torch::binary_cross_entropy_with_logits(z, x, {}, {}, at::Reduction::None).sum(1).mean();
}

ScriptExport MLPRecImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"train_indptr", train_indptr.detach().to(torch::kCPU).clone()},
               {"train_items", train_items.detach().to(torch::kCPU).clone()}};
  std::string body = "\ndef _score_all(self, users: Tensor) -> Tensor:\n    h = self._history(users)\n";
  if (user_side.size(1) > 0) {
    e.tensors.emplace_back("user_side", user_side.detach().to(torch::kCPU).clone());
    body += "    h = torch.cat([h, self.user_side.index_select(0, users)], 1)\n";
  }
  for (size_t l = 0; l < hidden.size(); ++l) {
    const std::string name = "hidden" + std::to_string(l);
    export_layer(e, name, hidden[l]);
    body += fmt::format("    h = torch.{}({})\n", options.activation(), layer_code(name, "h"));
  }
  export_layer(e, "out", out);
  body += "    return " + layer_code("out", "h") + "\n";
  e.code = script_code(body);
  e.fold_in = folds_in();
  return e;
}

// ---------------------------------------------------------------------------------------------
// multdae

MultDAEOptions MultDAEOptions::from_config(const Config* cfg) {
  MultDAEOptions o;
  if (!cfg) return o;
  o.hidden(read_hidden(cfg, true));
  o.latent(cfg->get_int("model.latent", 1));
  o.dropout(read_dropout(cfg, "model.dropout"));
  return o;
}

MultDAEImpl::MultDAEImpl(const ModelContext& ctx) : MultDAEImpl(ctx, MultDAEOptions::from_config(ctx.config)) {}

MultDAEImpl::MultDAEImpl(const ModelContext& ctx, MultDAEOptions opts) : AutoencoderBaseImpl("multdae", ctx), options(std::move(opts)) {
  check_sizes("multdae", options.hidden(), true);
  if (options.latent() < 1) fail("multdae: model.latent must be >= 1, got {}", options.latent());
  check_dropout("multdae", "dropout", options.dropout());
  std::vector<int64_t> dims = {n_items_};
  dims.insert(dims.end(), options.hidden().begin(), options.hidden().end());
  dims.push_back(options.latent());
  dims.insert(dims.end(), options.hidden().rbegin(), options.hidden().rend());
  dims.push_back(n_items_);
  for (size_t l = 0; l + 1 < dims.size(); ++l) layers.push_back(add_layer("layer" + std::to_string(l), dims[l], dims[l + 1]));
}

at::Tensor MultDAEImpl::network(const at::Tensor& x, bool training) {
  auto h = l2_normalise(x);
  h = fast_dropout(h, options.dropout(), training);
  for (size_t l = 0; l < layers.size(); ++l) {
    h = layers[l](h);
    if (l + 1 < layers.size()) h = torch::tanh(h);
  }
  return h;  // [B, I]
}

at::Tensor MultDAEImpl::logits(const at::Tensor& users, bool training) { return network(history(users), training); }

at::Tensor MultDAEImpl::loss(const Batch& b) {
  const auto x = history(b.users);
  return multinomial_nll(network(x, is_training()), x);
}

ScriptExport MultDAEImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"train_indptr", train_indptr.detach().to(torch::kCPU).clone()},
               {"train_items", train_items.detach().to(torch::kCPU).clone()}};
  std::string body = "\ndef _score_all(self, users: Tensor) -> Tensor:\n    h = self._history(users)\n";
  body += std::string("    ") + kNormaliseCode + "\n";
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string name = "layer" + std::to_string(l);
    export_layer(e, name, layers[l]);
    body += l + 1 < layers.size() ? fmt::format("    h = torch.tanh({})\n", layer_code(name, "h"))
                                  : fmt::format("    return {}\n", layer_code(name, "h"));
  }
  e.code = script_code(body);
  e.fold_in = folds_in();
  return e;
}

// ---------------------------------------------------------------------------------------------
// multvae

MultVAEOptions MultVAEOptions::from_config(const Config* cfg) {
  MultVAEOptions o;
  if (!cfg) return o;
  o.hidden(read_hidden(cfg, true));
  o.latent(cfg->get_int("model.latent", 1));
  o.dropout(read_dropout(cfg, "model.dropout"));
  o.anneal_cap(cfg->get_double("model.anneal_cap"));
  if (!(o.anneal_cap() >= 0.0)) cfg->bad("model.anneal_cap", fmt::format("must be >= 0, got {}", o.anneal_cap()));
  o.total_anneal_steps(cfg->get_int("model.total_anneal_steps", 0));
  return o;
}

MultVAEImpl::MultVAEImpl(const ModelContext& ctx) : MultVAEImpl(ctx, MultVAEOptions::from_config(ctx.config)) {}

MultVAEImpl::MultVAEImpl(const ModelContext& ctx, MultVAEOptions opts) : AutoencoderBaseImpl("multvae", ctx), options(std::move(opts)) {
  check_sizes("multvae", options.hidden(), true);
  if (options.latent() < 1) fail("multvae: model.latent must be >= 1, got {}", options.latent());
  check_dropout("multvae", "dropout", options.dropout());
  if (!(options.anneal_cap() >= 0.0 && std::isfinite(options.anneal_cap())))
    fail("multvae: model.anneal_cap must be >= 0, got {}", options.anneal_cap());
  if (options.total_anneal_steps() < 0) fail("multvae: model.total_anneal_steps must be >= 0, got {}", options.total_anneal_steps());
  const int64_t d = options.latent();
  std::vector<int64_t> q = {n_items_};
  q.insert(q.end(), options.hidden().begin(), options.hidden().end());
  q.push_back(2 * d);
  for (size_t l = 0; l + 1 < q.size(); ++l) encoder.push_back(add_layer("enc" + std::to_string(l), q[l], q[l + 1]));
  std::vector<int64_t> p = {d};
  p.insert(p.end(), options.hidden().rbegin(), options.hidden().rend());
  p.push_back(n_items_);
  for (size_t l = 0; l + 1 < p.size(); ++l) decoder.push_back(add_layer("dec" + std::to_string(l), p[l], p[l + 1]));
  anneal_step = register_buffer("anneal_step", torch::scalar_tensor(0, torch::kLong));
}

MultVAEImpl::Encoded MultVAEImpl::encode(const at::Tensor& x, bool training) {
  auto h = l2_normalise(x);
  h = fast_dropout(h, options.dropout(), training);
  for (size_t l = 0; l < encoder.size(); ++l) {
    h = encoder[l](h);
    if (l + 1 < encoder.size()) h = torch::tanh(h);
  }
  const int64_t d = options.latent();
  return {h.narrow(1, 0, d), h.narrow(1, d, d)};  // [B, 2D] -> mu, logvar
}

at::Tensor MultVAEImpl::decode(const at::Tensor& z) {
  auto h = z;
  for (size_t l = 0; l < decoder.size(); ++l) {
    h = decoder[l](h);
    if (l + 1 < decoder.size()) h = torch::tanh(h);
  }
  return h;  // [B, I]
}

at::Tensor MultVAEImpl::logits(const at::Tensor& users, bool training) {
  const auto enc = encode(history(users), training);
  return decode(training ? enc.mu + torch::randn_like(enc.mu) * torch::exp(0.5 * enc.logvar) : enc.mu);
}

at::Tensor MultVAEImpl::beta_tensor() const {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(anneal_step.device());
  if (options.total_anneal_steps() == 0) return torch::scalar_tensor(options.anneal_cap(), opts);
  // On the device: no synchronisation per step.
  return (anneal_step.to(torch::kDouble) / static_cast<double>(options.total_anneal_steps()))
      .clamp_max(options.anneal_cap())
      .to(torch::kFloat);
}

int64_t MultVAEImpl::step() const { return anneal_step.item<int64_t>(); }

at::Tensor MultVAEImpl::loss(const Batch& b) {
  const bool training = is_training();
  const auto x = history(b.users);  // [B, I]
  const auto enc = encode(x, training);
  const auto z = training ? enc.mu + torch::randn_like(enc.mu) * torch::exp(0.5 * enc.logvar) : enc.mu;  // [B, D]
  const auto nll = multinomial_nll(decode(z), x);
  const auto kl = (-0.5 * (1.0 + enc.logvar - enc.mu * enc.mu - torch::exp(enc.logvar)).sum(1)).mean();
  const auto beta = beta_tensor();  // before this step counts (update_count in the authors' code)
  if (training) {
    torch::NoGradGuard no_grad;
    anneal_step.add_(1);
  }
  return nll + beta * kl;
}

ScriptExport MultVAEImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"train_indptr", train_indptr.detach().to(torch::kCPU).clone()},
               {"train_items", train_items.detach().to(torch::kCPU).clone()}};
  std::string body = "\ndef _score_all(self, users: Tensor) -> Tensor:\n    h = self._history(users)\n";
  body += std::string("    ") + kNormaliseCode + "\n";
  for (size_t l = 0; l < encoder.size(); ++l) {
    const std::string name = "enc" + std::to_string(l);
    export_layer(e, name, encoder[l]);
    body += l + 1 < encoder.size() ? fmt::format("    h = torch.tanh({})\n", layer_code(name, "h"))
                                   : fmt::format("    h = {}.narrow(1, 0, {})\n", layer_code(name, "h"), options.latent());
  }
  for (size_t l = 0; l < decoder.size(); ++l) {
    const std::string name = "dec" + std::to_string(l);
    export_layer(e, name, decoder[l]);
    body += l + 1 < decoder.size() ? fmt::format("    h = torch.tanh({})\n", layer_code(name, "h"))
                                   : fmt::format("    return {}\n", layer_code(name, "h"));
  }
  e.code = script_code(body);
  e.fold_in = folds_in();
  return e;
}

}  // namespace rzoo
