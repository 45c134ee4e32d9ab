#include "models/general/content.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/config.h"
#include "core/error.h"
#include "datasets/dataset.h"

namespace rzoo {

ContentOptions ContentOptions::from_config(const Config* cfg) {
  ContentOptions o;
  if (!cfg) return o;
  o.features(cfg->get_string_list("model.features"));
  o.weighting(cfg->get_choice("model.weighting", {"tfidf", "binary"}));
  o.max_features(cfg->get_int("model.max_features", 1, int64_t{1} << 24));
  o.min_df(cfg->get_int("model.min_df", 1));
  o.profile(cfg->get_choice("model.profile", {"mean", "rating"}));
  return o;
}

ContentImpl::ContentImpl(const ModelContext& ctx) : ContentImpl(ctx, ContentOptions::from_config(ctx.config)) {}

ContentImpl::ContentImpl(const ModelContext& ctx, ContentOptions opts) : RecommenderImpl("content", ctx), options(std::move(opts)) {
  TORCH_CHECK(ctx.data != nullptr, "content: needs the dataset's item features (built without data)");
  const SideInfo& info = ctx.data->item_info;
  // The item token features used: those named, or every token feature of the items.
  std::vector<const Feature*> feats;
  std::string known;
  for (const auto& f : info.features)
    if (f.kind != Feature::Kind::Float) known += (known.empty() ? "" : ", ") + f.name;
  if (options.features().empty()) {
    for (const auto& f : info.features)
      if (f.kind != Feature::Kind::Float) feats.push_back(&f);
  } else {
    for (const auto& name : options.features()) {
      const Feature* f = info.find(name);
      if (!f || f->kind == Feature::Kind::Float) {
        if (ctx.config) ctx.config->bad("model.features", fmt::format("the dataset has no item token feature '{}' (it has: {})", name, known.empty() ? "none" : known));
        fail("content: the dataset has no item token feature '{}' (it has: {})", name, known.empty() ? "none" : known);
      }
      feats.push_back(f);
    }
  }
  if (feats.empty())
    fail("content: the dataset has no item features (genres, tags, titles...); set dataset.items.path or use another model");
  // Document frequency of every (feature, token); the vocabulary keeps the most frequent.
  struct Tok { int64_t df; size_t feat; int32_t token; };
  std::vector<Tok> toks;
  std::vector<std::vector<int64_t>> column;  // per feature: token -> column or -1
  for (size_t fi = 0; fi < feats.size(); ++fi) {
    const Feature& f = *feats[fi];
    std::vector<int64_t> df(f.vocab.size(), 0), last(f.vocab.size(), -1);
    for (int64_t e = 0; e < std::min(f.n(), n_items_); ++e)
      for (int64_t p = f.offsets[static_cast<size_t>(e)]; p < f.offsets[static_cast<size_t>(e) + 1]; ++p) {
        const auto t = static_cast<size_t>(f.tokens[static_cast<size_t>(p)]);
        if (last[t] != e) ++df[t], last[t] = e;
      }
    for (size_t t = 0; t < df.size(); ++t)
      if (df[t] >= options.min_df()) toks.push_back({df[t], fi, static_cast<int32_t>(t)});
    column.emplace_back(f.vocab.size(), -1);
  }
  std::stable_sort(toks.begin(), toks.end(), [](const Tok& a, const Tok& b) { return a.df > b.df; });
  if (static_cast<int64_t>(toks.size()) > options.max_features()) toks.resize(static_cast<size_t>(options.max_features()));
  if (toks.empty()) fail("content: no item token is on at least model.min_df = {} items", options.min_df());
  const auto T = static_cast<int64_t>(toks.size());
  std::vector<double> idf(static_cast<size_t>(T));
  for (int64_t c = 0; c < T; ++c) {
    const Tok& t = toks[static_cast<size_t>(c)];
    column[t.feat][static_cast<size_t>(t.token)] = c;
    vocab.push_back(feats[t.feat]->name + ":" + feats[t.feat]->vocab[static_cast<size_t>(t.token)]);
    // Smoothed idf (as scikit-learn's): never zero, so a token on every item still counts.
    idf[static_cast<size_t>(c)] = std::log((1.0 + static_cast<double>(n_items_)) / (1.0 + static_cast<double>(t.df))) + 1.0;
  }
  // Item vectors [I, T]: term frequency x idf (or 1), L2-normalised.
  auto v = torch::zeros({n_items_, T}, torch::kFloat);
  float* vp = v.data_ptr<float>();
  for (size_t fi = 0; fi < feats.size(); ++fi) {
    const Feature& f = *feats[fi];
    for (int64_t e = 0; e < std::min(f.n(), n_items_); ++e)
      for (int64_t p = f.offsets[static_cast<size_t>(e)]; p < f.offsets[static_cast<size_t>(e) + 1]; ++p) {
        const int64_t c = column[fi][static_cast<size_t>(f.tokens[static_cast<size_t>(p)])];
        if (c < 0) continue;
        float& x = vp[e * T + c];
        x = options.weighting() == "binary" ? 1.0f : x + static_cast<float>(idf[static_cast<size_t>(c)]);
      }
  }
  v = v / v.norm(2, 1, true).clamp_min(1e-12);  // rows without features stay zero
  item_vec_ = register_buffer("item_vec", v);
  user_vec_ = register_buffer("user_vec", torch::zeros({n_users_, T}, torch::kFloat));
  ctx_data_ = ctx.data;
  ctx_split_ = ctx.split;
}

void ContentImpl::fit(const Csr& train) {
  TORCH_CHECK(train.n_rows == n_users_ && train.n_cols == n_items_, "content: training matrix is ", train.n_rows, " x ",
              train.n_cols, ", the model ", n_users_, " x ", n_items_);
  // Profile weights: 1 per consumed item (mean), or the rating minus the user's mean rating.
  std::vector<float> w(train.indices.size(), 1.0f);
  if (options.profile() == "rating") {
    if (!ctx_data_ || !ctx_split_ || !ctx_data_->has_ratings())
      fail("content: model.profile = rating needs ratings, and the dataset has none (use profile: mean)");
    const Dataset& d = *ctx_data_;
    std::vector<double> sum(static_cast<size_t>(n_users_), 0.0);
    std::vector<int64_t> cnt(static_cast<size_t>(n_users_), 0);
    // (user, item) -> rating of the training rows; repeated pairs keep the last.
    std::vector<float> r(train.indices.size(), 0.0f);
    for (int64_t row : ctx_split_->train_rows) {
      const auto u = static_cast<int64_t>(std::as_const(d.user)[static_cast<size_t>(row)]);
      const auto i = static_cast<int64_t>(std::as_const(d.item)[static_cast<size_t>(row)]);
      const Csr::Index* at = std::lower_bound(train.row_begin(u), train.row_end(u), i);
      if (at == train.row_end(u) || *at != i) continue;
      r[static_cast<size_t>(at - train.indices.data())] = std::as_const(d.rating)[static_cast<size_t>(row)];
    }
    for (int64_t u = 0; u < n_users_; ++u)
      for (int64_t p = train.indptr[static_cast<size_t>(u)]; p < train.indptr[static_cast<size_t>(u) + 1]; ++p)
        sum[static_cast<size_t>(u)] += r[static_cast<size_t>(p)], ++cnt[static_cast<size_t>(u)];
    for (int64_t u = 0; u < n_users_; ++u) {
      const double mean = cnt[static_cast<size_t>(u)] ? sum[static_cast<size_t>(u)] / static_cast<double>(cnt[static_cast<size_t>(u)]) : 0.0;
      for (int64_t p = train.indptr[static_cast<size_t>(u)]; p < train.indptr[static_cast<size_t>(u) + 1]; ++p) {
        const double c = r[static_cast<size_t>(p)] - mean;
        // A user who rates everything alike still has a profile: equal weights then.
        w[static_cast<size_t>(p)] = std::abs(c) < 1e-9 ? 1.0f : static_cast<float>(c);
      }
    }
  }
  // Profiles [U, T] = W [U, I] @ item_vec [I, T], W sparse: one sparse-dense product.
  const auto nnz = static_cast<int64_t>(train.indices.size());
  std::vector<int64_t> rows(static_cast<size_t>(nnz));
  for (int64_t u = 0; u < n_users_; ++u)
    std::fill(rows.begin() + train.indptr[static_cast<size_t>(u)], rows.begin() + train.indptr[static_cast<size_t>(u) + 1], u);
  // On the CPU (the model may already live on a GPU; the product is small), then copied in.
  auto idx = torch::stack({torch::tensor(rows, torch::kLong), torch::tensor(train.indices, torch::kLong)});
  auto W = torch::sparse_coo_tensor(idx, torch::tensor(w, torch::kFloat), {n_users_, n_items_});
  auto P = torch::mm(W, item_vec_.to(torch::kCPU));
  P = P / P.norm(2, 1, true).clamp_min(1e-12);
  torch::NoGradGuard no_grad;
  user_vec_.copy_(P);
}

at::Tensor ContentImpl::score(const at::Tensor& users, const at::Tensor& items) {
  // In slices of ~64 MB of gathered [m, T] rows: many pairs (rating metrics) stay within memory.
  const auto u = users.to(user_vec_.device()), it = items.to(item_vec_.device());
  const int64_t n = u.size(0), step = std::max<int64_t>(1, (int64_t{1} << 23) / std::max<int64_t>(item_vec_.size(1), 1));
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < n; b += step) {
    const int64_t m = std::min(step, n - b);
    out.push_back((user_vec_.index_select(0, u.narrow(0, b, m)) * item_vec_.index_select(0, it.narrow(0, b, m))).sum(1));
  }
  return out.empty() ? torch::zeros({0}, item_vec_.options()) : torch::cat(out);
}

at::Tensor ContentImpl::score_all(const at::Tensor& users) {
  return torch::matmul(user_vec_.index_select(0, users.to(user_vec_.device())), item_vec_.t());  // [B, T] x [T, I]: cosine
}

at::Tensor ContentImpl::score_fold_in(const at::Tensor& items) {
  torch::NoGradGuard no_grad;
  auto p = item_vec_.index_select(0, items.to(item_vec_.device(), torch::kLong)).sum(0);  // [T]
  p = p / p.norm().clamp_min(1e-12);
  return torch::matmul(item_vec_, p);  // [I]
}

std::pair<at::Tensor, at::Tensor> ContentImpl::explain(const at::Tensor& items, int64_t item) {
  torch::NoGradGuard no_grad;
  const auto v = item_vec_.to(torch::kCPU);
  auto p = v.index_select(0, items.to(torch::kCPU, torch::kLong)).sum(0);  // [T]
  p = p / p.norm().clamp_min(1e-12);
  const auto c = v[item] * p;                      // [T]: each feature's share of the cosine
  const auto nz = torch::nonzero(c).reshape({-1});  // the shared features only
  return {nz, c.index_select(0, nz).to(torch::kDouble)};
}

ScriptExport ContentImpl::script_export() const {
  ScriptExport e;
  e.fold_in = true;
  e.explain_kind = "features";
  e.explain_features = vocab;
  e.tensors = {{"item_vec", item_vec_.detach().to(torch::kCPU).clone()}, {"user_vec", user_vec_.detach().to(torch::kCPU).clone()}};
  e.code = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    return (self.user_vec.index_select(0, users) * self.item_vec.index_select(0, items)).sum(1)

def _score_all(self, users: Tensor) -> Tensor:
    return torch.matmul(self.user_vec.index_select(0, users), self.item_vec.t())

def _score_fold_in(self, items: Tensor) -> Tensor:
    p = self.item_vec.index_select(0, items).sum(0)
    p = p / p.norm().clamp_min(1e-12)
    return torch.matmul(self.item_vec, p)

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    p = self.item_vec.index_select(0, items).sum(0)
    p = p / p.norm().clamp_min(1e-12)
    c = self.item_vec[item] * p
    nz = torch.nonzero(c).reshape([-1])
    return nz, c.index_select(0, nz).double()
)PY";
  return e;
}

}  // namespace rzoo
