#include "core/checkpoint.h"

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
}  // namespace

void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path) {
  // Serialised to memory first: LibTorch's file writer can throw from its destructor when a write
  // fails (a full disk: std::terminate). rzoo's own writer then puts the bytes on disk, durably,
  // and turns any I/O error into a clean error naming the file.
  std::ostringstream bytes(std::ios::out | std::ios::binary);
  try {
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    fail("{}: cannot serialise the checkpoint: {}", path, first_line(e.what_without_backtrace()));
  }
  if (!bytes) fail("{}: cannot serialise the checkpoint (out of memory?)", path);
  const std::string data = bytes.str();
  write_bytes_atomic(path, data.data(), data.size());
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
