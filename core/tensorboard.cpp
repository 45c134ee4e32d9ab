#include "core/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>

#include <fmt/core.h>

#include "core/crc32c.h"

namespace rzoo {

namespace {

// Protobuf wire format: the few pieces an Event needs.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

template <class T>
void put_le(std::string& out, T v) {  // unsigned integer, little-endian whatever the CPU
  for (size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event{wall_time = 1, step = 2}: the part every record has.
std::string event_head(int64_t step) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  uint64_t bits;
  std::memcpy(&bits, &now, sizeof bits);
  std::string e;
  put_key(e, 1, 1);  // 64-bit
  put_le(e, bits);
  put_key(e, 2, 0);  // varint; a negative int64 as its two's complement, as protobuf does
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

void default_warn(const std::string& message) { std::cerr << "rzoo: WARNING: " << message << "\n"; }

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  std::string h = buf;
  for (char& c : h)
    if (c == '/') c = '_';  // never a folder of its own
  return h;
}

}  // namespace

EventWriter::EventWriter(const std::string& folder, Warn warn) : warn_(warn ? std::move(warn) : default_warn) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string base = fmt::format("{}/events.out.tfevents.{}.{}", folder, secs, host_name());
  int err = 0;
  for (int n = 0; n < 1000; ++n) {
    path_ = n == 0 ? base : fmt::format("{}.{}", base, n);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    err = errno;
    if (err == EINTR) {
      --n;
      continue;
    }
    if (err != EEXIST) break;
  }
  if (fd_ < 0) {
    path_ = base;
    stop("cannot create", err);
    return;
  }
  std::string e = event_head(0);
  put_bytes(e, 3, "brain.Event:2");
  record(e);
}

EventWriter::EventWriter(const std::string& path, Warn warn, AppendTag)
    : path_(path), warn_(warn ? std::move(warn) : default_warn) {
  do fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) {
    stop("cannot open", errno);
    return;
  }
  std::string e = event_head(0);
  put_bytes(e, 3, "brain.Event:2");
  record(e);
}

EventWriter EventWriter::to_file(const std::string& path, Warn warn) { return EventWriter(path, std::move(warn), AppendTag{}); }

EventWriter::~EventWriter() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

void EventWriter::record(const std::string& event) {
  if (fd_ < 0) return;
  std::string len;
  put_le(len, static_cast<uint64_t>(event.size()));
  pending_ += len;
  put_le(pending_, tfrecord_mask(crc32c(0, len.data(), len.size())));
  pending_ += event;
  put_le(pending_, tfrecord_mask(crc32c(0, event.data(), event.size())));
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  if (fd_ < 0) return;
  const float f = static_cast<float>(value);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  std::string v;
  put_bytes(v, 1, tag);
  put_key(v, 2, 5);  // 32-bit
  put_le(v, bits);
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_head(step);
  put_bytes(e, 5, summary);
  record(e);
}

void EventWriter::session_start(int64_t step) {
  if (fd_ < 0) return;
  std::string log;
  put_key(log, 1, 0);
  put_varint(log, 1);  // SessionLog.START
  std::string e = event_head(step);
  put_bytes(e, 6, log);
  record(e);
}

void EventWriter::flush() {
  if (fd_ < 0) return;
  const char* p = pending_.data();
  size_t n = pending_.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return stop("cannot write to", w < 0 ? errno : EIO);
    p += w;
    n -= static_cast<size_t>(w);
  }
  pending_.clear();
  // Devices and file systems without fsync (EINVAL) have nothing more to do.
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) stop("cannot sync", errno);
}

void EventWriter::stop(const std::string& doing, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
  warn_(fmt::format("{} the TensorBoard event file {}: {}; no more TensorBoard events are written for this run "
                    "(training goes on)",
                    doing, path_, std::strerror(err)));
}

}  // namespace rzoo
