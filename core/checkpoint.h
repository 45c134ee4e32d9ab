// Checkpoint files: LibTorch archives written atomically (to a temporary file in the same folder,
// then renamed), so a crash mid-write never leaves a truncated checkpoint behind.
#pragma once
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <optional>
#include <string>

namespace rzoo {

// Streams `archive` into `path` atomically (core/atomic_file.h: AtomicOStream; the file is never
// held whole in memory); an I/O error is an rzoo::Error naming the file, `path` left as it was.
void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path);
// Loads `path`; a missing, truncated or corrupt file is an rzoo::Error naming it.
void load_archive(torch::serialize::InputArchive& archive, const std::string& path, const c10::Device& device);
// Loads the model weights of an rzoo training checkpoint (a run's best.pt or last.pt) into
// `module`: checks the format tag, that the checkpoint holds model `model_name`, and that every
// parameter and buffer keeps its shape; each failure is an rzoo::Error naming the file.
void load_model_checkpoint(const std::string& path, torch::nn::Module& module, const std::string& model_name,
                           const c10::Device& device);
// A run's training progress from its last.pt (the trainer's state, read without building the
// model): the last complete epoch and whether training finished. Nothing when the file is
// missing, unreadable or holds no training state.
struct RunProgress {
  int64_t epoch = 0;
  bool done = false;
};
std::optional<RunProgress> read_run_progress(const std::string& last_pt);
// Writes text to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace rzoo
