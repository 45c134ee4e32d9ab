// FM, Wide & Deep, DeepFM and DCN-v2 over user and item fields (see ctr.h for the papers and the
// formulas).
#include "models/context/ctr.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "core/strings.h"
#include "datasets/dataset.h"
#include "models/dropout.h"
#include "models/export_tensors.h"
#include "models/field_bag.h"

namespace rzoo {

namespace {

// [S]: each slot's field (numbered from `first`).
at::Tensor field_vector(const FieldSide& s, int64_t first = 0) {
  std::vector<int64_t> v;
  for (auto f : s.slot_field) v.push_back(first + f);
  return torch::tensor(v, torch::kLong);
}


}  // namespace

FeatureModelOptions FeatureModelOptions::from_config(const Config* cfg) {
  FeatureModelOptions o;
  if (!cfg) return o;
  if (cfg->has("model.embedding_size")) o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 14));
  if (cfg->has("model.init_std")) o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  if (cfg->has("model.use_ids")) o.use_ids(cfg->get_bool("model.use_ids"));
  if (cfg->has("model.pairwise")) o.pairwise(cfg->get_bool("model.pairwise"));
  if (cfg->has("model.mlp")) o.mlp(cfg->get_int_list("model.mlp", 1));
  if (cfg->has("model.dropout")) o.dropout(cfg->get_double("model.dropout", 0.0, 0.99));
  if (cfg->has("model.cross_layers")) o.cross_layers(cfg->get_int("model.cross_layers", 0, 64));
  if (cfg->has("model.structure")) o.structure(cfg->get_choice("model.structure", {"stacked", "parallel"}));
  if (cfg->has("model.l2")) o.l2(cfg->get_double("model.l2", 0.0, 1e6));
  if (cfg->has("model.id_dropout")) o.id_dropout(cfg->get_double("model.id_dropout", 0.0, 1.0));
  if (cfg->has("model.loss")) o.loss(cfg->get_choice("model.loss", {"bce", "bpr", "ce", "sampled"}));
  if (cfg->has("model.neg_samples")) o.neg_samples(cfg->get_int("model.neg_samples", 1, 1 << 24));
  return o;
}

FeatureModelImpl::FeatureModelImpl(std::string name, const ModelContext& ctx, FeatureModelOptions opts, bool fm,
                                   bool deep, bool dcn)
    : RecommenderImpl(std::move(name), ctx), options(std::move(opts)), fm_(fm), deep_(deep), dcn_(dcn) {
  const std::string& n = this->name();
  TORCH_CHECK(ctx.data, n, ": needs the dataset (its user and item fields, dataset.fields)");
  TORCH_CHECK(options.embedding_size() >= 1, n, ": model.embedding_size must be >= 1, got ", options.embedding_size());
  TORCH_CHECK(options.init_std() >= 0.0 && std::isfinite(options.init_std()), n, ": model.init_std must be >= 0, got ",
              options.init_std());
  layout_ = build_fields(*ctx.data, ctx.config, options.use_ids(), ctx.split ? &ctx.split->train : nullptr);
  TORCH_CHECK(layout_.user.n_entities == n_users_ && layout_.item.n_entities == n_items_, n,
              ": the dataset's users/items (", layout_.user.n_entities, ", ", layout_.item.n_entities,
              ") differ from the model's (", n_users_, ", ", n_items_, ")");
  if (layout_.user.n_fields() == 0 || layout_.item.n_fields() == 0)
    fail("{}: model.use_ids is false and dataset.fields gives the {} side no field (the fields: {}); every pair "
         "needs at least one user and one item field",
         n, layout_.user.n_fields() == 0 ? "user" : "item",
         layout_.schema.empty() ? std::string("none") : join(layout_.schema, "; "));
  const int64_t D = options.embedding_size();
  table = register_parameter("table", torch::randn({layout_.table_rows, D}) * options.init_std());
  linear = register_parameter("linear", torch::zeros({layout_.table_rows}));
  bias = register_parameter("bias", torch::zeros({1}));
  const auto& U = layout_.user;
  const auto& I = layout_.item;
  u_index = register_buffer("u_index", slot_rows(U));
  u_weight = register_buffer("u_weight", slot_weights(U));
  u_field = register_buffer("u_field", field_vector(U));
  i_index = register_buffer("i_index", slot_rows(I));
  i_weight = register_buffer("i_weight", slot_weights(I));
  i_field = register_buffer("i_field", field_vector(I));
  hist_field_ = U.field_index(kHistoryField);
  if (hist_field_ >= 0) hist_row0_ = U.first_row[static_cast<size_t>(hist_field_)] + 1;
  const int64_t C = layout_.context.n_fields();
  ctx_first = register_buffer("ctx_first", torch::tensor(layout_.context.first_row, torch::kLong));
  pair_field = register_buffer("pair_field", torch::cat({u_field, field_vector(I, U.n_fields()),
                                                         torch::arange(C, torch::kLong) + U.n_fields() + I.n_fields()}));
  const int64_t width = (U.n_fields() + I.n_fields() + C) * D;  // x_0 = all fields concatenated
  if (dcn_) {
    TORCH_CHECK(options.cross_layers() >= 1, n, ": model.cross_layers must be >= 1, got ", options.cross_layers());
    for (int64_t l = 0; l < options.cross_layers(); ++l)
      cross.push_back(register_module("cross_" + std::to_string(l), torch::nn::Linear(width, width)));
  }
  if (deep_ || dcn_) {
    int64_t in = width;
    for (size_t l = 0; l < options.mlp().size(); ++l) {
      TORCH_CHECK(options.mlp()[l] >= 1, n, ": model.mlp widths must be >= 1, got ", list_str(options.mlp()));
      mlp.push_back(register_module("mlp_" + std::to_string(l), torch::nn::Linear(in, options.mlp()[l])));
      in = options.mlp()[l];
    }
    if (dcn_ && options.structure() == "parallel") {
      TORCH_CHECK(!options.mlp().empty(), n, ": model.structure parallel needs a deep tower (model.mlp not empty)");
      in = width + options.mlp().back();
    }
    mlp_out = register_module("mlp_out", torch::nn::Linear(in, 1));
  }
  if (!dcn_) deep_ = deep_ && mlp_out;
}

std::pair<at::Tensor, at::Tensor> FeatureModelImpl::bag(const at::Tensor& rows, const at::Tensor& w,
                                                        const at::Tensor& field, int64_t f) const {
  const int64_t D = table.size(1);
  // The first-order weights ride along as column D of the table, so one pass gives both.
  const auto ext = torch::cat({table, linear.unsqueeze(1)}, 1);  // [R, D + 1]
  const auto x = field_bag(ext, rows, w, field, f);              // [B, F, D + 1]
  return {x.narrow(2, 0, D), x.select(2, D).sum(1)};  // [B, F, D], [B]
}

std::pair<at::Tensor, at::Tensor> FeatureModelImpl::side(const at::Tensor& index, const at::Tensor& weight,
                                                         const at::Tensor& field, int64_t n_fields,
                                                         const at::Tensor& idx) const {
  return bag(index.index_select(0, idx), weight.index_select(0, idx), field, n_fields);
}

at::Tensor FeatureModelImpl::history_without_target(const at::Tensor& rows_u, const at::Tensor& w_u,
                                                   const at::Tensor& items) const {
  if (hist_field_ < 0) return w_u;
  const auto hm = u_field.eq(hist_field_).to(w_u.scalar_type()).unsqueeze(0);               // [1, Su]
  const auto own = rows_u.eq((items.to(torch::kLong) + hist_row0_).unsqueeze(1)).to(w_u.scalar_type()) * hm;  // [B, Su]
  const auto before = (w_u * hm).sum(1, true);                                               // [B, 1]
  const auto after = before - (w_u * own).sum(1, true);
  // History slots scaled by before / after (0 when nothing is left); the other fields as they are.
  const auto scale = torch::where(after > 1e-12, before / after.clamp_min(1e-12), torch::zeros_like(after));
  return w_u * (1 - own) * (hm * scale + (1 - hm));
}

std::pair<at::Tensor, at::Tensor> FeatureModelImpl::pair_fields(const at::Tensor& users, const at::Tensor& items,
                                                                const at::Tensor& context, double id_dropout,
                                                                bool exclude_own) const {
  // All slots of a pair in one bag: [B, Su + Si + C], the item side's fields numbered after the
  // user's and the context fields after both.
  std::vector<at::Tensor> rows = {u_index.index_select(0, users), i_index.index_select(0, items)};
  std::vector<at::Tensor> w = {u_weight.index_select(0, users), i_weight.index_select(0, items)};
  if (exclude_own) w[0] = history_without_target(rows[0], w[0], items);
  const int64_t B = users.size(0), C = ctx_first.size(0);
  if (id_dropout > 0 && options.use_ids()) {
    // Item-id dropout (DropoutNet): the item id slot (the item side's first) of a random share of
    // the pairs gets weight 0, so the model also learns to score an item from its fields alone.
    w[1] = w[1].clone();
    w[1].select(1, 0).mul_(torch::bernoulli(torch::full({B}, 1.0 - id_dropout, w[1].options())));
  }
  if (C > 0) {
    // Context tokens of labelled rows; without them (ranking, serving) the context slots weigh 0.
    const bool known = context.defined();
    TORCH_CHECK(!known || (context.dim() == 2 && context.size(0) == B && context.size(1) == C), name(),
                ": context must be [", B, ", ", C, "], got ", context.sizes());
    rows.push_back(known ? context.to(torch::kLong) + ctx_first.unsqueeze(0) : ctx_first.unsqueeze(0).expand({B, C}));
    w.push_back(known ? torch::ones({B, C}, w[0].options()) : torch::zeros({B, C}, w[0].options()));
  }
  return bag(torch::cat(rows, 1), torch::cat(w, 1), pair_field, layout_.user.n_fields() + layout_.item.n_fields() + C);
}

at::Tensor FeatureModelImpl::logits(const at::Tensor& x, const at::Tensor& lin) {
  at::Tensor out;
  if (!dcn_) out = bias + lin;  // first-order (wide) part, [P]
  if (fm_ && options.pairwise()) {
    const auto s = x.sum(1);  // [P, D]
    out = out + 0.5 * (s.pow(2).sum(1) - x.pow(2).sum({1, 2}));
  }
  if (!has_deep()) return out;
  const auto tower = [&](at::Tensor h) {
    // Dropout on each layer's input (the embeddings too), as RecBole's MLPLayers does.
    for (auto& l : mlp) {
      h = fast_dropout(h, options.dropout(), is_training());
      h = torch::relu(l(h));
    }
    return h;
  };
  const auto x0 = x.flatten(1);  // [P, F*D]
  if (dcn_) {
    auto xl = x0;
    for (auto& c : cross) xl = x0 * c(xl) + xl;
    const auto h = options.structure() == "stacked" ? tower(xl) : torch::cat({xl, tower(x0)}, 1);
    return mlp_out(h).squeeze(1);
  }
  return out + mlp_out(tower(x0)).squeeze(1);
}

at::Tensor FeatureModelImpl::loss(const Batch& b) {
  const double idd = is_training() ? options.id_dropout() : 0.0;
  if (options.loss() == "ce" || options.loss() == "sampled") {
    // Softmax over items for each positive pair's user (YouTube's and the two-tower models'
    // listwise loss; "SASRec+" for sequences): ce over all items, sampled over the target and
    // neg_samples items drawn uniformly per batch. The user side is gathered once per pair (its
    // own item left out of user:history), each candidate item's fields once per batch; the
    // context is unknown, as when ranking.
    TORCH_CHECK(b.users.defined() && b.items.defined() && b.users.dim() == 1, name(), ": model.loss ",
                options.loss(), " needs batches of positive (user, item) pairs");
    const bool full = options.loss() == "ce";
    const auto rows_u = u_index.index_select(0, b.users);
    const auto [uf, ul] = bag(rows_u, history_without_target(rows_u, u_weight.index_select(0, b.users), b.items), u_field,
                              layout_.user.n_fields());  // [B, Fu, D], [B]
    const auto cand = full ? torch::arange(n_items_, b.items.options().dtype(torch::kLong))
                           : torch::randint(n_items_, {options.neg_samples()}, b.items.options().dtype(torch::kLong));
    auto w_i = i_weight.index_select(0, cand);  // [K, Si]
    if (idd > 0 && options.use_ids()) {
      // Item-id dropout per candidate of the batch (the pair path drops it per pair).
      w_i = w_i.clone();
      w_i.select(1, 0).mul_(torch::bernoulli(torch::full({cand.size(0)}, 1.0 - idd, w_i.options())));
    }
    const auto [itf, il] = bag(i_index.index_select(0, cand), w_i, i_field, layout_.item.n_fields());  // [K, Fi, D], [K]
    auto z = grid_logits(uf, ul, itf, il);  // [B, K]
    at::Tensor loss;
    at::Tensor xp;  // the positive pairs' fields, for l2
    if (full) {
      loss = torch::nn::functional::cross_entropy(z, b.items.to(torch::kLong));
    } else {
      // The positive's logit from its pair, a drawn candidate that is the row's own item masked out.
      const auto [x, lin] = pair_fields(b.users, b.items, {}, idd, true);  // [B, F, D], [B]
      xp = x;
      z = z.masked_fill(cand.unsqueeze(0) == b.items.to(torch::kLong).unsqueeze(1), -std::numeric_limits<float>::infinity());
      loss = torch::nn::functional::cross_entropy(torch::cat({logits(x, lin).unsqueeze(1), z}, 1),
                                                  torch::zeros_like(b.items, b.items.options().dtype(torch::kLong)));
    }
    if (options.l2() > 0) {
      if (!xp.defined()) xp = pair_fields(b.users, b.items, {}, 0.0, true).first;
      loss = loss + options.l2() * xp.pow(2).sum({1, 2}).mean();
    }
    return loss;
  }
  if (options.loss() == "bpr") {
    // Rendle et al.'s BPR criterion on the model's logits, as LightFM trains its feature
    // factorisation: -log sigmoid(s(u, i) - s(u, j)) for a positive i and a sampled negative j.
    TORCH_CHECK(b.neg_items.defined(), name(), ": model.loss bpr needs pairwise batches (users, items, neg_items)");
    const auto [xp, lp] = pair_fields(b.users, b.items, b.context, idd, true);      // [B, F, D], [B]
    const auto [xn, ln] = pair_fields(b.users, b.neg_items, b.context, idd, true);  // [B, F, D], [B]
    auto loss = torch::nn::functional::softplus(logits(xn, ln) - logits(xp, lp)).mean();
    if (options.l2() > 0) loss = loss + options.l2() * 0.5 * (xp.pow(2).sum({1, 2}) + xn.pow(2).sum({1, 2})).mean();
    return loss;
  }
  TORCH_CHECK(b.labels.defined(), name(), ": needs pointwise batches (users, items, labels)");
  const auto [x, lin] = pair_fields(b.users, b.items, b.context, idd, true);  // [B, F, D], [B]
  const auto z = logits(x, lin);
  auto loss = torch::nn::functional::binary_cross_entropy_with_logits(z, b.labels.to(z.dtype()));
  if (options.l2() > 0) loss = loss + options.l2() * x.pow(2).sum({1, 2}).mean();
  return loss;
}

at::Tensor FeatureModelImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto [x, lin] = pair_fields(users, items);
  return logits(x, lin);
}

at::Tensor FeatureModelImpl::score_labeled(const at::Tensor& users, const at::Tensor& items, const at::Tensor& context) {
  const auto [x, lin] = pair_fields(users, items, context);
  return logits(x, lin);
}

at::Tensor FeatureModelImpl::score_all(const at::Tensor& users) {
  const auto all = torch::arange(n_items_, users.options().dtype(torch::kLong));
  const auto [uf, ul] = side(u_index, u_weight, u_field, layout_.user.n_fields(), users);  // [B, Fu, D], [B]
  const auto [itf, il] = side(i_index, i_weight, i_field, layout_.item.n_fields(), all);   // [I, Fi, D], [I]
  return grid_logits(uf, ul, itf, il);
}

at::Tensor FeatureModelImpl::grid_logits(const at::Tensor& uf, const at::Tensor& ul, const at::Tensor& itf,
                                         const at::Tensor& il) {
  // The first-order (wide) part and FM's pairwise term in the factorised form:
  // <s_u, s_i> + 1/2 (|s_u|^2 - q_u) + 1/2 (|s_i|^2 - q_i).
  const auto wide_fm = [&] {
    auto out = bias + ul.unsqueeze(1) + il.unsqueeze(0);  // [B, K]
    if (fm_ && options.pairwise()) {
      const auto su = uf.sum(1), si = itf.sum(1);  // [B, D], [K, D]
      out = out + torch::matmul(su, si.t()) + (0.5 * (su.pow(2).sum(1) - uf.pow(2).sum({1, 2}))).unsqueeze(1) +
            (0.5 * (si.pow(2).sum(1) - itf.pow(2).sum({1, 2}))).unsqueeze(0);
    }
    return out;
  };
  if (!has_deep()) return wide_fm();
  const int64_t B = uf.size(0), I = itf.size(0), Fu = uf.size(1), Fi = itf.size(1), D = uf.size(2);
  const int64_t C = ctx_first.size(0);  // context fields: unknown when ranking (zero vectors)
  std::vector<at::Tensor> parts;
  if (!dcn_ && !mlp.empty() && (!is_training() || options.dropout() == 0.0)) {
    // Wide & Deep and DeepFM: the first hidden layer from its halves, W_1 [x_u; x_i; 0] + b_1 =
    // (W_u x_u + b_1) + W_i x_i (the unknown context adds nothing), each half taken once per user
    // and once per item instead of once per (user, item), as NCF's first layer (ncf_fused.cpp);
    // the later layers run over the grid. Only where no dropout applies: its masks are drawn per
    // pair. DeepFM on ML-100K with user:history (1 thread, beside two other runs):
    // an epoch of loss sampled with 64 negatives 45.3-46.0 -> 14.3-16.5 s; `rzoo evaluate` of a
    // run over all 943 users, both splits, 2.5-2.7 -> 1.3 s of CPU, the same metrics.
    const auto& w1 = mlp[0]->weight;  // [H_1, (Fu + Fi + C) * D]
    const auto a = torch::linear(uf.reshape({B, Fu * D}), w1.narrow(1, 0, Fu * D), mlp[0]->bias);  // [B, H_1]
    const auto c = torch::linear(itf.reshape({I, Fi * D}), w1.narrow(1, Fu * D, Fi * D));          // [I, H_1]
    const int64_t h1 = a.size(1);
    int64_t widest = 0;
    for (auto v : options.mlp()) widest += v;
    const int64_t step = std::max<int64_t>(1, chunk_bytes / std::max<int64_t>(1, I * widest * 4));
    for (int64_t s = 0; s < B; s += step) {
      const int64_t b = std::min(step, B - s);
      auto h = torch::relu(a.narrow(0, s, b).unsqueeze(1) + c.unsqueeze(0)).reshape({b * I, h1});  // [b * I, H_1]
      for (size_t l = 1; l < mlp.size(); ++l) h = torch::relu(mlp[l](h));
      parts.push_back(mlp_out(h).view({b, I}));
    }
    return wide_fm() + (parts.empty() ? torch::zeros({0, I}, table.options()) : torch::cat(parts, 0));
  }
  // The networks over the (user, item) grid, in chunks of users.
  int64_t widest = (Fu + Fi + C) * D * (dcn_ ? 3 : 2);
  for (auto v : options.mlp()) widest += v;
  const int64_t per_user = std::max<int64_t>(1, I * widest * 4);
  const int64_t step = std::max<int64_t>(1, chunk_bytes / per_user);
  for (int64_t s = 0; s < B; s += step) {
    const int64_t b = std::min(step, B - s);
    const auto u = uf.narrow(0, s, b).unsqueeze(1).expand({b, I, Fu, D});
    const auto it = itf.unsqueeze(0).expand({b, I, Fi, D});
    const auto lin = (ul.narrow(0, s, b).unsqueeze(1) + il.unsqueeze(0)).reshape({b * I});
    const auto x = C > 0 ? torch::cat({u, it, torch::zeros({b, I, C, D}, uf.options())}, 2) : torch::cat({u, it}, 2);
    parts.push_back(logits(x.reshape({b * I, Fu + Fi + C, D}), lin).view({b, I}));
  }
  return parts.empty() ? torch::zeros({0, I}, table.options()) : torch::cat(parts, 0);
}

std::vector<std::array<int64_t, 3>> FeatureModelImpl::warm_start_rows(const std::string& name, int64_t old_users,
                                                                      int64_t old_items) const {
  if (name != "table" && name != "linear") return {};
  std::vector<std::array<int64_t, 3>> runs;
  int64_t from = 0;
  for (const FieldSide* s : {&layout_.user, &layout_.item, &layout_.context})
    for (int64_t f = 0; f < s->n_fields(); ++f) {
      const std::string& n = s->names[static_cast<size_t>(f)];
      const int64_t now = s->rows[static_cast<size_t>(f)];
      const int64_t before = n == "user_id" ? old_users + 1 : n == "item_id" || n == kHistoryField ? old_items + 1 : now;
      runs.push_back({from, s->first_row[static_cast<size_t>(f)], std::min(before, now)});
      from += before;
    }
  return runs;
}

std::vector<std::string> FeatureModelImpl::describe() const {
  std::vector<std::string> v;
  for (const auto& s : layout_.schema) v.push_back("field: " + s);
  return v;
}

ScriptExport FeatureModelImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"table", cpu_copy(table)},       {"linear", cpu_copy(linear)},     {"bias", cpu_copy(bias)},
               {"u_index", cpu_copy(u_index)},   {"u_weight", cpu_copy(u_weight)}, {"u_field", cpu_copy(u_field)},
               {"pair_field", cpu_copy(pair_field)}, {"ctx_first", cpu_copy(ctx_first)},
               {"i_index", cpu_copy(i_index)},   {"i_weight", cpu_copy(i_weight)}, {"i_field", cpu_copy(i_field)}};
  for (size_t l = 0; l < mlp.size(); ++l) {
    e.tensors.emplace_back(fmt::format("mlp_w{}", l), cpu_copy(mlp[l]->weight));
    e.tensors.emplace_back(fmt::format("mlp_b{}", l), cpu_copy(mlp[l]->bias));
  }
  for (size_t l = 0; l < cross.size(); ++l) {
    e.tensors.emplace_back(fmt::format("cross_w{}", l), cpu_copy(cross[l]->weight));
    e.tensors.emplace_back(fmt::format("cross_b{}", l), cpu_copy(cross[l]->bias));
  }
  if (mlp_out) {
    e.tensors.emplace_back("out_w", cpu_copy(mlp_out->weight));
    e.tensors.emplace_back("out_b", cpu_copy(mlp_out->bias));
  }
  std::string tower = "    h = x0\n";  // the deep tower on `h`
  for (size_t l = 0; l < mlp.size(); ++l) tower += fmt::format("    h = torch.relu(torch.addmm(self.mlp_b{0}, h, self.mlp_w{0}.t()))\n", l);
  std::string pair = R"(
def _logits(self, x: Tensor, lin: Tensor) -> Tensor:
)";
  if (!dcn_) pair += "    out = self.bias + lin\n";
  if (fm_ && options.pairwise()) pair += "    s = x.sum(1)\n    out = out + 0.5 * (s.pow(2).sum(1) - x.pow(2).sum([1, 2]))\n";
  if (has_deep()) pair += "    x0 = x.flatten(1)\n";
  if (dcn_) {
    pair += "    xl = x0\n";
    for (size_t l = 0; l < cross.size(); ++l)
      pair += fmt::format("    xl = x0 * torch.addmm(self.cross_b{0}, xl, self.cross_w{0}.t()) + xl\n", l);
    if (options.structure() == "stacked") {
      pair += "    x0 = xl\n" + tower;
    } else {
      pair += tower + "    h = torch.cat([xl, h], 1)\n";
    }
    pair += "    return torch.addmm(self.out_b, h, self.out_w.t()).squeeze(1)\n";
  } else {
    if (deep_) pair += tower + "    out = out + torch.addmm(self.out_b, h, self.out_w.t()).squeeze(1)\n";
    pair += "    return out\n";
  }
  // The schema, for clients: fields() lists the fields in the layout's order.
  std::string fields = "\ndef fields(self) -> List[str]:\n    return [";
  for (size_t k = 0; k < layout_.schema.size(); ++k) {
    std::string q;
    for (char c : layout_.schema[k]) {
      if (c == '\\' || c == '"') q += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) q += c;
    }
    fields += (k ? ", \"" : "\"") + q + "\"";
  }
  fields += "]\n";
  e.code = fields + pair + fmt::format(R"(
def _bag(self, rows: Tensor, w: Tensor, field: Tensor, nf: int) -> Tuple[Tensor, Tensor]:
    b = rows.size(0)
    s = rows.size(1)
    d = self.table.size(1)
    ext = torch.cat([self.table, self.linear.unsqueeze(1)], 1)
    e = ext.index_select(0, rows.reshape(-1)).view([b, s, d + 1]) * w.unsqueeze(2)
    x = torch.zeros([b, nf, d + 1], dtype=e.dtype).index_add(1, field, e)
    return x.narrow(2, 0, d), x.select(2, d).sum(1)

def _side_u(self, idx: Tensor) -> Tuple[Tensor, Tensor]:
    return self._bag(self.u_index.index_select(0, idx), self.u_weight.index_select(0, idx), self.u_field, {0})

def _side_i(self, idx: Tensor) -> Tuple[Tensor, Tensor]:
    return self._bag(self.i_index.index_select(0, idx), self.i_weight.index_select(0, idx), self.i_field, {1})

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    b = users.size(0)
    c = self.ctx_first.size(0)
    rows = torch.cat([self.u_index.index_select(0, users), self.i_index.index_select(0, items), self.ctx_first.unsqueeze(0).expand([b, c])], 1)
    w = torch.cat([self.u_weight.index_select(0, users), self.i_weight.index_select(0, items), torch.zeros([b, c])], 1)
    x, lin = self._bag(rows, w, self.pair_field, {2})
    return self._logits(x, lin)
)",
                                       layout_.user.n_fields(), layout_.item.n_fields(),
                                       layout_.user.n_fields() + layout_.item.n_fields() + layout_.context.n_fields());
  if (!has_deep()) {
    e.code += R"(
def _score_all(self, users: Tensor) -> Tensor:
    uf, ul = self._side_u(users)
    itf, il = self._side_i(torch.arange(self.n_items))
    out = self.bias + ul.unsqueeze(1) + il.unsqueeze(0)
)";
    if (options.pairwise())
      e.code += R"(    su = uf.sum(1)
    si = itf.sum(1)
    out = out + torch.matmul(su, si.t()) + (0.5 * (su.pow(2).sum(1) - uf.pow(2).sum([1, 2]))).unsqueeze(1) + (0.5 * (si.pow(2).sum(1) - itf.pow(2).sum([1, 2]))).unsqueeze(0)
)";
    e.code += "    return out\n";
  } else {
    e.code += fmt::format(R"(
def _score_all(self, users: Tensor) -> Tensor:
    uf, ul = self._side_u(users)
    itf, il = self._side_i(torch.arange(self.n_items))
    B = users.size(0)
    I = self.n_items
    fu = uf.size(1)
    fi = itf.size(1)
    d = uf.size(2)
    step = max(1, {} // max(1, I * {}))
    parts: List[Tensor] = []
    for s in range(0, B, step):
        b = min(step, B - s)
        u = uf.narrow(0, s, b).unsqueeze(1).expand([b, I, fu, d])
        it = itf.unsqueeze(0).expand([b, I, fi, d])
        lin = (ul.narrow(0, s, b).unsqueeze(1) + il.unsqueeze(0)).reshape([b * I])
        c = self.ctx_first.size(0)
        x = torch.cat([u, it, torch.zeros([b, I, c, d])], 2)
        parts.append(self._logits(x.reshape([b * I, fu + fi + c, d]), lin).view([b, I]))
    if len(parts) == 0:
        return torch.zeros([0, I])
    return torch.cat(parts, 0)
)",
                          chunk_bytes, [&] {
                            int64_t w = (layout_.user.n_fields() + layout_.item.n_fields() + layout_.context.n_fields()) *
                                        options.embedding_size() * (dcn_ ? 3 : 2);
                            for (auto v : options.mlp()) w += v;
                            return w * 4;
                          }());
  }
  return e;
}

FMImpl::FMImpl(const ModelContext& ctx) : FeatureModelImpl("fm", ctx, FeatureModelOptions::from_config(ctx.config), true, false, false) {}
WideDeepImpl::WideDeepImpl(const ModelContext& ctx)
    : FeatureModelImpl("widedeep", ctx, FeatureModelOptions::from_config(ctx.config), false, true, false) {}
DeepFMImpl::DeepFMImpl(const ModelContext& ctx)
    : FeatureModelImpl("deepfm", ctx, FeatureModelOptions::from_config(ctx.config), true, true, false) {}
DCNv2Impl::DCNv2Impl(const ModelContext& ctx)
    : FeatureModelImpl("dcnv2", ctx, FeatureModelOptions::from_config(ctx.config), false, false, true) {}

}  // namespace rzoo
