// Caser (Tang & Wang, WSDM 2018); see caser.h.
#include "models/sequential/caser.h"

#include <torch/torch.h>

#include <cmath>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "models/dropout.h"

namespace rzoo {

CaserOptions CaserOptions::from_config(const Config* cfg) {
  CaserOptions o;
  if (!cfg) return o;
  // Ranges are checked here, with the key, the value and the file:line that set it.
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.max_len(cfg->get_int("model.max_len", 1, 1 << 10));
  o.n_h(cfg->get_int("model.n_h", 1, 1 << 16));
  o.n_v(cfg->get_int("model.n_v", 1, 1 << 16));
  o.dropout(cfg->get_double("model.dropout", 0.0, 0.999));
  o.loss(cfg->get_choice("model.loss", sequence_losses()));
  o.neg_samples(cfg->get_int("model.neg_samples", 1, 1 << 24));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  return o;
}

void CaserOptions::check() const {
  // The same rules for options built in code (no config to point at).
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) fail("caser: {}", msg);
  };
  need(embedding_size() >= 1, fmt::format("model.embedding_size must be >= 1, got {}", embedding_size()));
  need(max_len() >= 1, fmt::format("model.max_len must be >= 1, got {}", max_len()));
  need(n_h() >= 1, fmt::format("model.n_h must be >= 1, got {}", n_h()));
  need(n_v() >= 1, fmt::format("model.n_v must be >= 1, got {}", n_v()));
  need(dropout() >= 0 && dropout() < 1, fmt::format("model.dropout must be in [0, 1), got {}", dropout()));
  check_sequence_loss("caser", loss(), neg_samples());
}

CaserImpl::CaserImpl(const ModelContext& ctx) : CaserImpl(ctx, CaserOptions::from_config(ctx.config)) {}

CaserImpl::CaserImpl(const ModelContext& ctx, CaserOptions opts)
    : SequenceRecommenderImpl("caser", ctx),
      options((opts.check(), opts)),
      item_emb(register_module("item_emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.n_items + 1, opts.embedding_size())
                                                                     .padding_idx(ctx.n_items)))),
      user_emb(register_module("user_emb", torch::nn::Embedding(ctx.n_users, opts.embedding_size()))),
      conv_h(register_module("conv_h", torch::nn::ModuleList())),
      conv_v(register_module("conv_v", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, opts.n_v(), {opts.max_len(), 1})))),
      drop(register_module("drop", torch::nn::Dropout(opts.dropout()))),
      fc(register_module("fc", torch::nn::Linear(opts.n_v() * opts.embedding_size() + opts.n_h() * opts.max_len(),
                                                 opts.embedding_size()))),
      out_emb(register_module("out_emb", torch::nn::Embedding(ctx.n_items + 1, 2 * opts.embedding_size()))),
      out_bias(register_module("out_bias", torch::nn::Embedding(ctx.n_items + 1, 1))) {
  hist_ = UserHistories(ctx, options.max_len(), "caser");
  for (int64_t h = 1; h <= options.max_len(); ++h)
    conv_h->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, options.n_h(), {h, options.embedding_size()})));
  // The authors' initialisation: embeddings normal(0, 1 / D), the output table normal(0, 1 / 2D),
  // zero item biases; convolutions and the linear layer keep LibTorch's defaults (as theirs).
  torch::NoGradGuard no_grad;
  const double D = static_cast<double>(options.embedding_size());
  item_emb->weight.normal_(0.0, 1.0 / D);
  item_emb->weight[ctx.n_items].zero_();
  user_emb->weight.normal_(0.0, 1.0 / D);
  out_emb->weight.normal_(0.0, 1.0 / (2 * D));
  out_emb->weight[ctx.n_items].zero_();
  out_bias->weight.zero_();
  // Field vectors initialised as the tables they add to (registered after them: without fields
  // the parameters draw as before).
  if (options.fields()) {
    side = register_module("side", item_side_fields("caser", ctx, options.embedding_size(), 1.0 / D));
    out_side = register_module("out_side", item_side_fields("caser", ctx, 2 * options.embedding_size(), 1.0 / (2 * D), true));
  }
}

at::Tensor CaserImpl::input_table() const { return with_item_fields(side, item_emb->weight, n_items_); }

at::Tensor CaserImpl::horizontal(const at::Tensor& E) {
  std::vector<at::Tensor> parts;
  for (const auto& m : *conv_h) {
    // [N, n_h, L - h + 1, 1]: filter f at time t reads rows t..t+h-1 of E.
    const auto c = torch::relu(m->as<torch::nn::Conv2d>()->forward(E)).squeeze(3);
    parts.push_back(std::get<0>(c.max(2)));  // [N, n_h], max over time
  }
  return torch::cat(parts, 1);  // [N, n_h * L]
}

at::Tensor CaserImpl::vertical(const at::Tensor& E) {
  return conv_v(E).flatten(1);  // [N, n_v, 1, D] -> [N, n_v * D]; no activation (the paper's)
}

at::Tensor CaserImpl::window_repr(const at::Tensor& win) {
  TORCH_CHECK(win.size(1) == options.max_len(), "caser: a window of ", win.size(1), " items, expected ", options.max_len());
  const auto E = torch::embedding(input_table(), win, n_items_).unsqueeze(1);  // [N, 1, L, D]
  const auto o = fast_dropout(torch::cat({horizontal(E), vertical(E)}, 1), drop->options.p(), is_training());  // [N, n_h * L + n_v * D]
  return torch::relu(fc(o));                                 // [N, D]
}

namespace {
// seq [B, Lb] left-padded -> [B, Lb, L]: at position j the L items ending at j (padding before
// the sequence starts).
at::Tensor sliding_windows(const at::Tensor& seq, int64_t L, int64_t pad) {
  const auto padded = torch::cat({torch::full({seq.size(0), L - 1}, pad, seq.options()), seq}, 1);  // [B, Lb + L - 1]
  return padded.unfold(1, L, 1);                                                                     // [B, Lb, L]
}
}  // namespace

at::Tensor CaserImpl::encode(const at::Tensor& seq, const at::Tensor& users) {
  const int64_t B = seq.size(0), Lb = seq.size(1), L = options.max_len();
  const auto z = window_repr(sliding_windows(seq, L, n_items_).reshape({B * Lb, L})).view({B, Lb, -1});  // [B, Lb, D]
  const auto p = user_emb(users.to(seq.device())).unsqueeze(1).expand({B, Lb, options.embedding_size()});
  return torch::cat({z, p}, 2);  // [B, Lb, 2D]
}

at::Tensor CaserImpl::output_table() const {
  return with_item_fields(out_side, torch::cat({out_emb->weight, out_bias->weight}, 1), n_items_);
}

at::Tensor CaserImpl::score_rows(const at::Tensor& x) const {
  const int64_t D2 = 2 * options.embedding_size();
  const auto T = output_table().narrow(0, 0, n_items_);                        // [I, 2D + 1]
  return torch::addmm(T.narrow(1, D2, 1).t(), x, T.narrow(1, 0, D2).t());  // [B, I]
}

at::Tensor CaserImpl::user_repr(const at::Tensor& u) {
  return torch::cat({window_repr(history(u)), user_emb(u)}, 1);  // [B, 2D]
}

at::Tensor CaserImpl::loss(const Batch& b) {
  const int64_t L = options.max_len(), D2 = 2 * options.embedding_size();
  at::Tensor h;  // [B, Lb', 2D + 1], the trailing 1 multiplies the item bias
  if (b.items.dim() == 1) {
    // augment prefix: only the window ending at the last position predicts.
    const auto win = sliding_windows(b.seq, L, n_items_).select(1, b.seq.size(1) - 1);  // [B, L]
    h = torch::cat({window_repr(win), user_emb(b.users)}, 1).unsqueeze(1);              // [B, 1, 2D]
  } else {
    // augment none: the windows of positions with a target only (short sequences leave most
    // positions empty), scattered back into [B, Lb, 2D]; next_item_loss reads those positions.
    const auto keep = b.items != n_items_;                                   // [B, Lb]
    const auto win = sliding_windows(b.seq, L, n_items_).index({keep});      // [N, L]
    const auto users = b.users.unsqueeze(1).expand_as(keep).index({keep});  // [N]
    const auto x = torch::cat({window_repr(win), user_emb(users)}, 1);       // [N, 2D]
    h = torch::zeros({b.seq.size(0), b.seq.size(1), D2}, x.options()).index_put({keep}, x);
  }
  h = torch::cat({h, torch::ones_like(h.narrow(2, 0, 1))}, 2);
  return next_item_loss(h, b, output_table(), n_items_, options.loss(), options.neg_samples());
}

at::Tensor CaserImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto u = users.to(item_emb->weight.device()), it = items.to(item_emb->weight.device());
  const auto x = user_repr(u);                          // [B, 2D]
  const auto T = output_table().index_select(0, it);    // [B, 2D + 1]
  return (x * T.narrow(1, 0, x.size(1))).sum(1) + T.select(1, x.size(1));
}

at::Tensor CaserImpl::score_all(const at::Tensor& users) {
  return score_rows(user_repr(users.to(item_emb->weight.device())));  // [B, I]
}

at::Tensor CaserImpl::score_history(const at::Tensor& seq) {
  // A history without a known user (a new user, a session) has no user embedding: it takes the
  // mean of the trained users' embeddings, the expected one, rather than zeros, which no
  // training example ever had.
  const auto s = seq.to(item_emb->weight.device());
  const auto z = window_repr(s);                                                        // [B, D]
  const auto p = user_emb->weight.mean(0, /*keepdim=*/true).expand({s.size(0), -1});    // [B, D]
  return score_rows(torch::cat({z, p}, 1));  // [B, I]
}

std::pair<at::Tensor, at::Tensor> CaserImpl::explain(const at::Tensor& items, int64_t item) {
  return explain_by_occlusion(*this, items, item, item_emb->weight.device());
}

ScriptExport CaserImpl::script_export() const {
  ScriptExport e;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(torch::kCPU).clone(); };
  // `hist`: every user's window of all known interactions (scope All), the history the export
  // serves from. One weight/bias pair per horizontal height, unrolled in the code below.
  // With model.fields the tables hold the items' vectors as read and scored (ids plus fields).
  const auto out = output_table();  // [I + 1, 2D + 1]
  const int64_t D2 = 2 * options.embedding_size();
  e.tensors = {{"item_w", cpu(input_table())},        {"user_w", cpu(user_emb->weight)},
               {"convv_w", cpu(conv_v->weight)},      {"convv_b", cpu(conv_v->bias)},
               {"fc_w", cpu(fc->weight)},             {"fc_b", cpu(fc->bias)},
               {"out_w", cpu(out.narrow(1, 0, D2))}, {"out_b", cpu(out.narrow(1, D2, 1))},
               {"hist", hist_.table(HistoryScope::All).clone()}};
  std::string hz;
  int64_t h = 1;
  for (const auto& m : *conv_h) {
    const auto& c = *m->as<torch::nn::Conv2d>();
    e.tensors.emplace_back(fmt::format("convh{}_w", h), cpu(c.weight));
    e.tensors.emplace_back(fmt::format("convh{}_b", h), cpu(c.bias));
    hz += fmt::format("    parts.append(torch.amax(torch.relu(torch.conv2d(E, self.convh{0}_w, self.convh{0}_b)).squeeze(3), [2]))\n", h);
    ++h;
  }
  e.history_len = options.max_len();
  e.code = fmt::format(R"(
def _window(self, seq: Tensor) -> Tensor:
    E = torch.embedding(self.item_w, seq).unsqueeze(1)
    parts: List[Tensor] = []
{hz}    parts.append(torch.conv2d(E, self.convv_w, self.convv_b).flatten(1))
    return torch.relu(torch.linear(torch.cat(parts, 1), self.fc_w, self.fc_b))

def _repr(self, users: Tensor) -> Tensor:
    return torch.cat([self._window(self.hist.index_select(0, users)), self.user_w.index_select(0, users)], 1)

def _score_seq(self, seq: Tensor) -> Tensor:
    z = self._window(seq)
    p = self.user_w.mean(0, True).expand(z.size(0), -1)
    return torch.addmm(self.out_b.narrow(0, 0, self.n_items).t(), torch.cat([z, p], 1), self.out_w.narrow(0, 0, self.n_items).t())

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self._repr(users) * self.out_w.index_select(0, items)).sum(1) + self.out_b.index_select(0, items).squeeze(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.addmm(self.out_b.narrow(0, 0, self.n_items).t(), self._repr(users), self.out_w.narrow(0, 0, self.n_items).t())
)",
                       fmt::arg("hz", hz));
  e.explain_kind = "items";
  e.code += explain_occlusion_script(history_len(), n_items_);
  return e;
}

}  // namespace rzoo
