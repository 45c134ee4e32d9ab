// Markov: first-order Markov chain / last-item transitions (the MC part of Rendle et al.,
// "Factorizing Personalized Markov Chains for Next-Basket Recommendation", WWW 2010); see markov.h.
#include "models/sequential/markov.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"

namespace rzoo {

MarkovOptions MarkovOptions::from_config(const Config* cfg) {
  MarkovOptions o;
  if (!cfg) return o;
  // Ranges are checked here, with the key, the value and the file:line that set it.
  o.window(cfg->get_int("model.window", 1, 1 << 16));
  o.history_items(cfg->get_int("model.history_items", 1, 1 << 16));
  o.decay(cfg->get_double("model.decay", 0.0, 1.0));
  if (!(o.decay() > 0.0)) cfg->bad("model.decay", fmt::format("must be in (0, 1], got {}", o.decay()));
  o.pop_weight(cfg->get_double("model.pop_weight", 0.0, 1e30));
  return o;
}

void MarkovOptions::check() const {
  // The same rules for options built in code (no config to point at).
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) fail("markov: {}", msg);
  };
  need(window() >= 1, fmt::format("model.window must be >= 1, got {}", window()));
  need(history_items() >= 1, fmt::format("model.history_items must be >= 1, got {}", history_items()));
  need(decay() > 0.0 && decay() <= 1.0, fmt::format("model.decay must be in (0, 1], got {}", decay()));
  need(pop_weight() >= 0.0 && std::isfinite(pop_weight()), fmt::format("model.pop_weight must be >= 0, got {}", pop_weight()));
}

MarkovImpl::MarkovImpl(const ModelContext& ctx) : MarkovImpl(ctx, MarkovOptions::from_config(ctx.config)) {}

namespace {

// P(b | a) as CSR (see markov.h) from each user's training interactions in time order.
struct Transitions {
  std::vector<int64_t> indptr, indices;
  std::vector<float> values;
};

Transitions count_transitions(const Dataset& d, const Split& s, int64_t U, int64_t I, int64_t W) {
  // split.train_rows are ordered by user, then time; grouped by user again (stable) and, with
  // timestamps, stably sorted by them as UserHistories does, so the transitions read the same
  // order as the scoring windows.
  std::vector<int64_t> start(static_cast<size_t>(U) + 1, 0);
  for (int64_t r : s.train_rows) ++start[static_cast<size_t>(d.user[static_cast<size_t>(r)]) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> rows(s.train_rows.size());
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t r : s.train_rows) rows[static_cast<size_t>(next[static_cast<size_t>(d.user[static_cast<size_t>(r)])]++)] = r;
  }
  if (d.has_timestamps())
    for (int64_t u = 0; u < U; ++u)
      std::stable_sort(rows.begin() + start[static_cast<size_t>(u)], rows.begin() + start[static_cast<size_t>(u) + 1],
                       [&](int64_t a, int64_t b) { return d.timestamp[static_cast<size_t>(a)] < d.timestamp[static_cast<size_t>(b)]; });
  auto item_at = [&](int64_t k) { return static_cast<int64_t>(d.item[static_cast<size_t>(rows[static_cast<size_t>(k)])]); };

  // Pairs (a -> b, 1/d) bucketed by a (counting sort), then per a sorted by b and merged.
  std::vector<int64_t> bucket(static_cast<size_t>(I) + 1, 0);
  for (int64_t u = 0; u < U; ++u) {
    const int64_t b0 = start[static_cast<size_t>(u)], e = start[static_cast<size_t>(u) + 1];
    for (int64_t p = b0; p < e; ++p) bucket[static_cast<size_t>(item_at(p)) + 1] += std::min(W, e - 1 - p);
  }
  std::partial_sum(bucket.begin(), bucket.end(), bucket.begin());
  std::vector<std::pair<int64_t, double>> pairs(static_cast<size_t>(bucket.back()));  // (b, weight)
  {
    std::vector<int64_t> next(bucket.begin(), bucket.end() - 1);
    for (int64_t u = 0; u < U; ++u) {
      const int64_t b0 = start[static_cast<size_t>(u)], e = start[static_cast<size_t>(u) + 1];
      for (int64_t p = b0; p < e; ++p) {
        const int64_t a = item_at(p);
        for (int64_t dist = 1; dist <= W && p + dist < e; ++dist)
          pairs[static_cast<size_t>(next[static_cast<size_t>(a)]++)] = {item_at(p + dist), 1.0 / static_cast<double>(dist)};
      }
    }
  }
  Transitions t;
  t.indptr.assign(static_cast<size_t>(I) + 1, 0);
  t.indices.reserve(pairs.size());
  t.values.reserve(pairs.size());
  std::vector<double> counts;
  for (int64_t a = 0; a < I; ++a) {
    const auto first = pairs.begin() + bucket[static_cast<size_t>(a)], last = pairs.begin() + bucket[static_cast<size_t>(a) + 1];
    std::sort(first, last);  // by b, then weight: a fixed summation order
    counts.clear();
    double total = 0;
    for (auto it = first; it != last;) {
      double c = 0;
      const int64_t b = it->first;
      for (; it != last && it->first == b; ++it) c += it->second;
      t.indices.push_back(b);
      counts.push_back(c);
      total += c;
    }
    for (double c : counts) t.values.push_back(static_cast<float>(c / total));  // P(b | a)
    t.indptr[static_cast<size_t>(a) + 1] = static_cast<int64_t>(t.indices.size());
  }
  return t;
}

}  // namespace

MarkovImpl::MarkovImpl(const ModelContext& ctx, MarkovOptions opts)
    : WindowRecommenderImpl("markov", ctx),
      options((opts.check(), opts)),
      data_(ctx.data),
      split_(ctx.split) {
  hist_ = UserHistories(ctx, options.history_items(), "markov");  // refuses a context without data, a split out of time order
  // The transitions are a function of the data and split the model is built from alone (counted
  // on split.train_rows, like the history windows built above), so they are counted here, once:
  // the buffers then have their final sizes, which a checkpoint must match. fit() adds the
  // popularity term.
  const Transitions t = count_transitions(*data_, *split_, n_users_, n_items_, options.window());
  const auto nnz = static_cast<int64_t>(t.indices.size());
  trans_indptr = register_buffer("trans_indptr", torch::tensor(t.indptr, torch::kLong));
  trans_indices = register_buffer("trans_indices", torch::tensor(t.indices, torch::kLong).reshape({nnz}));
  trans_values = register_buffer("trans_values", torch::tensor(t.values, torch::kFloat).reshape({nnz}));
  pop_term = register_buffer("pop_term", torch::zeros({n_items_}, torch::kFloat));
}

void MarkovImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_cols == n_items_, "markov: training matrix has ", train.n_cols, " items, model has ", n_items_);
  // Popularity: the item's training users (the binary matrix, as pop), max-normalised.
  const int64_t I = n_items_;
  std::vector<double> pop(static_cast<size_t>(I), 0.0);
  for (int64_t i : train.indices) pop[static_cast<size_t>(i)] += 1.0;
  const double top = pop.empty() ? 0.0 : *std::max_element(pop.begin(), pop.end());
  std::vector<float> term(static_cast<size_t>(I), 0.0f);
  if (top > 0)
    for (size_t i = 0; i < term.size(); ++i) term[i] = static_cast<float>(options.pop_weight() * pop[i] / top);

  torch::NoGradGuard no_grad;
  pop_term.copy_(torch::tensor(term, torch::kFloat));  // in place: the buffer may live on a device
}

at::Tensor MarkovImpl::recency_weights() const {
  // decay^r as float, computed once in double: the C++ scores and the export use these values.
  const int64_t L = options.history_items();
  std::vector<float> w(static_cast<size_t>(L));
  for (int64_t r = 0; r < L; ++r) w[static_cast<size_t>(r)] = static_cast<float>(std::pow(options.decay(), static_cast<double>(r)));
  return torch::tensor(w, torch::kFloat);
}

namespace {
// CPU views of the fitted tensors (copies when the model lives on a device).
struct Fitted {
  at::Tensor ip_t, ix_t, vx_t, pop_t, w_t;
  const int64_t* ip;
  const int64_t* ix;
  const float* vx;
  const float* pop;
  const float* w;
  Fitted(const at::Tensor& ip_, const at::Tensor& ix_, const at::Tensor& vx_, const at::Tensor& pop_, at::Tensor w_)
      : ip_t(ip_.to(torch::kCPU).contiguous()),
        ix_t(ix_.to(torch::kCPU).contiguous()),
        vx_t(vx_.to(torch::kCPU).contiguous()),
        pop_t(pop_.to(torch::kCPU).contiguous()),
        w_t(std::move(w_)),
        ip(ip_t.data_ptr<int64_t>()),
        ix(ix_t.data_ptr<int64_t>()),
        vx(vx_t.data_ptr<float>()),
        pop(pop_t.data_ptr<float>()),
        w(w_t.data_ptr<float>()) {}
};

// seq [B, L'] (any device, any integer type) -> the last L columns as a contiguous int64 CPU
// tensor, every entry checked to be an item index or the padding index n_items.
at::Tensor checked_window(const at::Tensor& seq, int64_t L, int64_t n_items) {
  TORCH_CHECK(seq.dim() == 2, "markov: a history must be [B, L] item indices, got ", seq.dim(), " dimensions");
  const auto w = last_columns(seq.to(torch::kCPU, torch::kLong), L).contiguous();
  if (w.numel() > 0) {
    const int64_t lo = w.min().item<int64_t>(), hi = w.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi <= n_items, "markov: history item index out of range: ", lo < 0 ? lo : hi, " not in [0, ",
                n_items, "] (", n_items, " = padding)");
  }
  return w;
}
}  // namespace

at::Tensor MarkovImpl::score_history(const at::Tensor& seq) {
  const int64_t I = n_items_;
  const auto win = checked_window(seq, options.history_items(), I);  // [B, L]
  const int64_t B = win.size(0), L = win.size(1);
  const Fitted f(trans_indptr, trans_indices, trans_values, pop_term, recency_weights());
  auto out = torch::zeros({B, I}, torch::kFloat);
  const int64_t* h = win.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  // Each row is its own: the same numbers whatever the batch and the thread count.
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* row = o + b * I;
      int64_t r = 0;  // rank of recency among the real items, 0 = the most recent
      for (int64_t j = L - 1; j >= 0; --j) {
        const int64_t a = h[b * L + j];
        if (a == I) continue;  // padding
        const float wr = f.w[r++];
        for (int64_t k = f.ip[a]; k < f.ip[a + 1]; ++k) row[f.ix[k]] += wr * f.vx[k];
      }
      for (int64_t i = 0; i < I; ++i) row[i] += f.pop[i];
    }
  });
  return out.to(seq.device());
}

at::Tensor MarkovImpl::score_all(const at::Tensor& users) {
  return score_history(history(users)).to(users.device());  // [B, I]
}

at::Tensor MarkovImpl::score(const at::Tensor& users, const at::Tensor& items) {
  // Directly from the CSR rows (binary search), the same float operations in the same order as
  // score_all's entry.
  TORCH_CHECK(users.dim() == 1 && items.dim() == 1 && users.size(0) == items.size(0),
              "markov: score needs users [B] and items [B]");
  const int64_t I = n_items_, L = options.history_items();
  const auto win = history(users).contiguous();  // [B, L]
  const auto it = items.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t B = win.size(0);
  const Fitted f(trans_indptr, trans_indices, trans_values, pop_term, recency_weights());
  auto out = torch::zeros({B}, torch::kFloat);
  const int64_t* h = win.data_ptr<int64_t>();
  const int64_t* ip = it.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t item = ip[b];
    TORCH_CHECK(item >= 0 && item < I, "markov: item index out of range: ", item, " not in [0, ", I, ")");
    float s = 0.0f;
    int64_t r = 0;
    for (int64_t j = L - 1; j >= 0; --j) {
      const int64_t a = h[b * L + j];
      if (a == I) continue;
      const float wr = f.w[r++];
      const int64_t* first = f.ix + f.ip[a];
      const int64_t* last = f.ix + f.ip[a + 1];
      const int64_t* p = std::lower_bound(first, last, item);
      if (p != last && *p == item) s += wr * f.vx[p - f.ix];
    }
    o[b] = s + f.pop[item];
  }
  return out.to(users.device());
}

std::pair<at::Tensor, at::Tensor> MarkovImpl::explain(const at::Tensor& items, int64_t item) {
  return explain_by_occlusion(*this, items, item, torch::kCPU);
}

ScriptExport MarkovImpl::script_export() const {
  ScriptExport e;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(torch::kCPU).contiguous().clone(); };
  // `hist` is every user's window of all known interactions (scope All), the history the export
  // serves from (and the C++ model scores from outside evaluations).
  e.tensors = {{"trans_indptr", cpu(trans_indptr)},   {"trans_indices", cpu(trans_indices)},
               {"trans_values", cpu(trans_values)},   {"pop_term", cpu(pop_term)},
               {"recency_w", recency_weights()},      {"hist", hist_.table(HistoryScope::All).clone()}};
  e.history_len = options.history_items();
  // The loop of score_history(): per row, the real items from the most recent back, each adding
  // its CSR row times its recency weight (float products, added in the same order), then the
  // popularity term. The item count is read from pop_term, not self.n_items: inside a hybrid every
  // `self.x` of this code is renamed to the part's own attribute.
  e.code = R"(
def _score_seq(self, seq: Tensor) -> Tensor:
    I = self.pop_term.size(0)
    L = self.recency_w.size(0)
    n = seq.size(1)
    if n > L:
        seq = seq.narrow(1, n - L, L)
    B = seq.size(0)
    out = torch.zeros([B, I])
    for b in range(B):
        r = 0
        for j in range(seq.size(1) - 1, -1, -1):
            a = int(seq[b, j])
            if a != I:
                s = int(self.trans_indptr[a])
                t = int(self.trans_indptr[a + 1])
                if t > s:
                    out[b].index_add_(0, self.trans_indices[s:t], self.trans_values[s:t] * self.recency_w[r])
                r += 1
    return out + self.pop_term.unsqueeze(0)

def _score_all(self, users: Tensor) -> Tensor:
    return self._score_seq(self.hist.index_select(0, users))

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return self._score_all(users).gather(1, items.unsqueeze(1)).squeeze(1)
)";
  e.explain_kind = "items";
  e.code += explain_occlusion_script(history_len(), n_items_);
  return e;
}

}  // namespace rzoo
