// ItemKNN / UserKNN scoring: Sarwar et al., WWW 2001 (item-based scores); Herlocker et al.,
// SIGIR 1999 (user-based); Koren, TKDD 2010 and Surprise's KNNWithMeans / KNNBaseline (rating
// predictions). See knn.h.
// Scores are computed on the CPU with raw loops and double accumulation; knn_export.cpp's
// TorchScript computes the same.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "models/general/knn.h"
#include "models/general/knn_internal.h"

namespace rzoo {

using namespace knn_detail;

namespace {

// The rating-mode state on the CPU and raw pointers into it (score and score_all read the same).
struct RatingState {
  at::Tensor s_t, z_t, mu_t, bu_t, bi_t;  // keep the CPU copies alive
  const float *S, *z, *bup, *bip;
  double m;
  RatingState(const at::Tensor& sim, const at::Tensor& resid, const at::Tensor& mu, const at::Tensor& bu, const at::Tensor& bi)
      : s_t(on_cpu(sim)), z_t(on_cpu(resid)), mu_t(on_cpu(mu)), bu_t(on_cpu(bu)), bi_t(on_cpu(bi)),
        S(s_t.data_ptr<float>()), z(z_t.data_ptr<float>()), bup(bu_t.data_ptr<float>()), bip(bi_t.data_ptr<float>()),
        m(mu_t.data_ptr<float>()[0]) {}
};

// The lists a ranking score sums over, as CSR on the CPU: x's entries [begin(x), end(x)) of
// (idx, w). prune row: x's own k-list (nbr_index / nbr_sim rows); prune column: the transposed
// lists (nbr_ptr / nbr_list / nbr_weight).
struct NbrLists {
  at::Tensor idx_t, w_t, ptr_t;  // keep the CPU copies alive
  const int64_t* idx;
  const float* w;
  const int64_t* ptr = nullptr;  // null: fixed rows of k
  int64_t k;
  NbrLists(const at::Tensor& nbr_index, const at::Tensor& nbr_sim, const at::Tensor& nbr_ptr, const at::Tensor& nbr_list,
           const at::Tensor& nbr_weight)
      : k(nbr_index.size(1)) {
    const bool column = nbr_ptr.defined();
    idx_t = on_cpu(column ? nbr_list : nbr_index);
    w_t = on_cpu(column ? nbr_weight : nbr_sim);
    idx = idx_t.data_ptr<int64_t>();
    w = w_t.data_ptr<float>();
    if (column) {
      ptr_t = on_cpu(nbr_ptr);
      ptr = ptr_t.data_ptr<int64_t>();
    }
  }
  int64_t begin(int64_t x) const { return ptr ? ptr[x] : x * k; }
  int64_t end(int64_t x) const { return ptr ? ptr[x + 1] : (x + 1) * k; }
};

struct Neighbour {
  float s;
  int64_t id;
  float z;  // the neighbour's residual r - b
};

// sum s z / sum s over the k best neighbours (higher s, then lower id); 0 without any.
double weighted_mean(std::vector<Neighbour>& c, int64_t k) {
  if (static_cast<int64_t>(c.size()) > k) {
    std::nth_element(c.begin(), c.begin() + (k - 1), c.end(), [](const Neighbour& a, const Neighbour& b) {
      return a.s > b.s || (a.s == b.s && a.id < b.id);
    });
    c.resize(static_cast<size_t>(k));
  }
  double num = 0, den = 0;
  for (const auto& e : c) {
    num += static_cast<double>(e.s) * e.z;
    den += e.s;
  }
  return den > 0 ? num / den : 0.0;
}


// The training pairs on the CPU: user u's keys u * I + i at [ptr[u], ptr[u + 1]) of keys.
struct TrainPairs {
  at::Tensor keys_t, ptr_t;  // keep the CPU copies alive
  const int64_t *keys, *ptr;
  int64_t I;
  TrainPairs(const at::Tensor& train_keys, const at::Tensor& train_indptr, int64_t n_items)
      : keys_t(on_cpu(train_keys)), ptr_t(on_cpu(train_indptr)), keys(keys_t.data_ptr<int64_t>()),
        ptr(ptr_t.data_ptr<int64_t>()), I(n_items) {}
  bool has(int64_t u, int64_t i) const { return std::binary_search(keys + ptr[u], keys + ptr[u + 1], u * I + i); }
};

// A batch to score: users us[b] (and items is[b] for pairs), output o ([B] or [B, I]).
struct ScoreBatch {
  int64_t B;
  const int64_t* us;
  const int64_t* is = nullptr;
  float* o;
};

// ---------------------------------------------------------------------------------------------
// Pairs

void ranking_pairs(const KNNImpl& m, const TrainPairs& tp, const ScoreBatch& q) {
  const NbrLists L(m.nbr_index, m.nbr_sim, m.nbr_ptr, m.nbr_list, m.nbr_weight);
  const bool item_based = m.item_based();
  at::parallel_for(0, q.B, 256, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t u = q.us[b], i = q.is[b];
      double acc = 0;
      if (item_based) {  // the items j in i's list that u has
        for (int64_t e = L.begin(i); e < L.end(i); ++e)
          if (L.w[e] != 0.0f && tp.has(u, L.idx[e])) acc += L.w[e];
      } else {  // the users v in u's list that have i
        for (int64_t e = L.begin(u); e < L.end(u); ++e)
          if (L.w[e] != 0.0f && tp.has(L.idx[e], i)) acc += L.w[e];
      }
      q.o[b] = static_cast<float>(acc);
    }
  });
}

void rating_pairs(const KNNImpl& m, const TrainPairs& tp, const ScoreBatch& q, int64_t k) {
  const RatingState rs(m.sim, m.train_resid, m.mu, m.bu, m.bi);
  const float *S = rs.S, *z = rs.z, *bup = rs.bup, *bip = rs.bip;
  const double mu = rs.m;
  const int64_t U = m.n_users(), I = tp.I;
  const int64_t *keys = tp.keys, *ptr = tp.ptr;
  const bool item_based = m.item_based();
  at::Tensor ip_t, io_t;
  if (!item_based) ip_t = on_cpu(m.item_indptr), io_t = on_cpu(m.item_order);
  at::parallel_for(0, q.B, 64, [&](int64_t begin, int64_t end) {
    std::vector<Neighbour> c;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t u = q.us[b], i = q.is[b];
      c.clear();
      if (item_based) {  // the items u rated, by similarity to i
        for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) {
          const int64_t j = keys[p] - u * I;
          const float s = S[i * I + j];
          if (s > 0.0f) c.push_back({s, j, z[p]});
        }
      } else {  // the users who rated i, by similarity to u
        const int64_t* iptr = ip_t.data_ptr<int64_t>();
        const int64_t* iord = io_t.data_ptr<int64_t>();
        for (int64_t t = iptr[i]; t < iptr[i + 1]; ++t) {
          const int64_t p = iord[t], v = keys[p] / I;
          const float s = S[u * U + v];
          if (s > 0.0f) c.push_back({s, v, z[p]});
        }
      }
      const double base = mu + static_cast<double>(bup[u]) + static_cast<double>(bip[i]);
      q.o[b] = static_cast<float>(base + weighted_mean(c, k));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// All items, ranking

// For each item j, the (target item i, s) with j in i's list (weight nonzero), i ascending.
struct ReverseLists {
  std::vector<int64_t> ptr, target;
  std::vector<float> val;
};

ReverseLists reverse_lists(const NbrLists& L, int64_t I) {
  ReverseLists R;
  R.ptr.assign(static_cast<size_t>(I) + 1, 0);
  for (int64_t i = 0; i < I; ++i)
    for (int64_t e = L.begin(i); e < L.end(i); ++e)
      if (L.w[e] != 0.0f) ++R.ptr[L.idx[e] + 1];
  for (int64_t j = 0; j < I; ++j) R.ptr[j + 1] += R.ptr[j];
  R.target.resize(static_cast<size_t>(R.ptr[I]));
  R.val.resize(R.target.size());
  std::vector<int64_t> next(R.ptr.begin(), R.ptr.end() - 1);
  for (int64_t i = 0; i < I; ++i)
    for (int64_t e = L.begin(i); e < L.end(i); ++e) {
      if (L.w[e] == 0.0f) continue;
      const int64_t slot = next[L.idx[e]]++;
      R.target[slot] = i;  // the target item whose list holds j
      R.val[slot] = L.w[e];
    }
  return R;
}

void item_ranking_all(const NbrLists& L, const TrainPairs& tp, const ScoreBatch& q) {
  // Push instead of pull: the reverse lists (for each item j, the items i whose list holds j) let
  // each of the user's items add its contributions, |I_u| k work per user instead of I k. Built
  // per call: O(I k), small next to any batch of users.
  const int64_t I = tp.I;
  const ReverseLists R = reverse_lists(L, I);
  at::parallel_for(0, q.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(static_cast<size_t>(I));
    for (int64_t b = begin; b < end; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t u = q.us[b];
      for (int64_t p = tp.ptr[u]; p < tp.ptr[u + 1]; ++p) {
        const int64_t j = tp.keys[p] - u * I;
        for (int64_t e = R.ptr[j]; e < R.ptr[j + 1]; ++e) acc[R.target[e]] += R.val[e];
      }
      for (int64_t i = 0; i < I; ++i) q.o[b * I + i] = static_cast<float>(acc[i]);
    }
  });
}

void user_ranking_all(const NbrLists& L, const TrainPairs& tp, const ScoreBatch& q) {
  const int64_t I = tp.I;
  at::parallel_for(0, q.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(static_cast<size_t>(I));
    for (int64_t b = begin; b < end; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t u = q.us[b];
      for (int64_t e = L.begin(u); e < L.end(u); ++e) {
        const int64_t v = L.idx[e];
        const double s = L.w[e];
        if (s == 0.0) continue;
        for (int64_t p = tp.ptr[v]; p < tp.ptr[v + 1]; ++p) acc[tp.keys[p] - v * I] += s;
      }
      for (int64_t i = 0; i < I; ++i) q.o[b * I + i] = static_cast<float>(acc[i]);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// All items, rating

void item_rating_all(const RatingState& rs, const TrainPairs& tp, const ScoreBatch& q, int64_t k) {
  const float *S = rs.S, *z = rs.z, *bup = rs.bup, *bip = rs.bip;
  const int64_t I = tp.I;
  at::parallel_for(0, q.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<Neighbour> c;
    std::vector<int64_t> hist;
    std::vector<float> hz;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t u = q.us[b];
      hist.clear();
      hz.clear();
      for (int64_t p = tp.ptr[u]; p < tp.ptr[u + 1]; ++p) {
        hist.push_back(tp.keys[p] - u * I);
        hz.push_back(z[p]);
      }
      const double base_u = rs.m + static_cast<double>(bup[u]);
      for (int64_t i = 0; i < I; ++i) {
        c.clear();
        const float* row = S + i * I;
        for (size_t l = 0; l < hist.size(); ++l)
          if (row[hist[l]] > 0.0f) c.push_back({row[hist[l]], hist[l], hz[l]});
        q.o[b * I + i] = static_cast<float>(base_u + static_cast<double>(bip[i]) + weighted_mean(c, k));
      }
    }
  });
}

// Users by decreasing similarity to u (then index); each item takes its first k raters in that
// order: the same neighbours as a per-item selection, in one pass over their rows.
void user_rating_all(const RatingState& rs, const TrainPairs& tp, const ScoreBatch& q, int64_t U, int64_t k) {
  const float *S = rs.S, *z = rs.z, *bup = rs.bup, *bip = rs.bip;
  const int64_t I = tp.I;
  at::parallel_for(0, q.B, 1, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<float, int64_t>> order;
    std::vector<int32_t> cnt(static_cast<size_t>(I));
    std::vector<double> num(static_cast<size_t>(I)), den(static_cast<size_t>(I));
    for (int64_t b = begin; b < end; ++b) {
      const int64_t u = q.us[b];
      order.clear();
      for (int64_t v = 0; v < U; ++v)
        if (S[u * U + v] > 0.0f) order.emplace_back(S[u * U + v], v);
      std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return better(x, y); });
      std::fill(cnt.begin(), cnt.end(), 0);
      std::fill(num.begin(), num.end(), 0.0);
      std::fill(den.begin(), den.end(), 0.0);
      for (const auto& [s, v] : order)
        for (int64_t p = tp.ptr[v]; p < tp.ptr[v + 1]; ++p) {
          const int64_t i = tp.keys[p] - v * I;
          if (cnt[i] >= k) continue;
          ++cnt[i];
          num[i] += static_cast<double>(s) * z[p];
          den[i] += s;
        }
      const double base_u = rs.m + static_cast<double>(bup[u]);
      for (int64_t i = 0; i < I; ++i)
        q.o[b * I + i] = static_cast<float>(base_u + static_cast<double>(bip[i]) + (den[i] > 0 ? num[i] / den[i] : 0.0));
    }
  });
}

}  // namespace

void KNNImpl::check_ranges(const at::Tensor& users, const at::Tensor* items) const {
  if (users.numel() == 0) return;
  TORCH_CHECK(users.min().item<int64_t>() >= 0 && users.max().item<int64_t>() < n_users_, name(),
              ": user index out of range [0, ", n_users_, ")");
  if (items)
    TORCH_CHECK(items->min().item<int64_t>() >= 0 && items->max().item<int64_t>() < n_items_, name(),
                ": item index out of range [0, ", n_items_, ")");
}

at::Tensor KNNImpl::score(const at::Tensor& users_in, const at::Tensor& items_in) {
  const auto users = users_in.to(torch::kCPU, torch::kLong).contiguous();
  const auto items = items_in.to(torch::kCPU, torch::kLong).contiguous();
  TORCH_CHECK(users.dim() == 1 && items.sizes() == users.sizes(), name(), ": score needs users [B] and items [B]");
  check_ranges(users, &items);
  auto out = torch::empty({users.size(0)}, torch::kFloat);
  const TrainPairs tp(train_keys, train_indptr, n_items_);
  const ScoreBatch q{users.size(0), users.data_ptr<int64_t>(), items.data_ptr<int64_t>(), out.data_ptr<float>()};
  if (rating_) rating_pairs(*this, tp, q, k_);
  else ranking_pairs(*this, tp, q);
  return out.to(train_keys.device());
}

bool KNNImpl::folds_in() const {
  if (rating_) return false;
  return item_based_ || (options.prune() == "row" && !similarity_->needs_ratings(false));
}

std::vector<std::pair<float, int64_t>> KNNImpl::history_neighbours(const at::Tensor& items_in) const {
  const at::Tensor keys_t = on_cpu(train_keys), ptr_t = on_cpu(train_indptr);
  const int64_t* keys = keys_t.data_ptr<int64_t>();
  const int64_t* ptr = ptr_t.data_ptr<int64_t>();
  const int64_t U = n_users_, I = n_items_, nnz = ptr[U];
  // The history as fit() would list a user: distinct items, ascending.
  const auto sorted = std::get<0>(torch::_unique(items_in.to(torch::kCPU, torch::kLong), /*sorted=*/true));
  std::vector<int64_t> hist(sorted.data_ptr<int64_t>(), sorted.data_ptr<int64_t>() + sorted.numel());
  // Entries: 1, or the item's idf log(U / df) over the training users.
  std::vector<double> idf;
  if (options.idf()) {
    std::vector<int64_t> df(static_cast<size_t>(I), 0);
    for (int64_t p = 0; p < nnz; ++p) ++df[static_cast<size_t>(keys[p] % I)];
    idf.resize(static_cast<size_t>(I));
    for (int64_t i = 0; i < I; ++i) idf[i] = df[i] > 0 ? std::log(static_cast<double>(U) / static_cast<double>(df[i])) : 0.0;
  }
  auto entry = [&](int64_t i) { return idf.empty() ? 1.0 : idf[static_cast<size_t>(i)]; };
  // The training users of each item, ascending (fit()'s by-item lists).
  std::vector<int64_t> col_ptr(static_cast<size_t>(I) + 1, 0), col_user(static_cast<size_t>(nnz));
  for (int64_t p = 0; p < nnz; ++p) ++col_ptr[static_cast<size_t>(keys[p] % I) + 1];
  for (int64_t i = 0; i < I; ++i) col_ptr[i + 1] += col_ptr[i];
  {
    std::vector<int64_t> next(col_ptr.begin(), col_ptr.end() - 1);
    for (int64_t u = 0; u < U; ++u)
      for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) col_user[static_cast<size_t>(next[keys[p] - u * I]++)] = u;
  }
  // Facts of the history and of every training user, as entity_facts() computes them.
  KNNEntity h;
  {
    double sq = 0;
    for (int64_t i : hist) sq += entry(i) * entry(i);
    h.count = static_cast<double>(hist.size());
    h.norm = std::sqrt(sq);
  }
  std::vector<KNNEntity> ent(static_cast<size_t>(U));
  for (int64_t u = 0; u < U; ++u) {
    double sq = 0;
    for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) sq += entry(keys[p] - u * I) * entry(keys[p] - u * I);
    ent[u].count = static_cast<double>(ptr[u + 1] - ptr[u]);
    ent[u].norm = std::sqrt(sq);
  }
  // Co-rater sums in fit()'s order: the history's items ascending, each item's users ascending.
  std::vector<KNNCoSums> sums(static_cast<size_t>(U));
  for (int64_t y : hist) {
    const double va = entry(y);
    for (int64_t q = col_ptr[y]; q < col_ptr[y + 1]; ++q) {
      KNNCoSums& s = sums[static_cast<size_t>(col_user[q])];
      const double vb = va;  // binary entries: the same item's entry on both sides
      s.n += 1;
      s.ab += va * vb;
      s.aa += va * va;
      s.bb += vb * vb;
      s.a += va;
      s.b += vb;
    }
  }
  std::vector<std::pair<float, int64_t>> cand;
  const double n_hist = static_cast<double>(hist.size());
  for (int64_t v = 0; v < U; ++v) {
    const KNNCoSums& s = sums[static_cast<size_t>(v)];
    if (s.n == 0) continue;
    if (s.n == n_hist && ent[v].count == n_hist) continue;  // the same items: the same user
    const double val = similarity_->value(s, h, ent[v]) * (s.n / (s.n + options.shrinkage()));
    const float f = static_cast<float>(val);
    if (val != 0.0 && f != 0.0f) cand.emplace_back(f, v);
  }
  const auto cmp = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) { return better(a, b); };
  const auto m = std::min<int64_t>(k_, static_cast<int64_t>(cand.size()));
  std::partial_sort(cand.begin(), cand.begin() + m, cand.end(), cmp);
  cand.resize(static_cast<size_t>(m));
  return cand;
}

at::Tensor KNNImpl::score_fold_in(const at::Tensor& items) {
  TORCH_CHECK(folds_in(), "model '", name(), "' cannot fold in a new user's history (",
              item_based_ || rating_ ? "rating mode: a history carries no ratings"
              : options.prune() == "column"
                  ? "model.prune column: a new user would change the training users' own neighbour lists"
                  : "its similarity '" + options.similarity() + "' compares ratings, which a history does not carry",
              ")");
  torch::NoGradGuard no_grad;
  if (!item_based_) {
    // Each neighbour adds its similarity to its items (user_ranking_all's sum, in the same order).
    const at::Tensor keys_t = on_cpu(train_keys), ptr_t = on_cpu(train_indptr);
    const int64_t* keys = keys_t.data_ptr<int64_t>();
    const int64_t* ptr = ptr_t.data_ptr<int64_t>();
    std::vector<double> acc(static_cast<size_t>(n_items_), 0.0);
    for (const auto& [s, v] : history_neighbours(items))
      for (int64_t p = ptr[v]; p < ptr[v + 1]; ++p) acc[static_cast<size_t>(keys[p] - v * n_items_)] += s;
    return torch::tensor(acc, torch::kDouble).to(torch::kFloat).to(train_keys.device());
  }
  const auto dev = train_keys.device();
  auto x = torch::zeros({n_items_}, torch::TensorOptions().dtype(torch::kDouble).device(dev));
  x.index_fill_(0, items.to(dev, torch::kLong), 1.0);
  if (options.prune() == "column") {
    // Item j of the history adds s_ji to every i in j's k-list.
    const auto owner = torch::repeat_interleave(torch::arange(n_items_, x.options().dtype(torch::kLong)),
                                                nbr_ptr.slice(0, 1) - nbr_ptr.slice(0, 0, -1));
    return torch::zeros_like(x).index_add_(0, owner, x.index_select(0, nbr_list) * nbr_weight.to(torch::kDouble)).to(torch::kFloat);
  }
  // Item i sums s_ij over its k neighbours j that are in the history.
  const int64_t k = nbr_index.size(1);
  return (x.index_select(0, nbr_index.reshape({-1})).view({n_items_, k}) * nbr_sim.to(torch::kDouble)).sum(1).to(torch::kFloat);
}

std::pair<at::Tensor, at::Tensor> KNNImpl::explain(const at::Tensor& items, int64_t item) {
  if (!folds_in()) return RecommenderImpl::explain(items, item);
  torch::NoGradGuard no_grad;
  if (!item_based_) {
    // The history's neighbours that have `item`, with their similarities.
    const at::Tensor keys_t = on_cpu(train_keys), ptr_t = on_cpu(train_indptr);
    const int64_t* keys = keys_t.data_ptr<int64_t>();
    const int64_t* ptr = ptr_t.data_ptr<int64_t>();
    std::vector<int64_t> who;
    std::vector<double> w;
    for (const auto& [s, v] : history_neighbours(items)) {
      const int64_t key = v * n_items_ + item;
      if (std::binary_search(keys + ptr[v], keys + ptr[v + 1], key)) {
        who.push_back(v);
        w.push_back(s);
      }
    }
    return {torch::tensor(who, torch::kLong), torch::tensor(w, torch::kDouble)};
  }
  const auto idx = items.to(torch::kCPU, torch::kLong);
  auto x = torch::zeros({n_items_}, torch::kBool).index_fill_(0, idx, true);  // the history
  if (options.prune() == "column") {
    // `item`'s segment of the transposed lists: the items j whose k-list holds it, with s_ji.
    const auto ptr = nbr_ptr.to(torch::kCPU);
    const int64_t b = ptr[item].item<int64_t>(), e = ptr[item + 1].item<int64_t>();
    const auto seg = nbr_list.to(torch::kCPU).slice(0, b, e), w = nbr_weight.to(torch::kCPU).slice(0, b, e);
    const auto hit = torch::nonzero(x.index_select(0, seg)).reshape({-1});
    return {seg.index_select(0, hit), w.index_select(0, hit).to(torch::kDouble)};
  }
  // Row pruning: `item`'s k neighbours that are in the history.
  const auto nb = nbr_index.to(torch::kCPU)[item], w = nbr_sim.to(torch::kCPU)[item];  // [k]
  const auto hit = torch::nonzero(x.index_select(0, nb)).reshape({-1});
  return {nb.index_select(0, hit), w.index_select(0, hit).to(torch::kDouble)};
}

at::Tensor KNNImpl::score_all(const at::Tensor& users_in) {
  const auto users = users_in.to(torch::kCPU, torch::kLong).contiguous();
  TORCH_CHECK(users.dim() == 1, name(), ": score_all needs users [B]");
  check_ranges(users, nullptr);
  auto out = torch::empty({users.size(0), n_items_}, torch::kFloat);  // fresh: callers mask it in place
  const TrainPairs tp(train_keys, train_indptr, n_items_);
  const ScoreBatch q{users.size(0), users.data_ptr<int64_t>(), nullptr, out.data_ptr<float>()};
  if (!rating_) {
    const NbrLists L(nbr_index, nbr_sim, nbr_ptr, nbr_list, nbr_weight);
    if (item_based_) item_ranking_all(L, tp, q);
    else user_ranking_all(L, tp, q);
  } else {
    const RatingState rs(sim, train_resid, mu, bu, bi);
    if (item_based_) item_rating_all(rs, tp, q, k_);
    else user_rating_all(rs, tp, q, n_users_, k_);
  }
  return out.to(train_keys.device());
}

}  // namespace rzoo
