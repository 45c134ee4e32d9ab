#include "datasets/sampler.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace rzoo {

UniformSampler::UniformSampler(const Csr& positives, int64_t max_bitset_bytes) : pos_(positives) {
  for (int64_t u = 0; u < pos_.n_rows; ++u)
    if (pos_.row_size(u) >= pos_.n_cols)
      fail("negative sampling: user index {} has interacted with all {} items; no negative exists", u, pos_.n_cols);
  const int64_t cells = pos_.n_rows * pos_.n_cols;  // both < 2^31
  if (cells > 0 && cells / 8 <= max_bitset_bytes) {
    bits_.assign(static_cast<size_t>((cells + 63) / 64), 0);
    for (int64_t u = 0; u < pos_.n_rows; ++u)
      for (const Csr::Index* p = pos_.row_begin(u); p != pos_.row_end(u); ++p) {
        const int64_t c = u * pos_.n_cols + *p;
        bits_[static_cast<size_t>(c >> 6)] |= uint64_t{1} << (c & 63);
      }
  }
}

void UniformSampler::sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const {
  const int64_t n_items = pos_.n_cols;
  if (!bits_.empty()) {
    const uint64_t* bits = bits_.data();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t base = users[k] * n_items;
      int64_t item, c;
      do {
        item = rng.uniform(n_items);
        c = base + item;
      } while ((bits[c >> 6] >> (c & 63)) & 1);
      out[k] = item;
    }
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    const int64_t u = users[k];
    const Csr::Index* b = pos_.row_begin(u);
    const Csr::Index* e = pos_.row_end(u);
    int64_t item;
    do item = rng.uniform(n_items);
    while (std::binary_search(b, e, item));
    out[k] = item;
  }
}

PopularitySampler::PopularitySampler(const Csr& positives, double alpha) : pos_(positives) {
  if (!(alpha >= 0)) fail("train.sampler_alpha must be >= 0, got {}", alpha);
  const int64_t n = pos_.n_cols;
  for (int64_t u = 0; u < pos_.n_rows; ++u)
    if (pos_.row_size(u) >= n)
      fail("negative sampling: user index {} has interacted with all {} items; no negative exists", u, n);
  std::vector<double> w(static_cast<size_t>(n), 0.0);
  for (int64_t i : pos_.indices) w[static_cast<size_t>(i)] += 1.0;
  double total = 0;
  for (auto& x : w) {
    x = x > 0 ? std::pow(x, alpha) : (alpha == 0 ? 1.0 : 0.0);
    total += x;
  }
  if (total <= 0) fail("popularity sampler: the training split has no interactions");
  prob_.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) prob_[i] = w[i] / total;
  // Vose's alias method.
  accept_.assign(w.size(), 1.0);
  alias_.resize(w.size());
  std::iota(alias_.begin(), alias_.end(), int64_t{0});
  std::vector<int64_t> small, large;
  std::vector<double> scaled(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    scaled[i] = prob_[i] * static_cast<double>(n);
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<int64_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back(), l = large.back();
    small.pop_back();
    accept_[static_cast<size_t>(s)] = scaled[static_cast<size_t>(s)];
    alias_[static_cast<size_t>(s)] = l;
    scaled[static_cast<size_t>(l)] -= 1.0 - scaled[static_cast<size_t>(s)];
    if (scaled[static_cast<size_t>(l)] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
}

void PopularitySampler::sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const {
  const int64_t n_items = pos_.n_cols;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t u = users[k];
    const Csr::Index* b = pos_.row_begin(u);
    const Csr::Index* e = pos_.row_end(u);
    int64_t item = -1;
    for (int tries = 0; tries < 64; ++tries) {
      const int64_t c = rng.uniform(n_items);
      const int64_t cand = rng.uniform01() < accept_[static_cast<size_t>(c)] ? c : alias_[static_cast<size_t>(c)];
      if (!std::binary_search(b, e, cand)) {
        item = cand;
        break;
      }
    }
    while (item < 0) {  // rare: the user holds most of the popularity mass
      const int64_t cand = rng.uniform(n_items);
      if (!std::binary_search(b, e, cand)) item = cand;
    }
    out[k] = item;
  }
}

std::unique_ptr<NegativeSampler> make_sampler(const std::string& name, const Csr& positives, double alpha) {
  if (name == "uniform") return std::make_unique<UniformSampler>(positives);
  if (name == "popularity") return std::make_unique<PopularitySampler>(positives, alpha);
  fail("unknown negative sampler '{}' (known samplers: popularity, uniform)", name);
}

namespace {
// Negatives per positive beyond the items a user could have as negatives (n_items - 1): an epoch
// that would grow with a number nobody bounded (and never end); the CLI refuses it earlier, with
// the config's origin (trainers/eval/bounds.h).
void check_negatives_fit(int64_t neg_per_pos, int64_t n_items) {
  if (neg_per_pos > n_items - 1)
    fail("train.neg_per_pos: {} is more than the {} items a user could have as negatives (the data has {} items)",
         neg_per_pos, std::max<int64_t>(n_items - 1, 0), n_items);
}
}  // namespace

Batcher::Batcher(const Csr& train, InputType type, const NegativeSampler& sampler, int64_t batch_size,
                 int64_t neg_per_pos, Shuffle shuffle)
    : train_(train),
      type_(type),
      sampler_(sampler),
      batch_size_(batch_size),
      neg_per_pos_(neg_per_pos),
      rows_per_pos_(type == InputType::Pointwise ? 1 + neg_per_pos : neg_per_pos),
      n_pos_(train.nnz()),
      shuffle_(shuffle) {
  if (type != InputType::Pointwise && type != InputType::Pairwise)
    fail("the pair batcher builds pointwise and pairwise batches, not '{}'", to_string(type));
  if (batch_size < 1) fail("train.batch_size must be >= 1, got {}", batch_size);
  if (neg_per_pos < 1) fail("train.neg_per_pos must be >= 1, got {}", neg_per_pos);
  check_negatives_fit(neg_per_pos, train.n_cols);
  if (n_pos_ == 0) fail("the training split has no interactions");
  row_of_.resize(static_cast<size_t>(n_pos_));
  for (int64_t u = 0; u < train.n_rows; ++u)
    std::fill(row_of_.begin() + train.indptr[u], row_of_.begin() + train.indptr[u + 1], u);
  order_.resize(static_cast<size_t>(shuffle == Shuffle::Samples ? n_pos_ * rows_per_pos_ : n_pos_));
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
  // Row `at` of the epoch is row `row` of the unshuffled layout: pair k = row / rows_per_pos_,
  // slot row % rows_per_pos_ (pointwise slot 0 is the positive). shuffle positives keeps a pair's
  // rows together (row = order_[at / R] * R + at % R), so the slot advances by one a row and the
  // pair at each wrap, with no division a row: three 64-bit divisions a row had made a per-sample
  // MF epoch (NCF ML-1M, 64 dimensions, 8 negatives) 1.66-2.05 s against 1.44-1.58 s now.
  const int64_t R = rows_per_pos_;
  int64_t next_q = cursor_ / R, next_slot = cursor_ - next_q * R;  // shuffle positives: the next row's
  const auto pair_slot = [&](int64_t at, int64_t& k, int64_t& slot) {
    if (shuffle_ == Shuffle::Samples) {
      const int64_t row = order_[static_cast<size_t>(at)];
      k = row / R;
      slot = row - k * R;
      return;
    }
    k = order_[static_cast<size_t>(next_q)];
    slot = next_slot;
    if (++next_slot == R) {
      next_slot = 0;
      ++next_q;
    }
  };
  int64_t k = 0, slot = 0;
  if (type_ == InputType::Pairwise) {
    auto negs = torch::empty({n}, torch::kLong);
    for (int64_t r = 0; r < n; ++r) {
      pair_slot(cursor_ + r, k, slot);
      pu[r] = row_of_[static_cast<size_t>(k)];
      pi[r] = train_.indices[static_cast<size_t>(k)];
    }
    sampler_.sample(pu, n, negs.data_ptr<int64_t>(), rng_);
    b = Batch{users, items, negs, {}, {}};
  } else {
    auto labels = torch::empty({n}, torch::kFloat);
    float* pl = labels.data_ptr<float>();
    std::vector<int64_t> neg_rows;  // rows of this batch that take a sampled negative
    neg_rows.reserve(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      pair_slot(cursor_ + r, k, slot);
      pu[r] = row_of_[static_cast<size_t>(k)];
      if (slot == 0) {
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
    b = Batch{users, items, {}, labels, {}};
  }
  cursor_ += n;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Sequences

SequenceBatcher::SequenceBatcher(const Sequences& train, const NegativeSampler& sampler, SequenceOptions opts,
                                 int64_t batch_size, int64_t neg_per_pos)
    : seq_(train), sampler_(sampler), opt_(opts), batch_size_(batch_size), reps_(opts.prefix ? neg_per_pos : 1) {
  if (batch_size < 1) fail("train.batch_size must be >= 1, got {}", batch_size);
  if (neg_per_pos < 1) fail("train.neg_per_pos must be >= 1, got {}", neg_per_pos);
  if (opts.max_len < 1) fail("train.sequence.max_len must be >= 1, got {}", opts.max_len);
  if (!opts.prefix && neg_per_pos != 1)
    fail("train.neg_per_pos must be 1 with train.sequence.augment: none (one negative per position), got {}", neg_per_pos);
  check_negatives_fit(neg_per_pos, train.n_cols);
  for (int64_t u = 0; u < seq_.n_rows; ++u) {
    const int64_t n = seq_.size(u);
    if (n < 2) continue;  // nothing to predict from a single item
    if (opts.prefix)
      for (int64_t t = 1; t < n; ++t) examples_.emplace_back(u, t);
    else
      examples_.emplace_back(u, n);
  }
  if (examples_.empty()) fail("no training sequence has two or more items; sequence models have nothing to learn");
  order_.resize(examples_.size());
}

int64_t SequenceBatcher::example_len(int64_t e) const {
  const auto& [u, t] = examples_[static_cast<size_t>(e)];
  // prefix: the t items before the target; none: inputs s[0..n-1).
  return std::min(opt_.prefix ? t : t - 1, opt_.max_len);
}

void SequenceBatcher::start_epoch(uint64_t seed, uint64_t epoch) {
  rng_ = Rng(seed, 1000003ULL * (epoch + 1));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  rng_.shuffle(order_.begin(), order_.end());
  cursor_ = 0;
  if (!opt_.bucket) return;
  // Sorted by length within runs of 50 batches (examples per batch: batch_size / reps), then
  // the batches shuffled: similar lengths share a batch, the epoch's order stays random.
  const auto per_batch = static_cast<size_t>(std::max<int64_t>(1, batch_size_ / reps_));
  const size_t run = per_batch * 50;
  for (size_t s = 0; s < order_.size(); s += run) {
    const auto end = order_.begin() + static_cast<std::ptrdiff_t>(std::min(order_.size(), s + run));
    std::stable_sort(order_.begin() + static_cast<std::ptrdiff_t>(s), end,
                     [&](int64_t a, int64_t b) { return example_len(a) < example_len(b); });
  }
  std::vector<size_t> starts;
  for (size_t s = 0; s < order_.size(); s += per_batch) starts.push_back(s);
  rng_.shuffle(starts.begin(), starts.end());
  std::vector<int64_t> shuffled;
  shuffled.reserve(order_.size());
  for (size_t s : starts)
    shuffled.insert(shuffled.end(), order_.begin() + static_cast<std::ptrdiff_t>(s),
                    order_.begin() + static_cast<std::ptrdiff_t>(std::min(order_.size(), s + per_batch)));
  order_ = std::move(shuffled);
}

bool SequenceBatcher::next(Batch& b) {
  const int64_t total = rows_per_epoch();
  if (cursor_ >= total) return false;
  const int64_t n = std::min(batch_size_, total - cursor_), pad = seq_.n_cols;
  auto example = [&](int64_t r) { return order_[static_cast<size_t>((cursor_ + r) / reps_)]; };
  // The batch's width: its longest row (columns of padding only are never built).
  int64_t L = 1;
  for (int64_t r = 0; r < n; ++r) L = std::max(L, example_len(example(r)));
  auto users = torch::empty({n}, torch::kLong);
  auto seq = torch::full({n, L}, pad, torch::kLong);
  int64_t* pu = users.data_ptr<int64_t>();
  int64_t* ps = seq.data_ptr<int64_t>();
  if (opt_.prefix) {
    auto items = torch::empty({n}, torch::kLong), negs = torch::empty({n}, torch::kLong);
    int64_t* pi = items.data_ptr<int64_t>();
    for (int64_t r = 0; r < n; ++r) {
      const auto& [u, t] = examples_[static_cast<size_t>(example(r))];
      const int64_t* s = seq_.begin(u);
      const int64_t len = std::min(t, L);  // the last `len` items before position t, right-aligned
      std::copy(s + t - len, s + t, ps + r * L + (L - len));
      pu[r] = u;
      pi[r] = s[t];
    }
    sampler_.sample(pu, n, negs.data_ptr<int64_t>(), rng_);
    b = Batch{users, items, negs, {}, seq};
  } else {
    auto items = torch::full({n, L}, pad, torch::kLong), negs = torch::full({n, L}, pad, torch::kLong);
    int64_t* pi = items.data_ptr<int64_t>();
    int64_t* pn = negs.data_ptr<int64_t>();
    std::vector<int64_t> us;
    std::vector<int64_t> at;  // flat positions that take a negative
    for (int64_t r = 0; r < n; ++r) {
      const auto& [u, len_all] = examples_[static_cast<size_t>(example(r))];
      const int64_t* s = seq_.begin(u);
      const int64_t len = std::min(len_all - 1, L);  // inputs s[0..n-1), targets s[1..n), last L of each
      std::copy(s + len_all - 1 - len, s + len_all - 1, ps + r * L + (L - len));
      std::copy(s + len_all - len, s + len_all, pi + r * L + (L - len));
      pu[r] = u;
      for (int64_t j = L - len; j < L; ++j) {
        us.push_back(u);
        at.push_back(r * L + j);
      }
    }
    std::vector<int64_t> drawn(us.size());
    sampler_.sample(us.data(), static_cast<int64_t>(us.size()), drawn.data(), rng_);
    for (size_t j = 0; j < at.size(); ++j) pn[at[j]] = drawn[j];
    b = Batch{users, items, negs, {}, seq};
  }
  cursor_ += n;
  return true;
}

UserBatcher::UserBatcher(const Csr& train, int64_t batch_size) : batch_size_(batch_size) {
  if (batch_size < 1) fail("train.batch_size must be >= 1, got {}", batch_size);
  for (int64_t u = 0; u < train.n_rows; ++u)
    if (train.row_size(u) > 0) users_.push_back(u);
  if (users_.empty()) fail("the training split has no interactions");
  order_ = users_;
}

void UserBatcher::start_epoch(uint64_t seed, uint64_t epoch) {
  rng_ = Rng(seed, 1000003ULL * (epoch + 1));
  order_ = users_;
  rng_.shuffle(order_.begin(), order_.end());
  cursor_ = 0;
}

bool UserBatcher::next(Batch& b) {
  const int64_t total = rows_per_epoch();
  if (cursor_ >= total) return false;
  const int64_t n = std::min(batch_size_, total - cursor_);
  auto users = torch::empty({n}, torch::kLong);
  std::copy(order_.begin() + cursor_, order_.begin() + cursor_ + n, users.data_ptr<int64_t>());
  b = Batch{users, {}, {}, {}, {}};
  cursor_ += n;
  return true;
}

LabeledBatcher::LabeledBatcher(const LabeledRows& rows, int64_t batch_size) : rows_(rows), batch_size_(batch_size) {
  if (batch_size < 1) fail("train.batch_size must be >= 1, got {}", batch_size);
  if (rows.size() == 0) fail("the training split has no labelled rows");
  order_.resize(static_cast<size_t>(rows.size()));
  std::iota(order_.begin(), order_.end(), int64_t{0});
}

void LabeledBatcher::start_epoch(uint64_t seed, uint64_t epoch) {
  rng_ = Rng(seed, 1000003ULL * (epoch + 1));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  rng_.shuffle(order_.begin(), order_.end());
  cursor_ = 0;
}

bool LabeledBatcher::next(Batch& b) {
  const int64_t total = rows_per_epoch();
  if (cursor_ >= total) return false;
  const int64_t n = std::min(batch_size_, total - cursor_);
  auto users = torch::empty({n}, torch::kLong), items = torch::empty({n}, torch::kLong);
  auto labels = torch::empty({n}, torch::kFloat);
  const int64_t C = rows_.n_context;
  at::Tensor context = C > 0 ? torch::empty({n, C}, torch::kLong) : at::Tensor();
  int64_t* pc = C > 0 ? context.data_ptr<int64_t>() : nullptr;
  int64_t* pu = users.data_ptr<int64_t>();
  int64_t* pi = items.data_ptr<int64_t>();
  float* pl = labels.data_ptr<float>();
  for (int64_t j = 0; j < n; ++j) {
    const auto r = static_cast<size_t>(order_[static_cast<size_t>(cursor_ + j)]);
    pu[j] = rows_.user[r], pi[j] = rows_.item[r], pl[j] = rows_.label[r];
    for (int64_t c = 0; c < C; ++c) pc[j * C + c] = rows_.context[r * static_cast<size_t>(C) + static_cast<size_t>(c)];
  }
  b = Batch{users, items, {}, labels, {}, context};
  cursor_ += n;
  return true;
}

std::unique_ptr<BatchSource> make_batcher(const Split& split, InputType type, const NegativeSampler& sampler,
                                          int64_t batch_size, int64_t neg_per_pos, const SequenceOptions& seq,
                                          Batcher::Shuffle shuffle) {
  // The epoch's pairs: all of train, or the subset a warm-started run replays (Split::epoch).
  const bool subset = split.epoch.n_rows > 0;
  const Csr& pairs = subset ? split.epoch : split.train;
  if (type == InputType::Users) return std::make_unique<UserBatcher>(pairs, batch_size);
  if (type == InputType::Pointwise && split.labeled() && !subset)
    return std::make_unique<LabeledBatcher>(split.train_labeled, batch_size);
  if (type == InputType::Sequence)
    return std::make_unique<SequenceBatcher>(subset ? split.epoch_seq : split.train_seq, sampler, seq, batch_size, neg_per_pos);
  return std::make_unique<Batcher>(pairs, type, sampler, batch_size, neg_per_pos, shuffle);
}

}  // namespace rzoo
