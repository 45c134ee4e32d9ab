#include "models/sequential/history.h"

#include <fmt/core.h>

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "models/fast_linear.h"

namespace rzoo {

bool split_is_time_ordered(const std::string& method) {
  auto starts = [&](const char* p) { return method.rfind(p, 0) == 0; };
  if (starts("leave last") || starts("temporal")) return true;
  // given: its own validation part, or one cut from the end of each user's train rows.
  if (starts("given")) return method == "given" || method.find("valid: last") != std::string::npos;
  return false;
}

UserHistories::UserHistories(const ModelContext& ctx, int64_t max_len, const std::string& model) : max_len_(max_len) {
  if (!ctx.data || !ctx.split)
    fail("model '{}' reads each user's history from the data and split; the model context has none", model);
  TORCH_CHECK(max_len >= 1, "model '", model, "': max_len must be >= 1, got ", max_len);
  const Dataset& d = *ctx.data;
  const Split& s = *ctx.split;
  if (!split_is_time_ordered(s.method)) {
    const std::string msg = fmt::format(
        "model '{}' is a sequence model and needs a time-ordered split (leave_last or temporal; given with its own or a "
        "'last' validation part), got '{}'",
        model, s.method.empty() ? "(unnamed)" : s.method);
    if (ctx.config && ctx.config->has("dataset.split.method")) ctx.config->bad("dataset.split.method", msg);
    fail("dataset.split.method: {}", msg);
  }
  const int64_t U = ctx.n_users, I = ctx.n_items, L = max_len;
  // Rows of each user per part, in (user, time) order as the split keeps them.
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(U));
  std::vector<std::vector<int8_t>> part(static_cast<size_t>(U));
  auto fill = [&](const at::Tensor& out, int max_part) {
    int64_t* p = out.data_ptr<int64_t>();
    std::vector<int64_t> merged;
    for (int64_t u = 0; u < U; ++u) {
      merged.clear();
      const auto& r = rows[static_cast<size_t>(u)];
      const auto& pt = part[static_cast<size_t>(u)];
      for (size_t j = 0; j < r.size(); ++j)
        if (pt[j] <= max_part) merged.push_back(r[j]);
      // The parts were appended one after the other; a stable sort by time interleaves them
      // (ties keep the part order).
      if (d.has_timestamps())
        std::stable_sort(merged.begin(), merged.end(), [&](int64_t a, int64_t b) {
          return d.timestamp[static_cast<size_t>(a)] < d.timestamp[static_cast<size_t>(b)];
        });
      const auto n = static_cast<int64_t>(merged.size()), len = std::min(n, L);
      for (int64_t j = 0; j < len; ++j) p[u * L + (L - len) + j] = d.item[static_cast<size_t>(merged[static_cast<size_t>(n - len + j)])];
    }
  };
  int8_t k = 0;
  for (const auto* part_rows : {&s.train_rows, &s.valid_rows, &s.test_rows}) {
    for (int64_t r : *part_rows) {
      const auto u = static_cast<size_t>(d.user[static_cast<size_t>(r)]);
      rows[u].push_back(r);
      part[u].push_back(k);
    }
    ++k;
  }
  train_ = torch::full({U, L}, I, torch::kLong);
  train_valid_ = torch::full({U, L}, I, torch::kLong);
  all_ = torch::full({U, L}, I, torch::kLong);
  fill(train_, 0);
  fill(train_valid_, 1);
  fill(all_, 2);
}

const at::Tensor& UserHistories::table(HistoryScope scope) const {
  switch (scope) {
    case HistoryScope::Train: return train_;
    case HistoryScope::TrainValid: return train_valid_;
    case HistoryScope::All: break;
  }
  return all_;
}

at::Tensor UserHistories::windows(const at::Tensor& users, HistoryScope scope, const c10::Device& device) const {
  return table(scope).index_select(0, users.to(torch::kCPU, torch::kLong)).to(device);
}

at::Tensor WindowRecommenderImpl::history(const at::Tensor& users) const {
  const auto params = parameters();
  return hist_.windows(users, scope_, params.empty() ? c10::Device(torch::kCPU) : params.front().device());
}

at::Tensor explain_window(const at::Tensor& items, int64_t L, const c10::Device& device, const char* model) {
  const auto h = items.to(device, torch::kLong).reshape({-1});
  const int64_t n = std::min<int64_t>(h.size(0), L);
  TORCH_CHECK(n > 0, model, ": explain needs a non-empty history");
  return h.narrow(0, h.size(0) - n, n);
}

std::pair<at::Tensor, at::Tensor> explain_by_occlusion(RecommenderImpl& m, const at::Tensor& items, int64_t item,
                                                       const c10::Device& device) {
  TORCH_CHECK(item >= 0 && item < m.n_items(), m.name(), ": explain: item index ", item, " out of range");
  torch::NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.eval();
  const int64_t L = m.history_len();
  const auto h = explain_window(items, L, device, m.name().c_str());  // [n]
  const int64_t n = h.size(0);
  // Row 0: the window; row 1 + p: the window without position p; all left-padded with n_items.
  auto seq = torch::full({n + 1, L}, m.n_items(), h.options());
  seq[0].narrow(0, L - n, n).copy_(h);
  for (int64_t p = 0; p < n; ++p) {
    const auto rest = torch::cat({h.narrow(0, 0, p), h.narrow(0, p + 1, n - p - 1)});
    if (n > 1) seq[p + 1].narrow(0, L - n + 1, n - 1).copy_(rest);
  }
  const auto s = m.score_history(seq).select(1, item).to(torch::kCPU, torch::kDouble);  // [n + 1]
  m.train(was_training);
  return {h.cpu(), s[0] - s.narrow(0, 1, n)};
}

std::string explain_occlusion_script(int64_t L, int64_t pad) {
  return fmt::format(R"PY(
def _explain(self, h: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    n = h.size(0)
    seq = torch.full([n + 1, {L}], {pad}, dtype=h.dtype)
    seq[0, {L} - n:] = h
    for p in range(n):
        if n > 1:
            seq[p + 1, {L} - n + 1:] = torch.cat([h[:p], h[p + 1:]])
    s = self._score_seq(seq).select(1, item).double()
    return h, s[0] - s[1:]
)PY",
                     fmt::arg("L", L), fmt::arg("pad", pad));
}

at::Tensor last_columns(const at::Tensor& x, int64_t L) {
  const int64_t n = x.size(1);
  return n > L ? x.narrow(1, n - L, L) : x;
}

at::Tensor by_history_length(const at::Tensor& seq, int64_t pad,
                             const std::function<at::Tensor(const at::Tensor&)>& per_row) {
  const int64_t B = seq.size(0), W = seq.size(1);
  if (B == 0 || W <= 1) return per_row(seq);
  TORCH_CHECK(seq.scalar_type() == torch::kLong, "by_history_length: item indices must be int64, got ", seq.scalar_type());
  // Group width per row: the power of two at or above the columns from its first item to the
  // end (a padding column inside a window counts: nothing is cut from it), W for long and
  // empty rows.
  const auto cpu = seq.to(torch::kCPU).contiguous();
  const int64_t* px = cpu.data_ptr<int64_t>();
  std::vector<int64_t> width(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) {
    int64_t first = 0;
    while (first < W && px[r * W + first] == pad) ++first;
    const int64_t span = W - first;
    int64_t w = 1;
    while (w < span) w *= 2;
    width[static_cast<size_t>(r)] = span == 0 ? W : std::min(w, W);
  }
  std::vector<int64_t> widths = width;
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  if (widths.size() == 1 && widths[0] == W) return per_row(seq);
  at::Tensor out;
  std::vector<int64_t> rows;
  for (const int64_t w : widths) {
    rows.clear();
    for (int64_t r = 0; r < B; ++r)
      if (width[static_cast<size_t>(r)] == w) rows.push_back(r);
    const auto idx = torch::tensor(rows, torch::kLong).to(seq.device());
    const auto h = per_row(seq.index_select(0, idx).narrow(1, W - w, w));  // [b, D]
    if (!out.defined()) out = torch::empty({B, h.size(1)}, h.options());
    out.index_copy_(0, idx, h);
  }
  return out;
}

at::Tensor padding_shift(const at::Tensor& seq, int64_t pad) { return (seq == pad).sum(1); }

at::Tensor left_to_right(const at::Tensor& seq, const at::Tensor& shift) {
  const int64_t L = seq.size(1);
  // right[b, j] = left[b, (j + shift_b) mod L]: the real items first, the padding after them.
  const auto idx = torch::remainder(torch::arange(L, seq.options().dtype(torch::kLong)).unsqueeze(0) + shift.unsqueeze(1), L);
  return seq.gather(1, idx);
}

at::Tensor right_to_left(const at::Tensor& out, const at::Tensor& shift) {
  const int64_t B = out.size(0), L = out.size(1), D = out.size(2);
  // left[b, i] = right[b, (i - shift_b) mod L]
  const auto idx = torch::remainder(torch::arange(L, shift.options()).unsqueeze(0) - shift.unsqueeze(1) + L, L);
  return out.gather(1, idx.unsqueeze(2).expand({B, L, D}));
}

const std::vector<std::string>& sequence_losses() {
  static const std::vector<std::string> v = {"ce", "sampled", "bce"};
  return v;
}

void check_sequence_loss(const std::string& model, const std::string& loss, int64_t neg_samples) {
  const auto& ok = sequence_losses();
  if (std::find(ok.begin(), ok.end(), loss) == ok.end())
    fail("{}: model.loss must be ce, sampled or bce, got '{}'", model, loss);
  if (neg_samples < 1) fail("{}: model.neg_samples must be >= 1, got {}", model, neg_samples);
}

at::Tensor next_item_loss(const at::Tensor& h, const Batch& b, const at::Tensor& item_weight, int64_t n_items,
                          const std::string& kind, int64_t negatives) {
  at::Tensor hs, tgt, neg;  // [N, D], [N], [N]: one row per target
  if (b.items.dim() == 1) {  // augment prefix: the window's last position predicts the next item
    hs = h.select(1, h.size(1) - 1);
    tgt = b.items;
    neg = b.neg_items;
  } else {  // augment none: every position with a next item
    const int64_t L = h.size(1);
    const auto items = last_columns(b.items, L);
    const auto keep = items != n_items;  // [B, L]
    hs = h.index({keep});
    tgt = items.index({keep});
    if (kind == "bce" && b.neg_items.defined()) neg = last_columns(b.neg_items, L).index({keep});
  }
  return item_loss(hs, tgt, neg, item_weight, at::Tensor(), n_items, kind, negatives);
}

at::Tensor item_loss(const at::Tensor& hs, const at::Tensor& tgt, const at::Tensor& neg_in, const at::Tensor& item_weight,
                     const at::Tensor& bias, int64_t n_items, const std::string& kind, int64_t negatives) {
  TORCH_CHECK(tgt.numel() > 0, "sequence batch without a target");
  const auto w = item_weight.narrow(0, 0, n_items);  // the padding (and mask) rows are never candidates
  if (kind == "ce") {
    const auto logits = fast_linear(hs, w, bias);  // [N, I]
    return torch::nn::functional::cross_entropy(logits, tgt);
  }
  auto pick = [&](const at::Tensor& idx) {  // idx [N] -> (rows of w [N, D], bias [N] or undefined)
    return std::make_pair(w.index_select(0, idx), bias.defined() ? bias.index_select(0, idx) : at::Tensor());
  };
  const auto [wp, bp] = pick(tgt);                       // [N, D], [N]
  auto pos_s = (hs * wp).sum(1);                         // [N]
  if (bp.defined()) pos_s = pos_s + bp;
  if (kind == "sampled") {
    TORCH_CHECK(negatives >= 1, "loss sampled needs model.neg_samples >= 1, got ", negatives);
    // One set of uniform negatives for the whole batch: a [N, K] matmul instead of N gathers.
    const auto negs = torch::randint(n_items, {negatives}, tgt.options());  // [K]
    auto neg_s = fast_linear(hs, w.index_select(0, negs));                 // [N, K]
    if (bias.defined()) neg_s = neg_s + bias.index_select(0, negs).unsqueeze(0);
    // A drawn negative that is the row's own target is not a negative.
    neg_s = neg_s.masked_fill(negs.unsqueeze(0) == tgt.unsqueeze(1), -std::numeric_limits<float>::infinity());
    const auto logits = torch::cat({pos_s.unsqueeze(1), neg_s}, 1);       // [N, 1 + K], target in column 0
    return torch::nn::functional::cross_entropy(logits, torch::zeros_like(tgt));
  }
  TORCH_CHECK(kind == "bce", "unknown sequence loss '", kind, "'");
  const auto neg = neg_in.defined() ? neg_in.reshape({-1}) : torch::randint(n_items, tgt.sizes(), tgt.options());
  const auto [wn, bn] = pick(neg);
  auto neg_s = (hs * wn).sum(1);
  if (bn.defined()) neg_s = neg_s + bn;
  // -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x).
  return (torch::nn::functional::softplus(-pos_s) + torch::nn::functional::softplus(neg_s)).mean();
}

void add_stacked_layers(ScriptExport& e, const std::vector<std::string>& names,
                        const std::vector<std::vector<at::Tensor>>& per_layer) {
  for (size_t k = 0; k < names.size(); ++k) {
    std::vector<at::Tensor> layers;
    for (const auto& l : per_layer) {
      TORCH_CHECK(l.size() == names.size(), "add_stacked_layers: a layer has ", l.size(), " tensors for ",
                  names.size(), " names");
      layers.push_back(l[k].detach().to(torch::kCPU));
    }
    e.tensors.emplace_back(names[k], torch::stack(layers));
  }
}

}  // namespace rzoo
