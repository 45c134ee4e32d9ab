// Negative sampling policies and the batcher that turns a training matrix into the batches of a
// model's input type. Policies are small run-time objects (mlpack style): the trainer holds a
// NegativeSampler chosen by name from `train.sampler`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/random.h"
#include "models/recommender.h"

namespace rzoo {

class NegativeSampler {
 public:
  virtual ~NegativeSampler() = default;
  virtual std::string name() const = 0;
  // out[k] = a negative item for users[k], for k in [0, n). Never one of the user's positives.
  virtual void sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const = 0;
};

// Uniform over the items the user has not interacted with in `positives` (rejection sampling
// against the user's sorted CSR row: no allocation per sample).
class UniformSampler final : public NegativeSampler {
 public:
  explicit UniformSampler(const Csr& positives);  // keeps a reference: `positives` must outlive it
  std::string name() const override { return "uniform"; }
  void sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const override;

 private:
  const Csr& pos_;
};

// Builds the sampler named by `train.sampler`; an unknown name lists the known ones.
std::unique_ptr<NegativeSampler> make_sampler(const std::string& name, const Csr& positives);

// Shuffled batches over the (user, item) pairs of `train`, of the given input type.
//   Pairwise:  each positive appears `neg_per_pos` times, each with its own negative.
//   Pointwise: each positive (label 1) is followed by `neg_per_pos` negatives (label 0).
// `batch_size` counts rows of the batch. Tensors are built on the CPU by writing into their
// memory directly.
class Batcher {
 public:
  Batcher(const Csr& train, InputType type, const NegativeSampler& sampler, int64_t batch_size, int64_t neg_per_pos);
  void start_epoch(uint64_t seed, uint64_t epoch);  // new order, new negative stream
  bool next(Batch& out);
  int64_t rows_per_epoch() const { return n_pos_ * rows_per_pos_; }
  int64_t batches_per_epoch() const { return (rows_per_epoch() + batch_size_ - 1) / batch_size_; }

 private:
  const Csr& train_;
  InputType type_;
  const NegativeSampler& sampler_;
  int64_t batch_size_, neg_per_pos_, rows_per_pos_, n_pos_;
  std::vector<int64_t> row_of_;  // [nnz] user of each training pair
  std::vector<int64_t> order_;   // [nnz] this epoch's order of the pairs
  int64_t cursor_ = 0;           // next row of the epoch (in rows, not positives)
  Rng rng_;
};

}  // namespace rzoo
