// Durable atomic file writes. The bytes go to `<path>.tmp<pid>`, created exclusively (O_EXCL) in
// the target's own folder; then the file is fsynced and closed, renamed over `path`, and the
// folder is fsynced, so that neither a crash nor a power loss leaves a truncated file behind.
// Any I/O error (ENOSPC, EIO, EROFS, EFBIG, ...) is an rzoo::Error naming the file and the
// system's message ("No space left on device"); the temporary file is removed and the previous
// file, if there was one, is left exactly as it was.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rzoo {

// One file being written atomically, for writers that stream (write() buffers, commit() puts the
// file in place). Destroyed without a successful commit() (an error, an exception), it removes
// its temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temporary file; fails naming `path`
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  // Flushes, fsyncs, closes, renames over the target and fsyncs the folder.
  void commit();
  // Removes the temporary file now (idempotent; the destructor does it too).
  void abort() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  uint64_t bytes_written() const { return written_; }

 private:
  void flush();
  void write_fd(const char* p, size_t n);
  [[noreturn]] void io_error(const char* doing, int err);

  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
  std::vector<char> buf_;
  size_t used_ = 0;
  uint64_t written_ = 0;
};

// Checks a file name the user gave (`--out`): not empty, not a folder, and its folder exists
// (rzoo creates no folder outside output_dir on the user's behalf). `what` names the option.
void check_output_path(const std::string& path, const std::string& what);

// The whole file at once.
void write_bytes_atomic(const std::string& path, const void* data, size_t n);

// The temporary file name of `path` for process `pid`: `<path>.tmp<pid>`.
std::string atomic_temp_name(const std::string& path, long pid);

// Removes the files `<name>.tmp<pid>` in `dir` whose process no longer runs (left by a write that
// was killed), for the names `<name>` that `owned` accepts; those of running processes (this one
// included) are kept. Best effort: returns how many were removed, never throws.
int remove_stale_temps(const std::string& dir, const std::function<bool(const std::string& name)>& owned);

}  // namespace rzoo
