// BERT4Rec (Sun et al., CIKM 2019); see bert4rec.h.
#include "models/sequential/bert4rec.h"

#include <torch/torch.h>

#include <cmath>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "models/dropout.h"
#include "models/fast_linear.h"
#include "models/sequential/attention.h"

namespace rzoo {

BERT4RecOptions BERT4RecOptions::from_config(const Config* cfg) {
  BERT4RecOptions o;
  if (!cfg) return o;
  // Ranges are checked here, with the key, the value and the file:line that set it.
  o.hidden_size(cfg->get_int("model.hidden_size", 1, 1 << 16));
  o.layers(cfg->get_int("model.layers", 1, 64));
  o.heads(cfg->get_int("model.heads", 1, 1 << 16));
  o.inner_size(cfg->get_int("model.inner_size", 1, 1 << 20));
  // At inference the window holds at least one history item and the mask token.
  o.max_len(cfg->get_int("model.max_len", 2, 1 << 16));
  o.dropout(cfg->get_double("model.dropout", 0.0, 0.999));
  o.mask_prob(cfg->get_double("model.mask_prob", 0.0, 1.0));
  if (o.mask_prob() <= 0.0 || o.mask_prob() >= 1.0)
    cfg->bad("model.mask_prob", fmt::format("must be in (0, 1) (a fraction of the items masked), got {}", o.mask_prob()));
  o.last_mask_prob(cfg->get_double("model.last_mask_prob", 0.0, 1.0));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  o.loss(cfg->get_choice("model.loss", sequence_losses()));
  o.neg_samples(cfg->get_int("model.neg_samples", 1, 1 << 24));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  if (o.hidden_size() % o.heads() != 0)
    cfg->bad("model.heads", fmt::format("must divide model.hidden_size ({}), got {}", o.hidden_size(), o.heads()));
  return o;
}

void BERT4RecOptions::check() const {
  // The same rules for options built in code (no config to point at).
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) fail("bert4rec: {}", msg);
  };
  need(hidden_size() >= 1, fmt::format("model.hidden_size must be >= 1, got {}", hidden_size()));
  need(layers() >= 1, fmt::format("model.layers must be >= 1, got {}", layers()));
  need(heads() >= 1 && hidden_size() % heads() == 0,
       fmt::format("model.heads must divide model.hidden_size ({}), got {}", hidden_size(), heads()));
  need(inner_size() >= 1, fmt::format("model.inner_size must be >= 1, got {}", inner_size()));
  need(max_len() >= 2, fmt::format("model.max_len must be >= 2, got {}", max_len()));
  need(dropout() >= 0 && dropout() < 1, fmt::format("model.dropout must be in [0, 1), got {}", dropout()));
  need(mask_prob() > 0 && mask_prob() < 1, fmt::format("model.mask_prob must be in (0, 1), got {}", mask_prob()));
  need(last_mask_prob() >= 0 && last_mask_prob() <= 1,
       fmt::format("model.last_mask_prob must be in [0, 1], got {}", last_mask_prob()));
  check_sequence_loss("bert4rec", loss(), neg_samples());
}

BERT4RecImpl::BERT4RecImpl(const ModelContext& ctx) : BERT4RecImpl(ctx, BERT4RecOptions::from_config(ctx.config)) {}

BERT4RecImpl::BERT4RecImpl(const ModelContext& ctx, BERT4RecOptions opts)
    : SequenceRecommenderImpl("bert4rec", ctx),
      options((opts.check(), opts)),
      item_emb(register_module("item_emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.n_items + 2, opts.hidden_size())
                                                                     .padding_idx(ctx.n_items)))),
      pos_emb(register_module("pos_emb", torch::nn::Embedding(opts.max_len(), opts.hidden_size()))),
      emb_ln(register_module("emb_ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opts.hidden_size()})))),
      emb_drop(register_module("emb_drop", torch::nn::Dropout(opts.dropout()))),
      blocks(register_module("blocks", torch::nn::ModuleList())),
      head(register_module("head", torch::nn::Linear(opts.hidden_size(), opts.hidden_size()))),
      out_bias(register_parameter("out_bias", torch::zeros({ctx.n_items}))) {
  hist_ = UserHistories(ctx, options.max_len() - 1, "bert4rec");
  for (int64_t l = 0; l < options.layers(); ++l)
    blocks->push_back(torch::nn::TransformerEncoderLayer(torch::nn::TransformerEncoderLayerOptions(options.hidden_size(), options.heads())
                                                             .dim_feedforward(options.inner_size())
                                                             .dropout(options.dropout())
                                                             .activation(torch::kGELU)));
  // Normal(0, init_std) weights and zero biases (BERT's and RecBole's initialisation);
  // LayerNorms keep ones and zeros; the padding row stays zero.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const std::string& n = p.key();
    if (n.find("norm") != std::string::npos || n.find("ln") != std::string::npos) continue;
    if (n.find("bias") != std::string::npos) p.value().zero_();
    else p.value().normal_(0.0, options.init_std());
  }
  item_emb->weight[ctx.n_items].zero_();
  // Registered after the initialisation above: without fields the parameters draw as before.
  if (options.fields()) side = register_module("side", item_side_fields("bert4rec", ctx, options.hidden_size(), options.init_std()));
}

at::Tensor BERT4RecImpl::item_table() const { return with_item_fields(side, item_emb->weight, n_items_); }

at::Tensor BERT4RecImpl::encode(const at::Tensor& seq_in, const at::Tensor& table) {
  const auto seq = last_columns(seq_in, options.max_len());  // [B, L]
  const int64_t L = seq.size(1);
  const auto shift = padding_shift(seq, n_items_);           // [B]
  const auto right = left_to_right(seq, shift);              // [B, L], position j = j-th item of the window
  const auto pos = torch::arange(L, seq.options());
  const bool tr = is_training();
  const auto items = torch::embedding(table.defined() ? table : item_table(), right, n_items_);  // [B, L, D]
  auto x = fast_dropout(emb_ln(items + pos_emb(pos).unsqueeze(0)), emb_drop->options.p(), tr);  // [B, L, D]
  // No causal mask (bidirectional); padding keys masked per sequence. A row always has a real
  // item or the mask token, so no query row is fully masked.
  const auto pad = right == n_items_;  // [B, L] bool, true = ignore
  // Each block is TransformerEncoderLayer's forward (post-LayerNorm, GELU) with its own modules,
  // written out batch-first with fast dropout (models/sequential/attention.h says why).
  for (const auto& m : *blocks) {
    auto& b = *m->as<torch::nn::TransformerEncoderLayer>();
    x = b.norm1(x + fast_dropout(self_attention(b.self_attn, x, at::Tensor(), pad, tr), b.dropout1->options.p(), tr));
    const auto f = linear(b.linear2, fast_dropout(torch::gelu(linear(b.linear1, x)), b.dropout->options.p(), tr));
    x = b.norm2(x + fast_dropout(f, b.dropout2->options.p(), tr));  // [B, L, D]
  }
  return right_to_left(x, shift);  // [B, L, D], left-padded like the input
}

at::Tensor BERT4RecImpl::logits(const at::Tensor& h) {
  return fast_linear(torch::gelu(linear(head, h)), item_table().narrow(0, 0, n_items_), out_bias);  // [N, I]
}

at::Tensor BERT4RecImpl::cloze_sequence(const Batch& b) const {
  // The window followed by its (last) target: augment prefix has one target per row; with
  // augment none, items[:, j] is the item after seq[:, j] and the last column is the sequence's
  // last item (seq ends one item before it).
  const auto last = b.items.dim() == 1 ? b.items : b.items.select(1, b.items.size(1) - 1);  // [B]
  return last_columns(torch::cat({b.seq, last.unsqueeze(1)}, 1), options.max_len());     // [B, L]
}

at::Tensor BERT4RecImpl::cloze_mask(const at::Tensor& full) const {
  const int64_t L = full.size(1);
  const auto real = full != n_items_;  // [B, L]
  // Padding draws 2, above every real draw and the threshold.
  const auto r = torch::rand(full.sizes(), full.options().dtype(torch::kFloat)).masked_fill(~real, 2.0);
  const auto masked = r < options.mask_prob();
  const auto first = r.argmin(1, /*keepdim=*/true);  // [B, 1], a real position (every row has one)
  const auto cols = torch::arange(L, full.options()).unsqueeze(0);  // [1, L]
  const auto fallback = cols == first;
  auto mask = masked | (fallback & ~masked.any(1, /*keepdim=*/true));  // [B, L]
  if (options.last_mask_prob() > 0) {
    // Next-item rows: the sequence with only its last real item masked, the task inference asks
    // for. Drawn after the cloze draw, so that last_mask_prob 0 leaves the generator's stream
    // as it was.
    const auto only_last = torch::rand({full.size(0), 1}, full.options().dtype(torch::kFloat)) < options.last_mask_prob();  // [B, 1]
    const auto last_real = (real.to(torch::kLong) * (cols + 1)).argmax(1, /*keepdim=*/true);  // [B, 1]
    mask = torch::where(only_last, cols == last_real, mask);
  }
  return mask;
}

at::Tensor BERT4RecImpl::cloze_loss(const at::Tensor& full, const at::Tensor& masked) {
  const auto E = item_table();                                       // [I + 2, D]: read and scored
  const auto h = encode(full.masked_fill(masked, mask_token()), E);  // [B, L, D]
  const auto tgt = full.index({masked});                          // [N]
  TORCH_CHECK(tgt.numel() > 0, "bert4rec: no masked position in the batch");
  // The head's output at the masked positions against the output table (input embeddings + bias).
  return item_loss(torch::gelu(head(h.index({masked}))), tgt, at::Tensor(), E, out_bias, n_items_,
                   options.loss(), options.neg_samples());
}

at::Tensor BERT4RecImpl::loss(const Batch& b) {
  const auto full = cloze_sequence(b);
  return cloze_loss(full, cloze_mask(full));
}

at::Tensor BERT4RecImpl::last_output(const at::Tensor& users) { return last_output_of(history(users)); }

at::Tensor BERT4RecImpl::last_output_of(const at::Tensor& hist) {
  // Rows grouped by history length (history.h): each group's blocks run over its widest window.
  const auto E = item_table();  // once for every length group
  return by_history_length(hist.to(E.device()), n_items_, [this, &E](const at::Tensor& h) {
    const auto seq = torch::cat({h, torch::full({h.size(0), 1}, mask_token(), h.options())}, 1);  // [b, w + 1]
    return encode(seq, E).select(1, -1);                                                          // [b, D]
  });
}

at::Tensor BERT4RecImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto g = torch::gelu(head(last_output(users)));  // [B, D]
  const auto it = items.to(g.device());
  return (g * item_table().index_select(0, it)).sum(1) + out_bias.index_select(0, it);
}

at::Tensor BERT4RecImpl::score_all(const at::Tensor& users) { return logits(last_output(users)); }

at::Tensor BERT4RecImpl::score_history(const at::Tensor& seq) { return logits(last_output_of(seq)); }

std::pair<at::Tensor, at::Tensor> BERT4RecImpl::explain(const at::Tensor& items, int64_t item) {
  (void)item;
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const auto h = explain_window(items, options.max_len() - 1, item_emb->weight.device(), "bert4rec");
  const int64_t n = h.size(0);
  // encode() of the history and the mask token, unpadded (padding keys are masked out there).
  const auto seq = torch::cat({h, torch::full({1}, mask_token(), h.options())}).unsqueeze(0);  // [1, n + 1]
  auto x = emb_ln(torch::embedding(item_table(), seq, n_items_) + pos_emb(torch::arange(n + 1, h.options())).unsqueeze(0)).transpose(0, 1);  // [n + 1, 1, D]
  const auto nb = static_cast<int64_t>(blocks->size());
  for (int64_t l = 0; l + 1 < nb; ++l) x = (*blocks)[static_cast<size_t>(l)]->as<torch::nn::TransformerEncoderLayer>()->forward(x);
  auto* last = (*blocks)[static_cast<size_t>(nb - 1)]->as<torch::nn::TransformerEncoderLayer>();
  const auto w = std::get<1>(last->self_attn->forward(x, x, x, at::Tensor(), /*need_weights=*/true));  // [1, n + 1, n + 1]
  train(was_training);
  return {h.cpu(), w[0][n].narrow(0, 0, n).to(torch::kCPU, torch::kDouble)};
}

ScriptExport BERT4RecImpl::script_export() const {
  ScriptExport e;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(torch::kCPU).clone(); };
  // The blocks' parameters stacked over layers ([layers, ...]) so that one TorchScript loop runs
  // them; `hist` is every user's window of all known interactions (scope All).
  std::vector<std::vector<at::Tensor>> per_layer;
  double eps1 = 1e-5, eps2 = 1e-5;
  for (const auto& m : *blocks) {
    auto* b = m->as<torch::nn::TransformerEncoderLayer>();
    per_layer.push_back({b->self_attn->in_proj_weight, b->self_attn->in_proj_bias, b->self_attn->out_proj->weight,
                         b->self_attn->out_proj->bias, b->norm1->weight, b->norm1->bias, b->linear1->weight,
                         b->linear1->bias, b->linear2->weight, b->linear2->bias, b->norm2->weight, b->norm2->bias});
    eps1 = b->norm1->options.eps();
    eps2 = b->norm2->options.eps();
  }
  // item_w: with model.fields the items' vectors as scored (ids plus fields).
  e.tensors = {{"item_w", cpu(item_table())}, {"pos_w", cpu(pos_emb->weight)}, {"lne_w", cpu(emb_ln->weight)},
               {"lne_b", cpu(emb_ln->bias)},      {"head_w", cpu(head->weight)},  {"head_b", cpu(head->bias)},
               {"obias", cpu(out_bias)},          {"hist", hist_.table(HistoryScope::All).clone()}};
  add_stacked_layers(e, {"in_w", "in_b", "out_w", "out_b", "ln1_w", "ln1_b", "ff1_w", "ff1_b", "ff2_w", "ff2_b", "ln2_w", "ln2_b"},
                     per_layer);
  e.history_len = options.max_len() - 1;
  e.explain_kind = "items";
  const int64_t D = options.hidden_size(), H = options.heads();
  // The same operations as encode() and LibTorch's TransformerEncoderLayer (post-LayerNorm, GELU)
  // and multi_head_attention_forward in eval mode: q scaled by 1 / sqrt(head_dim), padding keys
  // set to -inf per sequence, softmax.
  e.code = fmt::format(R"(
def _last(self, users: Tensor) -> Tensor:
    return self._last_seq(self.hist.index_select(0, users))

def _last_seq(self, h: Tensor) -> Tensor:
    seq = torch.cat([h, torch.full_like(h.narrow(1, 0, 1), self.n_items + 1)], 1)
    B = seq.size(0)
    L = seq.size(1)
    shift = (seq == self.n_items).sum(1)
    idx = torch.remainder(torch.arange(L).unsqueeze(0) + shift.unsqueeze(1), L)
    right = seq.gather(1, idx)
    pad = right == self.n_items
    x = torch.embedding(self.item_w, right) + torch.embedding(self.pos_w, torch.arange(L)).unsqueeze(0)
    x = torch.layer_norm(x, [{D}], self.lne_w, self.lne_b, {eps_e}).transpose(0, 1)
    for i in range(self.in_w.size(0)):
        qkv = torch.linear(x, self.in_w[i], self.in_b[i]).chunk(3, -1)
        q = qkv[0] * {scaling}
        q = q.contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        k = qkv[1].contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        v = qkv[2].contiguous().view(L, B * {H}, {dh}).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2)).view(B, {H}, L, L)
        w = w.masked_fill(pad.unsqueeze(1).unsqueeze(2), float("-inf")).view(B * {H}, L, L)
        w = torch.softmax(w, -1)
        a = torch.bmm(w, v).transpose(0, 1).contiguous().view(L, B, {D})
        a = torch.linear(a, self.out_w[i], self.out_b[i])
        x = torch.layer_norm(x + a, [{D}], self.ln1_w[i], self.ln1_b[i], {eps1})
        f = torch.linear(torch.gelu(torch.linear(x, self.ff1_w[i], self.ff1_b[i])), self.ff2_w[i], self.ff2_b[i])
        x = torch.layer_norm(x + f, [{D}], self.ln2_w[i], self.ln2_b[i], {eps2})
    x = x.transpose(0, 1)
    back = torch.remainder(torch.arange(L).unsqueeze(0) - shift.unsqueeze(1) + L, L)
    x = x.gather(1, back.unsqueeze(2).expand(B, L, {D})).select(1, -1)
    return torch.gelu(torch.linear(x, self.head_w, self.head_b))

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self._last(users) * self.item_w.index_select(0, items)).sum(1) + self.obias.index_select(0, items)

def _score_seq(self, seq: Tensor) -> Tensor:
    return torch.addmm(self.obias, self._last_seq(seq), self.item_w.narrow(0, 0, self.n_items).t())

def _score_all(self, users: Tensor) -> Tensor:
    return self._score_seq(self.hist.index_select(0, users))

def _explain(self, h: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    n = h.size(0)
    L = n + 1
    seq = torch.cat([h, torch.full([1], self.n_items + 1, dtype=h.dtype)])
    x = torch.embedding(self.item_w, seq) + torch.embedding(self.pos_w, torch.arange(L))
    x = torch.layer_norm(x, [{D}], self.lne_w, self.lne_b, {eps_e})
    last = torch.zeros([n])
    for i in range(self.in_w.size(0)):
        qkv = torch.linear(x, self.in_w[i], self.in_b[i]).chunk(3, -1)
        q = (qkv[0] * {scaling}).contiguous().view(L, {H}, {dh}).transpose(0, 1)
        k = qkv[1].contiguous().view(L, {H}, {dh}).transpose(0, 1)
        v = qkv[2].contiguous().view(L, {H}, {dh}).transpose(0, 1)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)), -1)
        last = w.select(1, L - 1).mean(0).narrow(0, 0, n)
        a = torch.bmm(w, v).transpose(0, 1).contiguous().view(L, {D})
        x = torch.layer_norm(x + torch.linear(a, self.out_w[i], self.out_b[i]), [{D}], self.ln1_w[i], self.ln1_b[i], {eps1})
        f = torch.linear(torch.gelu(torch.linear(x, self.ff1_w[i], self.ff1_b[i])), self.ff2_w[i], self.ff2_b[i])
        x = torch.layer_norm(x + f, [{D}], self.ln2_w[i], self.ln2_b[i], {eps2})
    return h, last.double()
)",
                       fmt::arg("D", D), fmt::arg("H", H), fmt::arg("dh", D / H),
                       fmt::arg("eps_e", fmt::format("{:.17g}", emb_ln->options.eps())), fmt::arg("eps1", fmt::format("{:.17g}", eps1)),
                       fmt::arg("eps2", fmt::format("{:.17g}", eps2)),
                       fmt::arg("scaling", fmt::format("{:.17g}", 1 / std::sqrt(static_cast<double>(D / H)))));
  return e;
}

}  // namespace rzoo
