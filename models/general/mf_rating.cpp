// Rating-prediction latent-factor models trained by per-rating SGD.
//   Biased MF: Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender Systems",
//   IEEE Computer 2009.
//   SVD++: Koren, "Factorization Meets the Neighborhood: a Multifaceted Collaborative Filtering
//   Model", KDD 2008.
//
// Both follow the papers' stochastic gradient descent on the regularised squared error, one
// rating at a time (as Surprise's SVD and SVDpp do), in a plain loop over raw float arrays: an
// epoch of biased MF on MovieLens-100K's 80 k training ratings takes milliseconds, which no
// batched tensor formulation of per-rating SGD would approach. With e = r - r_hat:
//   b_u += lr_b (e - reg_b b_u)          b_i += lr_b (e - reg_b b_i)
//   p_u += lr (e q_i - reg p_u)          q_i += lr (e (p_u [+ z_u]) - reg q_i)   (from the old values)
//   SVD++ also, for every j in N(u):  y_j += lr_y (e |N(u)|^-1/2 q_i - reg_y y_j)
#include "models/general/mf_rating.h"

#include <fmt/core.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/random.h"
#include "datasets/dataset.h"
#include "models/export_tensors.h"

namespace rzoo {

namespace {

// Random streams of the two models (rzoo::Rng(seed, stream)): initialisation, then visiting order.
constexpr uint64_t kBiasedMFStream = 0x62696173ULL;  // "bias"
constexpr uint64_t kSVDppStream = 0x73766470ULL;     // "svdp"

// ---- options -----------------------------------------------------------------------------------

double positive(const Config& cfg, const std::string& key) {
  const double v = cfg.get_double(key);
  if (!(v > 0)) cfg.bad(key, fmt::format("must be > 0, got {}", v));
  return v;
}

double non_negative(const Config& cfg, const std::string& key) {
  const double v = cfg.get_double(key);
  if (!(v >= 0)) cfg.bad(key, fmt::format("must be >= 0, got {}", v));
  return v;
}

// A float key whose null means "the same as another key".
std::optional<double> optional_non_negative(const Config& cfg, const std::string& key) {
  if (cfg.node(key).IsNull()) return std::nullopt;
  return non_negative(cfg, key);
}

// The keys both models share.
template <class O>
void read_common(const Config& cfg, O& o) {
  o.factors(cfg.get_int("model.factors", 1, 1 << 16));
  o.epochs(cfg.get_int("model.epochs", 1, 1 << 20));
  o.lr(positive(cfg, "model.lr"));
  o.reg(non_negative(cfg, "model.reg"));
  o.lr_bias(optional_non_negative(cfg, "model.lr_bias"));
  o.reg_bias(optional_non_negative(cfg, "model.reg_bias"));
  const double decay = cfg.get_double("model.lr_decay");
  if (!(decay > 0 && decay <= 1)) cfg.bad("model.lr_decay", fmt::format("must be in (0, 1], got {}", decay));
  o.lr_decay(decay);
  o.init_mean(cfg.get_double("model.init_mean", -100.0, 100.0));
  o.init_std(non_negative(cfg, "model.init_std"));
  o.clip(cfg.get_bool("model.clip"));
  o.seed(static_cast<uint64_t>(cfg.get_int("seed", 0)));
}

// The same rules for options given directly (tests, library use): errors name the config key.
template <class O>
const O& checked(const O& o, const char* model) {
  TORCH_CHECK(o.factors() >= 1, model, ": model.factors must be >= 1, got ", o.factors());
  TORCH_CHECK(o.epochs() >= 1, model, ": model.epochs must be >= 1, got ", o.epochs());
  TORCH_CHECK(o.lr() > 0, model, ": model.lr must be > 0, got ", o.lr());
  TORCH_CHECK(o.reg() >= 0, model, ": model.reg must be >= 0, got ", o.reg());
  TORCH_CHECK(!o.lr_bias() || *o.lr_bias() >= 0, model, ": model.lr_bias must be >= 0, got ", o.lr_bias().value_or(0));
  TORCH_CHECK(!o.reg_bias() || *o.reg_bias() >= 0, model, ": model.reg_bias must be >= 0, got ", o.reg_bias().value_or(0));
  TORCH_CHECK(o.lr_decay() > 0 && o.lr_decay() <= 1, model, ": model.lr_decay must be in (0, 1], got ", o.lr_decay());
  TORCH_CHECK(std::isfinite(o.init_mean()), model, ": model.init_mean must be finite, got ", o.init_mean());
  TORCH_CHECK(o.init_std() >= 0, model, ": model.init_std must be >= 0, got ", o.init_std());
  return o;
}

const SVDppOptions& checked_svdpp(const SVDppOptions& o) {
  checked(o, "svdpp");
  TORCH_CHECK(!o.lr_implicit() || *o.lr_implicit() >= 0, "svdpp: model.lr_implicit must be >= 0, got ", o.lr_implicit().value_or(0));
  TORCH_CHECK(!o.reg_implicit() || *o.reg_implicit() >= 0, "svdpp: model.reg_implicit must be >= 0, got ", o.reg_implicit().value_or(0));
  TORCH_CHECK(o.order() == "user" || o.order() == "rating", "svdpp: model.order must be \"user\" or \"rating\", got \"", o.order(), "\"");
  return o;
}

// ---- training ratings --------------------------------------------------------------------------

struct Rating {
  int32_t user, item;
  float value;
};

struct TrainingRatings {
  std::vector<Rating> rows;       // grouped by user: user u's are [start[u], start[u + 1])
  std::vector<int64_t> start;     // [U + 1]
  std::vector<int64_t> item_count;  // [I] training ratings per item
  double mean = 0;
  float lo = 0, hi = 0;           // rating range
};

// The training ratings of split->train_rows, with every check that keeps the raw loops in bounds.
TrainingRatings training_ratings(const char* model, const Dataset* data, const Split* split, const Csr& train,
                                 int64_t n_users, int64_t n_items) {
  TORCH_CHECK(data && split, model, ": predicts ratings and needs the training ratings (ModelContext data and split), "
              "which this caller did not give");
  TORCH_CHECK(data->has_ratings(), model, ": predicts ratings, and the dataset '", data->name,
              "' has none (set dataset.columns.rating, and dataset.threshold: null)");
  TORCH_CHECK(data->rating.size() == data->user.size() && data->item.size() == data->user.size(), model,
              ": the dataset's rating column has ", data->rating.size(), " values for ", data->user.size(), " interactions");
  TORCH_CHECK(train.n_rows == n_users && train.n_cols == n_items, model, ": training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users, " users x ", n_items, " items");
  TORCH_CHECK(!split->train_rows.empty(), model, ": the training split has no ratings");

  TrainingRatings t;
  const int64_t n = static_cast<int64_t>(split->train_rows.size());
  // Counting sort by user (train_rows is usually so ordered already; this does not rely on it).
  t.start.assign(static_cast<size_t>(n_users) + 1, 0);
  t.item_count.assign(static_cast<size_t>(n_items), 0);
  for (const int64_t r : split->train_rows) {
    TORCH_CHECK(r >= 0 && r < data->n_interactions(), model, ": training row ", r, " is outside the dataset's ",
                data->n_interactions(), " interactions");
    const int64_t u = data->user[static_cast<size_t>(r)], i = data->item[static_cast<size_t>(r)];
    TORCH_CHECK(u >= 0 && u < n_users && i >= 0 && i < n_items, model, ": training row ", r, " (user ", u, ", item ", i,
                ") is outside the model's ", n_users, " users x ", n_items, " items");
    ++t.start[static_cast<size_t>(u) + 1];
    ++t.item_count[static_cast<size_t>(i)];
  }
  for (int64_t u = 0; u < n_users; ++u) t.start[static_cast<size_t>(u) + 1] += t.start[static_cast<size_t>(u)];
  t.rows.resize(static_cast<size_t>(n));
  std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
  double sum = 0;
  t.lo = std::numeric_limits<float>::infinity();
  t.hi = -t.lo;
  for (const int64_t r : split->train_rows) {
    const auto k = static_cast<size_t>(r);
    const float v = data->rating[k];
    TORCH_CHECK(std::isfinite(v), model, ": training row ", r, " has rating ", v);
    t.rows[static_cast<size_t>(fill[static_cast<size_t>(data->user[k])]++)] = Rating{data->user[k], data->item[k], v};
    sum += v;
    t.lo = std::min(t.lo, v);
    t.hi = std::max(t.hi, v);
  }
  t.mean = sum / static_cast<double>(n);
  return t;
}

// ---- state -------------------------------------------------------------------------------------

// Standard normal numbers by Box-Muller from rzoo::Rng: std::normal_distribution is not the same
// on every standard library, and a seed must give the same model everywhere.
at::Tensor normal_tensor(int64_t rows, int64_t cols, double mean, double std, Rng& rng) {
  auto t = torch::empty({rows, cols}, torch::kFloat);
  float* x = t.data_ptr<float>();
  const int64_t n = rows * cols;
  for (int64_t k = 0; k < n; k += 2) {
    const double r = std::sqrt(-2.0 * std::log(1.0 - rng.uniform01()));  // 1 - U in (0, 1]
    const double a = 6.283185307179586 * rng.uniform01();  // 2 pi U
    x[k] = static_cast<float>(mean + std * r * std::cos(a));
    if (k + 1 < n) x[k + 1] = static_cast<float>(mean + std * r * std::sin(a));
  }
  return t;
}

// Working copies on the CPU (the buffers may live on another device); [1], [U], [I], [U, f], [I, f].
struct State {
  at::Tensor mu, bu, bi, P, Q;
  float* bu_p() { return bu.data_ptr<float>(); }
  float* bi_p() { return bi.data_ptr<float>(); }
  float* P_p() { return P.data_ptr<float>(); }
  float* Q_p() { return Q.data_ptr<float>(); }
};

template <class O>
State initial_state(const O& o, const TrainingRatings& t, int64_t n_users, int64_t n_items, Rng& rng) {
  State s;
  s.mu = torch::full({1}, t.mean, torch::kFloat);
  s.bu = torch::zeros({n_users}, torch::kFloat);  // biases start at 0 (Surprise, LibRec)
  s.bi = torch::zeros({n_items}, torch::kFloat);
  s.P = normal_tensor(n_users, o.factors(), o.init_mean(), o.init_std(), rng);
  s.Q = normal_tensor(n_items, o.factors(), o.init_mean(), o.init_std(), rng);
  return s;
}

// Step sizes and L2 weights of one epoch, as floats for the kernels.
struct Rates {
  float lr, reg, lr_b, reg_b, lr_y, reg_y;
  void decay(double d) {
    lr = static_cast<float>(lr * d);
    lr_b = static_cast<float>(lr_b * d);
    lr_y = static_cast<float>(lr_y * d);
  }
};

template <class O>
Rates rates_of(const O& o) {
  Rates r;
  r.lr = static_cast<float>(o.lr());
  r.reg = static_cast<float>(o.reg());
  r.lr_b = static_cast<float>(o.lr_bias().value_or(o.lr()));
  r.reg_b = static_cast<float>(o.reg_bias().value_or(o.reg()));
  r.lr_y = r.reg_y = 0;
  return r;
}

void check_finite(const char* model, double rmse, int64_t epoch) {
  TORCH_CHECK(std::isfinite(rmse), model, ": SGD diverged in epoch ", epoch + 1, " (training RMSE ", rmse,
              "); lower model.lr");
}

// Factors of users / items without training ratings are zeroed (never updated, they would only add
// the initialisation's noise): such a user is predicted mu + b_i, as Surprise predicts a user
// unknown to training. Then the working state becomes the model's buffers.
void store(State& s, const TrainingRatings& t, bool clip, RatingMFImpl& m) {
  const int64_t f = s.P.size(1);
  float* P = s.P_p();
  float* Q = s.Q_p();
  for (int64_t u = 0; u + 1 < static_cast<int64_t>(t.start.size()); ++u)
    if (t.start[static_cast<size_t>(u) + 1] == t.start[static_cast<size_t>(u)]) std::fill(P + u * f, P + (u + 1) * f, 0.0f);
  for (int64_t i = 0; i < static_cast<int64_t>(t.item_count.size()); ++i)
    if (t.item_count[static_cast<size_t>(i)] == 0) std::fill(Q + i * f, Q + (i + 1) * f, 0.0f);
  torch::NoGradGuard no_grad;
  m.global_mean.copy_(s.mu);
  m.user_bias.copy_(s.bu);
  m.item_bias.copy_(s.bi);
  m.user_factors.copy_(s.P);
  m.item_factors.copy_(s.Q);
  const float inf = std::numeric_limits<float>::infinity();
  m.rating_min.fill_(clip ? t.lo : -inf);
  m.rating_max.fill_(clip ? t.hi : inf);
}

// ---- kernels -----------------------------------------------------------------------------------
// OpenMP's simd reductions let the compiler vectorise the float sums (otherwise it may not
// reorder them); without OpenMP they are plain loops.

inline float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float s = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : s)
#endif
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

// <q, p + z>
inline float dot3(const float* __restrict q, const float* __restrict p, const float* __restrict z, int64_t n) {
  float s = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : s)
#endif
  for (int64_t k = 0; k < n; ++k) s += q[k] * (p[k] + z[k]);
  return s;
}

// p += lr (e q - reg p), q += lr (e p - reg q), both from the old values.
inline void update_pq(float* __restrict p, float* __restrict q, int64_t n, float e, float lr, float reg) {
  for (int64_t k = 0; k < n; ++k) {
    const float pk = p[k], qk = q[k];
    p[k] += lr * (e * qk - reg * pk);
    q[k] += lr * (e * pk - reg * qk);
  }
}

// One biased-MF epoch over `rows` in their order; returns the sum of squared errors.
double biased_mf_epoch(const std::vector<Rating>& rows, State& s, int64_t f, const Rates& r) {
  const float mu = s.mu.item<float>();
  float* bu = s.bu_p();
  float* bi = s.bi_p();
  float* P = s.P_p();
  float* Q = s.Q_p();
  double sse = 0;
  for (const Rating& x : rows) {
    float* p = P + static_cast<int64_t>(x.user) * f;
    float* q = Q + static_cast<int64_t>(x.item) * f;
    float& b_u = bu[x.user];
    float& b_i = bi[x.item];
    const float e = x.value - (mu + b_u + b_i + dot(p, q, f));
    sse += static_cast<double>(e) * e;
    b_u += r.lr_b * (e - r.reg_b * b_u);
    b_i += r.lr_b * (e - r.reg_b * b_i);
    update_pq(p, q, f, e, r.lr, r.reg);
  }
  return sse;
}

// SVD++'s SGD step on one rating given the user's implicit term z = |N(u)|^-1/2 sum y_j:
// updates b_u, b_i, p_u, q_i; leaves the old q_i in q_old (the y_j gradient needs it); returns e.
inline float svdpp_step(const Rating& x, float mu, float* bu, float* bi, float* __restrict p, float* __restrict q,
                        const float* __restrict z, float* __restrict q_old, int64_t f, const Rates& r) {
  float& b_u = bu[x.user];
  float& b_i = bi[x.item];
  const float e = x.value - (mu + b_u + b_i + dot3(q, p, z, f));
  b_u += r.lr_b * (e - r.reg_b * b_u);
  b_i += r.lr_b * (e - r.reg_b * b_i);
  for (int64_t k = 0; k < f; ++k) {
    const float pk = p[k], qk = q[k];
    q_old[k] = qk;
    p[k] += r.lr * (e * qk - r.reg * pk);
    q[k] += r.lr * (e * (pk + z[k]) - r.reg * qk);
  }
  return e;
}

// z = |N|^-1/2 sum_{j in N} Y[j]  (0 for an empty N)
void implicit_sum(const float* Y, const Csr::Index* nb, const Csr::Index* ne, int64_t f, float* __restrict z) {
  std::fill(z, z + f, 0.0f);
  if (nb == ne) return;
  for (const Csr::Index* j = nb; j != ne; ++j) {
    const float* __restrict y = Y + *j * f;
    for (int64_t k = 0; k < f; ++k) z[k] += y[k];
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ne - nb)));
  for (int64_t k = 0; k < f; ++k) z[k] *= inv;
}

// y = c y + d for one row
inline void affine_row(float* __restrict y, const float* __restrict d, float c, int64_t f) {
  for (int64_t k = 0; k < f; ++k) y[k] = c * y[k] + d[k];
}

}  // namespace

BiasedMFOptions BiasedMFOptions::from_config(const Config* cfg) {
  BiasedMFOptions o;
  if (cfg) read_common(*cfg, o);
  return o;
}

SVDppOptions SVDppOptions::from_config(const Config* cfg) {
  SVDppOptions o;
  if (!cfg) return o;
  read_common(*cfg, o);
  o.lr_implicit(optional_non_negative(*cfg, "model.lr_implicit"));
  o.reg_implicit(optional_non_negative(*cfg, "model.reg_implicit"));
  o.order(cfg->get_choice("model.order", {"user", "rating"}));
  return o;
}

// ---- shared scoring ------------------------------------------------------------------------------

RatingMFImpl::RatingMFImpl(std::string name, const ModelContext& ctx, int64_t factors)
    : RecommenderImpl(std::move(name), ctx),
      global_mean(register_buffer("global_mean", torch::zeros({1}))),
      user_bias(register_buffer("user_bias", torch::zeros({ctx.n_users}))),
      item_bias(register_buffer("item_bias", torch::zeros({ctx.n_items}))),
      user_factors(register_buffer("user_factors", torch::zeros({ctx.n_users, factors}))),
      item_factors(register_buffer("item_factors", torch::zeros({ctx.n_items, factors}))),
      rating_min(register_buffer("rating_min", torch::full({1}, -std::numeric_limits<float>::infinity()))),
      rating_max(register_buffer("rating_max", torch::full({1}, std::numeric_limits<float>::infinity()))),
      data_(ctx.data),
      split_(ctx.split) {}

at::Tensor RatingMFImpl::user_vectors(const at::Tensor& users) const { return user_factors.index_select(0, users); }

// The additions run in the same order in score, score_all and the TorchScript code, so all three
// round alike. Clipping to [-inf, inf] (clip: false) changes nothing.
at::Tensor RatingMFImpl::score(const at::Tensor& users, const at::Tensor& items) {
  const auto u = users.to(user_bias.device()), i = items.to(user_bias.device());
  const auto s = (user_vectors(u) * item_factors.index_select(0, i)).sum(1) + item_bias.index_select(0, i) +
                 user_bias.index_select(0, u) + global_mean;  // [B]
  return torch::maximum(torch::minimum(s, rating_max), rating_min);
}

at::Tensor RatingMFImpl::score_all(const at::Tensor& users) {
  const auto u = users.to(user_bias.device());
  const auto s = torch::matmul(user_vectors(u), item_factors.t()) + item_bias.unsqueeze(0) +
                 user_bias.index_select(0, u).unsqueeze(1) + global_mean;  // [B, f] x [f, I] -> [B, I]
  return torch::maximum(torch::minimum(s, rating_max), rating_min);   // fresh
}

namespace {

// TorchScript of score / score_all; `user_vec` is the expression of the user vectors [B, f].
std::string script_code(const std::string& user_vec) {
  std::string code = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    pu = USER_VEC
    s = (pu * self.item_factors.index_select(0, items)).sum(1) + self.item_bias.index_select(0, items) + self.user_bias.index_select(0, users) + self.global_mean
    return torch.maximum(torch.minimum(s, self.rating_max), self.rating_min)

def _score_all(self, users: Tensor) -> Tensor:
    pu = USER_VEC
    s = torch.matmul(pu, self.item_factors.t()) + self.item_bias.unsqueeze(0) + self.user_bias.index_select(0, users).unsqueeze(1) + self.global_mean
    return torch.maximum(torch.minimum(s, self.rating_max), self.rating_min)
)PY";
  for (size_t p; (p = code.find("USER_VEC")) != std::string::npos;) code.replace(p, 8, user_vec);
  return code;
}


}  // namespace

ScriptExport RatingMFImpl::script_export() const {
  ScriptExport e;
  e.tensors = {{"global_mean", cpu_copy(global_mean)},   {"user_bias", cpu_copy(user_bias)},
               {"item_bias", cpu_copy(item_bias)},       {"user_factors", cpu_copy(user_factors)},
               {"item_factors", cpu_copy(item_factors)}, {"rating_min", cpu_copy(rating_min)},
               {"rating_max", cpu_copy(rating_max)}};
  e.code = script_code("self.user_factors.index_select(0, users)");
  return e;
}

// ---- Biased MF -----------------------------------------------------------------------------------

BiasedMFImpl::BiasedMFImpl(const ModelContext& ctx) : BiasedMFImpl(ctx, BiasedMFOptions::from_config(ctx.config)) {}

BiasedMFImpl::BiasedMFImpl(const ModelContext& ctx, BiasedMFOptions opts)
    : RatingMFImpl("biasedmf", ctx, checked(opts, "biasedmf").factors()), options(std::move(opts)) {}

void BiasedMFImpl::fit(const Csr& train) {
  TrainingRatings t = training_ratings("biasedmf", data_, split_, train, n_users_, n_items_);
  const int64_t f = options.factors();
  Rng rng(options.seed(), kBiasedMFStream);
  State s = initial_state(options, t, n_users_, n_items_, rng);
  Rates r = rates_of(options);
  train_rmse.clear();
  std::vector<Rating> rows = t.rows;
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    rng.shuffle(rows.begin(), rows.end());  // a fresh random order each epoch
    const double rmse = std::sqrt(biased_mf_epoch(rows, s, f, r) / static_cast<double>(rows.size()));
    check_finite("biasedmf", rmse, epoch);
    train_rmse.push_back(rmse);
    r.decay(options.lr_decay());
  }
  store(s, t, options.clip(), *this);
}

// ---- SVD++ ---------------------------------------------------------------------------------------

SVDppImpl::SVDppImpl(const ModelContext& ctx) : SVDppImpl(ctx, SVDppOptions::from_config(ctx.config)) {}

SVDppImpl::SVDppImpl(const ModelContext& ctx, SVDppOptions opts)
    : RatingMFImpl("svdpp", ctx, checked_svdpp(opts).factors()),
      options(std::move(opts)),
      implicit_factors(register_buffer("implicit_factors", torch::zeros({ctx.n_items, options.factors()}))),
      user_implicit(register_buffer("user_implicit", torch::zeros({ctx.n_users, options.factors()}))) {}

at::Tensor SVDppImpl::user_vectors(const at::Tensor& users) const {
  return user_factors.index_select(0, users) + user_implicit.index_select(0, users);  // p_u + z_u
}

at::Tensor SVDppImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  const auto idx = items.to(implicit_factors.device(), torch::kLong);
  TORCH_CHECK(idx.dim() == 1 && idx.numel() > 0, "svdpp: score_fold_in needs items [n], n >= 1");
  const auto z = implicit_factors.index_select(0, idx).sum(0) / std::sqrt(static_cast<double>(idx.numel()));  // [f]
  const auto s = torch::matmul(item_factors, z) + item_bias + global_mean;                                     // [I]
  return torch::maximum(torch::minimum(s, rating_max), rating_min);
}

ScriptExport SVDppImpl::script_export() const {
  ScriptExport e = RatingMFImpl::script_export();
  e.fold_in = true;
  e.tensors.emplace_back("user_implicit", cpu_copy(user_implicit));
  e.tensors.emplace_back("implicit_factors", cpu_copy(implicit_factors));
  e.code = script_code("self.user_factors.index_select(0, users) + self.user_implicit.index_select(0, users)");
  e.code += R"PY(
def _score_fold_in(self, items: Tensor) -> Tensor:
    z = self.implicit_factors.index_select(0, items).sum(0) / float(items.size(0)) ** 0.5
    s = torch.matmul(self.item_factors, z) + self.item_bias + self.global_mean
    return torch.maximum(torch.minimum(s, self.rating_max), self.rating_min)
)PY";
  return e;
}

void SVDppImpl::update_user_implicit(const Csr& train) {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "svdpp: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", model has ", n_users_, " users x ", n_items_, " items");
  const int64_t f = options.factors();
  const auto Y = implicit_factors.detach().to(torch::kCPU).contiguous();
  auto Z = torch::empty({n_users_, f}, torch::kFloat);
  for (int64_t u = 0; u < n_users_; ++u)
    implicit_sum(Y.data_ptr<float>(), train.row_begin(u), train.row_end(u), f, Z.data_ptr<float>() + u * f);
  torch::NoGradGuard no_grad;
  user_implicit.copy_(Z);
}

void SVDppImpl::fit(const Csr& train) {
  TrainingRatings t = training_ratings("svdpp", data_, split_, train, n_users_, n_items_);
  const int64_t f = options.factors();
  Rng rng(options.seed(), kSVDppStream);
  State s = initial_state(options, t, n_users_, n_items_, rng);
  auto Yt = normal_tensor(n_items_, f, options.init_mean(), options.init_std(), rng);  // [I, f] y_j
  Rates r = rates_of(options);
  r.lr_y = static_cast<float>(options.lr_implicit().value_or(options.lr()));
  r.reg_y = static_cast<float>(options.reg_implicit().value_or(options.reg()));

  const float mu = s.mu.item<float>();
  float* bu = s.bu_p();
  float* bi = s.bi_p();
  float* P = s.P_p();
  float* Q = s.Q_p();
  float* Y = Yt.data_ptr<float>();
  std::vector<float> z(static_cast<size_t>(f)), q_old(static_cast<size_t>(f)), d(static_cast<size_t>(f));
  std::vector<Rating> rows = t.rows;  // grouped by user, as t.start says
  std::vector<int32_t> users;         // users with training ratings
  for (int64_t u = 0; u < n_users_; ++u)
    if (t.start[static_cast<size_t>(u) + 1] > t.start[static_cast<size_t>(u)]) users.push_back(static_cast<int32_t>(u));
  const bool by_user = options.order() == "user";

  train_rmse.clear();
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    double sse = 0;
    if (by_user) {
      // Users in random order, each user's ratings consecutively in random order. While one user's
      // ratings are visited no other y_j changes, so the per-rating update of every y_j in N(u),
      //   y_j <- (1 - a) y_j + lr_y e_t |N(u)|^-1/2 q_i(t)      (a = lr_y reg_y),
      // composes to y_j = c y_j(start) + d with c = (1 - a)^t and d accumulated, applied once when
      // the user is done; z_u follows exactly: z <- (1 - a) z + lr_y e_t q_i(t), since
      // |N(u)| |N(u)|^-1 = 1. This is the per-rating algorithm, O(|N(u)| f) per user.
      rng.shuffle(users.begin(), users.end());
      const float a = r.lr_y * r.reg_y;
      for (const int32_t u : users) {
        const auto b = rows.begin() + t.start[static_cast<size_t>(u)], e_ = rows.begin() + t.start[static_cast<size_t>(u) + 1];
        rng.shuffle(b, e_);
        const Csr::Index* nb = train.row_begin(u);
        const Csr::Index* ne = train.row_end(u);
        const int64_t n = ne - nb;
        const float inv = n > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(n))) : 0.0f;
        implicit_sum(Y, nb, ne, f, z.data());
        std::fill(d.begin(), d.end(), 0.0f);
        float c = 1.0f;
        float* p = P + static_cast<int64_t>(u) * f;
        for (auto x = b; x != e_; ++x) {
          const float e = svdpp_step(*x, mu, bu, bi, p, Q + static_cast<int64_t>(x->item) * f, z.data(), q_old.data(), f, r);
          sse += static_cast<double>(e) * e;
          if (n == 0) continue;  // no implicit feedback: no y_j to update
          const float gy = r.lr_y * e * inv, gz = r.lr_y * e;
          c *= 1.0f - a;
          for (int64_t k = 0; k < f; ++k) {
            d[static_cast<size_t>(k)] = (1.0f - a) * d[static_cast<size_t>(k)] + gy * q_old[static_cast<size_t>(k)];
            z[static_cast<size_t>(k)] = (1.0f - a) * z[static_cast<size_t>(k)] + gz * q_old[static_cast<size_t>(k)];
          }
        }
        for (const Csr::Index* j = nb; j != ne; ++j) affine_row(Y + *j * f, d.data(), c, f);
      }
    } else {
      // All ratings in random order: z_u from the current y at every rating, then every y_j of
      // N(u) updated (Surprise's SVDpp loop, O(|N(u)| f) per rating).
      rng.shuffle(rows.begin(), rows.end());
      for (const Rating& x : rows) {
        const Csr::Index* nb = train.row_begin(x.user);
        const Csr::Index* ne = train.row_end(x.user);
        implicit_sum(Y, nb, ne, f, z.data());
        const float e = svdpp_step(x, mu, bu, bi, P + static_cast<int64_t>(x.user) * f,
                                   Q + static_cast<int64_t>(x.item) * f, z.data(), q_old.data(), f, r);
        sse += static_cast<double>(e) * e;
        if (nb == ne) continue;
        const float gy = e * static_cast<float>(1.0 / std::sqrt(static_cast<double>(ne - nb)));
        for (const Csr::Index* j = nb; j != ne; ++j) {
          float* __restrict y = Y + *j * f;
          for (int64_t k = 0; k < f; ++k) y[k] += r.lr_y * (gy * q_old[static_cast<size_t>(k)] - r.reg_y * y[k]);
        }
      }
    }
    const double rmse = std::sqrt(sse / static_cast<double>(rows.size()));
    check_finite("svdpp", rmse, epoch);
    train_rmse.push_back(rmse);
    r.decay(options.lr_decay());
  }
  store(s, t, options.clip(), *this);
  {
    torch::NoGradGuard no_grad;
    implicit_factors.copy_(Yt);
  }
  update_user_implicit(train);
}

}  // namespace rzoo
