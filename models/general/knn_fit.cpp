// ItemKNN / UserKNN fitting: Sarwar et al., WWW 2001; Herlocker et al., SIGIR 1999; Koren,
// "Factor in the Neighbors", TKDD 2010 (baselines, Pearson on baseline residuals); Surprise's
// baseline_als (Hug, JOSS 2020). See knn.h.
// fit(): index the training pairs, average their ratings, fit the baseline, turn the pairs into
// the similarity's entries, then keep the k-lists (ranking) or the dense similarity and the
// residuals (rating).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "core/distributed.h"
#include "datasets/dataset.h"
#include "models/general/knn.h"
#include "models/general/knn_internal.h"

namespace rzoo {

using namespace knn_detail;

namespace {

// The training pairs and their ratings, as fit() prepares them.
struct FitData {
  int64_t U = 0, I = 0, nnz = 0;
  // Training pairs in CSR order (position p), and grouped by item (users ascending): keys[p] =
  // u * I + i then the sentinel U * I, pos_user[p] = u, item i's positions at
  // col_pos[col_ptr[i] .. col_ptr[i + 1]).
  std::vector<int64_t> keys, pos_user, col_ptr, col_pos;
  std::vector<double> r;  // rating per position (the mean of repeated rows); empty when unused
  double global_mean = 0;
  std::vector<double> als_bu, als_bi;  // ALS baselines; empty when unused

  // Means of each user's or each item's ratings (the global mean for those without).
  std::vector<double> means(const Csr& train, bool of_items) const {
    std::vector<double> sum(static_cast<size_t>(of_items ? I : U), 0.0), cnt(sum.size(), 0.0);
    for (int64_t p = 0; p < nnz; ++p) {
      const int64_t o = of_items ? train.indices[p] : pos_user[p];
      sum[o] += r[p];
      cnt[o] += 1;
    }
    for (size_t o = 0; o < sum.size(); ++o) sum[o] = cnt[o] > 0 ? sum[o] / cnt[o] : global_mean;
    return sum;
  }
};

void index_pairs(const Csr& train, FitData& f) {
  const int64_t U = f.U, I = f.I, nnz = f.nnz;
  f.keys.assign(static_cast<size_t>(nnz) + 1, 0);
  f.pos_user.assign(static_cast<size_t>(nnz), 0);
  for (int64_t u = 0; u < U; ++u)
    for (int64_t p = train.indptr[u]; p < train.indptr[u + 1]; ++p) {
      f.keys[p] = u * I + train.indices[p];
      f.pos_user[p] = u;
    }
  f.keys[nnz] = U * I;
  f.col_ptr.assign(static_cast<size_t>(I) + 1, 0);
  f.col_pos.assign(static_cast<size_t>(nnz), 0);
  for (int64_t i : train.indices) ++f.col_ptr[i + 1];
  for (int64_t i = 0; i < I; ++i) f.col_ptr[i + 1] += f.col_ptr[i];
  std::vector<int64_t> next(f.col_ptr.begin(), f.col_ptr.end() - 1);
  for (int64_t p = 0; p < nnz; ++p) f.col_pos[next[train.indices[p]]++] = p;
}

// Ratings per training pair (the mean of repeated rows) and their global mean.
void average_ratings(const std::string& nm, const Csr& train, const Dataset& d, const std::vector<int64_t>& rows,
                     FitData& f) {
  const int64_t nnz = f.nnz;
  f.r.assign(static_cast<size_t>(nnz), 0.0);
  std::vector<int32_t> cnt(static_cast<size_t>(nnz), 0);
  for (int64_t row : rows) {
    const int64_t u = d.user[static_cast<size_t>(row)], i = d.item[static_cast<size_t>(row)];
    const Csr::Index* e = train.row_end(u);
    const Csr::Index* it = std::lower_bound(train.row_begin(u), e, i);
    TORCH_CHECK(it != e && *it == i, nm, ": training row ", row, " (user ", u, ", item ", i,
                ") is not in the training matrix");
    const int64_t p = it - train.indices.data();
    f.r[p] += d.rating[static_cast<size_t>(row)];
    ++cnt[p];
  }
  for (int64_t p = 0; p < nnz; ++p) {
    TORCH_CHECK(cnt[p] > 0, nm, ": training pair (user ", f.pos_user[p], ", item ", train.indices[p], ") has no rating");
    f.r[p] /= cnt[p];
    f.global_mean += f.r[p];
  }
  if (nnz > 0) f.global_mean /= static_cast<double>(nnz);
}

// ALS (Surprise's baseline_als): items, then users, each epoch.
void als_baseline(const Csr& train, const KNNOptions& o, FitData& f) {
  auto& bu = f.als_bu;
  auto& bi = f.als_bi;
  bu.assign(static_cast<size_t>(f.U), 0.0);
  bi.assign(static_cast<size_t>(f.I), 0.0);
  const double mu = f.global_mean;
  for (int64_t e = 0; e < o.baseline_epochs(); ++e) {
    for (int64_t i = 0; i < f.I; ++i) {
      double dev = 0;
      for (int64_t q = f.col_ptr[i]; q < f.col_ptr[i + 1]; ++q) dev += f.r[f.col_pos[q]] - mu - bu[f.pos_user[f.col_pos[q]]];
      const double den = o.baseline_reg_item() + static_cast<double>(f.col_ptr[i + 1] - f.col_ptr[i]);
      bi[i] = den > 0 ? dev / den : 0.0;
    }
    for (int64_t u = 0; u < f.U; ++u) {
      double dev = 0;
      for (int64_t p = train.indptr[u]; p < train.indptr[u + 1]; ++p) dev += f.r[p] - mu - bi[train.indices[p]];
      const double den = o.baseline_reg_user() + static_cast<double>(train.row_size(u));
      bu[u] = den > 0 ? dev / den : 0.0;
    }
  }
}

// TF-IDF feature weighting (as in Dacrema et al.'s KNN baselines): an entry counts log(N / df)
// of the other dimension's entity, so a co-occurrence through a popular item (UserKNN) or a
// heavy user (ItemKNN) weighs less.
void idf_entries(const Csr& train, const FitData& f, bool item_based, std::vector<double>& val) {
  const int64_t n_other = item_based ? f.U : f.I;
  std::vector<int64_t> df(static_cast<size_t>(n_other), 0);
  for (int64_t p = 0; p < f.nnz; ++p) ++df[static_cast<size_t>(item_based ? f.pos_user[p] : train.indices[p])];
  for (int64_t p = 0; p < f.nnz; ++p) {
    const auto o = static_cast<size_t>(item_based ? f.pos_user[p] : train.indices[p]);
    val[p] = std::log(static_cast<double>(item_based ? f.I : f.U) / static_cast<double>(df[o]));
  }
}

// The entities' entries per training pair, by the similarity's input.
std::vector<double> entries(KNNSimilarity::Input input, const Csr& train, const FitData& f, bool item_based, bool idf) {
  using Input = KNNSimilarity::Input;
  std::vector<double> val(static_cast<size_t>(f.nnz), 1.0);
  switch (input) {
    case Input::Binary:
      if (idf) idf_entries(train, f, item_based, val);
      break;
    case Input::Rating: val = f.r; break;
    case Input::CentredByOther: {
      const std::vector<double> m = f.means(train, !item_based);  // ItemKNN: user means; UserKNN: item means
      for (int64_t p = 0; p < f.nnz; ++p) val[p] = f.r[p] - m[item_based ? f.pos_user[p] : train.indices[p]];
      break;
    }
    case Input::BaselineResidual:
      for (int64_t p = 0; p < f.nnz; ++p)
        val[p] = f.r[p] - (f.global_mean + f.als_bu[f.pos_user[p]] + f.als_bi[train.indices[p]]);
      break;
  }
  return val;
}

// by_user: user -> (item, value); by_item: item -> (user, value).
void build_lists(const Csr& train, const FitData& f, const std::vector<double>& val, Lists& by_user, Lists& by_item) {
  by_user.ptr = train.indptr;
  by_user.id.assign(train.indices.begin(), train.indices.end());
  by_user.val = val;
  by_item.ptr = f.col_ptr;
  by_item.id.resize(static_cast<size_t>(f.nnz));
  by_item.val.resize(static_cast<size_t>(f.nnz));
  for (int64_t q = 0; q < f.nnz; ++q) {
    by_item.id[q] = f.pos_user[f.col_pos[q]];
    by_item.val[q] = val[f.col_pos[q]];
  }
}

std::vector<KNNEntity> entity_facts(const Lists& X, int64_t n) {
  std::vector<KNNEntity> ent(static_cast<size_t>(n));
  for (int64_t x = 0; x < n; ++x) {
    double sq = 0;
    for (int64_t q = X.ptr[x]; q < X.ptr[x + 1]; ++q) sq += X.val[q] * X.val[q];
    ent[x].count = static_cast<double>(X.ptr[x + 1] - X.ptr[x]);
    ent[x].norm = std::sqrt(sq);
  }
  return ent;
}

// A distributed fit (core/distributed.h): this rank's block of the rows, the others' summed in
// from zero-filled copies (exact: x + 0 = x), so that every rank holds one process's model.
std::pair<int64_t, int64_t> my_rows(int64_t n) {
  const Distributed* d = Distributed::get();
  return d ? rank_block(n, d->rank(), d->world()) : std::pair<int64_t, int64_t>{0, n};
}

void share_rows(std::vector<at::Tensor> ts) {
  if (Distributed* d = Distributed::get()) d->allreduce_sum(ts, "knn: the exchange of the similarity rows");
}

void save_neighbours(KNNImpl& m, const at::Tensor& idx, const at::Tensor& val_t);

// Ranking: the k most similar of each entity (and, for prune column, the transposed lists).
void store_neighbours(KNNImpl& m, const SimilarityInput& in, int64_t n, int64_t k) {
  auto idx = torch::zeros({n, k}, torch::kLong);
  auto val_t = torch::zeros({n, k});
  int64_t* ip = idx.data_ptr<int64_t>();
  float* vp = val_t.data_ptr<float>();
  const auto [lo, hi] = my_rows(n);
  top_k_neighbours(in, n, k, ip, vp, lo, hi);
  share_rows({idx, val_t});
  save_neighbours(m, idx, val_t);
}

void save_neighbours(KNNImpl& m, const at::Tensor& idx, const at::Tensor& val_t) {
  const int64_t n = idx.size(0), k = idx.size(1);
  const int64_t* ip = idx.data_ptr<int64_t>();
  const float* vp = val_t.data_ptr<float>();
  m.nbr_index.copy_(idx);
  m.nbr_sim.copy_(val_t);
  if (m.options.prune() == "column") {
    TransposedLists T = transpose_neighbours(ip, vp, n, k);
    m.nbr_ptr.copy_(long_tensor(T.ptr));
    m.nbr_list.copy_(long_tensor(T.list));
    m.nbr_weight.copy_(torch::from_blob(T.weight.data(), {n * k}, torch::kFloat));
  }
}

// Rating: the dense similarity, row by row (written straight into the buffer when it is on the CPU).
void store_similarity(KNNImpl& m, const SimilarityInput& in, int64_t n) {
  auto S = m.sim.device().is_cpu() ? m.sim : torch::zeros({n, n});
  S.zero_();
  const auto [lo, hi] = my_rows(n);
  dense_similarity(in, n, S.data_ptr<float>(), lo, hi);
  share_rows({S});
  if (!S.is_same(m.sim)) m.sim.copy_(S);
}

// b_ui = mu + bu[u] + bi[i], stored in float; residuals from the stored values so that every
// prediction path sees the same numbers.
void store_rating_state(KNNImpl& m, const Csr& train, const FitData& f) {
  const int64_t U = f.U, I = f.I, nnz = f.nnz;
  std::vector<float> fbu(static_cast<size_t>(U), 0.0f), fbi(static_cast<size_t>(I), 0.0f);
  float fmu = 0.0f;
  if (m.options.baseline() == "als") {
    fmu = static_cast<float>(f.global_mean);
    for (int64_t u = 0; u < U; ++u) fbu[u] = static_cast<float>(f.als_bu[u]);
    for (int64_t i = 0; i < I; ++i) fbi[i] = static_cast<float>(f.als_bi[i]);
  } else if (m.item_based()) {
    const auto mi = f.means(train, true);
    for (int64_t i = 0; i < I; ++i) fbi[i] = static_cast<float>(mi[i]);
  } else {
    const auto mu = f.means(train, false);
    for (int64_t u = 0; u < U; ++u) fbu[u] = static_cast<float>(mu[u]);
  }
  auto resid = torch::zeros({nnz + 1});
  float* rp = resid.data_ptr<float>();
  for (int64_t p = 0; p < nnz; ++p)
    rp[p] = static_cast<float>(f.r[p] - (static_cast<double>(fmu) + fbu[f.pos_user[p]] + fbi[train.indices[p]]));
  m.train_resid.copy_(resid);
  m.mu.fill_(fmu);
  m.bu.copy_(torch::from_blob(fbu.data(), {U}, torch::kFloat));
  m.bi.copy_(torch::from_blob(fbi.data(), {I}, torch::kFloat));
  if (!m.item_based()) {
    m.item_indptr.copy_(long_tensor(f.col_ptr));
    m.item_order.copy_(long_tensor(f.col_pos));
  }
}

}  // namespace

void KNNImpl::fit(const Csr& train) {
  const std::string nm = name();
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, nm, ": training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  FitData f;
  f.U = n_users_, f.I = n_items_, f.nnz = train.nnz();
  if (split_) {
    TORCH_CHECK(f.nnz == split_->train.nnz(), nm, ": the training matrix has ", f.nnz,
                " interactions, the model was built for its split's ", split_->train.nnz());
  } else if (train_keys.size(0) != f.nnz + 1) {
    resize_storage(f.nnz);
  }
  torch::NoGradGuard no_grad;

  index_pairs(train, f);
  const KNNSimilarity::Input input = similarity_->input(rating_);
  if (rating_ || similarity_->needs_ratings(rating_)) {
    TORCH_CHECK(data_ && split_, nm, ": needs the training ratings");
    average_ratings(nm, train, *data_, split_->train_rows, f);
  }
  if ((rating_ && options.baseline() == "als") || input == KNNSimilarity::Input::BaselineResidual)
    als_baseline(train, options, f);

  // X = the entities' lists, Y = the other dimension's.
  Lists by_user, by_item;
  build_lists(train, f, entries(input, train, f, item_based_, options.idf()), by_user, by_item);
  const Lists& X = item_based_ ? by_item : by_user;
  const Lists& Y = item_based_ ? by_user : by_item;
  const int64_t n = n_entities();
  const std::vector<KNNEntity> ent = entity_facts(X, n);
  const SimilarityInput in{X, Y, ent, *similarity_, options.shrinkage()};
  if (rating_) store_similarity(*this, in, n);
  else store_neighbours(*this, in, n, k_);

  train_keys.copy_(long_tensor(f.keys));
  train_indptr.copy_(long_tensor(train.indptr));
  if (rating_) store_rating_state(*this, train, f);
}

}  // namespace rzoo

namespace rzoo {

using namespace knn_detail;

UpdateResult KNNImpl::fit_update(const ParentFit& parent, const Csr& train) {
  using Input = KNNSimilarity::Input;
  const std::string nm = name();
  if (rating_) return {false, "rating mode keeps the dense similarity and the baselines, which every new rating moves"};
  const Input input = similarity_->input(false);
  if (input == Input::BaselineResidual)
    return {false, "pearson_baseline centres every entry by global ALS baselines, which every new rating moves"};
  const Csr& before = *parent.train;
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_ && before.n_rows == n_users_ &&
              before.n_cols == n_items_, nm, ": update matrices of another shape");
  const int64_t U0 = parent.n_users, I0 = parent.n_items, n = n_entities(), n0 = item_based_ ? I0 : U0;
  const at::Tensor pidx = parent.tensor("nbr_index"), psim = parent.tensor("nbr_sim"), pkeys = parent.tensor("train_keys");
  if (!pidx.defined() || !psim.defined() || !pkeys.defined() || pidx.dim() != 2 || pidx.size(0) != n0 ||
      pidx.size(1) != k_ || psim.sizes() != pidx.sizes() || pidx.scalar_type() != torch::kLong ||
      psim.scalar_type() != torch::kFloat || pkeys.scalar_type() != torch::kLong)
    return {false, fmt::format("the parent's checkpoint has no k-lists of {} neighbours for its {} {}", k_, n0,
                               item_based_ ? "items" : "users")};
  // The parent's pairs in its own shape, and its entries as its fit made them (idf counts its
  // number of users or items).
  Csr old;
  old.n_rows = U0;
  old.n_cols = I0;
  old.indptr.assign(before.indptr.begin(), before.indptr.begin() + U0 + 1);
  old.indices = before.indices;
  if (old.indptr.back() != before.nnz() ||
      std::any_of(old.indices.begin(), old.indices.end(), [&](int64_t i) { return i >= I0; }))
    return {false, "the parent's training pairs are not within its users and items"};
  FitData fo;
  fo.U = U0, fo.I = I0, fo.nnz = old.nnz();
  index_pairs(old, fo);
  {
    const auto keys = pkeys.contiguous();
    if (keys.numel() != fo.nnz + 1 || !std::equal(fo.keys.begin(), fo.keys.end(), keys.data_ptr<int64_t>()))
      return {false, "the parent's training pairs are not those of its split"};
  }
  const bool ratings = similarity_->needs_ratings(false);
  if (ratings) {
    TORCH_CHECK(data_ && split_, nm, ": needs the training ratings");
    average_ratings(nm, old, *data_, *parent.train_rows, fo);
  }
  Lists ou, oi;
  build_lists(old, fo, entries(input, old, fo, item_based_, options.idf()), ou, oi);
  FitData f;
  f.U = n_users_, f.I = n_items_, f.nnz = train.nnz();
  index_pairs(train, f);
  if (ratings) average_ratings(nm, train, *data_, split_->train_rows, f);
  Lists by_user, by_item;
  build_lists(train, f, entries(input, train, f, item_based_, options.idf()), by_user, by_item);
  const Lists& X = item_based_ ? by_item : by_user;
  const Lists& Y = item_based_ ? by_user : by_item;
  const Lists& X0 = item_based_ ? oi : ou;
  const Lists& Y0 = item_based_ ? ou : oi;
  const std::vector<KNNEntity> ent = entity_facts(X, n), ent0 = entity_facts(X0, n0);
  const SimilarityInput in{X, Y, ent, *similarity_, options.shrinkage()};
  if (unit_values(in) != unit_values(SimilarityInput{X0, Y0, ent0, *similarity_, options.shrinkage()}))
    return {false, "the entries changed from all ones to some other value, which sums the rows another way"};

  // Entities whose entries changed (all new ones), then every entity sharing one of their
  // interactions, before or after: the rows whose similarities may differ.
  std::vector<char> changed(static_cast<size_t>(n), 0), affected(static_cast<size_t>(n), 0);
  for (int64_t x = 0; x < n; ++x) {
    if (x >= n0) {
      changed[x] = 1;
      continue;
    }
    const int64_t a = X.ptr[x], b = X.ptr[x + 1], a0 = X0.ptr[x], b0 = X0.ptr[x + 1];
    changed[x] = b - a != b0 - a0 || !std::equal(X.id.begin() + a, X.id.begin() + b, X0.id.begin() + a0) ||
                 !std::equal(X.val.begin() + a, X.val.begin() + b, X0.val.begin() + a0);
  }
  const auto spread = [&](const Lists& L, const Lists& M, int64_t x) {
    for (int64_t q = L.ptr[x]; q < L.ptr[x + 1]; ++q)
      for (int64_t t = M.ptr[L.id[q]]; t < M.ptr[L.id[q] + 1]; ++t) affected[M.id[t]] = 1;
  };
  int64_t n_changed = 0;
  for (int64_t x = 0; x < n; ++x) {
    if (!changed[x]) continue;
    ++n_changed;
    affected[x] = 1;
    spread(X, Y, x);
    if (x < n0) spread(X0, Y0, x);
  }
  std::vector<int64_t> rows;
  for (int64_t x = 0; x < n; ++x)
    if (affected[x]) rows.push_back(x);

  torch::NoGradGuard no_grad;
  auto idx = torch::zeros({n, k_}, torch::kLong);
  auto val_t = torch::zeros({n, k_});
  idx.narrow(0, 0, n0).copy_(pidx);
  val_t.narrow(0, 0, n0).copy_(psim);
  top_k_neighbours_rows(in, n, k_, idx.data_ptr<int64_t>(), val_t.data_ptr<float>(), rows);
  save_neighbours(*this, idx, val_t);
  train_keys.copy_(long_tensor(f.keys));
  train_indptr.copy_(long_tensor(train.indptr));
  const char* ent_name = item_based_ ? "items" : "users";
  return {true, fmt::format("the k-lists of {} of the {} {} recomputed ({} whose entries changed and those sharing an "
                            "interaction with them), the other {} the parent's", rows.size(), n, ent_name, n_changed,
                            n - static_cast<int64_t>(rows.size()))};
}

}  // namespace rzoo
