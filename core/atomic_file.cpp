#include "core/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/core.h>

#include "core/error.h"

namespace rzoo {

namespace {

constexpr size_t kBuffer = size_t{1} << 20;

std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// fsync of the folder, so that the rename itself survives a power loss. File systems that cannot
// sync a folder (EINVAL, ENOTSUP) have nothing more to do.
int sync_folder(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = 0;
  if (::fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) err = errno;
  ::close(fd);
  return err;
}

bool process_gone(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

}  // namespace

void check_output_path(const std::string& path, const std::string& what) {
  if (path.empty()) fail("{}: an empty file name", what);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    fail("{} {}: is a folder; give a file name inside it (e.g. {}/{})", what, path,
         path.back() == '/' ? path.substr(0, path.size() - 1) : path, what == "export --out" ? "model.pt" : "out.csv");
  const std::string dir = folder_of(path);
  if (::stat(dir.c_str(), &st) != 0)
    fail("{} {}: the folder {} does not exist (create it first: rzoo does not create folders outside output_dir)",
         what, path, dir);
  if (!S_ISDIR(st.st_mode)) fail("{} {}: {} is not a folder", what, path, dir);
  // A temporary file of an earlier write of this same file that was killed.
  const std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  remove_stale_temps(dir, [&](const std::string& n) { return n == name; });
}

std::string atomic_temp_name(const std::string& path, long pid) { return fmt::format("{}.tmp{}", path, pid); }

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = atomic_temp_name(path_, static_cast<long>(::getpid()));
  for (int attempt = 0;; ++attempt) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    // Left by an earlier process that had this pid and was killed mid-write (this process never
    // writes one file twice at once): not ours to keep.
    if (err == EEXIST && attempt == 0 && ::unlink(tmp_.c_str()) == 0) continue;
    fail("{}: cannot create the temporary file {}: {}", path_, tmp_, std::strerror(err));
  }
}

AtomicFile::~AtomicFile() { abort(); }

void AtomicFile::abort() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!done_) {
    ::unlink(tmp_.c_str());
    done_ = true;
  }
}

void AtomicFile::io_error(const char* doing, int err) {
  abort();
  fail("{}: cannot {}: {} (nothing was replaced: the previous file, if any, is unchanged)", path_, doing,
       std::strerror(err));
}

void AtomicFile::write_fd(const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_error("write", errno);
    }
    if (w == 0) io_error("write", EIO);  // not expected from a regular file; never loop on it
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::flush() {
  if (used_ > 0) write_fd(buf_.data(), used_);
  used_ = 0;
}

void AtomicFile::write(const void* data, size_t n) {
  if (done_ || fd_ < 0) fail("{}: write after the file was closed", path_);
  if (n == 0) return;
  const auto* p = static_cast<const char*>(data);
  written_ += n;
  if (used_ + n <= kBuffer) {
    if (buf_.empty()) buf_.resize(kBuffer);
    std::memcpy(buf_.data() + used_, p, n);
    used_ += n;
    return;
  }
  flush();
  if (n >= kBuffer) {
    write_fd(p, n);
    return;
  }
  if (buf_.empty()) buf_.resize(kBuffer);
  std::memcpy(buf_.data(), p, n);
  used_ = n;
}

void AtomicFile::commit() {
  if (done_ || fd_ < 0) fail("{}: commit after the file was closed", path_);
  flush();
  while (::fsync(fd_) != 0)
    if (errno != EINTR) io_error("write (fsync)", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) io_error("write (close)", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    abort();
    fail("{}: cannot move {} into place: {} (the previous file, if any, is unchanged)", path_, tmp_,
         std::strerror(err));
  }
  done_ = true;  // the temporary name is gone: nothing to remove any more
  if (const int err = sync_folder(folder_of(path_)))
    fail("{}: written, but its folder could not be synced to disk: {}", path_, std::strerror(err));
}

void write_bytes_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

int remove_stale_temps(const std::string& dir, const std::function<bool(const std::string& name)>& owned) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  const long self = static_cast<long>(::getpid());
  while (const dirent* e = ::readdir(d)) {
    const std::string file = e->d_name;
    const auto at = file.rfind(".tmp");
    if (at == std::string::npos || at == 0 || at + 4 >= file.size()) continue;
    long pid = 0;
    bool digits = file.size() - (at + 4) <= 9;
    for (size_t i = at + 4; digits && i < file.size(); ++i) {
      digits = file[i] >= '0' && file[i] <= '9';
      pid = pid * 10 + (file[i] - '0');
    }
    if (!digits || pid == self || !owned(file.substr(0, at)) || !process_gone(pid)) continue;
    const std::string full = dir + "/" + file;
    struct stat st {};
    if (::lstat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(full.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

std::optional<std::string> read_file_if_exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot be read: {}", path, std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: cannot be read", path);
  return text;
}

}  // namespace rzoo
