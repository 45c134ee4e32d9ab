// SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018); see sasrec.h.
#include "models/sequential/sasrec.h"

#include <torch/torch.h>

#include <cmath>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "models/dropout.h"
#include "models/fast_linear.h"
#include "models/sequential/attention.h"

namespace rzoo {

SASRecOptions SASRecOptions::from_config(const Config* cfg) {
  SASRecOptions o;
  if (!cfg) return o;
  // Ranges are checked here, with the key, the value and the file:line that set it.
  o.hidden_size(cfg->get_int("model.hidden_size", 1, 1 << 16));
  o.layers(cfg->get_int("model.layers", 1, 64));
  o.heads(cfg->get_int("model.heads", 1, 1 << 16));
  o.inner_size(cfg->get_int("model.inner_size", 1, 1 << 20));
  o.max_len(cfg->get_int("model.max_len", 1, 1 << 16));
  o.dropout(cfg->get_double("model.dropout", 0.0, 0.999));
  o.attn_dropout(cfg->get_double("model.attn_dropout", 0.0, 0.999));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  o.layer_norm_eps(cfg->get_double("model.layer_norm_eps", 1e-30, 1.0));
  o.loss(cfg->get_choice("model.loss", sequence_losses()));
  o.neg_samples(cfg->get_int("model.neg_samples", 1, 1 << 24));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  if (o.hidden_size() % o.heads() != 0)
    cfg->bad("model.heads", fmt::format("must divide model.hidden_size ({}), got {}", o.hidden_size(), o.heads()));
  return o;
}

void SASRecOptions::check() const {
  // The same rules for options built in code (no config to point at).
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) fail("sasrec: {}", msg);
  };
  need(hidden_size() >= 1, fmt::format("model.hidden_size must be >= 1, got {}", hidden_size()));
  need(layers() >= 1, fmt::format("model.layers must be >= 1, got {}", layers()));
  need(heads() >= 1 && hidden_size() % heads() == 0,
       fmt::format("model.heads must divide model.hidden_size ({}), got {}", hidden_size(), heads()));
  need(inner_size() >= 1, fmt::format("model.inner_size must be >= 1, got {}", inner_size()));
  need(max_len() >= 1, fmt::format("model.max_len must be >= 1, got {}", max_len()));
  need(dropout() >= 0 && dropout() < 1, fmt::format("model.dropout must be in [0, 1), got {}", dropout()));
  need(attn_dropout() >= 0 && attn_dropout() < 1, fmt::format("model.attn_dropout must be in [0, 1), got {}", attn_dropout()));
  check_sequence_loss("sasrec", loss(), neg_samples());
}

SASRecBlockImpl::SASRecBlockImpl(const SASRecOptions& o)
    : ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps())))),
      ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps())))),
      attn(register_module("attn", torch::nn::MultiheadAttention(
                                       torch::nn::MultiheadAttentionOptions(o.hidden_size(), o.heads()).dropout(o.attn_dropout())))),
      ff1(register_module("ff1", torch::nn::Linear(o.hidden_size(), o.inner_size()))),
      ff2(register_module("ff2", torch::nn::Linear(o.inner_size(), o.hidden_size()))),
      drop(register_module("drop", torch::nn::Dropout(o.dropout()))) {}

at::Tensor SASRecBlockImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  // Attention and every dropout through models/sequential/attention.h and models/dropout.h
  // (LibTorch's dropout draws one element at a time on Debian's build).
  const bool tr = is_training();
  const double p = drop->options.p();
  const auto z = x + fast_dropout(causal_self_attention(attn, ln1(x), mask, tr), p, tr);  // [B, L, D]
  return z + fast_dropout(linear(ff2, fast_dropout(torch::relu(linear(ff1, ln2(z))), p, tr)), p, tr);  // [B, L, D]
}

at::Tensor SASRecBlockImpl::forward_at(const at::Tensor& x, const at::Tensor& idx) {
  const bool tr = is_training();
  const double p = drop->options.p();
  const int64_t B = x.size(0), D = x.size(2);
  const auto g = idx.view({B, 1, 1}).expand({B, 1, D});
  const auto y = ln1(x);                                                                  // [B, L, D]
  const auto z = x.gather(1, g).squeeze(1) +
                 fast_dropout(last_query_attention(attn, y, y.gather(1, g).squeeze(1), idx, tr), p, tr);  // [B, D]
  return z + fast_dropout(linear(ff2, fast_dropout(torch::relu(linear(ff1, ln2(z))), p, tr)), p, tr);  // [B, D]
}

SASRecImpl::SASRecImpl(const ModelContext& ctx) : SASRecImpl(ctx, SASRecOptions::from_config(ctx.config)) {}

SASRecImpl::SASRecImpl(const ModelContext& ctx, SASRecOptions opts)
    : SequenceRecommenderImpl("sasrec", ctx),
      options((opts.check(), opts)),
      item_emb(register_module("item_emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.n_items + 1, opts.hidden_size())
                                                                     .padding_idx(ctx.n_items)))),
      pos_emb(register_module("pos_emb", torch::nn::Embedding(opts.max_len(), opts.hidden_size()))),
      emb_drop(register_module("emb_drop", torch::nn::Dropout(opts.dropout()))),
      blocks(register_module("blocks", torch::nn::ModuleList())),
      final_ln(register_module("final_ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opts.hidden_size()})
                                                                    .eps(opts.layer_norm_eps())))),
      emb_scale_(std::sqrt(static_cast<double>(opts.hidden_size()))) {
  hist_ = UserHistories(ctx, options.max_len(), "sasrec");
  for (int64_t l = 0; l < options.layers(); ++l) blocks->push_back(SASRecBlock(options));
  // Normal(0, init_std) weights and zero biases (the authors' and RecBole's initialisation);
  // LayerNorms keep ones and zeros; the padding row stays zero.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const std::string& n = p.key();
    if (n.find("ln") != std::string::npos) continue;
    if (n.find("bias") != std::string::npos) p.value().zero_();
    else p.value().normal_(0.0, options.init_std());
  }
  item_emb->weight[ctx.n_items].zero_();
  // Registered after the initialisation above: without fields the parameters draw as before.
  if (options.fields()) side = register_module("side", item_side_fields("sasrec", ctx, options.hidden_size(), options.init_std()));
}

at::Tensor SASRecImpl::item_table() const { return with_item_fields(side, item_emb->weight, n_items_); }

SASRecImpl::Embedded SASRecImpl::embed(const at::Tensor& seq_in, const at::Tensor& table) {
  const auto seq = last_columns(seq_in, options.max_len());  // [B, L]
  const int64_t L = seq.size(1);
  const auto shift = padding_shift(seq, n_items_);           // [B]
  const auto right = left_to_right(seq, shift);              // [B, L], position j = j-th item of the window
  const auto pos = torch::arange(L, seq.options());
  // Item embeddings scaled by sqrt(D) before the positions are added, as in the authors' code.
  const auto items = torch::embedding(table.defined() ? table : item_table(), right, n_items_);  // [B, L, D]
  auto x = fast_dropout(items * emb_scale_ + pos_emb(pos).unsqueeze(0), emb_drop->options.p(), is_training());  // [B, L, D]
  // Causal: query j sees keys <= j (additive -inf above the diagonal).
  auto mask = torch::full({L, L}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);  // [L, L]
  return {x, mask, shift};
}

at::Tensor SASRecImpl::encode(const at::Tensor& seq_in, const at::Tensor& table) {
  auto e = embed(seq_in, table);
  for (const auto& b : *blocks) e.x = b->as<SASRecBlock>()->forward(e.x, e.mask);
  return right_to_left(final_ln(e.x), e.shift);  // [B, L, D], left-padded like the input
}

at::Tensor SASRecImpl::encode_last(const at::Tensor& seq_in, const at::Tensor& table) {
  auto e = embed(seq_in, table);
  const int64_t L = e.x.size(1);
  const auto nb = static_cast<int64_t>(blocks->size());
  for (int64_t l = 0; l + 1 < nb; ++l) e.x = (*blocks)[static_cast<size_t>(l)]->as<SASRecBlock>()->forward(e.x, e.mask);
  // The input's last column is right-aligned position (L - 1 - shift) mod L: the last item, or
  // position L - 1 of a window without items (what encode() returns there too).
  const auto idx = torch::remainder(L - 1 - e.shift, L);  // [B]
  return final_ln((*blocks)[static_cast<size_t>(nb - 1)]->as<SASRecBlock>()->forward_at(e.x, idx));  // [B, D]
}

at::Tensor SASRecImpl::loss(const Batch& b) {
  // A prefix batch (items [B]) is scored at its last position only: encode_last.
  const auto E = item_table();                                                                    // [I + 1, D]
  const auto h = b.items.dim() == 1 ? encode_last(b.seq, E).unsqueeze(1) : encode(b.seq, E);  // [B, 1 or L, D]
  return next_item_loss(h, b, E, n_items_, options.loss(), options.neg_samples());
}

at::Tensor SASRecImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto h = last_output(history(users));  // [B, D]: after the most recent item
  return (h * item_table().index_select(0, items.to(h.device()))).sum(1);
}

at::Tensor SASRecImpl::score_all(const at::Tensor& users) { return score_history(history(users)); }

at::Tensor SASRecImpl::last_output(const at::Tensor& seq) {
  // Rows grouped by history length (history.h): each group's blocks run over its widest window.
  const auto E = item_table();  // once for every length group
  return by_history_length(seq.to(E.device()), n_items_,
                           [this, &E](const at::Tensor& s) { return encode_last(s, E); });  // [B, D]
}

at::Tensor SASRecImpl::score_history(const at::Tensor& seq) {
  const auto h = last_output(seq);  // [B, D]
  return fast_linear(h, item_table().narrow(0, 0, n_items_));  // [B, I]
}

std::pair<at::Tensor, at::Tensor> SASRecImpl::explain(const at::Tensor& items, int64_t item) {
  (void)item;
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const auto h = explain_window(items, options.max_len(), item_emb->weight.device(), "sasrec");
  const int64_t n = h.size(0);
  // encode() on the unpadded window: with right padding and the causal mask the real positions
  // never see the padding, so these are the same activations.
  auto x = torch::embedding(item_table(), h.unsqueeze(0), n_items_) * emb_scale_ + pos_emb(torch::arange(n, h.options())).unsqueeze(0);  // [1, n, D]
  const auto mask = torch::full({n, n}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);
  const auto nb = static_cast<int64_t>(blocks->size());
  for (int64_t l = 0; l + 1 < nb; ++l) x = (*blocks)[static_cast<size_t>(l)]->as<SASRecBlock>()->forward(x, mask);
  auto* last = (*blocks)[static_cast<size_t>(nb - 1)]->as<SASRecBlock>();
  const auto y = last->ln1(x).transpose(0, 1);                                              // [n, 1, D]
  const auto w = std::get<1>(last->attn->forward(y, y, y, at::Tensor(), /*need_weights=*/true, mask));  // [1, n, n], head mean
  train(was_training);
  return {h.cpu(), w[0][n - 1].to(torch::kCPU, torch::kDouble)};
}

ScriptExport SASRecImpl::script_export() const {
  ScriptExport e;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(torch::kCPU).clone(); };
  // The blocks' parameters stacked over layers ([layers, ...]) so that one TorchScript loop
  // runs them; `hist` is every user's window of all known interactions (scope All), the
  // history the export serves from (and the C++ model scores from outside evaluations).
  std::vector<std::vector<at::Tensor>> per_layer;
  for (const auto& m : *blocks) {
    auto* b = m->as<SASRecBlock>();
    per_layer.push_back({b->ln1->weight, b->ln1->bias, b->attn->in_proj_weight, b->attn->in_proj_bias,
                         b->attn->out_proj->weight, b->attn->out_proj->bias, b->ln2->weight, b->ln2->bias,
                         b->ff1->weight, b->ff1->bias, b->ff2->weight, b->ff2->bias});
  }
  // item_w: with model.fields the items' vectors as scored (ids plus fields), so the export needs no fields.
  e.tensors = {{"item_w", cpu(item_table())}, {"pos_w", cpu(pos_emb->weight)},
               {"lnf_w", cpu(final_ln->weight)},  {"lnf_b", cpu(final_ln->bias)},
               {"hist", hist_.table(HistoryScope::All).clone()}};
  add_stacked_layers(e, {"ln1_w", "ln1_b", "in_w", "in_b", "out_w", "out_b", "ln2_w", "ln2_b", "ff1_w", "ff1_b", "ff2_w", "ff2_b"},
                     per_layer);
  e.history_len = options.max_len();
  e.explain_kind = "items";
  const int64_t D = options.hidden_size(), H = options.heads();
  // The same operations as encode() and LibTorch's multi_head_attention_forward in eval mode
  // (dropout off): q scaled by 1 / sqrt(head_dim) before q k^T, the mask added, softmax.
  e.code = fmt::format(R"(
def _encode(self, seq: Tensor) -> Tensor:
    B = seq.size(0)
    L = seq.size(1)
    shift = (seq == self.n_items).sum(1)
    idx = torch.remainder(torch.arange(L).unsqueeze(0) + shift.unsqueeze(1), L)
    right = seq.gather(1, idx)
    x = torch.embedding(self.item_w, right) * {emb_scale} + torch.embedding(self.pos_w, torch.arange(L)).unsqueeze(0)
    mask = torch.full([L, L], float("-inf")).triu(1)
    for i in range(self.in_w.size(0)):
        y = torch.layer_norm(x, [{D}], self.ln1_w[i], self.ln1_b[i], {eps}).transpose(0, 1)
        qkv = torch.linear(y, self.in_w[i], self.in_b[i]).chunk(3, -1)
        q = qkv[0] * {scaling}
        q = q.contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        k = qkv[1].contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        v = qkv[2].contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2))
        w += mask.unsqueeze(0)
        w = torch.softmax(w, -1)
        a = torch.bmm(w, v).transpose(0, 1).contiguous().view(L, B, {D})
        a = torch.linear(a, self.out_w[i], self.out_b[i]).transpose(0, 1)
        z = x + a
        f = torch.relu(torch.linear(torch.layer_norm(z, [{D}], self.ln2_w[i], self.ln2_b[i], {eps}), self.ff1_w[i], self.ff1_b[i]))
        x = z + torch.linear(f, self.ff2_w[i], self.ff2_b[i])
    x = torch.layer_norm(x, [{D}], self.lnf_w, self.lnf_b, {eps})
    back = torch.remainder(torch.arange(L).unsqueeze(0) - shift.unsqueeze(1) + L, L)
    return x.gather(1, back.unsqueeze(2).expand(B, L, {D}))

def _last(self, users: Tensor) -> Tensor:
    return self._encode(self.hist.index_select(0, users)).select(1, -1)

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self._last(users) * self.item_w.index_select(0, items)).sum(1)

def _score_seq(self, seq: Tensor) -> Tensor:
    return torch.matmul(self._encode(seq).select(1, -1), self.item_w.narrow(0, 0, self.n_items).t())

def _score_all(self, users: Tensor) -> Tensor:
    return self._score_seq(self.hist.index_select(0, users))

def _explain(self, h: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    L = h.size(0)
    x = torch.embedding(self.item_w, h.unsqueeze(0)) * {emb_scale} + torch.embedding(self.pos_w, torch.arange(L)).unsqueeze(0)
    mask = torch.full([L, L], float("-inf")).triu(1)
    last = torch.zeros([L])
    for i in range(self.in_w.size(0)):
        y = torch.layer_norm(x, [{D}], self.ln1_w[i], self.ln1_b[i], {eps}).transpose(0, 1)
        qkv = torch.linear(y, self.in_w[i], self.in_b[i]).chunk(3, -1)
        q = (qkv[0] * {scaling}).contiguous().view(L, {H}, {dh}).transpose(0, 1)
        k = qkv[1].contiguous().view(L, {H}, {dh}).transpose(0, 1)
        v = qkv[2].contiguous().view(L, {H}, {dh}).transpose(0, 1)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) + mask.unsqueeze(0), -1)
        last = w.select(1, L - 1).mean(0)
        a = torch.bmm(w, v).transpose(0, 1).contiguous().view(L, 1, {D})
        z = x + torch.linear(a, self.out_w[i], self.out_b[i]).transpose(0, 1)
        f = torch.relu(torch.linear(torch.layer_norm(z, [{D}], self.ln2_w[i], self.ln2_b[i], {eps}), self.ff1_w[i], self.ff1_b[i]))
        x = z + torch.linear(f, self.ff2_w[i], self.ff2_b[i])
    return h, last.double()
)",
                       fmt::arg("D", D), fmt::arg("H", H), fmt::arg("emb_scale", fmt::format("{:.17g}", emb_scale_)), fmt::arg("dh", D / H),
                       fmt::arg("eps", fmt::format("{:.17g}", options.layer_norm_eps())),
                       fmt::arg("scaling", fmt::format("{:.17g}", 1 / std::sqrt(static_cast<double>(D / H)))));
  return e;
}

}  // namespace rzoo
