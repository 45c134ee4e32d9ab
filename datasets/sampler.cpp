#include "datasets/sampler.h"

#include <torch/torch.h>

#include "trainers/error.h"

namespace rzoo {

UniformSampler::UniformSampler(const Csr& positives) : pos_(positives) {
  for (int64_t u = 0; u < pos_.n_rows; ++u)
    if (pos_.row_size(u) >= pos_.n_cols)
      fail("negative sampling: user index {} has interacted with all {} items; no negative exists", u, pos_.n_cols);
}

void UniformSampler::sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const {
  const int64_t n_items = pos_.n_cols;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t u = users[k];
    const int64_t* b = pos_.row_begin(u);
    const int64_t* e = pos_.row_end(u);
    int64_t item;
    do item = rng.uniform(n_items);
    while (std::binary_search(b, e, item));
    out[k] = item;
  }
}

std::unique_ptr<NegativeSampler> make_sampler(const std::string& name, const Csr& positives) {
  if (name == "uniform") return std::make_unique<UniformSampler>(positives);
  fail("unknown negative sampler '{}' (known samplers: uniform)", name);
}

Batcher::Batcher(const Csr& train, InputType type, const NegativeSampler& sampler, int64_t batch_size,
                 int64_t neg_per_pos)
    : train_(train),
      type_(type),
      sampler_(sampler),
      batch_size_(batch_size),
      neg_per_pos_(neg_per_pos),
      rows_per_pos_(type == InputType::Pointwise ? 1 + neg_per_pos : neg_per_pos),
      n_pos_(train.nnz()) {
  if (type != InputType::Pointwise && type != InputType::Pairwise)
    fail("the batcher builds pointwise and pairwise batches; input type '{}' has no batcher yet", to_string(type));
  if (batch_size < 1) fail("train.batch_size must be >= 1, got {}", batch_size);
  if (neg_per_pos < 1) fail("train.neg_per_pos must be >= 1, got {}", neg_per_pos);
  if (n_pos_ == 0) fail("the training split has no interactions");
  row_of_.resize(static_cast<size_t>(n_pos_));
  for (int64_t u = 0; u < train.n_rows; ++u)
    std::fill(row_of_.begin() + train.indptr[u], row_of_.begin() + train.indptr[u + 1], u);
  order_.resize(static_cast<size_t>(n_pos_));
}

void Batcher::start_epoch(uint64_t seed, uint64_t epoch) {
  // The order and the negatives of epoch e depend on (seed, e) only, so a resumed run draws
  // exactly what an uninterrupted one would.
  rng_ = Rng(seed, 1000003ULL * (epoch + 1));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  rng_.shuffle(order_.begin(), order_.end());
  cursor_ = 0;
}

bool Batcher::next(Batch& b) {
  const int64_t total = rows_per_epoch();
  if (cursor_ >= total) return false;
  const int64_t n = std::min(batch_size_, total - cursor_);
  auto users = torch::empty({n}, torch::kLong), items = torch::empty({n}, torch::kLong);
  int64_t* pu = users.data_ptr<int64_t>();
  int64_t* pi = items.data_ptr<int64_t>();
  if (type_ == InputType::Pairwise) {
    auto negs = torch::empty({n}, torch::kLong);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t k = order_[static_cast<size_t>((cursor_ + r) / rows_per_pos_)];
      pu[r] = row_of_[static_cast<size_t>(k)];
      pi[r] = train_.indices[static_cast<size_t>(k)];
    }
    sampler_.sample(pu, n, negs.data_ptr<int64_t>(), rng_);
    b = Batch{users, items, negs, {}};
  } else {
    auto labels = torch::empty({n}, torch::kFloat);
    float* pl = labels.data_ptr<float>();
    std::vector<int64_t> neg_rows;  // rows of this batch that take a sampled negative
    neg_rows.reserve(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = cursor_ + r;
      const int64_t k = order_[static_cast<size_t>(row / rows_per_pos_)];
      pu[r] = row_of_[static_cast<size_t>(k)];
      if (row % rows_per_pos_ == 0) {
        pi[r] = train_.indices[static_cast<size_t>(k)];
        pl[r] = 1.0f;
      } else {
        neg_rows.push_back(r);
        pl[r] = 0.0f;
      }
    }
    std::vector<int64_t> neg_users(neg_rows.size()), negs(neg_rows.size());
    for (size_t j = 0; j < neg_rows.size(); ++j) neg_users[j] = pu[neg_rows[j]];
    sampler_.sample(neg_users.data(), static_cast<int64_t>(negs.size()), negs.data(), rng_);
    for (size_t j = 0; j < neg_rows.size(); ++j) pi[neg_rows[j]] = negs[j];
    b = Batch{users, items, {}, labels};
  }
  cursor_ += n;
  return true;
}

}  // namespace rzoo
