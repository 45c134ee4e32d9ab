// ItemKNN / UserKNN: Sarwar et al., "Item-Based Collaborative Filtering Recommendation
// Algorithms", WWW 2001; Herlocker et al., "An Algorithmic Framework for Performing Collaborative
// Filtering", SIGIR 1999; Koren, "Factor in the Neighbors", TKDD 2010. See knn.h.
#include "models/general/knn.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>
#include <vector>

#include "core/config.h"
#include "datasets/dataset.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// Similarity policies

namespace {

double clamp1(double s) { return std::max(-1.0, std::min(1.0, s)); }

class CosineSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "cosine"; }
  Input input(bool rating_mode) const override { return rating_mode ? Input::Rating : Input::Binary; }
  Sums sums() const override { return Sums::Dot; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = x.norm * y.norm;
    return den > 0 ? clamp1(s.ab / den) : 0.0;
  }
};

// Aiolli's asymmetric cosine: ab / (|x|^(2 alpha) |y|^(2 (1 - alpha))) with |.| the vector norms,
// x the entity whose neighbours are chosen; alpha = 0.5 is the cosine. (Aiolli, "Efficient top-N
// recommendation for very large scale binary rated datasets", RecSys 2013.)
class AsymmetricCosineSimilarity final : public KNNSimilarity {
 public:
  explicit AsymmetricCosineSimilarity(double alpha) : alpha_(alpha) {}
  const char* name() const override { return "asymmetric_cosine"; }
  Input input(bool rating_mode) const override { return rating_mode ? Input::Rating : Input::Binary; }
  Sums sums() const override { return Sums::Dot; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = std::pow(x.norm, 2 * alpha_) * std::pow(y.norm, 2 * (1 - alpha_));
    return den > 0 ? s.ab / den : 0.0;
  }

 private:
  double alpha_;
};

class JaccardSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "jaccard"; }
  Input input(bool) const override { return Input::Binary; }
  Sums sums() const override { return Sums::Count; }
  double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const override {
    const double den = x.count + y.count - s.n;
    return den > 0 ? s.n / den : 0.0;
  }
};

// sum_C a b / sqrt(sum_C a^2 sum_C b^2) over the co-raters C, on entries centred beforehand
// (adjusted cosine: by the other dimension's mean; pearson_baseline: by the baseline).
class CoNormSimilarity final : public KNNSimilarity {
 public:
  CoNormSimilarity(const char* name, Input input) : name_(name), input_(input) {}
  const char* name() const override { return name_; }
  Input input(bool) const override { return input_; }
  Sums sums() const override { return Sums::CoNorms; }
  double value(const KNNCoSums& s, const KNNEntity&, const KNNEntity&) const override {
    const double den = s.aa * s.bb;
    return den > 0 ? clamp1(s.ab / std::sqrt(den)) : 0.0;
  }

 private:
  const char* name_;
  Input input_;
};

class PearsonSimilarity final : public KNNSimilarity {
 public:
  const char* name() const override { return "pearson"; }
  Input input(bool) const override { return Input::Rating; }
  Sums sums() const override { return Sums::Pearson; }
  double value(const KNNCoSums& s, const KNNEntity&, const KNNEntity&) const override {
    const double num = s.n * s.ab - s.a * s.b;
    const double den = (s.n * s.aa - s.a * s.a) * (s.n * s.bb - s.b * s.b);
    return den > 0 ? clamp1(num / std::sqrt(den)) : 0.0;
  }
};

}  // namespace

const std::vector<std::string>& knn_similarity_names() {
  static const std::vector<std::string> names = {"cosine", "adjusted_cosine", "pearson", "pearson_baseline", "jaccard",
                                                 "asymmetric_cosine"};
  return names;
}

std::shared_ptr<const KNNSimilarity> make_knn_similarity(const std::string& name, double asymmetric_alpha) {
  using Input = KNNSimilarity::Input;
  if (name == "cosine") return std::make_shared<CosineSimilarity>();
  if (name == "asymmetric_cosine") return std::make_shared<AsymmetricCosineSimilarity>(asymmetric_alpha);
  if (name == "adjusted_cosine") return std::make_shared<CoNormSimilarity>("adjusted_cosine", Input::CentredByOther);
  if (name == "pearson") return std::make_shared<PearsonSimilarity>();
  if (name == "pearson_baseline") return std::make_shared<CoNormSimilarity>("pearson_baseline", Input::BaselineResidual);
  if (name == "jaccard") return std::make_shared<JaccardSimilarity>();
  std::string known;
  for (const auto& n : knn_similarity_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "model.similarity: unknown similarity '", name, "' (known: ", known, ")");
}

// ---------------------------------------------------------------------------------------------
// Options and construction

KNNOptions KNNOptions::from_config(const Config* cfg, KNNOptions o) {
  if (!cfg) return o;
  o.similarity(cfg->get_choice("model.similarity", knn_similarity_names()));
  o.shrinkage(cfg->get_double("model.shrinkage", 0.0));
  o.neighbors(cfg->get_int("model.neighbors", 1));
  o.mode(cfg->get_choice("model.mode", {"ranking", "rating"}));
  o.baseline(cfg->get_choice("model.baseline", {"mean", "als"}));
  o.baseline_reg_user(cfg->get_double("model.baseline_reg_user", 0.0));
  o.baseline_reg_item(cfg->get_double("model.baseline_reg_item", 0.0));
  o.baseline_epochs(cfg->get_int("model.baseline_epochs", 0));
  o.idf(cfg->get_bool("model.idf"));
  o.asymmetric_alpha(cfg->get_double("model.asymmetric_alpha", 0.0, 1.0));
  o.prune(cfg->get_choice("model.prune", {"row", "column"}));
  return o;
}

KNNImpl::KNNImpl(std::string name, const ModelContext& ctx, KNNOptions opts, bool item_based)
    : RecommenderImpl(std::move(name), ctx), options(std::move(opts)), item_based_(item_based) {
  const std::string nm = this->name();
  TORCH_CHECK(options.mode() == "ranking" || options.mode() == "rating", nm,
              ": model.mode must be 'ranking' or 'rating', got '", options.mode(), "'");
  TORCH_CHECK(options.baseline() == "mean" || options.baseline() == "als", nm,
              ": model.baseline must be 'mean' or 'als', got '", options.baseline(), "'");
  TORCH_CHECK(options.neighbors() >= 1, nm, ": model.neighbors must be >= 1, got ", options.neighbors());
  TORCH_CHECK(options.shrinkage() >= 0.0 && std::isfinite(options.shrinkage()), nm,
              ": model.shrinkage must be a finite number >= 0, got ", options.shrinkage());
  TORCH_CHECK(options.baseline_reg_user() >= 0.0, nm, ": model.baseline_reg_user must be >= 0, got ",
              options.baseline_reg_user());
  TORCH_CHECK(options.baseline_reg_item() >= 0.0, nm, ": model.baseline_reg_item must be >= 0, got ",
              options.baseline_reg_item());
  TORCH_CHECK(options.baseline_epochs() >= 0, nm, ": model.baseline_epochs must be >= 0, got ", options.baseline_epochs());
  rating_ = options.mode() == "rating";
  TORCH_CHECK(options.prune() == "row" || options.prune() == "column", nm,
              ": model.prune must be 'row' or 'column', got '", options.prune(), "'");
  TORCH_CHECK(!rating_ || options.prune() == "row", nm,
              ": model.prune 'column' applies to model.mode 'ranking' only (rating mode keeps the full similarity)");
  TORCH_CHECK(options.asymmetric_alpha() >= 0 && options.asymmetric_alpha() <= 1, nm,
              ": model.asymmetric_alpha must be in [0, 1], got ", options.asymmetric_alpha());
  similarity_ = make_knn_similarity(options.similarity(), options.asymmetric_alpha());

  if (rating_ || similarity_->needs_ratings(rating_)) {
    const std::string why = rating_ ? std::string("model.mode 'rating'") : "model.similarity '" + options.similarity() + "'";
    TORCH_CHECK(ctx.data && ctx.split, nm, ": ", why,
                " needs the training ratings, but the model was built without its dataset and split");
    TORCH_CHECK(ctx.data->has_ratings(), nm, ": ", why, " needs ratings, but the dataset '", ctx.data->name,
                "' has none (use model.mode: ranking with similarity cosine or jaccard)");
  }
  data_ = ctx.data;
  split_ = ctx.split;

  const int64_t n = n_entities();
  const int64_t nnz = ctx.split ? ctx.split->train.nnz() : 0;
  train_keys = register_buffer("train_keys", torch::full({nnz + 1}, n_users_ * n_items_, torch::kLong));
  train_indptr = register_buffer("train_indptr", torch::zeros({n_users_ + 1}, torch::kLong));
  if (rating_) {
    const double gib = 4.0 * static_cast<double>(n) * static_cast<double>(n) / (1024.0 * 1024.0 * 1024.0);
    TORCH_CHECK(gib <= 8.0, nm, ": model.mode 'rating' keeps the dense [", n, ", ", n, "] similarity (",
                fmt::format("{:.1f}", gib), " GiB), more than the 8 GiB allowed; use model.mode: ranking");
    k_ = options.neighbors();
    sim = register_buffer("sim", torch::zeros({n, n}));
    train_resid = register_buffer("train_resid", torch::zeros({nnz + 1}));
    mu = register_buffer("mu", torch::zeros({1}));
    bu = register_buffer("bu", torch::zeros({n_users_}));
    bi = register_buffer("bi", torch::zeros({n_items_}));
    if (!item_based_) {
      item_indptr = register_buffer("item_indptr", torch::zeros({n_items_ + 1}, torch::kLong));
      item_order = register_buffer("item_order", torch::zeros({nnz}, torch::kLong));
    }
  } else {
    k_ = std::min(options.neighbors(), std::max<int64_t>(n - 1, 1));
    // Unfilled slots hold the entity itself with similarity 0 (never a real neighbour).
    nbr_index = register_buffer("nbr_index", torch::arange(n, torch::kLong).unsqueeze(1).repeat({1, k_}).contiguous());
    nbr_sim = register_buffer("nbr_sim", torch::zeros({n, k_}));
    if (options.prune() == "column") {
      nbr_ptr = register_buffer("nbr_ptr", torch::arange(0, (n + 1) * k_, k_, torch::kLong));
      nbr_list = register_buffer("nbr_list", nbr_index.view(-1).clone());
      nbr_weight = register_buffer("nbr_weight", torch::zeros({n * k_}));
    }
  }
}

// Only for a model built without a split, whose nnz is unknown until fit(). In place: the
// members share their TensorImpl with the module's registered buffers.
void KNNImpl::resize_storage(int64_t nnz) {
  train_keys.resize_({nnz + 1});
  if (rating_) {
    train_resid.resize_({nnz + 1});
    if (!item_based_) item_order.resize_({nnz});
  }
}

ItemKNNImpl::ItemKNNImpl(const ModelContext& ctx) : ItemKNNImpl(ctx, KNNOptions::from_config(ctx.config, defaults())) {}
ItemKNNImpl::ItemKNNImpl(const ModelContext& ctx, KNNOptions options) : KNNImpl("itemknn", ctx, std::move(options), true) {}

UserKNNImpl::UserKNNImpl(const ModelContext& ctx) : UserKNNImpl(ctx, KNNOptions::from_config(ctx.config, defaults())) {}
UserKNNImpl::UserKNNImpl(const ModelContext& ctx, KNNOptions options) : KNNImpl("userknn", ctx, std::move(options), false) {}

// ---------------------------------------------------------------------------------------------
// Fitting

namespace {

// Each list owner's entries: ids (the other end) and values, owner o's at [ptr[o], ptr[o + 1]).
struct Lists {
  std::vector<int64_t> ptr, id;
  std::vector<double> val;
};

// Runs body(row) for every row in [0, n) on all threads, handing out rows in small blocks from
// a shared counter: rows cost very different amounts (popular items), so static chunks would
// leave threads idle. body gets a per-thread scratch object made by make_scratch().
template <class MakeScratch, class Body>
void parallel_rows(int64_t n, MakeScratch make_scratch, Body body) {
  std::atomic<int64_t> next{0};
  constexpr int64_t kBlock = 8;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (n + kBlock - 1) / kBlock));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      auto scratch = make_scratch();
      for (int64_t start; (start = next.fetch_add(kBlock)) < n;)
        for (int64_t r = start; r < std::min(n, start + kBlock); ++r) body(r, scratch);
    }
  });
}

// Per-thread accumulators of the co-rater sums, indexed by the other entity.
struct Accumulators {
  std::vector<int32_t> cnt;
  std::vector<double> ab, aa, bb, a, b;
  std::vector<std::pair<float, int64_t>> cand;
  Accumulators(int64_t n, KNNSimilarity::Sums sums) : cnt(static_cast<size_t>(n), 0) {
    using S = KNNSimilarity::Sums;
    const size_t m = static_cast<size_t>(n);
    if (sums != S::Count) ab.assign(m, 0.0);
    if (sums == S::CoNorms || sums == S::Pearson) {
      aa.assign(m, 0.0);
      bb.assign(m, 0.0);
    }
    if (sums == S::Pearson) {
      a.assign(m, 0.0);
      b.assign(m, 0.0);
    }
  }
};

// Better neighbour first: higher similarity, then lower index.
template <class T>
bool better(const T& x, const T& y) {
  return x.first > y.first || (x.first == y.first && x.second < y.second);
}

// Row x of the similarity, by Gustavson's row-by-row sparse product: for every y of x's list and
// every x2 of y's list, add to x2's sums. Work = sum over x's co-raters' list lengths (ML-1M:
// sum of squared user lengths, ~10^8 updates in total), with dense per-thread accumulators that
// stay in cache. emit(x2, s) gets every x2 != x with a nonzero shrunk similarity, in order.
template <KNNSimilarity::Sums kSums, class Emit>
void similarity_row(int64_t x, const Lists& X, const Lists& Y, const std::vector<KNNEntity>& ent,
                    const KNNSimilarity& policy, double shrinkage, Accumulators& acc, Emit emit) {
  using S = KNNSimilarity::Sums;
  int32_t* cnt = acc.cnt.data();
  double *ab = acc.ab.data(), *aa = acc.aa.data(), *bb = acc.bb.data(), *sa = acc.a.data(), *sb = acc.b.data();
  for (int64_t q = X.ptr[x]; q < X.ptr[x + 1]; ++q) {
    const int64_t y = X.id[q];
    const double va = X.val[q];
    const int64_t* ids = Y.id.data();
    const double* vals = Y.val.data();
    for (int64_t t = Y.ptr[y]; t < Y.ptr[y + 1]; ++t) {
      const int64_t x2 = ids[t];
      const double vb = vals[t];
      ++cnt[x2];
      if constexpr (kSums != S::Count) ab[x2] += va * vb;
      if constexpr (kSums == S::CoNorms || kSums == S::Pearson) {
        aa[x2] += va * va;
        bb[x2] += vb * vb;
      }
      if constexpr (kSums == S::Pearson) {
        sa[x2] += va;
        sb[x2] += vb;
      }
    }
  }
  const int64_t n = static_cast<int64_t>(acc.cnt.size());
  for (int64_t x2 = 0; x2 < n; ++x2) {
    if (!cnt[x2]) continue;
    // Read and reset (the accumulators serve the thread's next row).
    KNNCoSums s;
    s.n = cnt[x2];
    cnt[x2] = 0;
    if constexpr (kSums != S::Count) std::swap(s.ab, ab[x2]);
    if constexpr (kSums == S::CoNorms || kSums == S::Pearson) {
      std::swap(s.aa, aa[x2]);
      std::swap(s.bb, bb[x2]);
    }
    if constexpr (kSums == S::Pearson) {
      std::swap(s.a, sa[x2]);
      std::swap(s.b, sb[x2]);
    }
    if (x2 == x) continue;
    const double v = policy.value(s, ent[x], ent[x2]) * (s.n / (s.n + shrinkage));
    if (v != 0.0) emit(x2, v);
  }
}

template <class Emit>
void similarity_row_any(int64_t x, const Lists& X, const Lists& Y, const std::vector<KNNEntity>& ent,
                        const KNNSimilarity& policy, double shrinkage, Accumulators& acc, Emit emit) {
  using S = KNNSimilarity::Sums;
  switch (policy.sums()) {
    case S::Count: return similarity_row<S::Count>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::Dot: return similarity_row<S::Dot>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::CoNorms: return similarity_row<S::CoNorms>(x, X, Y, ent, policy, shrinkage, acc, emit);
    case S::Pearson: return similarity_row<S::Pearson>(x, X, Y, ent, policy, shrinkage, acc, emit);
  }
}

at::Tensor long_tensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kLong).clone();
}

}  // namespace

void KNNImpl::fit(const Csr& train) {
  const std::string nm = name();
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, nm, ": training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users and ", n_items_, " items");
  const int64_t U = n_users_, I = n_items_, nnz = train.nnz();
  if (split_) {
    TORCH_CHECK(nnz == split_->train.nnz(), nm, ": the training matrix has ", nnz,
                " interactions, the model was built for its split's ", split_->train.nnz());
  } else if (train_keys.size(0) != nnz + 1) {
    resize_storage(nnz);
  }
  torch::NoGradGuard no_grad;

  // Training pairs in CSR order (position p), and grouped by item (users ascending).
  std::vector<int64_t> keys(static_cast<size_t>(nnz) + 1), pos_user(static_cast<size_t>(nnz));
  for (int64_t u = 0; u < U; ++u)
    for (int64_t p = train.indptr[u]; p < train.indptr[u + 1]; ++p) {
      keys[p] = u * I + train.indices[p];
      pos_user[p] = u;
    }
  keys[nnz] = U * I;
  std::vector<int64_t> col_ptr(static_cast<size_t>(I) + 1, 0), col_pos(static_cast<size_t>(nnz));
  for (int64_t i : train.indices) ++col_ptr[i + 1];
  for (int64_t i = 0; i < I; ++i) col_ptr[i + 1] += col_ptr[i];
  {
    std::vector<int64_t> next(col_ptr.begin(), col_ptr.end() - 1);
    for (int64_t p = 0; p < nnz; ++p) col_pos[next[train.indices[p]]++] = p;
  }

  // Ratings per training pair (the mean of repeated rows).
  const KNNSimilarity::Input input = similarity_->input(rating_);
  std::vector<double> r;
  double global_mean = 0;
  if (rating_ || similarity_->needs_ratings(rating_)) {
    TORCH_CHECK(data_ && split_, nm, ": needs the training ratings");
    const Dataset& d = *data_;
    r.assign(static_cast<size_t>(nnz), 0.0);
    std::vector<int32_t> cnt(static_cast<size_t>(nnz), 0);
    for (int64_t row : split_->train_rows) {
      const int64_t u = d.user[static_cast<size_t>(row)], i = d.item[static_cast<size_t>(row)];
      const int64_t* e = train.row_end(u);
      const int64_t* it = std::lower_bound(train.row_begin(u), e, i);
      TORCH_CHECK(it != e && *it == i, nm, ": training row ", row, " (user ", u, ", item ", i,
                  ") is not in the training matrix");
      const int64_t p = it - train.indices.data();
      r[p] += d.rating[static_cast<size_t>(row)];
      ++cnt[p];
    }
    for (int64_t p = 0; p < nnz; ++p) {
      TORCH_CHECK(cnt[p] > 0, nm, ": training pair (user ", pos_user[p], ", item ", train.indices[p], ") has no rating");
      r[p] /= cnt[p];
      global_mean += r[p];
    }
    if (nnz > 0) global_mean /= static_cast<double>(nnz);
  }

  // Baselines. ALS (Surprise's baseline_als): items, then users, each epoch.
  std::vector<double> als_bu, als_bi;
  if ((rating_ && options.baseline() == "als") || input == KNNSimilarity::Input::BaselineResidual) {
    als_bu.assign(static_cast<size_t>(U), 0.0);
    als_bi.assign(static_cast<size_t>(I), 0.0);
    for (int64_t e = 0; e < options.baseline_epochs(); ++e) {
      for (int64_t i = 0; i < I; ++i) {
        double dev = 0;
        for (int64_t q = col_ptr[i]; q < col_ptr[i + 1]; ++q) dev += r[col_pos[q]] - global_mean - als_bu[pos_user[col_pos[q]]];
        const double den = options.baseline_reg_item() + static_cast<double>(col_ptr[i + 1] - col_ptr[i]);
        als_bi[i] = den > 0 ? dev / den : 0.0;
      }
      for (int64_t u = 0; u < U; ++u) {
        double dev = 0;
        for (int64_t p = train.indptr[u]; p < train.indptr[u + 1]; ++p) dev += r[p] - global_mean - als_bi[train.indices[p]];
        const double den = options.baseline_reg_user() + static_cast<double>(train.row_size(u));
        als_bu[u] = den > 0 ? dev / den : 0.0;
      }
    }
  }
  // Means of each user's and each item's ratings (the global mean for those without).
  auto means = [&](bool of_items) {
    std::vector<double> sum(static_cast<size_t>(of_items ? I : U), 0.0), cnt(sum.size(), 0.0);
    for (int64_t p = 0; p < nnz; ++p) {
      const int64_t o = of_items ? train.indices[p] : pos_user[p];
      sum[o] += r[p];
      cnt[o] += 1;
    }
    for (size_t o = 0; o < sum.size(); ++o) sum[o] = cnt[o] > 0 ? sum[o] / cnt[o] : global_mean;
    return sum;
  };

  // The entities' entries per training pair, by the similarity's input.
  std::vector<double> val(static_cast<size_t>(nnz), 1.0);
  switch (input) {
    case KNNSimilarity::Input::Binary:
      // TF-IDF feature weighting (as in Dacrema et al.'s KNN baselines): an entry counts
      // log(N / df) of the other dimension's entity, so a co-occurrence through a popular item
      // (UserKNN) or a heavy user (ItemKNN) weighs less.
      if (options.idf()) {
        const int64_t n_other = item_based_ ? U : I;
        std::vector<int64_t> df(static_cast<size_t>(n_other), 0);
        for (int64_t p = 0; p < nnz; ++p) ++df[static_cast<size_t>(item_based_ ? pos_user[p] : train.indices[p])];
        for (int64_t p = 0; p < nnz; ++p) {
          const auto o = static_cast<size_t>(item_based_ ? pos_user[p] : train.indices[p]);
          val[p] = std::log(static_cast<double>(item_based_ ? I : U) / static_cast<double>(df[o]));
        }
      }
      break;
    case KNNSimilarity::Input::Rating: val = r; break;
    case KNNSimilarity::Input::CentredByOther: {
      const std::vector<double> m = means(!item_based_);  // ItemKNN: user means; UserKNN: item means
      for (int64_t p = 0; p < nnz; ++p) val[p] = r[p] - m[item_based_ ? pos_user[p] : train.indices[p]];
      break;
    }
    case KNNSimilarity::Input::BaselineResidual:
      for (int64_t p = 0; p < nnz; ++p) val[p] = r[p] - (global_mean + als_bu[pos_user[p]] + als_bi[train.indices[p]]);
      break;
  }

  // by_user: user -> (item, value); by_item: item -> (user, value). X = the entities' lists,
  // Y = the other dimension's.
  Lists by_user, by_item;
  by_user.ptr = train.indptr;
  by_user.id = train.indices;
  by_user.val = val;
  by_item.ptr = col_ptr;
  by_item.id.resize(static_cast<size_t>(nnz));
  by_item.val.resize(static_cast<size_t>(nnz));
  for (int64_t q = 0; q < nnz; ++q) {
    by_item.id[q] = pos_user[col_pos[q]];
    by_item.val[q] = val[col_pos[q]];
  }
  const Lists& X = item_based_ ? by_item : by_user;
  const Lists& Y = item_based_ ? by_user : by_item;
  const int64_t n = n_entities();
  std::vector<KNNEntity> ent(static_cast<size_t>(n));
  for (int64_t x = 0; x < n; ++x) {
    double sq = 0;
    for (int64_t q = X.ptr[x]; q < X.ptr[x + 1]; ++q) sq += X.val[q] * X.val[q];
    ent[x].count = static_cast<double>(X.ptr[x + 1] - X.ptr[x]);
    ent[x].norm = std::sqrt(sq);
  }

  const KNNSimilarity& policy = *similarity_;
  const double shrinkage = options.shrinkage();
  const auto sums = policy.sums();
  auto make_acc = [&] { return Accumulators(n, sums); };
  if (rating_) {
    // The dense similarity, row by row (written straight into the buffer when it is on the CPU).
    auto S = sim.device().is_cpu() ? sim : torch::zeros({n, n});
    S.zero_();
    float* s = S.data_ptr<float>();
    parallel_rows(n, make_acc, [&](int64_t x, Accumulators& acc) {
      float* row = s + x * n;
      similarity_row_any(x, X, Y, ent, policy, shrinkage, acc, [&](int64_t x2, double v) { row[x2] = static_cast<float>(v); });
    });
    if (!S.is_same(sim)) sim.copy_(S);
  } else {
    // The k most similar of each entity, most similar first.
    auto idx = torch::empty({n, k_}, torch::kLong);
    auto val_t = torch::zeros({n, k_});
    int64_t* ip = idx.data_ptr<int64_t>();
    float* vp = val_t.data_ptr<float>();
    const int64_t k = k_;
    parallel_rows(n, make_acc, [&](int64_t x, Accumulators& acc) {
      auto& cand = acc.cand;
      cand.clear();
      similarity_row_any(x, X, Y, ent, policy, shrinkage, acc, [&](int64_t x2, double v) {
        const float f = static_cast<float>(v);
        if (f != 0.0f) cand.emplace_back(f, x2);
      });
      const auto cmp = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) { return better(a, b); };
      const int64_t m = std::min<int64_t>(k, static_cast<int64_t>(cand.size()));
      std::partial_sort(cand.begin(), cand.begin() + m, cand.end(), cmp);
      for (int64_t t = 0; t < k; ++t) {
        ip[x * k + t] = t < m ? cand[t].second : x;
        vp[x * k + t] = t < m ? cand[t].first : 0.0f;
      }
    });
    nbr_index.copy_(idx);
    nbr_sim.copy_(val_t);
    if (options.prune() == "column") {
      // Transpose the k-lists: entry (y, t) -> owner ip[y k + t]; y ascending within an owner.
      std::vector<int64_t> cptr(static_cast<size_t>(n) + 1, 0);
      for (int64_t e = 0; e < n * k; ++e) ++cptr[ip[e] + 1];
      for (int64_t x = 0; x < n; ++x) cptr[x + 1] += cptr[x];
      std::vector<int64_t> clist(static_cast<size_t>(n * k)), next(cptr.begin(), cptr.end() - 1);
      std::vector<float> cw(static_cast<size_t>(n * k));
      for (int64_t e = 0; e < n * k; ++e) {
        const int64_t slot = next[ip[e]]++;
        clist[slot] = e / k;
        cw[slot] = vp[e];
      }
      nbr_ptr.copy_(long_tensor(cptr));
      nbr_list.copy_(long_tensor(clist));
      nbr_weight.copy_(torch::from_blob(cw.data(), {n * k}, torch::kFloat));
    }
  }

  train_keys.copy_(long_tensor(keys));
  train_indptr.copy_(long_tensor(train.indptr));
  if (rating_) {
    // b_ui = mu + bu[u] + bi[i], stored in float; residuals from the stored values so that
    // every prediction path sees the same numbers.
    std::vector<float> fbu(static_cast<size_t>(U), 0.0f), fbi(static_cast<size_t>(I), 0.0f);
    float fmu = 0.0f;
    if (options.baseline() == "als") {
      fmu = static_cast<float>(global_mean);
      for (int64_t u = 0; u < U; ++u) fbu[u] = static_cast<float>(als_bu[u]);
      for (int64_t i = 0; i < I; ++i) fbi[i] = static_cast<float>(als_bi[i]);
    } else if (item_based_) {
      const auto m = means(true);
      for (int64_t i = 0; i < I; ++i) fbi[i] = static_cast<float>(m[i]);
    } else {
      const auto m = means(false);
      for (int64_t u = 0; u < U; ++u) fbu[u] = static_cast<float>(m[u]);
    }
    auto resid = torch::zeros({nnz + 1});
    float* rp = resid.data_ptr<float>();
    for (int64_t p = 0; p < nnz; ++p)
      rp[p] = static_cast<float>(r[p] - (static_cast<double>(fmu) + fbu[pos_user[p]] + fbi[train.indices[p]]));
    train_resid.copy_(resid);
    mu.fill_(fmu);
    bu.copy_(torch::from_blob(fbu.data(), {U}, torch::kFloat));
    bi.copy_(torch::from_blob(fbi.data(), {I}, torch::kFloat));
    if (!item_based_) {
      item_indptr.copy_(long_tensor(col_ptr));
      item_order.copy_(long_tensor(col_pos));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scoring (CPU, raw loops, double accumulation; the TorchScript below computes the same)

namespace {

at::Tensor on_cpu(const at::Tensor& t) { return t.device().is_cpu() ? t.contiguous() : t.to(torch::kCPU).contiguous(); }

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
  const int64_t B = users.size(0), U = n_users_, I = n_items_, k = k_;
  auto out = torch::empty({B}, torch::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t* us = users.data_ptr<int64_t>();
  const int64_t* is = items.data_ptr<int64_t>();
  const auto keys_t = on_cpu(train_keys), ptr_t = on_cpu(train_indptr);
  const int64_t* keys = keys_t.data_ptr<int64_t>();
  const int64_t* ptr = ptr_t.data_ptr<int64_t>();
  auto has = [&](int64_t u, int64_t i) { return std::binary_search(keys + ptr[u], keys + ptr[u + 1], u * I + i); };

  if (!rating_) {
    const NbrLists L(nbr_index, nbr_sim, nbr_ptr, nbr_list, nbr_weight);
    at::parallel_for(0, B, 256, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t u = us[b], i = is[b];
        double acc = 0;
        if (item_based_) {  // the items j in i's list that u has
          for (int64_t e = L.begin(i); e < L.end(i); ++e)
            if (L.w[e] != 0.0f && has(u, L.idx[e])) acc += L.w[e];
        } else {  // the users v in u's list that have i
          for (int64_t e = L.begin(u); e < L.end(u); ++e)
            if (L.w[e] != 0.0f && has(L.idx[e], i)) acc += L.w[e];
        }
        o[b] = static_cast<float>(acc);
      }
    });
    return out.to(train_keys.device());
  }

  const RatingState rs(sim, train_resid, mu, bu, bi);
  const float *S = rs.S, *z = rs.z, *bup = rs.bup, *bip = rs.bip;
  const double m = rs.m;
  at::Tensor ip_t, io_t;
  if (!item_based_) ip_t = on_cpu(item_indptr), io_t = on_cpu(item_order);
  at::parallel_for(0, B, 64, [&](int64_t begin, int64_t end) {
    std::vector<Neighbour> c;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t u = us[b], i = is[b];
      c.clear();
      if (item_based_) {  // the items u rated, by similarity to i
        for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) {
          const int64_t j = keys[p] - u * I;
          const float s = S[i * I + j];
          if (s > 0.0f) c.push_back({s, j, z[p]});
        }
      } else {  // the users who rated i, by similarity to u
        const int64_t* iptr = ip_t.data_ptr<int64_t>();
        const int64_t* iord = io_t.data_ptr<int64_t>();
        for (int64_t q = iptr[i]; q < iptr[i + 1]; ++q) {
          const int64_t p = iord[q], v = keys[p] / I;
          const float s = S[u * U + v];
          if (s > 0.0f) c.push_back({s, v, z[p]});
        }
      }
      const double base = m + static_cast<double>(bup[u]) + static_cast<double>(bip[i]);
      o[b] = static_cast<float>(base + weighted_mean(c, k));
    }
  });
  return out.to(train_keys.device());
}

at::Tensor KNNImpl::score_all(const at::Tensor& users_in) {
  const auto users = users_in.to(torch::kCPU, torch::kLong).contiguous();
  TORCH_CHECK(users.dim() == 1, name(), ": score_all needs users [B]");
  check_ranges(users, nullptr);
  const int64_t B = users.size(0), U = n_users_, I = n_items_, k = k_;
  auto out = torch::empty({B, I}, torch::kFloat);  // fresh: callers mask it in place
  float* o = out.data_ptr<float>();
  const int64_t* us = users.data_ptr<int64_t>();
  const auto keys_t = on_cpu(train_keys), ptr_t = on_cpu(train_indptr);
  const int64_t* keys = keys_t.data_ptr<int64_t>();
  const int64_t* ptr = ptr_t.data_ptr<int64_t>();

  if (!rating_) {
    const NbrLists L(nbr_index, nbr_sim, nbr_ptr, nbr_list, nbr_weight);
    if (item_based_) {
      // Push instead of pull: the reverse lists (for each item j, the items i whose list holds
      // j) let each of the user's items add its contributions, |I_u| k work per user instead
      // of I k. Built per call: O(I k), small next to any batch of users.
      std::vector<int64_t> rptr(static_cast<size_t>(I) + 1, 0);
      for (int64_t i = 0; i < I; ++i)
        for (int64_t e = L.begin(i); e < L.end(i); ++e)
          if (L.w[e] != 0.0f) ++rptr[L.idx[e] + 1];
      for (int64_t j = 0; j < I; ++j) rptr[j + 1] += rptr[j];
      std::vector<int64_t> rtgt(static_cast<size_t>(rptr[I]));
      std::vector<float> rval(rtgt.size());
      {
        std::vector<int64_t> next(rptr.begin(), rptr.end() - 1);
        for (int64_t i = 0; i < I; ++i)
          for (int64_t e = L.begin(i); e < L.end(i); ++e) {
            if (L.w[e] == 0.0f) continue;
            const int64_t slot = next[L.idx[e]]++;
            rtgt[slot] = i;  // the target item whose list holds j
            rval[slot] = L.w[e];
          }
      }
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        std::vector<double> acc(static_cast<size_t>(I));
        for (int64_t b = begin; b < end; ++b) {
          std::fill(acc.begin(), acc.end(), 0.0);
          const int64_t u = us[b];
          for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) {
            const int64_t j = keys[p] - u * I;
            for (int64_t e = rptr[j]; e < rptr[j + 1]; ++e) acc[rtgt[e]] += rval[e];
          }
          for (int64_t i = 0; i < I; ++i) o[b * I + i] = static_cast<float>(acc[i]);
        }
      });
    } else {
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        std::vector<double> acc(static_cast<size_t>(I));
        for (int64_t b = begin; b < end; ++b) {
          std::fill(acc.begin(), acc.end(), 0.0);
          const int64_t u = us[b];
          for (int64_t e = L.begin(u); e < L.end(u); ++e) {
            const int64_t v = L.idx[e];
            const double s = L.w[e];
            if (s == 0.0) continue;
            for (int64_t p = ptr[v]; p < ptr[v + 1]; ++p) acc[keys[p] - v * I] += s;
          }
          for (int64_t i = 0; i < I; ++i) o[b * I + i] = static_cast<float>(acc[i]);
        }
      });
    }
    return out.to(train_keys.device());
  }

  const RatingState rs(sim, train_resid, mu, bu, bi);
  const float *S = rs.S, *z = rs.z, *bup = rs.bup, *bip = rs.bip;
  const double m = rs.m;
  if (item_based_) {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<Neighbour> c;
      std::vector<int64_t> hist;
      std::vector<float> hz;
      for (int64_t b = begin; b < end; ++b) {
        const int64_t u = us[b];
        hist.clear();
        hz.clear();
        for (int64_t p = ptr[u]; p < ptr[u + 1]; ++p) {
          hist.push_back(keys[p] - u * I);
          hz.push_back(z[p]);
        }
        const double base_u = m + static_cast<double>(bup[u]);
        for (int64_t i = 0; i < I; ++i) {
          c.clear();
          const float* row = S + i * I;
          for (size_t l = 0; l < hist.size(); ++l)
            if (row[hist[l]] > 0.0f) c.push_back({row[hist[l]], hist[l], hz[l]});
          o[b * I + i] = static_cast<float>(base_u + static_cast<double>(bip[i]) + weighted_mean(c, k));
        }
      }
    });
  } else {
    // Users by decreasing similarity to u (then index); each item takes its first k raters in
    // that order: the same neighbours as a per-item selection, in one pass over their rows.
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<std::pair<float, int64_t>> order;
      std::vector<int32_t> cnt(static_cast<size_t>(I));
      std::vector<double> num(static_cast<size_t>(I)), den(static_cast<size_t>(I));
      for (int64_t b = begin; b < end; ++b) {
        const int64_t u = us[b];
        order.clear();
        for (int64_t v = 0; v < U; ++v)
          if (S[u * U + v] > 0.0f) order.emplace_back(S[u * U + v], v);
        std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return better(x, y); });
        std::fill(cnt.begin(), cnt.end(), 0);
        std::fill(num.begin(), num.end(), 0.0);
        std::fill(den.begin(), den.end(), 0.0);
        for (const auto& [s, v] : order)
          for (int64_t p = ptr[v]; p < ptr[v + 1]; ++p) {
            const int64_t i = keys[p] - v * I;
            if (cnt[i] >= k) continue;
            ++cnt[i];
            num[i] += static_cast<double>(s) * z[p];
            den[i] += s;
          }
        const double base_u = m + static_cast<double>(bup[u]);
        for (int64_t i = 0; i < I; ++i)
          o[b * I + i] = static_cast<float>(base_u + static_cast<double>(bip[i]) + (den[i] > 0 ? num[i] / den[i] : 0.0));
      }
    });
  }
  return out.to(train_keys.device());
}

// ---------------------------------------------------------------------------------------------
// TorchScript export

namespace {

// The users' (ids') segments [indptr[id], indptr[id + 1]): each entry's row in ids, column within
// its row and position in the segment arrays, and the longest row (at least 1).
constexpr const char* kSegments = R"PY(
def _knn_segments(self, indptr: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor, Tensor, int]:
    starts = indptr.index_select(0, ids)
    counts = indptr.index_select(0, ids + 1) - starts
    row = torch.repeat_interleave(torch.arange(ids.size(0)), counts)
    first = torch.cumsum(counts, 0) - counts
    col = torch.arange(row.size(0)) - first.index_select(0, row)
    pos = starts.index_select(0, row) + col
    longest = 1
    if ids.size(0) > 0:
        longest = max(int(counts.max()), 1)
    return row, col, pos, longest
)PY";

constexpr const char* kItemRanking = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    q = users.unsqueeze(1) * N_ITEMS + self.nbr_index.index_select(0, items)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q).view(-1)).view(q.size()) == q
    w = self.nbr_sim.index_select(0, items).double()
    return torch.where(found, w, torch.zeros_like(w)).sum(1).float()

def _score_all(self, users: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.train_indptr, users)
    x = torch.zeros(users.size(0), N_ITEMS).double()
    x.index_put_((row, torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)), torch.ones(row.size(0)).double())
    sim = self.nbr_sim.double()
    out = torch.zeros(users.size(0), N_ITEMS).double()
    for t in range(K_NEIGHBORS):
        out += x.index_select(1, self.nbr_index.select(1, t)) * sim.select(1, t)
    return out.float()
)PY";

constexpr const char* kUserRanking = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    q = self.nbr_index.index_select(0, users) * N_ITEMS + items.unsqueeze(1)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q).view(-1)).view(q.size()) == q
    w = self.nbr_sim.index_select(0, users).double()
    return torch.where(found, w, torch.zeros_like(w)).sum(1).float()

def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    nb = self.nbr_index.index_select(0, users).reshape(-1)
    w = self.nbr_sim.index_select(0, users).double().reshape(-1)
    row, col, pos, longest = self._knn_segments(self.train_indptr, nb)
    target = torch.div(row, K_NEIGHBORS, rounding_mode='floor') * N_ITEMS + torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)
    out = torch.zeros(b * N_ITEMS).double()
    out.index_add_(0, target, w.index_select(0, row))
    return out.view(b, N_ITEMS).float()
)PY";

// Ranking with prune column: the transposed lists as segments of (nbr_list, nbr_weight).
constexpr const char* kItemColumn = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, items)
    q = users.index_select(0, row) * N_ITEMS + self.nbr_list.index_select(0, pos)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q)) == q
    w = self.nbr_weight.index_select(0, pos).double()
    out = torch.zeros(users.size(0)).double()
    out.index_add_(0, row, torch.where(found, w, torch.zeros_like(w)))
    return out.float()

def _score_all(self, users: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.train_indptr, users)
    x = torch.zeros(users.size(0), N_ITEMS).double()
    x.index_put_((row, torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)), torch.ones(row.size(0)).double())
    owner = torch.repeat_interleave(torch.arange(N_ITEMS), self.nbr_ptr[1:] - self.nbr_ptr[:-1])
    out = torch.zeros(users.size(0), N_ITEMS).double()
    out.index_add_(1, owner, x.index_select(1, self.nbr_list) * self.nbr_weight.double().unsqueeze(0))
    return out.float()
)PY";

constexpr const char* kUserColumn = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, users)
    q = self.nbr_list.index_select(0, pos) * N_ITEMS + items.index_select(0, row)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q)) == q
    w = self.nbr_weight.index_select(0, pos).double()
    out = torch.zeros(users.size(0)).double()
    out.index_add_(0, row, torch.where(found, w, torch.zeros_like(w)))
    return out.float()

def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, users)
    nb = self.nbr_list.index_select(0, pos)
    w = self.nbr_weight.index_select(0, pos).double()
    row2, col2, pos2, longest2 = self._knn_segments(self.train_indptr, nb)
    target = row.index_select(0, row2) * N_ITEMS + torch.remainder(self.train_keys.index_select(0, pos2), N_ITEMS)
    out = torch.zeros(b * N_ITEMS).double()
    out.index_add_(0, target, w.index_select(0, row2))
    return out.view(b, N_ITEMS).float()
)PY";

// Rating mode, pairs: each pair's candidate neighbours padded to [B, L] (ids, residuals, real),
// their similarities g (0 unless real and > 0), the k best by a stable sort (ties by position =
// by lower id), then b_ui + sum g z / sum g.
constexpr const char* kRatingPairs = R"PY(
def _knn_predict(self, g: Tensor, z: Tensor, base: Tensor) -> Tensor:
    if g.size(1) > K_NEIGHBORS:
        g, order = torch.sort(g, dim=1, descending=True, stable=True)
        g = g[:, :K_NEIGHBORS]
        z = z.gather(1, order[:, :K_NEIGHBORS])
    gd = g.double()
    num = (gd * z).sum(1)
    den = gd.sum(1)
    return base + torch.where(den > 0, num / den, torch.zeros_like(den))

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    b = users.size(0)
    OWNER_SEGMENTS
    ids = torch.zeros(b, longest).long()
    ids.index_put_((row, col), NEIGHBOUR_IDS)
    z = torch.zeros(b, longest).double()
    z.index_put_((row, col), self.train_resid.index_select(0, pos).double())
    real = torch.zeros(b, longest)
    real.index_put_((row, col), torch.ones(row.size(0)))
    g = self.sim.view(-1).index_select(0, (TARGET.unsqueeze(1) * N_ENTITIES + ids).view(-1)).view(b, longest)
    g = torch.where((real > 0) & (g > 0), g, torch.zeros_like(g))
    base = self.mu.double() + self.bu.index_select(0, users).double() + self.bi.index_select(0, items).double()
    return self._knn_predict(g, z, base).float()
)PY";

constexpr const char* kItemRatingAll = R"PY(
def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    out = torch.zeros(b, N_ITEMS).double()
    for r in range(b):
        u = int(users[r])
        start = int(self.train_indptr[u])
        end = int(self.train_indptr[u + 1])
        hist = torch.remainder(self.train_keys[start:end], N_ITEMS)
        z = self.train_resid[start:end].double()
        g = self.sim.index_select(1, hist)
        g = torch.where(g > 0, g, torch.zeros_like(g))
        out[r] = self._knn_predict(g, z.unsqueeze(0).expand(N_ITEMS, end - start), torch.zeros(N_ITEMS).double())
    base = self.mu.double() + self.bu.index_select(0, users).double().unsqueeze(1) + self.bi.double().unsqueeze(0)
    return (base + out).float()
)PY";

// UserKNN rating, all items: per user, the raters of every item in order of similarity to u
// (rank by a stable descending sort), the first k with s > 0 of each item.
constexpr const char* kUserRatingAll = R"PY(
def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    n = self.item_order.size(0)
    keys = self.train_keys.index_select(0, self.item_order)
    item = torch.remainder(keys, N_ITEMS)
    rater = torch.div(keys, N_ITEMS, rounding_mode='floor')
    z = self.train_resid.index_select(0, self.item_order).double()
    within = torch.arange(n) - self.item_indptr.index_select(0, item)
    out = torch.zeros(b, N_ITEMS).double()
    for r in range(b):
        s = self.sim[int(users[r])]
        rank = torch.argsort(torch.sort(s, descending=True, stable=True)[1])
        perm = torch.argsort(item * N_USERS + rank.index_select(0, rater))
        w = s.index_select(0, rater.index_select(0, perm)).double()
        w = torch.where((within < K_NEIGHBORS) & (w > 0), w, torch.zeros_like(w))
        num = torch.zeros(N_ITEMS).double().index_add_(0, item, w * z.index_select(0, perm))
        den = torch.zeros(N_ITEMS).double().index_add_(0, item, w)
        out[r] = torch.where(den > 0, num / den, torch.zeros_like(den))
    base = self.mu.double() + self.bu.index_select(0, users).double().unsqueeze(1) + self.bi.double().unsqueeze(0)
    return (base + out).float()
)PY";

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

}  // namespace

ScriptExport KNNImpl::script_export() const {
  ScriptExport e;
  auto add = [&](const char* name, const at::Tensor& t) { e.tensors.emplace_back(name, t.detach().to(torch::kCPU).clone()); };
  add("train_keys", train_keys);
  add("train_indptr", train_indptr);
  std::string code = kSegments;
  if (!rating_) {
    if (options.prune() == "column") {
      add("nbr_ptr", nbr_ptr);
      add("nbr_list", nbr_list);
      add("nbr_weight", nbr_weight);
      code += item_based_ ? kItemColumn : kUserColumn;
    } else {
      add("nbr_index", nbr_index);
      add("nbr_sim", nbr_sim);
      code += item_based_ ? kItemRanking : kUserRanking;
    }
  } else {
    add("sim", sim);
    add("train_resid", train_resid);
    add("mu", mu);
    add("bu", bu);
    add("bi", bi);
    std::string pairs = kRatingPairs;
    if (item_based_) {
      // Candidates: the items u rated; similarity row: the target item.
      replace_all(pairs, "OWNER_SEGMENTS", "row, col, pos, longest = self._knn_segments(self.train_indptr, users)");
      replace_all(pairs, "NEIGHBOUR_IDS", "torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)");
      replace_all(pairs, "TARGET", "items");
      replace_all(pairs, "N_ENTITIES", "N_ITEMS");
      code += pairs + kItemRatingAll;
    } else {
      // Candidates: the users who rated i; similarity row: the user.
      add("item_indptr", item_indptr);
      add("item_order", item_order);
      replace_all(pairs, "OWNER_SEGMENTS",
                  "row, col, q, longest = self._knn_segments(self.item_indptr, items)\n"
                  "    pos = self.item_order.index_select(0, q)");
      replace_all(pairs, "NEIGHBOUR_IDS", "torch.div(self.train_keys.index_select(0, pos), N_ITEMS, rounding_mode='floor')");
      replace_all(pairs, "TARGET", "users");
      replace_all(pairs, "N_ENTITIES", "N_USERS");
      code += pairs + kUserRatingAll;
    }
  }
  replace_all(code, "N_ITEMS", std::to_string(n_items_));
  replace_all(code, "N_USERS", std::to_string(n_users_));
  replace_all(code, "K_NEIGHBORS", std::to_string(k_));
  e.code = code;
  return e;
}

}  // namespace rzoo
