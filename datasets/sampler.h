// Negative sampling policies and the batchers that turn a training split into the batches of a
// model's input type. Policies are small run-time objects (mlpack style): the trainer holds a
// NegativeSampler chosen by name from `train.sampler`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "datasets/batch.h"
#include "datasets/dataset.h"

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
  // Keeps a reference: `positives` must outlive it. The bitset is built when it takes at most
  // max_bitset_bytes (0: never).
  explicit UniformSampler(const Csr& positives, int64_t max_bitset_bytes = int64_t{32} << 20);
  std::string name() const override { return "uniform"; }
  void sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const override;

 private:
  const Csr& pos_;
  // The positives as a [users x items] bitset when that takes at most 32 MB (ML-1M: 2.8 MB): a
  // rejection test is then one bit instead of a binary search of the user's row. The same
  // decisions either way, so the same negatives.
  std::vector<uint64_t> bits_;
};

// In proportion to count(item)^alpha in `positives` (Walker's alias table: O(1) per draw), the
// user's positives rejected. After 64 rejections in a row (a user holding most of the mass)
// it falls back to uniform rejection, so a draw always ends.
class PopularitySampler final : public NegativeSampler {
 public:
  PopularitySampler(const Csr& positives, double alpha);
  std::string name() const override { return "popularity"; }
  void sample(const int64_t* users, int64_t n, int64_t* out, Rng& rng) const override;
  double probability(int64_t item) const { return prob_[static_cast<size_t>(item)]; }  // before rejection

 private:
  const Csr& pos_;
  std::vector<double> prob_;      // normalised weights
  std::vector<double> accept_;    // alias table
  std::vector<int64_t> alias_;
};

// Builds the sampler named by `train.sampler`; an unknown name lists the known ones.
std::unique_ptr<NegativeSampler> make_sampler(const std::string& name, const Csr& positives, double alpha = 1.0);

// Shuffled batches for one epoch; the order and negatives of epoch e depend on (seed, e) only.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual void start_epoch(uint64_t seed, uint64_t epoch) = 0;
  virtual bool next(Batch& out) = 0;
  virtual int64_t rows_per_epoch() const = 0;
  virtual int64_t batch_size() const = 0;
  int64_t batches_per_epoch() const { return (rows_per_epoch() + batch_size() - 1) / batch_size(); }
};

// Batches over the (user, item) pairs of `train`, of the given input type.
//   Pairwise:  each positive appears `neg_per_pos` times, each with its own negative.
//   Pointwise: each positive (label 1) is followed by `neg_per_pos` negatives (label 0).
// Shuffle::Positives shuffles the positives and keeps each one's rows together (as above);
// Shuffle::Samples shuffles every row on its own, so a positive's negatives are spread over the
// epoch (Rendle et al.'s per-example SGD; one more index per row: 8 bytes x rows per epoch).
// `batch_size` counts rows of the batch. Tensors are built on the CPU by writing into their
// memory directly.
class Batcher final : public BatchSource {
 public:
  enum class Shuffle { Positives, Samples };
  Batcher(const Csr& train, InputType type, const NegativeSampler& sampler, int64_t batch_size, int64_t neg_per_pos,
          Shuffle shuffle = Shuffle::Positives);
  void start_epoch(uint64_t seed, uint64_t epoch) override;
  bool next(Batch& out) override;
  int64_t rows_per_epoch() const override { return n_pos_ * rows_per_pos_; }
  int64_t batch_size() const override { return batch_size_; }

 private:
  const Csr& train_;
  InputType type_;
  const NegativeSampler& sampler_;
  int64_t batch_size_, neg_per_pos_, rows_per_pos_, n_pos_;
  Shuffle shuffle_;
  std::vector<int64_t> row_of_;  // [nnz] user of each training pair
  std::vector<int64_t> order_;   // this epoch's order: of the pairs [nnz], or of the rows [nnz * rows_per_pos]
  int64_t cursor_ = 0;           // next row of the epoch (in rows, not positives)
  Rng rng_;
};

// Batches of users for InputType::Users: every user with at least one training interaction,
// once per epoch, in an order that depends on (seed, epoch) only.
class UserBatcher final : public BatchSource {
 public:
  UserBatcher(const Csr& train, int64_t batch_size);
  void start_epoch(uint64_t seed, uint64_t epoch) override;
  bool next(Batch& out) override;
  int64_t rows_per_epoch() const override { return static_cast<int64_t>(users_.size()); }
  int64_t batch_size() const override { return batch_size_; }

 private:
  int64_t batch_size_;
  std::vector<int64_t> users_, order_;
  int64_t cursor_ = 0;
  Rng rng_;
};

// Batches of the data's own labelled rows (dataset.label_threshold) for pointwise models: every
// training row (user, item, label) once per epoch, shuffled by (seed, epoch); no sampling.
class LabeledBatcher final : public BatchSource {
 public:
  LabeledBatcher(const LabeledRows& rows, int64_t batch_size);
  void start_epoch(uint64_t seed, uint64_t epoch) override;
  bool next(Batch& out) override;
  int64_t rows_per_epoch() const override { return rows_.size(); }
  int64_t batch_size() const override { return batch_size_; }

 private:
  const LabeledRows& rows_;
  int64_t batch_size_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
  Rng rng_;
};

struct SequenceOptions {
  int64_t max_len = 50;  // most recent items kept (left truncation)
  bool prefix = true;    // true: one row per (prefix, next item); false: one row per user
  // Length bucketing: each epoch's shuffled rows are sorted by length within runs of 50
  // batches, cut into batches, and the batches shuffled; a batch then holds sequences of
  // similar length, so trimming its padding (always done) removes most of it.
  bool bucket = false;
};

// Batches of time-ordered training sequences (see Batch for the two layouts). The padding
// index is n_items, so item indices keep their meaning; a model's item table needs one extra
// row. Prefix rows repeat `neg_per_pos` times, each with its own negative. A batch is as wide as
// its longest row (at most max_len): columns that are padding in every row are not built, which
// changes no model's output (positions count from a row's first real item).
class SequenceBatcher final : public BatchSource {
 public:
  SequenceBatcher(const Sequences& train, const NegativeSampler& sampler, SequenceOptions opts, int64_t batch_size,
                  int64_t neg_per_pos);
  void start_epoch(uint64_t seed, uint64_t epoch) override;
  bool next(Batch& out) override;
  int64_t rows_per_epoch() const override { return static_cast<int64_t>(examples_.size()) * reps_; }
  int64_t batch_size() const override { return batch_size_; }

 private:
  const Sequences& seq_;
  const NegativeSampler& sampler_;
  SequenceOptions opt_;
  int64_t batch_size_, reps_;
  std::vector<std::pair<int64_t, int64_t>> examples_;  // (user, target position) or (user, length)
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
  Rng rng_;
  int64_t example_len(int64_t e) const;  // real items in example e's row (<= max_len)
};

// The batch source for a model's input type (pointwise on labelled data: LabeledBatcher).
// `shuffle` applies to the pair batcher (pointwise, pairwise); the others have one row per example.
std::unique_ptr<BatchSource> make_batcher(const Split& split, InputType type, const NegativeSampler& sampler,
                                          int64_t batch_size, int64_t neg_per_pos, const SequenceOptions& seq = {},
                                          Batcher::Shuffle shuffle = Batcher::Shuffle::Positives);

}  // namespace rzoo
