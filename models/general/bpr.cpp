#include "models/general/bpr.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/config.h"
#include "core/simd.h"
#include "models/general/fold_in_linear.h"

namespace rzoo {

BPROptions BPROptions::from_config(const Config* cfg) {
  BPROptions o;
  if (!cfg) return o;
  o.embedding_size(cfg->get_int("model.embedding_size", 1, 1 << 16));
  o.init_std(cfg->get_double("model.init_std", 0.0, 10.0));
  if (cfg->has("model.l2")) o.l2(cfg->get_double("model.l2", 0.0, 1e6));
  if (cfg->has("model.fields")) o.fields(cfg->get_bool("model.fields"));
  return o;
}

BPRImpl::BPRImpl(const ModelContext& ctx) : BPRImpl(ctx, BPROptions::from_config(ctx.config)) {}

BPRImpl::BPRImpl(const ModelContext& ctx, BPROptions opts)
    : RecommenderImpl("bpr", ctx),
      options(opts),
      user_emb(register_module("user_emb", torch::nn::Embedding(ctx.n_users, opts.embedding_size()))),
      item_emb(register_module("item_emb", torch::nn::Embedding(ctx.n_items, opts.embedding_size()))) {
  if (ctx.config && ctx.config->has("train.neg_per_pos"))
    neg_per_pos_ = static_cast<double>(ctx.config->get_int("train.neg_per_pos", 1));
  {
    torch::NoGradGuard no_grad;
    user_emb->weight.normal_(0.0, options.init_std());
    item_emb->weight.normal_(0.0, options.init_std());
  }
  if (options.fields())
    side = register_module("side", SideFields("bpr", ctx, options.embedding_size(), options.init_std(), false));
}

// The id rows through the Embedding modules (their gradients are sparse under lazy_adam).
at::Tensor BPRImpl::user_vectors(const at::Tensor& users) {
  const auto p = user_emb(users);  // [B, D]
  return side ? side->users(p, users) : p;
}

at::Tensor BPRImpl::item_vectors(const at::Tensor& items) {
  const auto q = item_emb(items);  // [B, D]
  return side ? side->items(q, items) : q;
}

at::Tensor BPRImpl::user_vectors() const {
  const auto& w = user_emb->weight;
  return side ? side->users(w, torch::arange(n_users_, torch::TensorOptions(torch::kLong).device(w.device()))) : w;
}

at::Tensor BPRImpl::item_vectors() const {
  const auto& w = item_emb->weight;
  return side ? side->items(w, torch::arange(n_items_, torch::TensorOptions(torch::kLong).device(w.device()))) : w;
}

at::Tensor BPRImpl::loss(const Batch& b) {
  const auto u = user_vectors(b.users);                                       // [B, D]
  const auto pos = item_vectors(b.items), neg = item_vectors(b.neg_items);    // [B, D] each
  // -log sigmoid(x) = softplus(-x), numerically stable for large |x|.
  auto loss = torch::nn::functional::softplus(-(u * (pos - neg)).sum(1)).mean();
  if (options.l2() > 0.0)  // the rows already gathered: no second lookup (and no second backward)
    loss = loss + options.l2() * (u.square().sum(1) + pos.square().sum(1) + neg.square().sum(1)).mean();
  return loss;
}

namespace {

struct BprRows {
  const int64_t *users, *pos, *neg;
  float *P, *Q;     // [U, D], [I, D]
  double* losses;   // [n]
  int64_t D;
  float lr, l2;
};

// Triples [begin, end) in order (one thread's range under Hogwild); one function for the SIMD clones.
RZOO_SIMD_CLONES void bpr_rows(const BprRows& a, int64_t begin, int64_t end) {
  const int64_t D = a.D;
  const float step = a.lr, l2 = a.l2;
  const float decay = 1.f - 2.f * step * l2;
  for (int64_t r = begin; r < end; ++r) {
    float* p = a.P + a.users[r] * D;
    float* qi = a.Q + a.pos[r] * D;
    float* qj = a.Q + a.neg[r] * D;
    float x = 0.f, norms = 0.f;
#pragma omp simd reduction(+ : x, norms)
    for (int64_t d = 0; d < D; ++d) {
      x += p[d] * (qi[d] - qj[d]);
      norms += p[d] * p[d] + qi[d] * qi[d] + qj[d] * qj[d];
    }
    // softplus(-x) = -log sigmoid(x) and sigmoid(-x) = 1 / (1 + exp(x)), stably, from one
    // exponential e = exp(-|x|): sigmoid(-x) = e / (1 + e) for x >= 0, 1 / (1 + e) below.
    const float e = std::exp(-std::fabs(x));
    // log(1 + e) rather than log1p(e): as accurate for e in (0, 1], and faster (mf_rows, ncf.cpp).
    a.losses[r] = static_cast<double>(std::max(-x, 0.f) + std::log(1.f + e) + l2 * norms);
    const float g = step * (x >= 0.f ? e : 1.f) / (1.f + e);  // lr * sigmoid(-x)
    if (a.pos[r] == a.neg[r]) {  // the sampler never does this; keep the maths right if a caller does
      // x = 0 whatever the rows; only the l2 terms move them (q counted twice: 4 l2 q).
      const float decay_q = 1.f - 4.f * step * l2;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        qi[d] = decay_q * qi[d];
        p[d] = decay * p[d];
      }
      continue;
    }
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const float pd = p[d], qid = qi[d], qjd = qj[d];
      p[d] = decay * pd + g * (qid - qjd);
      qi[d] = decay * qid + g * pd;
      qj[d] = decay * qjd - g * pd;
    }
  }
}

}  // namespace

namespace {

struct BprGrads {
  const int64_t *users, *pos, *neg;
  const float *P, *Q;  // [U, D], [I, D]
  float *GP, *GQ;      // their gradients
  int64_t D, n;
  float l2;
};

// loss() of the n triples (mean softplus(-x) + l2 mean(|p|^2 + |q+|^2 + |q-|^2)) and its gradient,
// accumulated into GP / GQ; one function for the SIMD clones. For x = <p, q+ - q->:
//   d/dp = g (q+ - q-) + c p,  d/dq+ = g p + c q+,  d/dq- = -g p + c q-,
// with g = -sigmoid(-x) / n and c = 2 l2 / n.
RZOO_SIMD_CLONES double bpr_loss_grad(const BprGrads& a) {
  const int64_t D = a.D;
  const float inv_n = 1.f / static_cast<float>(a.n), c = 2.f * a.l2 * inv_n;
  double total = 0.0;
  for (int64_t r = 0; r < a.n; ++r) {
    const float* p = a.P + a.users[r] * D;
    const float* qi = a.Q + a.pos[r] * D;
    const float* qj = a.Q + a.neg[r] * D;
    float x = 0.f, norms = 0.f;
#pragma omp simd reduction(+ : x, norms)
    for (int64_t d = 0; d < D; ++d) {
      x += p[d] * (qi[d] - qj[d]);
      norms += p[d] * p[d] + qi[d] * qi[d] + qj[d] * qj[d];
    }
    const float e = std::exp(-std::fabs(x));  // as in bpr_rows: one exponential for both
    total += static_cast<double>(std::max(-x, 0.f) + std::log1p(e)) + static_cast<double>(a.l2) * static_cast<double>(norms);
    const float g = -inv_n * (x >= 0.f ? e : 1.f) / (1.f + e);  // -sigmoid(-x) / n
    float* gp = a.GP + a.users[r] * D;
    float* gi = a.GQ + a.pos[r] * D;
    float* gj = a.GQ + a.neg[r] * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const float pd = p[d], qid = qi[d], qjd = qj[d];
      gp[d] += g * (qid - qjd) + c * pd;
      gi[d] += g * pd + c * qid;
      gj[d] += -g * pd + c * qjd;
    }
  }
  return total / static_cast<double>(a.n);
}

}  // namespace

at::Tensor BPRImpl::fused_loss_backward(const Batch& b) {
  auto& P_t = user_emb->weight;
  auto& Q_t = item_emb->weight;
  if (side || !b.neg_items.defined() || !torch::GradMode::is_enabled() || user_emb->options.sparse() ||
      item_emb->options.sparse() || !P_t.device().is_cpu() || P_t.scalar_type() != torch::kFloat ||
      Q_t.scalar_type() != torch::kFloat || !P_t.is_contiguous() || !Q_t.is_contiguous() || !P_t.requires_grad() ||
      !Q_t.requires_grad())
    return {};
  auto& GP = dense_grad(P_t);
  auto& GQ = dense_grad(Q_t);
  if (GP.is_sparse() || GQ.is_sparse() || !GP.is_contiguous() || !GQ.is_contiguous()) return {};
  const auto users = b.users.contiguous(), pos = b.items.contiguous(), neg = b.neg_items.contiguous();
  const int64_t n = b.size();
  const int64_t* pu = users.data_ptr<int64_t>();
  const int64_t* pi = pos.data_ptr<int64_t>();
  const int64_t* pj = neg.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r)
    TORCH_CHECK(pu[r] >= 0 && pu[r] < n_users_ && pi[r] >= 0 && pi[r] < n_items_ && pj[r] >= 0 && pj[r] < n_items_,
                "bpr: index out of range: user ", pu[r], ", items ", pi[r], ", ", pj[r]);
  if (n == 0) return torch::zeros({}, P_t.options());
  const BprGrads args{pu, pi, pj, P_t.data_ptr<float>(), Q_t.data_ptr<float>(), GP.data_ptr<float>(),
                      GQ.data_ptr<float>(), options.embedding_size(), n, static_cast<float>(options.l2())};
  return torch::full({}, bpr_loss_grad(args), P_t.options());
}

// The steps of batch_size-1 SGD on loss(), row after row of the chunk (threads: Hogwild over
// disjoint ranges, see bpr.h). For x = <p, q_i - q_j>, d loss / d x = -sigmoid(-x); each of the
// three rows steps from its value before this triple, as one autograd step would.
double BPRImpl::per_sample_sgd(const Batch& b, double lr) {
  TORCH_CHECK(b.neg_items.defined(), "bpr: needs pairwise batches (users, items, neg_items)");
  auto& P_t = user_emb->weight;
  auto& Q_t = item_emb->weight;
  TORCH_CHECK(P_t.device().is_cpu() && Q_t.device().is_cpu() && P_t.scalar_type() == torch::kFloat &&
                  Q_t.scalar_type() == torch::kFloat && P_t.is_contiguous() && Q_t.is_contiguous(),
              "bpr: per-sample SGD needs contiguous float parameters on the CPU");
  torch::NoGradGuard no_grad;
  const auto users = b.users.contiguous(), pos = b.items.contiguous(), neg = b.neg_items.contiguous();
  const int64_t* pu = users.data_ptr<int64_t>();
  const int64_t* pi = pos.data_ptr<int64_t>();
  const int64_t* pj = neg.data_ptr<int64_t>();
  float* P = P_t.data_ptr<float>();  // [U, D]
  float* Q = Q_t.data_ptr<float>();  // [I, D]
  const int64_t D = options.embedding_size(), n = b.size();
  for (int64_t r = 0; r < n; ++r)
    TORCH_CHECK(pu[r] >= 0 && pu[r] < n_users_ && pi[r] >= 0 && pi[r] < n_items_ && pj[r] >= 0 && pj[r] < n_items_,
                "bpr: index out of range: user ", pu[r], ", items ", pi[r], ", ", pj[r]);
  // One loss per row, summed in row order afterwards: the same total for any thread count.
  std::vector<double> losses(static_cast<size_t>(n));
  const BprRows args{pu, pi, pj, P, Q, losses.data(), D, static_cast<float>(lr), static_cast<float>(options.l2())};
  // Hogwild only for models beyond ~8 MB (past a core's private caches): below that, two threads
  // write the same cache lines, and a second thread made an ML-100K epoch (0.7 MB of factors)
  // 1.24x slower and an ML-1M one (2.5 MB) no faster. One thread is also exact.
  const bool hogwild = (P_t.numel() + Q_t.numel()) * static_cast<int64_t>(sizeof(float)) > (int64_t{8} << 20);
  at::parallel_for(0, n, hogwild ? 2048 : std::max<int64_t>(n, 1), [&](int64_t begin, int64_t end) { bpr_rows(args, begin, end); });
  double total = 0.0;
  for (const double v : losses) total += v;
  return total;
}

at::Tensor BPRImpl::score(const at::Tensor& users, const at::Tensor& items) {
  return (user_vectors(users) * item_vectors(items)).sum(1);
}

at::Tensor BPRImpl::score_all(const at::Tensor& users) {
  return torch::matmul(user_vectors(users), item_vectors().t());  // [B, D] x [D, I]
}

at::Tensor BPRImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  LinearFoldIn f;
  f.pairwise = true;
  f.neg_per_pos = neg_per_pos_;
  fit_fold_in_prior(f, user_vectors().detach());
  const auto q = item_vectors().detach().to(torch::kCPU, torch::kDouble);
  const auto u = fold_in_linear(f, q, {}, items);
  return torch::mv(q, u).to(torch::kFloat);  // [I]
}

int64_t BPRImpl::init_user_rows(const Csr& train, int64_t first) {
  torch::NoGradGuard no_grad;
  if (first <= 0 || first >= n_users_) return 0;
  LinearFoldIn f;
  f.pairwise = true;
  f.neg_per_pos = neg_per_pos_;
  fit_fold_in_prior(f, user_vectors().detach().narrow(0, 0, first));
  const auto q = item_vectors().detach().to(torch::kCPU, torch::kDouble);
  return for_new_users(train, first, n_users_, [&](int64_t u, const at::Tensor& items) {
    auto v = fold_in_linear(f, q, {}, items).to(user_emb->weight.dtype());  // p_u as scored
    if (side)  // the id row is what p_u adds to the user's fields (its id counts: it has interactions)
      v = v - side->user_fields(torch::tensor({u}, torch::kLong).to(v.device())).squeeze(0);
    user_emb->weight[u].copy_(v);
  });
}

ScriptExport BPRImpl::script_export() const {
  ScriptExport e;
  e.fold_in = true;
  e.explain_kind = "items";
  LinearFoldIn f;
  f.pairwise = true;
  f.neg_per_pos = neg_per_pos_;
  torch::NoGradGuard no_grad;
  const auto p = user_vectors().detach(), q = item_vectors().detach();  // with model.fields: the fields added
  fit_fold_in_prior(f, p);
  e.tensors = {{"user_emb", p.to(torch::kCPU).clone()},
               {"item_emb", q.to(torch::kCPU).clone()},
               {"fold_prior_mean", f.prior_mean},
               {"fold_prior_prec", f.prior_prec}};
  e.code = R"(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self.user_emb.index_select(0, users) * self.item_emb.index_select(0, items)).sum(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.user_emb.index_select(0, users), self.item_emb.t())

def _score_fold_in(self, items: Tensor) -> Tensor:
    q = self.item_emb.double()
    u = self._fold_in_vector(q, torch.zeros([q.size(0)], dtype=q.dtype), items)
    return torch.mv(q, u).float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    return self._explain_cosine(self.item_emb, items, item)
)" + fold_in_linear_script(f) + kExplainCosineScript;
  return e;
}

}  // namespace rzoo
