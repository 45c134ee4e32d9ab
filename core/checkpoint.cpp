#include "core/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace rzoo {

namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
}  // namespace

void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path) {
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    fail("{}: cannot write checkpoint: {}", path, first_line(e.what_without_backtrace()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("{}: cannot move the checkpoint into place: {}", path, ec.message());
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
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot open for writing", tmp);
    out << text;
    if (!out.flush()) fail("{}: write failed", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("{}: cannot move into place: {}", path, ec.message());
}

}  // namespace rzoo
