// The trainer: closed-form fit, or epochs of mini-batch gradient steps on the batches of the
// model's input type; validation every N epochs with early stopping; the best model kept in
// best.pt; the full training state written atomically to last.pt after every epoch, so that
// `rzoo train --resume RUN_DIR` continues exactly where a run stopped (same numbers as an
// uninterrupted run: each epoch's order and negatives derive from (seed, epoch) alone).
// Every epoch also goes to the run folder's history.csv (rewritten atomically) and TensorBoard
// event files (appended; see write_history_csv and core/tensorboard.h).
#pragma once
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/recommender.h"
#include "trainers/evaluator.h"

namespace rzoo {

class Config;
class Logger;
struct Split;
struct Dataset;
class BatchSource;
class EventWriter;
class Distributed;

struct TrainOptions {
  int64_t epochs = 50;
  int64_t batch_size = 2048;
  // train.micro_batch_size: rows per forward/backward pass; a larger batch is taken in pieces whose
  // gradients add up to the batch's (one optimizer step per batch). 0 = the whole batch at once.
  int64_t micro_batch_size = 0;
  int64_t neg_per_pos = 1;
  bool shuffle_samples = false;  // train.shuffle: samples (every row on its own) | positives
  std::string sampler = "uniform";  // uniform | popularity
  double sampler_alpha = 1.0;
  int64_t seq_max_len = 50;        // sequence models: most recent items kept
  bool seq_prefix = true;          // sequence models: prefix augmentation
  bool seq_bucket = false;         // sequence models: length-bucketed batches
  std::string optimizer = "adam";  // adam | sgd | adagrad
  double lr = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.0;           // sgd only
  int64_t valid_every = 1;         // epochs between validations
  std::string early_stop_metric = "ndcg@10";
  int64_t patience = 10;           // validations without improvement before stopping; 0 = never
  int64_t min_epochs = 0;          // early stopping never stops before this epoch
  std::string progress = "auto";   // auto | true | false
  int64_t log_every = 0;           // log the mean loss of the last N steps; 0 = off
  uint64_t seed = 2020;
  // train.init_from: a run folder whose best.pt starts a fresh run (warm start), with the numbers
  // of users and items it was trained on (the first ones of this run's; see warm_start).
  std::string init_from;
  int64_t init_users = 0, init_items = 0;
  bool init_fold_in = true;  // train.init_new_users: fold_in (else model)
  static TrainOptions from_config(const Config& cfg);
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double loss = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0, samples_per_s = 0;
  double valid = std::numeric_limits<double>::quiet_NaN();  // NaN when not validated
  double batch_seconds = 0;  // of `seconds`: building batches (sampling negatives); not kept by resume
  double comm_seconds = 0;   // of `seconds`, distributed: waiting for the collectives of the steps; not kept
  double lr = std::numeric_limits<double>::quiet_NaN();  // the optimizer's; NaN for a closed-form fit
  // Every validation metric of the epoch ("ndcg@10" -> value; NaN values left out); empty when
  // not validated.
  std::vector<std::pair<std::string, double>> valid_metrics{};
};

// history.csv: `epoch,loss,seconds,lr,valid_<metric>...`, one row per epoch in order, one
// valid_ column per validation metric (evaluator order); an empty cell where an epoch was not
// validated or a value is NaN (the loss of a closed-form fit, its lr).
void write_history_csv(const std::string& path, const std::vector<EpochRecord>& history);

// Asks a running fit() to stop after the current batch (from a signal handler: lock-free).
void request_stop();
bool stop_requested();

class Trainer {
 public:
  Trainer(Recommender model, const Split& split, TrainOptions train, EvalOptions eval, c10::Device device,
          std::string run_dir, Logger& log, const Dataset* data = nullptr);  // data: ratings, item features
  ~Trainer();

  // Restores model, optimizer, epoch, early-stopping state and history from run_dir/last.pt.
  // to_train false: only to read the run's progress (rzoo evaluate), by any number of processes.
  void resume(bool announce = true, bool to_train = true);
  // Trains until done, or until `max_epochs` more epochs ran (-1 = no limit). Returns true
  // when training is complete (all epochs, early stop, or a closed-form fit).
  bool fit(int64_t max_epochs = -1);
  // Loads run_dir/best.pt into the model.
  void restore_best();

  int64_t epoch() const { return epoch_; }
  int64_t best_epoch() const { return best_epoch_; }
  double best_valid() const { return best_valid_; }
  bool done() const { return done_; }
  const std::vector<EpochRecord>& history() const { return history_; }
  double train_seconds() const { return train_seconds_; }

 private:
  void save_last();
  void save_best();
  double validate(EpochRecord& rec);  // fills rec.valid_metrics; returns the early-stopping metric
  void write_epoch_logs(const EpochRecord& rec);  // TensorBoard scalars, history.csv
  double current_lr() const;
  void read_history_extras(torch::serialize::InputArchive& ar, const std::string& path);  // by resume()

  // Distributed runs (core/distributed.h; only rank 0 writes files: writes_files()).
  // Every rank starts from rank 0's parameters and buffers.
  void sync_model();
  // The gradients of this rank's rows (weighted by their share of the batch) summed over ranks:
  // every rank then holds the gradient of the whole batch. Also agrees on a stop request. Returns
  // the batch's mean loss (the sum of the ranks' weighted shares).
  double reduce_gradients(double local_loss);
  // At the end of an epoch: fails when a rank's parameters differ from rank 0's.
  void check_replicas();

  // The steps of fit().
  bool fit_closed_form();
  bool use_per_sample_sgd() const;  // logs the choice before the first epoch
  EpochRecord train_epoch(BatchSource& batcher, bool per_sample, bool show_progress, int64_t& step);
  at::Tensor train_batch(Batch& b, bool per_sample, int64_t& steps);  // returns the loss x samples
  // loss() and its backward over b in pieces of train.micro_batch_size rows, each piece's loss
  // weighted by its share of all_terms (see loss_terms): adds the gradient of the weighted sum to
  // the parameters' grads and returns that sum (a detached double scalar).
  at::Tensor backward_in_pieces(const Batch& b, int64_t all_terms);
  void log_loss_window(at::Tensor& window, int64_t& window_rows, const at::Tensor& weighted, int64_t rows,
                       int64_t step_before, int64_t step, bool per_sample);
  void draw_progress(int64_t batch_no, int64_t n_batches);
  void end_epoch(EpochRecord& rec, bool has_valid);  // validation, early stopping, log, last.pt
  std::string validate_epoch(EpochRecord& rec);      // the log line's validation part
  void finish_fit(bool has_valid);

  Recommender model_;
  const Split& split_;
  const Dataset* data_ = nullptr;
  TrainOptions opt_;
  EvalOptions eval_;
  c10::Device device_;
  std::string run_dir_;
  Logger& log_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int64_t epoch_ = 0, best_epoch_ = 0, bad_validations_ = 0;
  double best_valid_ = -std::numeric_limits<double>::infinity();
  double train_seconds_ = 0;
  bool done_ = false;
  std::vector<EpochRecord> history_;
  std::unique_ptr<EventWriter> events_;  // opened at the first epoch this process logs
  bool resumed_ = false;
  Distributed* dist_ = nullptr;  // null: one process
  bool stop_agreed_ = false;     // distributed: every rank saw a stop request at the same step
  double comm_seconds_ = 0;      // distributed: in the collectives of reduce_gradients, this epoch
};

// Whether the optimizer's update from a gradient with zero rows equals the update from the same
// gradient stored sparse (lazy_adam by definition; sgd without momentum and weight decay; adagrad
// without weight decay). The trainer then gives every torch::nn::Embedding of the model sparse
// gradients (set_sparse_embeddings), so that a step costs the rows a batch uses, not the tables.
// Warm start: copies the parameters of the model in checkpoint `path` (model `model_name`) into
// `module`, whose tables may have more rows: a dimension of size old_users + c (old_items + c),
// c in {0, 1, 2} (padding and mask rows), that grew by the number of new users (items) keeps the
// first old_users (old_items) rows and the last c rows at the same offsets from the ends; the rows
// between keep the module's own initialisation. Buffers are left alone: they are the module's
// own data (training histories, counts), built from this run's data. Any other difference is an
// error naming the file and the parameter. Returns the number of tensors that grew.
int64_t warm_start(torch::nn::Module& module, const std::string& path, const std::string& model_name,
                   int64_t old_users, int64_t old_items, int64_t new_users, int64_t new_items, const c10::Device& device);

bool sparse_gradients_are_exact(const TrainOptions& o);
void set_sparse_embeddings(torch::nn::Module& model, bool sparse);

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, std::vector<at::Tensor> params,
                                                        double lr, double weight_decay, double momentum);

}  // namespace rzoo
