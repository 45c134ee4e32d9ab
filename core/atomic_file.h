// Durable atomic file writes. The bytes go to `<path>.tmp<pid>`, created exclusively (O_EXCL) in
// the target's own folder; then the file is fsynced and closed, renamed over `path`, and the
// folder is fsynced, so that neither a crash nor a power loss leaves a truncated file behind.
// Any I/O error (ENOSPC, EIO, EROFS, EFBIG, ...) is an rzoo::Error naming the file and the
// system's message ("No space left on device"); the temporary file is removed and the previous
// file, if there was one, is left exactly as it was.
#pragma once
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <ostream>
#include <streambuf>
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

// An std::ostream into an AtomicFile, for writers that take a stream (LibTorch's archives and
// TorchScript modules), so that a file of any size is never held whole in memory. A write error
// (ENOSPC, ...) is kept, not shown to the writer: an exception must not unwind through LibTorch's
// zip writer (C code), and a failed stream would make that writer throw from its destructor, which
// ends the process. Later bytes are dropped; check() rethrows the kept error (an rzoo::Error naming
// the file). The stream's state stays good.
class AtomicOStream : public std::ostream {
 public:
  explicit AtomicOStream(AtomicFile& file) : std::ostream(nullptr), buf_(file) { rdbuf(&buf_); }
  // Rethrows the first write error, if any.
  void check() const {
    if (buf_.error) std::rethrow_exception(buf_.error);
  }

 private:
  struct Buf : std::streambuf {
    explicit Buf(AtomicFile& f) : file(f) {}
    AtomicFile& file;
    std::exception_ptr error;
    void put(const char* p, std::streamsize n) {
      if (error || n <= 0) return;
      try {
        file.write(p, static_cast<size_t>(n));
      } catch (...) {
        error = std::current_exception();
      }
    }
    std::streamsize xsputn(const char* p, std::streamsize n) override {
      put(p, n);
      return n;
    }
    int_type overflow(int_type c) override {
      if (!traits_type::eq_int_type(c, traits_type::eof())) {
        const char ch = traits_type::to_char_type(c);
        put(&ch, 1);
      }
      return traits_type::not_eof(c);
    }
  };
  Buf buf_;
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

// The whole of the regular file `path`; nothing when there is no such file (or it is a folder);
// an rzoo::Error naming it when it exists but cannot be read.
std::optional<std::string> read_file_if_exists(const std::string& path);

}  // namespace rzoo
