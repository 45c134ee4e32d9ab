// GRU4Rec (Hidasi et al., ICLR 2016); see gru4rec.h.
#include "models/sequential/gru4rec.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "models/dropout.h"
#include "models/fast_linear.h"

namespace rzoo {

GRU4RecOptions GRU4RecOptions::from_config(const Config* cfg) {
  GRU4RecOptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.hidden_size(cfg->get_int("model.hidden_size", 1, 1 << 16));
  o.layers(cfg->get_int("model.layers", 1, 64));
  o.max_len(cfg->get_int("model.max_len", 1, 1 << 16));
  o.dropout(cfg->get_double("model.dropout", 0.0, 0.999));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  o.loss(cfg->get_choice("model.loss", sequence_losses()));
  o.neg_samples(cfg->get_int("model.neg_samples", 1, 1 << 24));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  return o;
}

void GRU4RecOptions::check() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) fail("gru4rec: {}", msg);
  };
  need(embedding_size() >= 1, fmt::format("model.embedding_size must be >= 1, got {}", embedding_size()));
  need(hidden_size() >= 1, fmt::format("model.hidden_size must be >= 1, got {}", hidden_size()));
  need(layers() >= 1, fmt::format("model.layers must be >= 1, got {}", layers()));
  need(max_len() >= 1, fmt::format("model.max_len must be >= 1, got {}", max_len()));
  need(dropout() >= 0 && dropout() < 1, fmt::format("model.dropout must be in [0, 1), got {}", dropout()));
  check_sequence_loss("gru4rec", loss(), neg_samples());
}

GRU4RecImpl::GRU4RecImpl(const ModelContext& ctx) : GRU4RecImpl(ctx, GRU4RecOptions::from_config(ctx.config)) {}

GRU4RecImpl::GRU4RecImpl(const ModelContext& ctx, GRU4RecOptions opts)
    : SequenceRecommenderImpl("gru4rec", ctx),
      options((opts.check(), opts)),
      item_emb(register_module("item_emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.n_items + 1, opts.embedding_size())
                                                                     .padding_idx(ctx.n_items)))),
      emb_drop(register_module("emb_drop", torch::nn::Dropout(opts.dropout()))),
      gru(register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(opts.embedding_size(), opts.hidden_size())
                                                     .num_layers(opts.layers())
                                                     .batch_first(true)))),
      dense(register_module("dense", torch::nn::Linear(opts.hidden_size(), opts.embedding_size()))) {
  hist_ = UserHistories(ctx, options.max_len(), "gru4rec");
  // Item embeddings normal(0, init_std) (the GRU keeps LibTorch's uniform initialisation, as
  // RecBole's xavier-for-GRU is no better on its benchmarks); the padding row stays zero.
  torch::NoGradGuard no_grad;
  item_emb->weight.normal_(0.0, options.init_std());
  item_emb->weight[ctx.n_items].zero_();
  if (options.fields()) side = register_module("side", item_side_fields("gru4rec", ctx, options.embedding_size(), options.init_std()));
}

at::Tensor GRU4RecImpl::item_table() const { return with_item_fields(side, item_emb->weight, n_items_); }

at::Tensor GRU4RecImpl::encode(const at::Tensor& seq_in, const at::Tensor& table) {
  const auto seq = last_columns(seq_in, options.max_len());   // [B, L]
  const auto shift = padding_shift(seq, n_items_);            // [B]
  const auto E = table.defined() ? table : item_table();     // [I + 1, D]
  const auto x = fast_dropout(torch::embedding(E, left_to_right(seq, shift), n_items_), emb_drop->options.p(), is_training());  // [B, L, D], real items first
  const auto out = std::get<0>(gru(x));                        // [B, L, hidden]
  return right_to_left(dense(out), shift);                     // [B, L, D]
}

at::Tensor GRU4RecImpl::loss(const Batch& b) {
  const auto E = item_table();  // [I + 1, D]: read and scored
  return next_item_loss(encode(b.seq, E), b, E, n_items_, options.loss(), options.neg_samples());
}

at::Tensor GRU4RecImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto h = last_output(history(users));  // [B, D]
  return (h * item_table().index_select(0, items.to(h.device()))).sum(1);
}

at::Tensor GRU4RecImpl::score_all(const at::Tensor& users) { return score_history(history(users)); }

at::Tensor GRU4RecImpl::last_output(const at::Tensor& seq) {
  // Rows grouped by history length (history.h): the GRU runs over each group's widest window.
  const auto E = item_table();  // once for every length group
  return by_history_length(seq.to(E.device()), n_items_,
                           [this, &E](const at::Tensor& s) { return encode(s, E).select(1, -1); });  // [B, D]
}

at::Tensor GRU4RecImpl::score_history(const at::Tensor& seq) {
  const auto h = last_output(seq);  // [B, D]
  return fast_linear(h, item_table().narrow(0, 0, n_items_));  // [B, I]
}

std::pair<at::Tensor, at::Tensor> GRU4RecImpl::explain(const at::Tensor& items, int64_t item) {
  return explain_by_occlusion(*this, items, item, item_emb->weight.device());
}

ScriptExport GRU4RecImpl::script_export() const {
  ScriptExport e;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(torch::kCPU).clone(); };
  // item_w: with model.fields the items' vectors as scored (ids plus fields).
  e.tensors = {{"item_w", cpu(item_table())}, {"dense_w", cpu(dense->weight)}, {"dense_b", cpu(dense->bias)},
               {"hist", hist_.table(HistoryScope::All).clone()}};
  // The GRU's flat weights in aten::gru's order (w_ih, w_hh, b_ih, b_hh per layer), each its
  // own tensor, collected into the list aten::gru takes.
  std::string list;
  const auto w = gru->all_weights();
  for (size_t k = 0; k < w.size(); ++k) {
    e.tensors.emplace_back(fmt::format("gru_{}", k), cpu(w[k]));
    list += fmt::format("{}self.gru_{}", k ? ", " : "", k);
  }
  e.history_len = options.max_len();
  e.code = fmt::format(R"(
def _last(self, users: Tensor) -> Tensor:
    return self._last_seq(self.hist.index_select(0, users))

def _last_seq(self, seq: Tensor) -> Tensor:
    B = seq.size(0)
    L = seq.size(1)
    shift = (seq == self.n_items).sum(1)
    idx = torch.remainder(torch.arange(L).unsqueeze(0) + shift.unsqueeze(1), L)
    x = torch.embedding(self.item_w, seq.gather(1, idx))
    h0 = torch.zeros([{layers}, B, {hidden}])
    out, hn = torch.gru(x, h0, [{list}], True, {layers}, 0.0, False, False, True)
    h = torch.linear(out, self.dense_w, self.dense_b)
    back = torch.remainder(torch.arange(L).unsqueeze(0) - shift.unsqueeze(1) + L, L)
    return h.gather(1, back.unsqueeze(2).expand(B, L, {D})).select(1, -1)

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self._last(users) * self.item_w.index_select(0, items)).sum(1)

def _score_seq(self, seq: Tensor) -> Tensor:
    return torch.matmul(self._last_seq(seq), self.item_w.narrow(0, 0, self.n_items).t())

def _score_all(self, users: Tensor) -> Tensor:
    return self._score_seq(self.hist.index_select(0, users))
)",
                       fmt::arg("layers", options.layers()), fmt::arg("hidden", options.hidden_size()), fmt::arg("list", list),
                       fmt::arg("D", options.embedding_size()));
  e.explain_kind = "items";
  e.code += explain_occlusion_script(history_len(), n_items_);
  return e;
}

}  // namespace rzoo
