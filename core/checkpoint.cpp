#include "core/checkpoint.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
}  // namespace

void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path) {
  // Streamed into rzoo's durable atomic writer (no copy of the file in memory). LibTorch's own
  // file writer can throw from its destructor when a write fails (a full disk: std::terminate);
  // AtomicOStream keeps such an error from it and check() reports it, naming the file, once the
  // archive is written. Any failure removes the temporary file and leaves `path` as it was.
  AtomicFile file(path);
  AtomicOStream out(file);
  try {
    archive.save_to(out);
  } catch (const c10::Error& e) {
    fail("{}: cannot serialise the checkpoint: {}", path, first_line(e.what_without_backtrace()));
  }
  out.check();
  file.commit();
}

void load_archive(torch::serialize::InputArchive& archive, const std::string& path, const c10::Device& device) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: checkpoint not found", path);
  try {
    archive.load_from(path, device);
  } catch (const c10::Error& e) {
    fail("{}: checkpoint is corrupt or not an rzoo checkpoint ({})", path, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail("{}: checkpoint is corrupt or not an rzoo checkpoint ({})", path, first_line(e.what()));
  }
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_bytes_atomic(path, text.data(), text.size());
}

}  // namespace rzoo
