// NCF's pointwise loss and its backward without autograd (GMF, NCF-MLP, NeuMF; see ncf.h for the
// models and the papers). Why: an ML-100K NeuMF epoch (160 k rows, batch 2048) spent about half its
// time in autograd's per-operation work and in the first MLP layer. That layer reads the
// concatenation [p_u; q_i], so W_1 [p_u; q_i] = W_u p_u + W_i q_i: its products are taken once per
// distinct user and item of the batch ([n_u, h_0/2] x [h_0/2, h_1] and the same for items) instead
// of once per row ([B, h_0] x [h_0, h_1]), forward and backward; the gradients of W_u, W_i and the
// embeddings come from the per-user and per-item sums of the rows' gradients (dense, or row-sparse
// for lazy_adam). The same loss and gradients as loss(batch).backward(), up to float rounding
// (tests/test_model_ncf.cpp). Measured (1 thread): ML-100K NeuMF, batch 2048, 128-128-64, Adam
// 0.378 -> 0.205 s/epoch; batch 256, 512-256-128-64, lazy_adam 2.2 -> 2.0 s/epoch (the products of
// the later layers, which no split saves, dominate there).
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "core/gemm.h"
#include "core/simd.h"
#include "core/threads.h"
#include "models/general/ncf.h"

namespace rzoo {

namespace {

// The distinct values of ids [n] (first-seen order) and each row's position among them, with
// slot [n_ids] as scratch: -1 everywhere on entry and on return.
void distinct(const int64_t* ids, int64_t n, std::vector<int32_t>& slot, std::vector<int64_t>& values,
              std::vector<int64_t>& row_slot) {
  values.clear();
  row_slot.resize(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    int32_t& s = slot[static_cast<size_t>(ids[r])];
    if (s < 0) {
      s = static_cast<int32_t>(values.size());
      values.push_back(ids[r]);
    }
    row_slot[static_cast<size_t>(r)] = s;
  }
  for (const int64_t v : values) slot[static_cast<size_t>(v)] = -1;
}

// out[k, :] = src[rows[k], :] for k < n_rows (width w).
at::Tensor gather_rows(const at::Tensor& src, const std::vector<int64_t>& rows) {
  const int64_t w = src.size(1), n_rows = static_cast<int64_t>(rows.size());
  auto out = torch::empty({n_rows, w}, src.options());
  const float* s = src.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t k = 0; k < n_rows; ++k) std::copy(s + rows[k] * w, s + (rows[k] + 1) * w, o + k * w);
  return out;
}

// The element-wise loops, one function each, compiled for AVX2 and AVX-512 too (core/simd.h):
// the build's baseline is SSE2. Matrices are row-major [rows, w]; no two pointers overlap.

// d[rows[k], :] += s[k, :], k < n.
RZOO_SIMD_CLONES void scatter_add_kernel(float* d, const int64_t* rows, const float* s, int64_t n, int64_t w) {
  for (int64_t k = 0; k < n; ++k) {
    float* dr = d + rows[k] * w;
    const float* sr = s + k * w;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) dr[c] += sr[c];
  }
}

// g[c] += sum over r < n of z[r, c], summed in `acc` [w] first.
RZOO_SIMD_CLONES void column_sums_kernel(float* g, const float* z, int64_t n, int64_t w, float* acc) {
  std::fill_n(acc, w, 0.0f);
  for (int64_t r = 0; r < n; ++r)
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) acc[c] += z[r * w + c];
  for (int64_t c = 0; c < w; ++c) g[c] += acc[c];
}

// h[r, :] = ReLU(a[u_rows[r], :] + c[i_rows[r], :] + b): the first layer from its two halves.
RZOO_SIMD_CLONES void first_layer_kernel(const float* a, const float* c, const float* b, const int64_t* u_rows,
                                         const int64_t* i_rows, int64_t n, int64_t w, float* h) {
  for (int64_t r = 0; r < n; ++r) {
    const float* ar = a + u_rows[r] * w;
    const float* cr = c + i_rows[r] * w;
    float* hr = h + r * w;
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) hr[k] = std::max(ar[k] + cr[k] + b[k], 0.0f);
  }
}

// z[r, :] = ReLU(z[r, :] + b).
RZOO_SIMD_CLONES void bias_relu_kernel(float* z, const float* b, int64_t n, int64_t w) {
  for (int64_t r = 0; r < n; ++r)
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) z[r * w + k] = std::max(z[r * w + k] + b[k], 0.0f);
}

// z[e] = 0 where h[e] <= 0 (ReLU's backward; a select, no branch).
RZOO_SIMD_CLONES void relu_mask_kernel(float* z, const float* h, int64_t size) {
#pragma omp simd
  for (int64_t e = 0; e < size; ++e) z[e] = h[e] > 0.0f ? z[e] : 0.0f;
}

// The first layer's backward in one pass over the rows: z = dh where h > 0, else 0 (ReLU's
// backward), then da[u_rows[r], :] += z, dc[i_rows[r], :] += z, and gb[c] += the column sums of z
// (summed in acc [w] first). One pass instead of three over [n, w] (mask, split sums, bias sums);
// the same sums in the same order.
RZOO_SIMD_CLONES void first_layer_backward_kernel(const float* dh, const float* h, const int64_t* u_rows,
                                                  const int64_t* i_rows, int64_t n, int64_t w, float* da, float* dc,
                                                  float* gb, float* acc) {
  std::fill_n(acc, w, 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    float* ar = da + u_rows[r] * w;
    float* cr = dc + i_rows[r] * w;
    const float* dr = dh + r * w;
    const float* hr = h + r * w;
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) {
      const float z = hr[k] > 0.0f ? dr[k] : 0.0f;
      ar[k] += z;
      cr[k] += z;
      acc[k] += z;
    }
  }
  for (int64_t c = 0; c < w; ++c) gb[c] += acc[c];
}

// The predict layer over the rows (GMF part when D > 0, MLP part when hL > 0): logits, the summed
// log loss (returned), d loss / d logit (mean over rows), then the head's gradient d_head [D + hL]
// (zero on entry) and d_bias, the GMF rows' gradients per distinct user / item (gP, gQ), and
// d loss / d Z_L (dz [n, hL]).
struct HeadRows {
  int64_t n = 0, D = 0, hL = 0;
  const int64_t *pu = nullptr, *pi = nullptr, *u_rows = nullptr, *i_rows = nullptr;
  const float *P = nullptr, *Q = nullptr, *HL = nullptr, *head = nullptr, *y = nullptr;
  float bias = 0;
  float *dlogit = nullptr, *d_head = nullptr, *gP = nullptr, *gQ = nullptr, *dz = nullptr;
  double d_bias = 0;
};

RZOO_SIMD_CLONES double head_kernel(HeadRows& a) {
  const int64_t n = a.n, D = a.D, hL = a.hL;
  const float* head = a.head;
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    // Vector sums (omp simd): a plain float sum is one dependent chain of adds per row.
    float xg = 0.0f, xm = 0.0f;
    if (D > 0) {
      const float* p = a.P + a.pu[r] * D;
      const float* q = a.Q + a.pi[r] * D;
#pragma omp simd reduction(+ : xg)
      for (int64_t k = 0; k < D; ++k) xg += head[k] * (p[k] * q[k]);
    }
    if (hL > 0) {
      const float* hr = a.HL + r * hL;
#pragma omp simd reduction(+ : xm)
      for (int64_t k = 0; k < hL; ++k) xm += head[D + k] * hr[k];
    }
    const double x = static_cast<double>(xg + xm + a.bias), y = a.y[r];
    // log(1 + e^-|x|) and sigmoid(x) from one exponential.
    const double e = std::exp(-std::abs(x));
    total += std::max(x, 0.0) - x * y + std::log1p(e);
    const double sigmoid = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    a.dlogit[r] = static_cast<float>((sigmoid - y) / static_cast<double>(n));
  }
  float* dh = a.d_head;
  double d_bias = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float d = a.dlogit[r];
    d_bias += d;
    if (D > 0) {
      const float* p = a.P + a.pu[r] * D;
      const float* q = a.Q + a.pi[r] * D;
      float* gp = a.gP + a.u_rows[r] * D;
      float* gq = a.gQ + a.i_rows[r] * D;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) {
        dh[k] += d * (p[k] * q[k]);
        const float dk = d * head[k];
        gp[k] += dk * q[k];
        gq[k] += dk * p[k];
      }
    }
    if (hL > 0) {
      const float* hr = a.HL + r * hL;
      float* dzr = a.dz + r * hL;
#pragma omp simd
      for (int64_t k = 0; k < hL; ++k) {
        dh[D + k] += d * hr[k];
        dzr[k] = hr[k] > 0.0f ? d * head[D + k] : 0.0f;
      }
    }
  }
  a.d_bias = d_bias;
  return total;
}

// dst[rows[k], :] += src[k, :] (width w).
void scatter_add_rows(at::Tensor& dst, const std::vector<int64_t>& rows, const at::Tensor& src) {
  scatter_add_kernel(dst.data_ptr<float>(), rows.data(), src.data_ptr<float>(), static_cast<int64_t>(rows.size()),
                     src.size(1));
}

// grad_bias[c] += sum over rows of dz[r, c].
void add_column_sums(at::Tensor& grad_bias, const at::Tensor& dz) {
  std::vector<float> acc(static_cast<size_t>(dz.size(1)));
  column_sums_kernel(grad_bias.data_ptr<float>(), dz.data_ptr<float>(), dz.size(0), dz.size(1), acc.data());
}

// Runs the two tasks once each: side by side on two intra-op threads when `parallel`, else one
// after the other. Each product is computed whole by one thread, so the results do not depend on
// the thread count.
template <typename F, typename G>
void side_by_side(bool parallel, const F& first, const G& second) {
  if (!parallel) {
    first();
    second();
    return;
  }
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    torch::NoGradGuard no_grad;  // thread-local: the calling thread's guard does not reach this one
    for (int64_t t = begin; t < end; ++t) t == 0 ? first() : second();
  });
}

// A zero-filled [rows, w] float tensor; filled here, not by torch::zeros, whose parallel fill
// would wake the second thread.
at::Tensor zero_rows(int64_t rows, int64_t w) {
  auto t = torch::empty({rows, w}, torch::kFloat);
  std::fill_n(t.data_ptr<float>(), t.numel(), 0.0f);
  return t;
}

// Adds the gradient rows `values` [n, w] of the embedding rows `rows` (distinct) to e's weight
// gradient: into the dense gradient, or, for an embedding with sparse gradients (lazy_adam), as
// a row-sparse tensor as autograd gives (one row per distinct id here; one per batch row there:
// the same once coalesced).
void add_row_grads(torch::nn::Embedding& e, const std::vector<int64_t>& rows, const at::Tensor& values) {
  auto& w = e->weight;
  if (!e->options.sparse()) {
    scatter_add_rows(dense_grad(w), rows, values);
    return;
  }
  auto idx = torch::empty({1, static_cast<int64_t>(rows.size())}, torch::kLong);
  std::copy(rows.begin(), rows.end(), idx.data_ptr<int64_t>());
  auto g = torch::sparse_coo_tensor(idx, values, w.sizes());
  w.mutable_grad() = w.grad().defined() ? w.grad() + g : g;
}

// A weight this pass can read and whose gradient it can add to (an embedding's may be sparse).
bool fusable(const at::Tensor& w, bool sparse_grad = false) {
  if (!w.defined() || !w.requires_grad() || !w.device().is_cpu() || w.scalar_type() != torch::kFloat ||
      !w.is_contiguous())
    return false;
  const auto& g = w.grad();
  return !g.defined() || (sparse_grad ? g.is_sparse() : (!g.is_sparse() && g.is_contiguous()));
}

}  // namespace

at::Tensor NCFBaseImpl::fused_loss_backward(const Batch& b) {
  const bool has_gmf = gmf_size_ > 0, has_mlp = !layers_.empty();
  // NCF-MLP without a hidden layer has no first layer to split: autograd.
  if ((has_mlp && mlp.empty()) || !b.labels.defined() || !torch::GradMode::is_enabled()) return {};
  std::vector<torch::nn::Embedding*> embeddings;
  std::vector<at::Tensor*> params;
  if (has_gmf) embeddings.insert(embeddings.end(), {&gmf_user_emb, &gmf_item_emb});
  if (has_mlp) {
    embeddings.insert(embeddings.end(), {&mlp_user_emb, &mlp_item_emb});
    for (auto& layer : mlp) params.insert(params.end(), {&layer->weight, &layer->bias});
  }
  params.insert(params.end(), {&predict->weight, &predict->bias});
  for (const auto* e : embeddings)
    if (!fusable((*e)->weight, (*e)->options.sparse())) return {};
  for (const auto* p : params)
    if (!fusable(*p)) return {};
  const auto users = b.users.to(torch::kLong).contiguous(), items = b.items.to(torch::kLong).contiguous();
  const auto labels = b.labels.to(torch::kFloat).contiguous();
  const int64_t n = b.size();
  const int64_t* pu = users.data_ptr<int64_t>();
  const int64_t* pi = items.data_ptr<int64_t>();
  const float* py = labels.data_ptr<float>();
  for (int64_t r = 0; r < n; ++r)
    TORCH_CHECK(pu[r] >= 0 && pu[r] < n_users_ && pi[r] >= 0 && pi[r] < n_items_, name(),
                ": index out of range: user ", pu[r], ", item ", pi[r]);
  if (n == 0) return torch::zeros({}, predict->weight.options());
  torch::NoGradGuard no_grad;
  // The step's products are small below ~2^26 multiply-adds each (ML-100K NeuMF: 2048 x 128 x 128),
  // where a second BLAS thread costs more than it gives (core/threads.h); the loops here are serial.
  // With two or more threads, independent products then run side by side (one thread each), and
  // the products over rows split in two row blocks (ReLU(H W^T + b) row by row: the same values).
  std::optional<SingleThreadedBlas> one_blas_thread;
  if (has_mlp && n * layers_[0] * layers_[1] < (int64_t{1} << 26)) one_blas_thread.emplace();
  const bool tasks = one_blas_thread.has_value() && at::get_num_threads() > 1 && !at::in_parallel_region();
  const int64_t D = gmf_size_, hL = has_mlp ? layers_.back() : 0;
  const float* head = predict->weight.data_ptr<float>();  // [D + h_L]: GMF part, then MLP part
  const float bias = predict->bias.data_ptr<float>()[0];

  // Forward through the MLP: H[j] = ReLU(Z_j) [n, h_{j+1}], H[0] from the split first layer.
  std::vector<at::Tensor> H;
  at::Tensor pm_u, qm_i;
  // The batch's distinct users and items, and each row's among them.
  std::vector<int64_t> u_values, i_values, u_rows, i_rows;
  user_slot_.resize(static_cast<size_t>(n_users_), -1);
  item_slot_.resize(static_cast<size_t>(n_items_), -1);
  distinct(pu, n, user_slot_, u_values, u_rows);
  distinct(pi, n, item_slot_, i_values, i_rows);
  const int64_t n_u = static_cast<int64_t>(u_values.size()), n_i = static_cast<int64_t>(i_values.size());
  if (has_mlp) {
    const int64_t half = layers_[0] / 2, h1 = layers_[1];
    const auto& W1 = mlp[0]->weight;                           // [h_1, h_0] = [W_u | W_i]
    pm_u = gather_rows(mlp_user_emb->weight, u_values);       // [n_u, h_0/2]
    qm_i = gather_rows(mlp_item_emb->weight, i_values);       // [n_i, h_0/2]
    at::Tensor A, C;
    side_by_side(
        tasks, [&] { A = gemm(pm_u, W1.narrow(1, 0, half).t()); },  // [n_u, h_1]
        [&] { C = gemm(qm_i, W1.narrow(1, half, half).t()); });     // [n_i, h_1]
    auto H0 = torch::empty({n, h1}, W1.options());
    first_layer_kernel(A.data_ptr<float>(), C.data_ptr<float>(), mlp[0]->bias.data_ptr<float>(), u_rows.data(),
                       i_rows.data(), n, h1, H0.data_ptr<float>());
    H.push_back(H0);
    for (size_t j = 1; j < mlp.size(); ++j) {
      const int64_t w = mlp[j]->weight.size(0), top = n / 2;
      auto Z = torch::empty({n, w}, H.back().options());  // [n, h_{j+1}]
      const auto Wt = mlp[j]->weight.t();
      side_by_side(
          tasks,
          [&] {
            auto out = Z.narrow(0, 0, top);
            gemm_into(out, H.back().narrow(0, 0, top), Wt);
          },
          [&] {
            auto out = Z.narrow(0, top, n - top);
            gemm_into(out, H.back().narrow(0, top, n - top), Wt);
          });
      bias_relu_kernel(Z.data_ptr<float>(), mlp[j]->bias.data_ptr<float>(), n, w);
      H.push_back(Z);
    }
  }

  // The predict layer: logits, the loss, and back to the head, the GMF embeddings and H_L.
  auto& g_head = dense_grad(predict->weight);
  auto& g_bias = dense_grad(predict->bias);
  std::vector<float> d_head(static_cast<size_t>(D + hL), 0.0f), dlogit(static_cast<size_t>(n));
  // The GMF embeddings' gradients per distinct user and item: [n_u, D], [n_i, D].
  at::Tensor dPg = has_gmf ? zero_rows(n_u, D) : at::Tensor(), dQg = has_gmf ? zero_rows(n_i, D) : at::Tensor();
  at::Tensor dZ;  // [n, h_L]: d loss / d (pre-activation of the last MLP layer)
  if (has_mlp) dZ = torch::empty({n, hL}, H.back().options());
  HeadRows rows;
  rows.n = n;
  rows.D = D;
  rows.hL = hL;
  rows.pu = pu;
  rows.pi = pi;
  rows.u_rows = u_rows.data();
  rows.i_rows = i_rows.data();
  rows.P = has_gmf ? gmf_user_emb->weight.data_ptr<float>() : nullptr;
  rows.Q = has_gmf ? gmf_item_emb->weight.data_ptr<float>() : nullptr;
  rows.HL = has_mlp ? H.back().data_ptr<float>() : nullptr;
  rows.head = head;
  rows.y = py;
  rows.bias = bias;
  rows.dlogit = dlogit.data();
  rows.d_head = d_head.data();
  rows.gP = has_gmf ? dPg.data_ptr<float>() : nullptr;
  rows.gQ = has_gmf ? dQg.data_ptr<float>() : nullptr;
  rows.dz = has_mlp ? dZ.data_ptr<float>() : nullptr;
  const double total = head_kernel(rows);
  const double d_bias = rows.d_bias;
  float* gh = g_head.data_ptr<float>();
  for (int64_t k = 0; k < D + hL; ++k) gh[k] += d_head[static_cast<size_t>(k)];
  g_bias.data_ptr<float>()[0] += static_cast<float>(d_bias);
  if (has_gmf) {
    add_row_grads(gmf_user_emb, u_values, dPg);
    add_row_grads(gmf_item_emb, i_values, dQg);
  }

  // Back through the MLP: dZ is d loss / d Z_j, from the last layer to the first.
  if (has_mlp) {
    for (size_t j = mlp.size() - 1; j >= 1; --j) {
      auto& gW = dense_grad(mlp[j]->weight);
      auto& gb = dense_grad(mlp[j]->bias);
      at::Tensor dH;  // [n, h_j]: d loss / d H_{j-1}, then through its ReLU
      side_by_side(
          tasks,
          [&] {
            gemm_into(gW, dZ.t(), H[j - 1], 1.0f);  // [h_{j+1}, h_j]
            add_column_sums(gb, dZ);
          },
          [&] { dH = gemm(dZ, mlp[j]->weight); });
      dZ = dH;
      // The first layer's ReLU is taken below, in the same pass as its sums.
      if (j > 1) relu_mask_kernel(dZ.data_ptr<float>(), H[j - 1].data_ptr<float>(), dZ.numel());
    }
    // The first layer: per-user and per-item sums of the rows' dZ_1 through H_0's ReLU (with one
    // layer, head_kernel took that ReLU already, and taking it again changes nothing), and its bias
    // gradient.
    const int64_t half = layers_[0] / 2, h1 = layers_[1];
    auto dA = zero_rows(n_u, h1), dC = zero_rows(n_i, h1);  // [n_u, h_1], [n_i, h_1]
    std::vector<float> acc(static_cast<size_t>(h1));
    first_layer_backward_kernel(dZ.data_ptr<float>(), H[0].data_ptr<float>(), u_rows.data(), i_rows.data(), n, h1,
                                dA.data_ptr<float>(), dC.data_ptr<float>(),
                                dense_grad(mlp[0]->bias).data_ptr<float>(), acc.data());
    auto& gW1 = dense_grad(mlp[0]->weight);
    const auto& W1 = mlp[0]->weight;
    at::Tensor dPm, dQm;  // [n_u, h_0/2], [n_i, h_0/2]
    side_by_side(
        tasks,
        [&] {
          auto gWu = gW1.narrow(1, 0, half), gWi = gW1.narrow(1, half, half);
          gemm_into(gWu, dA.t(), pm_u, 1.0f);
          gemm_into(gWi, dC.t(), qm_i, 1.0f);
        },
        [&] {
          dPm = gemm(dA, W1.narrow(1, 0, half));
          dQm = gemm(dC, W1.narrow(1, half, half));
        });
    add_row_grads(mlp_user_emb, u_values, dPm);
    add_row_grads(mlp_item_emb, i_values, dQm);
  }
  return torch::full({}, total / static_cast<double>(n), predict->weight.options());
}

}  // namespace rzoo
