// NCF: He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative Filtering", WWW 2017 (GMF, MLP,
// NeuMF; the authors' Keras code: github.com/hexiangnan/neural_collaborative_filtering).
// MF: Rendle, Krichene, Zhang & Anderson, "Neural Collaborative Filtering vs. Matrix Factorization
// Revisited", RecSys 2020.
//
// Shapes: B batch rows, U users, I items, D GMF/MF factors, L = layers.size(), h_j = layers[j].
//   GMF     x = p_u * q_i                                    [B, D]
//   MLP     x = a_{L-1}(... a_1([p_u; q_i]))                 [B, h_0] -> [B, h_{L-1}]
//   NeuMF   x = [GMF x; MLP x]                               [B, D + h_{L-1}]
//   logit = predict(x) = h^T x + b                           [B]
//
// Initialisation as in the original Keras code: embeddings N(0, init_std) (0.01 there), hidden
// layers Glorot-uniform with zero bias, the predict layer LeCun-uniform, U(-sqrt(3 / fan_in),
// +sqrt(3 / fan_in)), with zero bias. (LibTorch's Linear default would be U(+-1 / sqrt(fan_in)).)
//
// score_all of the MLP part: the concatenation [p_u; q_i] for every (user, item) pair would be a
// [B, I, h_0] tensor. The first layer is linear, W [p; q] + b = (W_u p + b) + W_i q with W_u, W_i
// the column halves of W: the user part [B, h_1] and the item part [I, h_1] are computed once and
// added broadcast, a chunk of users at a time so that the [b, I, h] temporaries of the remaining
// layers stay within chunk_bytes.
#include "models/general/ncf.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/simd.h"
#include "core/strings.h"
#include "models/export_tensors.h"
#include "models/general/fold_in_linear.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {

// ---- option checks (config: errors name the key and where it was set; direct options: TORCH_CHECK)

std::vector<int64_t> layers_from_config(const Config* cfg) {
  const auto layers = cfg->get_int_list("model.layers", 1);
  if (layers.empty())
    cfg->bad("model.layers", "must hold at least one size (layers[0], the width of the concatenated user and item "
                             "embeddings), got []");
  if (layers[0] < 2 || layers[0] % 2 != 0)
    cfg->bad("model.layers", fmt::format("layers[0] must be even and >= 2 (the concatenated user and item embeddings, "
                                         "half each), got {} in {}", layers[0], list_str(layers)));
  return layers;
}

void check_std(const char* model, double init_std) {
  TORCH_CHECK(init_std >= 0.0 && std::isfinite(init_std), model, ": model.init_std must be >= 0, got ", init_std);
}

void check_embedding(const char* model, int64_t d, double init_std) {
  TORCH_CHECK(d >= 1, model, ": model.embedding_size must be >= 1, got ", d);
  check_std(model, init_std);
}

void check_layers(const char* model, const std::vector<int64_t>& layers) {
  TORCH_CHECK(!layers.empty(), model, ": model.layers must hold at least one size, got []");
  TORCH_CHECK(layers[0] >= 2 && layers[0] % 2 == 0, model,
              ": model.layers[0] must be even and >= 2 (the concatenated user and item embeddings, half each), got ",
              layers[0], " in ", list_str(layers));
  for (size_t j = 1; j < layers.size(); ++j)
    TORCH_CHECK(layers[j] >= 1, model, ": model.layers[", j, "] must be >= 1, got ", layers[j], " in ", list_str(layers));
}

const GMFOptions& checked(const GMFOptions& o) {
  check_embedding("gmf", o.embedding_size(), o.init_std());
  return o;
}

const NCFMLPOptions& checked(const NCFMLPOptions& o) {
  check_layers("ncfmlp", o.layers());
  check_std("ncfmlp", o.init_std());
  return o;
}

const NeuMFOptions& checked(const NeuMFOptions& o) {
  check_embedding("neumf", o.embedding_size(), o.init_std());
  check_layers("neumf", o.layers());
  TORCH_CHECK(o.alpha() >= 0.0 && o.alpha() <= 1.0, "neumf: model.alpha must be in [0, 1], got ", o.alpha());
  TORCH_CHECK(o.pretrain_gmf().empty() == o.pretrain_mlp().empty(),
              "neumf: model.pretrain: set both gmf and mlp (run folders of a trained gmf and ncfmlp) or neither, got "
              "gmf '", o.pretrain_gmf(), "', mlp '", o.pretrain_mlp(), "'");
  return o;
}

const DotMFOptions& checked(const DotMFOptions& o) {
  check_embedding("mf", o.embedding_size(), o.init_std());
  TORCH_CHECK(o.l2() >= 0.0 && std::isfinite(o.l2()), "mf: model.l2 must be >= 0, got ", o.l2());
  TORCH_CHECK(o.bias_l2() >= 0.0 && std::isfinite(o.bias_l2()), "mf: model.bias_l2 must be >= 0, got ", o.bias_l2());
  return o;
}

// Loads DIR/best.pt, a checkpoint of model `model_name`, into `module` (shapes checked by
// load_model_checkpoint). Any failure names the NeuMF key, the folder and what it must hold.
void load_pretrained(torch::nn::Module& module, const std::string& model_name, const std::string& key,
                     const std::string& dir, const std::string& needs, const c10::Device& device) {
  const std::string path = (fs::path(dir) / "best.pt").string();
  // A run still training (or interrupted) already has a best.pt, but not its final one: its
  // last.pt says so. Without validation every epoch replaces best.pt, so a NeuMF started beside a
  // running refit would silently take a half-trained part.
  const auto progress = read_run_progress((fs::path(dir) / "last.pt").string());
  if (progress && !progress->done)
    fail("neumf: {} = '{}': the run is not finished (its last.pt stops at epoch {}): pre-train from a finished "
         "run (a running one is still training; an interrupted one continues with rzoo train --resume {})",
         key, dir, progress->epoch, dir);
  try {
    load_model_checkpoint(path, module, model_name, device);
  } catch (const std::exception& e) {
    fail("neumf: {} = '{}': cannot initialise from this run: {} ({} must be the run folder of a trained '{}' with {} "
         "on the same data)", key, dir, e.what(), key, model_name, needs);
  }
}

}  // namespace

// ---- options from the config --------------------------------------------------------------------

GMFOptions GMFOptions::from_config(const Config* cfg) {
  GMFOptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  return o;
}

NCFMLPOptions NCFMLPOptions::from_config(const Config* cfg) {
  NCFMLPOptions o;
  if (!cfg) return o;
  o.layers(layers_from_config(cfg));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  return o;
}

NeuMFOptions NeuMFOptions::from_config(const Config* cfg) {
  NeuMFOptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.layers(layers_from_config(cfg));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  o.pretrain_gmf(cfg->get_string("model.pretrain.gmf"));
  o.pretrain_mlp(cfg->get_string("model.pretrain.mlp"));
  if (o.pretrain_gmf().empty() != o.pretrain_mlp().empty()) {
    const bool gmf_set = !o.pretrain_gmf().empty();
    cfg->bad(gmf_set ? "model.pretrain.gmf" : "model.pretrain.mlp",
             fmt::format("model.pretrain needs both gmf and mlp (run folders of a trained gmf and ncfmlp) or neither; "
                         "got gmf '{}', mlp '{}'", o.pretrain_gmf(), o.pretrain_mlp()));
  }
  o.alpha(cfg->get_double("model.alpha", 0.0, 1.0));
  return o;
}

DotMFOptions DotMFOptions::from_config(const Config* cfg) {
  DotMFOptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  o.l2(cfg->get_double("model.l2"));
  if (!(o.l2() >= 0.0)) cfg->bad("model.l2", fmt::format("must be >= 0, got {}", o.l2()));
  o.bias_l2(cfg->get_double("model.bias_l2"));
  if (!(o.bias_l2() >= 0.0)) cfg->bad("model.bias_l2", fmt::format("must be >= 0, got {}", o.bias_l2()));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  return o;
}

// ---- the shared NCF architecture ----------------------------------------------------------------

NCFBaseImpl::NCFBaseImpl(std::string name, const ModelContext& ctx, int64_t gmf_size, std::vector<int64_t> layers,
                         double init_std)
    : RecommenderImpl(std::move(name), ctx), gmf_size_(gmf_size), layers_(std::move(layers)) {
  if (ctx.config && ctx.config->has("train.neg_per_pos"))
    neg_per_pos_ = static_cast<double>(ctx.config->get_int("train.neg_per_pos", 1));
  torch::NoGradGuard no_grad;
  int64_t width = 0;  // of the predict layer's input
  if (gmf_size_ > 0) {
    gmf_user_emb = register_module("gmf_user_emb", torch::nn::Embedding(ctx.n_users, gmf_size_));
    gmf_item_emb = register_module("gmf_item_emb", torch::nn::Embedding(ctx.n_items, gmf_size_));
    gmf_user_emb->weight.normal_(0.0, init_std);
    gmf_item_emb->weight.normal_(0.0, init_std);
    width += gmf_size_;
  }
  if (!layers_.empty()) {
    const int64_t half = layers_[0] / 2;
    mlp_user_emb = register_module("mlp_user_emb", torch::nn::Embedding(ctx.n_users, half));
    mlp_item_emb = register_module("mlp_item_emb", torch::nn::Embedding(ctx.n_items, half));
    mlp_user_emb->weight.normal_(0.0, init_std);
    mlp_item_emb->weight.normal_(0.0, init_std);
    for (size_t j = 0; j + 1 < layers_.size(); ++j) {
      auto layer = register_module("mlp_" + std::to_string(j), torch::nn::Linear(layers_[j], layers_[j + 1]));
      torch::nn::init::xavier_uniform_(layer->weight);
      layer->bias.zero_();
      mlp.push_back(layer);
    }
    width += layers_.back();
  }
  predict = register_module("predict", torch::nn::Linear(width, 1));
  const double bound = std::sqrt(3.0 / static_cast<double>(width));  // LeCun uniform
  predict->weight.uniform_(-bound, bound);
  predict->bias.zero_();
}

at::Tensor NCFBaseImpl::loss(const Batch& b) {
  TORCH_CHECK(b.labels.defined(), name(), ": needs pointwise batches (users, items, labels)");
  const auto logits = score(b.users, b.items);  // [B]
  return torch::nn::functional::binary_cross_entropy_with_logits(logits, b.labels.to(logits.dtype()));
}

at::Tensor NCFBaseImpl::score(const at::Tensor& users, const at::Tensor& items) {
  std::vector<at::Tensor> parts;
  if (gmf_size_ > 0) parts.push_back(gmf_user_emb(users) * gmf_item_emb(items));  // [B, D]
  if (!layers_.empty()) {
    auto h = torch::cat({mlp_user_emb(users), mlp_item_emb(items)}, 1);  // [B, h_0]
    for (auto& layer : mlp) h = torch::relu(layer(h));                  // [B, h_{j+1}]
    parts.push_back(h);
  }
  const auto x = parts.size() == 1 ? parts[0] : torch::cat(parts, 1);  // [B, D + h_{L-1}]
  return predict(x).squeeze(1);                                        // [B]
}

at::Tensor NCFBaseImpl::score_all(const at::Tensor& users) {
  const auto head = predict->weight[0];  // [D + h_{L-1}]: h, split between the parts
  at::Tensor out;
  if (gmf_size_ > 0)  // h_G^T (p * q) = (p * h_G)^T q: one [B, D] x [D, I] product
    out = torch::matmul(gmf_user_emb(users) * head.slice(0, 0, gmf_size_), gmf_item_emb->weight.t());  // [B, I]
  if (!layers_.empty()) {
    auto m = mlp_score_all(users, head.slice(0, gmf_size_));  // [B, I]
    out = out.defined() ? out + m : m;
  }
  return out + predict->bias;  // [B, I], a fresh tensor
}

namespace {

at::Tensor f64(const at::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); }

}  // namespace

NCFBaseImpl::FoldInWeights NCFBaseImpl::fold_in_weights() const {
  torch::NoGradGuard no_grad;
  FoldInWeights fw;
  fw.head = f64(predict->weight[0]);  // [D + h_{L-1}]
  fw.bias = f64(predict->bias);
  if (gmf_size_ > 0) fw.gmf_items = f64(gmf_item_emb->weight);
  if (!layers_.empty()) {
    fw.mlp_items = f64(mlp_item_emb->weight);
    for (const auto& layer : mlp) fw.w.push_back(f64(layer->weight)), fw.b.push_back(f64(layer->bias));
    if (!mlp.empty()) fw.item_part = torch::mm(fw.mlp_items, fw.w[0].slice(1, layers_[0] / 2).t()) + fw.b[0].unsqueeze(0);
  }
  return fw;
}

std::pair<at::Tensor, at::Tensor> NCFBaseImpl::fold_in_scores(const at::Tensor& u, bool jacobian, const FoldInWeights& fw) const {
  torch::NoGradGuard no_grad;
  const auto& head = fw.head;
  auto s = fw.bias.expand({n_items_}).clone();  // [I]
  std::vector<at::Tensor> jac;
  if (gmf_size_ > 0) {  // s += <p_g (.) h_g, q_i>: d/dp_g = h_g (.) q_i
    const auto hg = head.slice(0, 0, gmf_size_);
    s += torch::mv(fw.gmf_items, u.slice(0, 0, gmf_size_) * hg);
    if (jacobian) jac.push_back(fw.gmf_items * hg.unsqueeze(0));
  }
  if (!layers_.empty()) {
    const int64_t half = layers_[0] / 2;
    const auto hm = head.slice(0, gmf_size_), pm = u.slice(0, gmf_size_, gmf_size_ + half);
    if (mlp.empty()) {  // predict reads [p; q]: linear
      s += torch::mv(fw.mlp_items, hm.slice(0, half)) + torch::dot(pm, hm.slice(0, 0, half));
      if (jacobian) jac.push_back(hm.slice(0, 0, half).unsqueeze(0).expand({n_items_, half}));
    } else {
      // Forward over every item: z_1 = W_u p + (W_i q_i + b_1), a_j = ReLU(z_j), s += h_m^T a_L.
      const auto w_u = fw.w[0].slice(1, 0, half);
      std::vector<at::Tensor> z;
      z.push_back(fw.item_part + torch::mv(w_u, pm).unsqueeze(0));
      auto a = torch::relu(z.back());
      for (size_t j = 1; j < mlp.size(); ++j) {
        z.push_back(torch::mm(a, fw.w[j].t()) + fw.b[j]);
        a = torch::relu(z.back());
      }
      s += torch::mv(a, hm);
      if (!jacobian) return {s, at::Tensor()};
      // Backward to p, one row per item: g = h_m (.) [z_L > 0], g <- (g W_j) (.) [z_{j-1} > 0], J = g W_u.
      auto g = hm.unsqueeze(0) * z.back().gt(0).to(torch::kDouble);  // [I, h_L]
      for (size_t j = mlp.size() - 1; j >= 1; --j) g = torch::mm(g, fw.w[j]) * z[j - 1].gt(0).to(torch::kDouble);
      jac.push_back(torch::mm(g, w_u));  // [I, h_0 / 2]
    }
  }
  if (!jacobian) return {s, at::Tensor()};
  return {s, jac.size() == 1 ? jac[0] : torch::cat(jac, 1)};
}

namespace {

// The prior from the first `rows` users (all when -1).
LinearFoldIn ncf_fold_in(const NCFBaseImpl& m, double neg_per_pos, int64_t rows = -1) {
  LinearFoldIn f;
  f.neg_per_pos = neg_per_pos;
  std::vector<at::Tensor> users;
  auto first = [&](const at::Tensor& w) { return rows < 0 ? w.detach() : w.detach().narrow(0, 0, rows); };
  if (m.gmf_user_emb) users.push_back(first(m.gmf_user_emb->weight));
  if (m.mlp_user_emb) users.push_back(first(m.mlp_user_emb->weight));
  fit_fold_in_prior(f, users.size() == 1 ? users[0] : torch::cat(users, 1));
  return f;
}

}  // namespace

at::Tensor NCFBaseImpl::score_fold_in(const at::Tensor& items) {
  const LinearFoldIn f = ncf_fold_in(*this, neg_per_pos_);
  const FoldInWeights fw = fold_in_weights();  // once per fold-in
  const auto u = fold_in_gauss_newton(f, [&](const at::Tensor& v, bool jac) { return fold_in_scores(v, jac, fw); }, items);
  return fold_in_scores(u, false, fw).first.to(torch::kFloat);  // [I]
}

int64_t NCFBaseImpl::init_user_rows(const Csr& train, int64_t first) {
  torch::NoGradGuard no_grad;
  if (first <= 0 || first >= n_users_) return 0;
  const LinearFoldIn f = ncf_fold_in(*this, neg_per_pos_, first);
  const FoldInWeights fw = fold_in_weights();
  const int64_t g = gmf_user_emb ? gmf_user_emb->weight.size(1) : 0;
  return for_new_users(train, first, n_users_, [&](int64_t u, const at::Tensor& items) {
    const auto v = fold_in_gauss_newton(f, [&](const at::Tensor& x, bool jac) { return fold_in_scores(x, jac, fw); }, items);
    if (gmf_user_emb) gmf_user_emb->weight[u].copy_(v.narrow(0, 0, g).to(gmf_user_emb->weight.dtype()));
    if (mlp_user_emb) mlp_user_emb->weight[u].copy_(v.narrow(0, g, v.size(0) - g).to(mlp_user_emb->weight.dtype()));
  });
}

int64_t NCFBaseImpl::users_per_chunk() const {
  int64_t widest = 1;
  for (size_t j = 1; j < layers_.size(); ++j) widest = std::max(widest, layers_[j]);
  const int64_t per_user = std::max<int64_t>(1, n_items_ * widest * static_cast<int64_t>(predict->weight.element_size()));
  return std::max<int64_t>(1, chunk_bytes / per_user);
}

// head [h_{L-1}] -> [B, I]: head^T MLP(p_u, q_i) for every item, without the predict bias.
at::Tensor NCFBaseImpl::mlp_score_all(const at::Tensor& users, const at::Tensor& head) {
  const int64_t half = layers_[0] / 2;
  const auto pu = mlp_user_emb(users);        // [B, h_0 / 2]
  const auto& q = mlp_item_emb->weight;       // [I, h_0 / 2]
  if (mlp.empty())  // no hidden layer: head^T [p; q] = head_u^T p + head_i^T q
    return torch::matmul(pu, head.slice(0, 0, half)).unsqueeze(1) + torch::matmul(q, head.slice(0, half)).unsqueeze(0);
  const auto& w0 = mlp[0]->weight;  // [h_1, h_0]: columns [0, half) read p, [half, h_0) read q
  const auto user_part = torch::addmm(mlp[0]->bias, pu, w0.slice(1, 0, half).t());  // [B, h_1] = W_u p + b
  const auto item_part = torch::matmul(q, w0.slice(1, half).t()).unsqueeze(0);       // [1, I, h_1] = W_i q
  const int64_t n = users.size(0), chunk = users_per_chunk();
  // The result is allocated once and filled chunk by chunk: small per-chunk outputs kept alive
  // between the chunks' large temporaries fragment the heap, and glibc then keeps the freed
  // temporaries (measured on ML-100K: 950 MB peak for evaluating NeuMF, 220 MB without malloc's
  // dynamic mmap threshold). Each chunk's temporaries are freed before the next one's.
  auto out = torch::empty({n, n_items_}, head.options());  // [B, I]
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t e = std::min(n, s + chunk);
    auto h = (user_part.slice(0, s, e).unsqueeze(1) + item_part).relu_();  // [b, I, h_1]
    for (size_t j = 1; j < mlp.size(); ++j) h = mlp[j](h).relu_();        // [b, I, h_{j+1}]
    out.slice(0, s, e).copy_(torch::matmul(h, head));                     // [b, I]
  }
  return out;
}

ScriptExport NCFBaseImpl::script_export() const {
  ScriptExport e;
  const bool has_gmf = gmf_size_ > 0, has_mlp = !layers_.empty();
  if (has_gmf) {
    e.tensors.emplace_back("gmf_user_emb", cpu_copy(gmf_user_emb->weight));  // [U, D]
    e.tensors.emplace_back("gmf_item_emb", cpu_copy(gmf_item_emb->weight));  // [I, D]
  }
  std::string code;
  if (has_mlp) {
    e.tensors.emplace_back("mlp_user_emb", cpu_copy(mlp_user_emb->weight));  // [U, h_0 / 2]
    e.tensors.emplace_back("mlp_item_emb", cpu_copy(mlp_item_emb->weight));  // [I, h_0 / 2]
    for (size_t j = 0; j < mlp.size(); ++j) {
      e.tensors.emplace_back(fmt::format("mlp_w{}", j), cpu_copy(mlp[j]->weight));  // [h_{j+1}, h_j]
      e.tensors.emplace_back(fmt::format("mlp_b{}", j), cpu_copy(mlp[j]->bias));    // [h_{j+1}]
    }
    const int64_t half = layers_[0] / 2;
    // The MLP part's last hidden vectors of (user, item) pairs, [B, h_{L-1}] (layers unrolled).
    code += "def _mlp_vec(self, users: Tensor, items: Tensor) -> Tensor:\n"
            "    h = torch.cat([self.mlp_user_emb.index_select(0, users), self.mlp_item_emb.index_select(0, items)], 1)\n";
    for (size_t j = 0; j < mlp.size(); ++j)
      code += fmt::format("    h = torch.relu(torch.matmul(h, self.mlp_w{0}.t()) + self.mlp_b{0})\n", j);
    code += "    return h\n\n";
    // head^T MLP(p_u, q_i) for every item, [B, I]: as mlp_score_all, chunked alike.
    code += "def _mlp_all(self, users: Tensor, head: Tensor) -> Tensor:\n"
            "    pu = self.mlp_user_emb.index_select(0, users)\n";
    if (mlp.empty()) {
      code += fmt::format("    return torch.matmul(pu, head[:{0}]).unsqueeze(1) + "
                          "torch.matmul(self.mlp_item_emb, head[{0}:]).unsqueeze(0)\n\n", half);
    } else {
      code += fmt::format("    up = torch.matmul(pu, self.mlp_w0[:, :{0}].t()) + self.mlp_b0\n"
                          "    ip = torch.matmul(self.mlp_item_emb, self.mlp_w0[:, {0}:].t()).unsqueeze(0)\n"
                          "    outs: List[Tensor] = []\n"
                          "    for s in range(0, users.size(0), {1}):\n"
                          "        h = torch.relu(up[s:s + {1}].unsqueeze(1) + ip)\n",
                          half, users_per_chunk());
      for (size_t j = 1; j < mlp.size(); ++j)
        code += fmt::format("        h = torch.relu(torch.matmul(h, self.mlp_w{0}.t()) + self.mlp_b{0})\n", j);
      code += "        outs.append(torch.matmul(h, head))\n"
              "    if len(outs) == 0:\n"
              "        return torch.zeros([0, self.n_items], dtype=head.dtype)\n"
              "    return torch.cat(outs, 0)\n\n";
    }
  }
  e.tensors.emplace_back("predict_w", cpu_copy(predict->weight[0]));  // [D + h_{L-1}]
  e.tensors.emplace_back("predict_b", cpu_copy(predict->bias));       // [1]

  const std::string gmf_vec = "self.gmf_user_emb.index_select(0, users) * self.gmf_item_emb.index_select(0, items)";
  code += "def _score(self, users: Tensor, items: Tensor) -> Tensor:\n";
  if (has_gmf && has_mlp) code += "    x = torch.cat([" + gmf_vec + ", self._mlp_vec(users, items)], 1)\n";
  else if (has_gmf) code += "    x = " + gmf_vec + "\n";
  else code += "    x = self._mlp_vec(users, items)\n";
  code += "    return torch.matmul(x, self.predict_w) + self.predict_b\n\n";

  code += "def _score_all(self, users: Tensor) -> Tensor:\n";
  if (has_gmf)
    code += fmt::format("    out = torch.matmul(self.gmf_user_emb.index_select(0, users) * self.predict_w[:{0}], "
                        "self.gmf_item_emb.t())\n", gmf_size_);
  if (has_mlp && has_gmf) code += fmt::format("    out = out + self._mlp_all(users, self.predict_w[{}:])\n", gmf_size_);
  else if (has_mlp) code += "    out = self._mlp_all(users, self.predict_w)\n";
  code += "    return out + self.predict_b\n";
  if (has_mlp) {
    // Fold-in by Gauss-Newton: fold_in_scores() as TorchScript (layers unrolled), then the solver.
    e.fold_in = true;
    const LinearFoldIn f = ncf_fold_in(*this, neg_per_pos_);
    e.tensors.emplace_back("fold_prior_mean", f.prior_mean);
    e.tensors.emplace_back("fold_prior_prec", f.prior_prec);
    if (!mlp.empty()) e.tensors.emplace_back("fold_item_part", fold_in_weights().item_part);  // [I, h_1] float64
    const int64_t half = layers_[0] / 2, D = gmf_size_;
    code += fmt::format("\ndef _fold_in_sj(self, u: Tensor, jac: bool) -> Tuple[Tensor, Tensor]:\n"
                        "    head = self.predict_w.double()\n"
                        "    s = self.predict_b.double().expand([{}]).clone()\n"
                        "    js: List[Tensor] = []\n", n_items_);
    if (has_gmf)
      code += fmt::format("    hg = head[:{0}]\n    qg = self.gmf_item_emb.double()\n"
                          "    s = s + torch.mv(qg, u[:{0}] * hg)\n    js.append(qg * hg.unsqueeze(0))\n", D);
    code += fmt::format("    hm = head[{0}:]\n    pm = u[{0}:{1}]\n", D, D + half);
    if (mlp.empty()) {
      code += fmt::format("    q = self.mlp_item_emb.double()\n    s = s + torch.mv(q, hm[{0}:]) + torch.dot(pm, hm[:{0}])\n"
                          "    js.append(hm[:{0}].unsqueeze(0).expand([{1}, {0}]))\n", half, n_items_);
    } else {
      code += fmt::format("    w0 = self.mlp_w0.double()\n"
                          "    z0 = self.fold_item_part + torch.mv(w0[:, :{0}], pm).unsqueeze(0)\n"
                          "    a = torch.relu(z0)\n", half);
      for (size_t j = 1; j < mlp.size(); ++j)
        code += fmt::format("    z{0} = torch.mm(a, self.mlp_w{0}.double().t()) + self.mlp_b{0}.double()\n    a = torch.relu(z{0})\n", j);
      code += fmt::format("    s = s + torch.mv(a, hm)\n    if not jac:\n        return s, torch.zeros([0])\n"
                          "    g = hm.unsqueeze(0) * (z{} > 0).double()\n", mlp.size() - 1);
      for (size_t j = mlp.size() - 1; j >= 1; --j)
        code += fmt::format("    g = torch.mm(g, self.mlp_w{}.double()) * (z{} > 0).double()\n", j, j - 1);
      code += fmt::format("    js.append(torch.mm(g, w0[:, :{}]))\n", half);
    }
    code += "    if not jac:\n        return s, torch.zeros([0])\n"
            "    return s, torch.cat(js, 1)\n"
            "\ndef _score_fold_in(self, items: Tensor) -> Tensor:\n"
            "    return self._fold_in_sj(self._fold_in_gn(items), False)[0].float()\n" +
            fold_in_linear_script(f) + fold_in_gauss_newton_script();
  }
  e.code = code;
  return e;
}

// ---- GMF, NCF-MLP, NeuMF ------------------------------------------------------------------------

GMFImpl::GMFImpl(const ModelContext& ctx) : GMFImpl(ctx, GMFOptions::from_config(ctx.config)) {}

GMFImpl::GMFImpl(const ModelContext& ctx, GMFOptions opts)
    : NCFBaseImpl("gmf", ctx, checked(opts).embedding_size(), {}, opts.init_std()), options(std::move(opts)) {}

namespace {

// GMF's item side for fold-in: logit = <p, h (.) q_i> + b, x_i = h (.) q_i, [I, D] float64.
at::Tensor gmf_fold_in_items(const at::Tensor& item_emb, const at::Tensor& predict_w) {
  return item_emb.detach().to(torch::kCPU, torch::kDouble) * predict_w.detach().to(torch::kCPU, torch::kDouble).unsqueeze(0);
}

}  // namespace

at::Tensor GMFImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  LinearFoldIn f;
  f.neg_per_pos = neg_per_pos_;
  fit_fold_in_prior(f, gmf_user_emb->weight);
  const auto x = gmf_fold_in_items(gmf_item_emb->weight, predict->weight[0]);
  const auto c = predict->bias.detach().to(torch::kCPU, torch::kDouble).expand({x.size(0)});
  const auto u = fold_in_linear(f, x, c, items);
  return (torch::mv(x, u) + c).to(torch::kFloat);  // [I]
}

int64_t GMFImpl::init_user_rows(const Csr& train, int64_t first) {
  torch::NoGradGuard no_grad;
  if (first <= 0 || first >= n_users_) return 0;
  LinearFoldIn f;
  f.neg_per_pos = neg_per_pos_;
  fit_fold_in_prior(f, gmf_user_emb->weight.narrow(0, 0, first));
  const auto x = gmf_fold_in_items(gmf_item_emb->weight, predict->weight[0]);
  const auto c = predict->bias.detach().to(torch::kCPU, torch::kDouble).expand({x.size(0)});
  return for_new_users(train, first, n_users_, [&](int64_t u, const at::Tensor& items) {
    gmf_user_emb->weight[u].copy_(fold_in_linear(f, x, c, items).to(gmf_user_emb->weight.dtype()));
  });
}

std::pair<at::Tensor, at::Tensor> GMFImpl::explain(const at::Tensor& items, int64_t item) {
  return explain_by_item_cosine(gmf_item_emb->weight, items, item);
}

ScriptExport GMFImpl::script_export() const {
  ScriptExport e = NCFBaseImpl::script_export();
  e.fold_in = true;
  e.explain_kind = "items";
  LinearFoldIn f;
  f.neg_per_pos = neg_per_pos_;
  fit_fold_in_prior(f, gmf_user_emb->weight);
  e.tensors.emplace_back("fold_prior_mean", f.prior_mean);
  e.tensors.emplace_back("fold_prior_prec", f.prior_prec);
  e.code += R"(
def _score_fold_in(self, items: Tensor) -> Tensor:
    x = self.gmf_item_emb.double() * self.predict_w.double().unsqueeze(0)
    c = self.predict_b.double().expand([x.size(0)])
    u = self._fold_in_vector(x, c, items)
    return (torch.mv(x, u) + c).float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    return self._explain_cosine(self.gmf_item_emb, items, item)
)" + fold_in_linear_script(f) + kExplainCosineScript;
  return e;
}

NCFMLPImpl::NCFMLPImpl(const ModelContext& ctx) : NCFMLPImpl(ctx, NCFMLPOptions::from_config(ctx.config)) {}

NCFMLPImpl::NCFMLPImpl(const ModelContext& ctx, NCFMLPOptions opts)
    : NCFBaseImpl("ncfmlp", ctx, 0, checked(opts).layers(), opts.init_std()), options(std::move(opts)) {}

NeuMFImpl::NeuMFImpl(const ModelContext& ctx) : NeuMFImpl(ctx, NeuMFOptions::from_config(ctx.config)) {}

NeuMFImpl::NeuMFImpl(const ModelContext& ctx, NeuMFOptions opts)
    : NCFBaseImpl("neumf", ctx, checked(opts).embedding_size(), opts.layers(), opts.init_std()), options(std::move(opts)) {}

void NeuMFImpl::before_training() {
  const NeuMFOptions& o = options;
  if (o.pretrain_gmf().empty() && o.pretrain_mlp().empty()) return;  // from scratch
  checked(o);  // both set (the constructor refused one alone)
  // The runs are read here, not in the constructor: a finished NeuMF run must still open
  // (evaluate, export, resume) after its pre-training runs are gone.
  const c10::Device device = predict->weight.device();
  const ModelContext ctx{n_users_, n_items_, nullptr};
  GMF gmf(ctx, GMFOptions().embedding_size(o.embedding_size()).init_std(o.init_std()));
  NCFMLP mlp_run(ctx, NCFMLPOptions().layers(o.layers()).init_std(o.init_std()));
  gmf->to(device);
  mlp_run->to(device);
  load_pretrained(*gmf, "gmf", "model.pretrain.gmf", o.pretrain_gmf(),
                  fmt::format("model.embedding_size {}", o.embedding_size()), device);
  const std::string mlp_needs = "model.layers " + list_str(o.layers());
  load_pretrained(*mlp_run, "ncfmlp", "model.pretrain.mlp", o.pretrain_mlp(), mlp_needs, device);
  {
    // A run with more hidden layers whose extra layers keep the widths would load silently
    // (its first layers and predict layer fit): refuse it by the next layer's name.
    const std::string path = (fs::path(o.pretrain_mlp()) / "best.pt").string();
    torch::serialize::InputArchive ar, weights, extra;
    load_archive(ar, path, device);
    const std::string next = "mlp_" + std::to_string(mlp.size());
    if (ar.try_read("model", weights) && weights.try_read(next, extra))
      fail("neumf: model.pretrain.mlp = '{}': cannot initialise from this run: {} has more MLP layers than model.layers "
           "{} (model.pretrain.mlp must be the run folder of a trained 'ncfmlp' with {} on the same data)",
           o.pretrain_mlp(), path, list_str(o.layers()), mlp_needs);
  }

  torch::NoGradGuard no_grad;
  // Embeddings and hidden layers: the same names in the pre-trained models and here.
  auto own = named_parameters();
  for (NCFBaseImpl* src : {static_cast<NCFBaseImpl*>(gmf.get()), static_cast<NCFBaseImpl*>(mlp_run.get())}) {
    for (const auto& p : src->named_parameters()) {
      if (p.key().rfind("predict.", 0) == 0) continue;  // fused below
      at::Tensor* dst = own.find(p.key());
      TORCH_INTERNAL_ASSERT(dst && dst->sizes() == p.value().sizes(), "neumf: no parameter ", p.key(), " of its shape");
      dst->copy_(p.value());
    }
  }
  // The paper's fusion: h = [alpha h_gmf; (1 - alpha) h_mlp]. Fusing the biases alike makes the
  // initial NeuMF logit exactly alpha * GMF logit + (1 - alpha) * MLP logit.
  const double a = o.alpha();
  predict->weight.copy_(torch::cat({gmf->predict->weight * a, mlp_run->predict->weight * (1.0 - a)}, 1));  // [1, D + h]
  predict->bias.copy_(gmf->predict->bias * a + mlp_run->predict->bias * (1.0 - a));                        // [1]
}

// ---- Rendle et al.'s dot-product MF -------------------------------------------------------------

DotMFImpl::DotMFImpl(const ModelContext& ctx) : DotMFImpl(ctx, DotMFOptions::from_config(ctx.config)) {}

DotMFImpl::DotMFImpl(const ModelContext& ctx, DotMFOptions opts)
    : RecommenderImpl("mf", ctx),
      options(checked(opts)),
      user_emb(register_module("user_emb", torch::nn::Embedding(ctx.n_users, options.embedding_size()))),
      item_emb(register_module("item_emb", torch::nn::Embedding(ctx.n_items, options.embedding_size()))),
      user_bias(register_parameter("user_bias", torch::zeros({ctx.n_users}))),
      item_bias(register_parameter("item_bias", torch::zeros({ctx.n_items}))),
      global_bias(register_parameter("global_bias", torch::zeros({1}))) {
  if (ctx.config && ctx.config->has("train.neg_per_pos"))
    neg_per_pos_ = static_cast<double>(ctx.config->get_int("train.neg_per_pos", 1));
  {
    torch::NoGradGuard no_grad;
    user_emb->weight.normal_(0.0, options.init_std());
    item_emb->weight.normal_(0.0, options.init_std());
  }
  if (options.fields())
    side = register_module("side", SideFields("mf", ctx, options.embedding_size(), options.init_std(), true));
}

namespace {

// (vectors [B, D], biases [B]) of ids with their id rows `p` [B, D] and biases `b` [B], through
// the side fields when there are any.
std::pair<at::Tensor, at::Tensor> with_fields(const SideFields& side, bool user, const at::Tensor& p,
                                              const at::Tensor& b, const at::Tensor& idx) {
  if (!side) return {p, b};
  const auto x = torch::cat({p, b.unsqueeze(1)}, 1);                    // [B, D + 1]
  const auto y = user ? side->users(x, idx) : side->items(x, idx);  // [B, D + 1]
  const int64_t D = p.size(1);
  return {y.narrow(1, 0, D), y.select(1, D)};
}

at::Tensor all_ids(int64_t n, const at::Tensor& like) {
  return torch::arange(n, torch::TensorOptions(torch::kLong).device(like.device()));
}

}  // namespace

// The id rows through the Embedding modules (their gradients are sparse under lazy_adam).
std::pair<at::Tensor, at::Tensor> DotMFImpl::user_vectors(const at::Tensor& users) {
  return with_fields(side, true, user_emb(users), user_bias.index_select(0, users), users);
}

std::pair<at::Tensor, at::Tensor> DotMFImpl::item_vectors(const at::Tensor& items) {
  return with_fields(side, false, item_emb(items), item_bias.index_select(0, items), items);
}

std::pair<at::Tensor, at::Tensor> DotMFImpl::user_vectors() const {
  return with_fields(side, true, user_emb->weight, user_bias, all_ids(n_users_, user_bias));
}

std::pair<at::Tensor, at::Tensor> DotMFImpl::item_vectors() const {
  return with_fields(side, false, item_emb->weight, item_bias, all_ids(n_items_, item_bias));
}

namespace {

// MF's fold-in problem: logit = <[p_u, b_u], [q_i, 1]> + (b_i + b); the user bias is fitted with
// the vector (its prior from the trained user biases).
LinearFoldIn mf_fold_in(const at::Tensor& user_emb, const at::Tensor& user_bias, double neg_per_pos) {
  LinearFoldIn f;
  f.neg_per_pos = neg_per_pos;
  fit_fold_in_prior(f, torch::cat({user_emb.detach(), user_bias.detach().unsqueeze(1)}, 1));
  return f;
}

}  // namespace

at::Tensor DotMFImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  const auto [p, bu] = user_vectors();
  const auto [qi, bi] = item_vectors();
  const LinearFoldIn f = mf_fold_in(p, bu, neg_per_pos_);
  const auto q = qi.detach().to(torch::kCPU, torch::kDouble);
  const auto x = torch::cat({q, torch::ones({q.size(0), 1}, q.options())}, 1);  // [I, D + 1]
  const auto c = (bi.detach() + global_bias.detach()).to(torch::kCPU, torch::kDouble);  // [I]
  const auto u = fold_in_linear(f, x, c, items);
  return (torch::mv(x, u) + c).to(torch::kFloat);  // [I]
}

int64_t DotMFImpl::init_user_rows(const Csr& train, int64_t first) {
  torch::NoGradGuard no_grad;
  if (first <= 0 || first >= n_users_) return 0;
  const auto [p, bu] = user_vectors();
  const auto [qi, bi] = item_vectors();
  const LinearFoldIn f = mf_fold_in(p.narrow(0, 0, first), bu.narrow(0, 0, first), neg_per_pos_);
  const auto q = qi.detach().to(torch::kCPU, torch::kDouble);
  const auto x = torch::cat({q, torch::ones({q.size(0), 1}, q.options())}, 1);  // [I, D + 1]
  const auto c = (bi.detach() + global_bias.detach()).to(torch::kCPU, torch::kDouble);  // [I]
  const int64_t D = q.size(1);
  return for_new_users(train, first, n_users_, [&](int64_t u, const at::Tensor& items) {
    auto v = fold_in_linear(f, x, c, items);  // [D + 1]: the vector and the user bias, as scored
    // With fields: the id row and id bias are what the user's fields leave (its id counts: it
    // has interactions).
    if (side) v = v - side->user_fields(torch::tensor({u}, torch::kLong)).squeeze(0).to(v.options());
    user_emb->weight[u].copy_(v.narrow(0, 0, D).to(user_emb->weight.dtype()));
    user_bias[u].copy_(v[D].to(user_bias.dtype()));
  });
}

std::pair<at::Tensor, at::Tensor> DotMFImpl::explain(const at::Tensor& items, int64_t item) {
  return explain_by_item_cosine(item_vectors().first.detach(), items, item);
}

at::Tensor DotMFImpl::loss(const Batch& b) {
  TORCH_CHECK(b.labels.defined(), "mf: needs pointwise batches (users, items, labels)");
  const auto [p, bu] = user_vectors(b.users);  // [B, D], [B]
  const auto [q, bi] = item_vectors(b.items);
  const auto logits = (p * q).sum(1) + bu + bi + global_bias;                                    // [B]
  auto loss = torch::nn::functional::binary_cross_entropy_with_logits(logits, b.labels.to(logits.dtype()));
  // Rendle et al. regularise the embeddings of each training example's user and item (so a row
  // is penalised in proportion to how often it is used), not whole tables as weight decay would.
  if (options.l2() > 0.0) loss = loss + options.l2() * (p.pow(2).sum(1) + q.pow(2).sum(1)).mean();
  if (options.bias_l2() > 0.0) loss = loss + options.bias_l2() * (bu.pow(2) + bi.pow(2)).mean();
  return loss;
}

namespace {

struct MfRows {
  const int64_t *users, *items;
  const float* labels;       // [n] 0 / 1
  float *P, *Q;              // [U, D], [I, D]
  float *bu, *bi, *g;        // [U], [I], [1]
  int64_t D;
  float lr, l2, bias_l2;
};

// The n examples in order, each one SGD step; one function for the SIMD clones. The reductions
// and the row updates run 16 floats at a time in the AVX-512 copy: an NCF ML-1M epoch at 128
// dimensions and 8 negatives took 1.9-2.0 s against 3.6-4.1 s with the earlier SSE2 loop of
// four partial sums (2026-12-07, AVX-512 Xeon, beside two other runs). Returns the summed loss.
RZOO_SIMD_CLONES double mf_rows(const MfRows& a, int64_t n) {
  const int64_t D = a.D;
  const float step = a.lr, l2 = a.l2, bl2 = a.bias_l2;
  // The l2 term's gradient 2 l2 p (resp. q) as a decay of the row before the step.
  const float decay = 1.f - 2.f * step * l2, bias_decay = 2.f * step * bl2;
  double loss_sum = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t u = a.users[r], i = a.items[r];
    float* p = a.P + u * D;
    float* q = a.Q + i * D;
    float dot = 0.f, norms = 0.f;
#pragma omp simd reduction(+ : dot, norms)
    for (int64_t d = 0; d < D; ++d) {
      dot += p[d] * q[d];
      norms += p[d] * p[d] + q[d] * q[d];
    }
    const float x = dot + a.bu[u] + a.bi[i] + a.g[0];  // the logit
    const float y = a.labels[r];
    // Binary cross-entropy with logits, stably: max(x, 0) - x y + log(1 + exp(-|x|)), and
    // sigmoid(x) from the same exponential t = exp(-|x|): 1 / (1 + t) for x >= 0, t / (1 + t) below.
    // log(1 + t), not log1p(t): t is in (0, 1], where both are within ~6e-8 of the exact value,
    // and glibc's logf took half the time of its log1pf (an epoch 1.10-1.23 s against 1.24-1.29 s,
    // NCF ML-1M, 64 dimensions, 8 negatives; the same losses to 6 digits).
    const float t = std::exp(-std::fabs(x));
    double l = static_cast<double>(std::max(x, 0.f) - x * y + std::log(1.f + t));
    if (l2 > 0.f) l += static_cast<double>(l2 * norms);
    if (bl2 > 0.f) l += static_cast<double>(bl2 * (a.bu[u] * a.bu[u] + a.bi[i] * a.bi[i]));
    loss_sum += l;
    // d loss / d x = sigmoid(x) - y. Both rows step from their values before this example, as one
    // autograd step would.
    const float se = step * ((x >= 0.f ? 1.f : t) / (1.f + t) - y);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const float pd = p[d], qd = q[d];
      p[d] = decay * pd - se * qd;
      q[d] = decay * qd - se * pd;
    }
    a.bu[u] -= se + bias_decay * a.bu[u];
    a.bi[i] -= se + bias_decay * a.bi[i];
    a.g[0] -= se;
  }
  return loss_sum;
}

}  // namespace

// One thread, example after example (the global bias is written by every step, so Hogwild would
// race on it; the NCF experiments run batch-size-1 MF on one thread per run).
double DotMFImpl::per_sample_sgd(const Batch& b, double lr) {
  TORCH_CHECK(b.labels.defined(), "mf: needs pointwise batches (users, items, labels)");
  auto& P_t = user_emb->weight;
  auto& Q_t = item_emb->weight;
  TORCH_CHECK(P_t.device().is_cpu() && Q_t.device().is_cpu() && P_t.scalar_type() == torch::kFloat &&
                  Q_t.scalar_type() == torch::kFloat && P_t.is_contiguous() && Q_t.is_contiguous(),
              "mf: per-sample SGD needs contiguous float parameters on the CPU");
  torch::NoGradGuard no_grad;
  const auto users = b.users.contiguous(), items = b.items.contiguous();
  const auto labels = b.labels.to(torch::kFloat).contiguous();
  const int64_t* pu = users.data_ptr<int64_t>();
  const int64_t* pi = items.data_ptr<int64_t>();
  const int64_t n = b.size();
  for (int64_t r = 0; r < n; ++r)
    TORCH_CHECK(pu[r] >= 0 && pu[r] < n_users_ && pi[r] >= 0 && pi[r] < n_items_, "mf: index out of range: user ", pu[r],
                ", item ", pi[r]);
  const MfRows args{pu, pi, labels.data_ptr<float>(), P_t.data_ptr<float>(), Q_t.data_ptr<float>(),
                    user_bias.data_ptr<float>(), item_bias.data_ptr<float>(), global_bias.data_ptr<float>(),
                    options.embedding_size(), static_cast<float>(lr), static_cast<float>(options.l2()),
                    static_cast<float>(options.bias_l2())};
  return mf_rows(args, n);
}

at::Tensor DotMFImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto [p, bu] = user_vectors(users);
  const auto [q, bi] = item_vectors(items);
  return (p * q).sum(1) + bu + bi + global_bias;  // [B]
}

at::Tensor DotMFImpl::score_all(const at::Tensor& users) {
  const auto [p, bu] = user_vectors(users);
  const auto [q, bi] = item_vectors();
  return torch::matmul(p, q.t()) + bu.unsqueeze(1) + bi.unsqueeze(0) + global_bias;  // [B, D] x [D, I] + [B, 1] + [1, I] + [1]
}

ScriptExport DotMFImpl::script_export() const {
  ScriptExport e;
  torch::NoGradGuard no_grad;
  const auto [p, bu] = user_vectors();  // with model.fields: the fields added
  const auto [q, bi] = item_vectors();
  const LinearFoldIn f = mf_fold_in(p, bu, neg_per_pos_);
  e.fold_in = true;
  e.explain_kind = "items";
  e.tensors = {{"user_emb", cpu_copy(p)},   {"item_emb", cpu_copy(q)},
               {"user_bias", cpu_copy(bu)},         {"item_bias", cpu_copy(bi)},
               {"global_bias", cpu_copy(global_bias)},     {"fold_prior_mean", f.prior_mean},
               {"fold_prior_prec", f.prior_prec}};
  e.code = R"(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self.user_emb.index_select(0, users) * self.item_emb.index_select(0, items)).sum(1) + self.user_bias.index_select(0, users) + self.item_bias.index_select(0, items) + self.global_bias

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.user_emb.index_select(0, users), self.item_emb.t()) + self.user_bias.index_select(0, users).unsqueeze(1) + self.item_bias.unsqueeze(0) + self.global_bias

def _score_fold_in(self, items: Tensor) -> Tensor:
    q = self.item_emb.double()
    x = torch.cat([q, torch.ones([q.size(0), 1], dtype=q.dtype)], 1)
    c = (self.item_bias + self.global_bias).double()
    u = self._fold_in_vector(x, c, items)
    return (torch.mv(x, u) + c).float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    return self._explain_cosine(self.item_emb, items, item)
)" + fold_in_linear_script(f) + kExplainCosineScript;
  return e;
}

}  // namespace rzoo
