#include "datasets/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "core/error.h"

namespace rzoo {

namespace {

inline uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Opens `path` for reading, failing with a message that says what is wrong.
int open_readable(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) fail("{}: {} not found", path, what);
    fail("{}: cannot read {}: {}", path, what, std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) fail("{}: is a folder, expected a {}", path, what);
  if (!S_ISREG(st.st_mode)) fail("{}: not a regular file (a pipe or device?), expected a {}", path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open {}: {}", path, what, std::strerror(errno));
  return fd;
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed ^ (static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ULL);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return mix64(h ^ v);
}

uint64_t file_checksum(const std::string& path) {
  const int fd = open_readable(path, "file");
  std::vector<unsigned char> buf(1u << 20);
  // Four independent lanes over 32-byte stripes keep the multiplier busy (several GB/s).
  uint64_t lane[4] = {1, 2, 3, 4};
  uint64_t total = 0;
  size_t have = 0;  // bytes in buf carried from the last read (< 32)
  for (;;) {
    const ssize_t got = ::read(fd, buf.data() + have, buf.size() - have);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      fail("{}: read error: {}", path, std::strerror(e));
    }
    if (got == 0) break;
    total += static_cast<uint64_t>(got);
    const size_t n = have + static_cast<size_t>(got);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      for (int j = 0; j < 4; ++j) {
        uint64_t v;
        std::memcpy(&v, buf.data() + i + 8 * j, 8);
        lane[j] = (lane[j] ^ v) * 0x9E3779B97F4A7C15ULL;
        lane[j] ^= lane[j] >> 32;
      }
    }
    have = n - i;
    std::memmove(buf.data(), buf.data() + i, have);
  }
  ::close(fd);
  uint64_t h = hash_bytes(buf.data(), have, total);
  for (uint64_t l : lane) h = mix64(h ^ l);
  return h;
}

size_t utf8_invalid_at(const char* s, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t v;
      std::memcpy(&v, p + i, 8);
      if (v & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values beyond U+10FFFF.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return n;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void split_fields(std::string_view s, char sep, bool collapse, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  while (i <= s.size()) {
    if (collapse) {
      while (i < s.size() && s[i] == sep) ++i;
      if (i >= s.size()) break;
    }
    size_t j = s.find(sep, i);
    if (j == std::string_view::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
}

// ---------------------------------------------------------------------------------------------

TextReader::TextReader(std::string path, TextOptions opts, std::string what)
    : path_(std::move(path)), what_(std::move(what)), opt_(std::move(opts)) {
  if (opt_.sep.empty()) fail("{}: empty field separator", path_);
  if (opt_.block < 4096) opt_.block = 4096;
  fd_ = open_readable(path_, what_);
  struct stat st {};
  if (::fstat(fd_, &st) == 0) file_bytes_ = static_cast<uint64_t>(st.st_size);
  // A file smaller than a block is read in blocks of its size (+1 to see the end), not into a
  // zeroed 16 MiB buffer: readers open many small files (side files, tests, fuzzing: 100x faster
  // there). Bytes appended before the end is reached are still read, in blocks of this size.
  if (S_ISREG(st.st_mode) && file_bytes_ + 1 < opt_.block) opt_.block = std::max<size_t>(4096, file_bytes_ + 1);
  try {
    refill();
  } catch (...) {  // the destructor does not run for a throwing constructor
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

TextReader::~TextReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool TextReader::refill() {
  if (eof_) return false;
  const size_t keep = end_ - rec_start_;
  if (rec_start_ > 0) std::memmove(buf_.data(), buf_.data() + rec_start_, keep);
  base_ += rec_start_;
  pos_ -= rec_start_;
  rec_start_ = 0;
  end_ = keep;
  const size_t want = opt_.block;
  const size_t room = opt_.latin1 ? 2 * want : want;  // Latin-1 bytes >= 0x80 become 2 bytes
  if (buf_.size() < keep + room) buf_.resize(keep + room);
  char* dst = opt_.latin1 ? nullptr : buf_.data() + end_;
  if (opt_.latin1) latin_.resize(want);
  char* into = opt_.latin1 ? latin_.data() : dst;
  size_t got = 0;
  while (got < want) {
    const ssize_t r = ::read(fd_, into + got, want - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("{}: read error: {}", path_, std::strerror(errno));
    }
    if (r == 0) { eof_ = true; break; }
    got += static_cast<size_t>(r);
  }
  if (opt_.latin1) {
    char* out = buf_.data() + end_;
    size_t o = 0;
    for (size_t i = 0; i < got; ++i) {
      const auto c = static_cast<unsigned char>(latin_[i]);
      if (c < 0x80) out[o++] = static_cast<char>(c);
      else { out[o++] = static_cast<char>(0xC0 | (c >> 6)); out[o++] = static_cast<char>(0x80 | (c & 0x3F)); }
    }
    got = o;
  }
  end_ += got;
  if (first_block_) {
    first_block_ = false;
    if (end_ >= 3 && std::memcmp(buf_.data(), "\xEF\xBB\xBF", 3) == 0) pos_ = rec_start_ = 3;  // UTF-8 BOM
  }
  return got > 0 || !eof_;
}

bool TextReader::next(std::vector<std::string_view>& fields) {
  for (;;) {
    // Skip blank lines (and, when separators collapse, leading separators: a line of spaces is
    // blank).
    const char skip = opt_.collapse && opt_.sep.size() == 1 ? opt_.sep[0] : '\n';
    while (pos_ < end_ && (buf_[pos_] == '\n' || buf_[pos_] == '\r' || buf_[pos_] == skip)) {
      if (buf_[pos_] == '\n') ++line_;
      ++pos_;
    }
    rec_start_ = pos_;
    if (pos_ >= end_) {
      if (eof_) return false;
      refill();
      continue;
    }
    const int64_t line_at_start = line_;
    record_line_ = line_;
    if (parse_record(fields) == Result::Ok) {
      ++records_;
      return true;
    }
    pos_ = rec_start_;
    line_ = line_at_start;
    refill();  // more bytes, or end of file now known: the record parses on the next pass
  }
}

// The buffer and separator as parse_record's steps read them (copied into locals, so that the
// compiler keeps them in registers in the loop over the characters).
struct TextReader::Scan {
  const char* b;    // the buffer
  size_t n;         // valid bytes in it
  const char* sep;  // the separator, sl bytes, starting with s0
  size_t sl;
  char s0;
  bool eof;
  // 1 = a separator starts at i, 0 = not, -1 = cannot tell before reading more.
  int sep_at(size_t i) const {
    if (b[i] != s0) return 0;
    if (sl == 1) return 1;
    if (i + sl > n) return eof ? 0 : -1;
    return std::memcmp(b + i, sep, sl) == 0 ? 1 : 0;
  }
};

TextReader::Result TextReader::parse_record(std::vector<std::string_view>& fields) {
  fields.clear();
  starts_.clear();
  scratch_.clear();
  const Scan s{buf_.data(), end_, opt_.sep.data(), opt_.sep.size(), opt_.sep[0], eof_};
  const char* b = s.b;
  const size_t n = s.n;
  const char s0 = s.s0;
  size_t p = pos_;
  int64_t line = line_;
  for (;;) {
    const size_t start = p;
    if (opt_.quotes && p < n && b[p] == '"') {
      if (parse_quoted(s, p, line, fields) == Result::NeedMore) return Result::NeedMore;
    } else {
      while (p < n) {
        const char c = b[p];
        if (c == '\n') break;
        if (c == s0) {
          const int m = s.sep_at(p);
          if (m < 0) return Result::NeedMore;
          if (m) break;
        }
        ++p;
      }
      if (p >= n && !s.eof) return Result::NeedMore;
      size_t e = p;
      if (e > start && b[e - 1] == '\r') --e;
      starts_.push_back(start);
      fields.emplace_back(b + start, e - start);
    }
    const int more = after_field(s, p);
    if (more < 0) return Result::NeedMore;
    if (more == 0) break;
  }
  return end_record(s, p, line);
}

// A quoted field starting at p (RFC 4180: "" inside is one "); p moves past the closing quote.
TextReader::Result TextReader::parse_quoted(const Scan& s, size_t& p, int64_t& line,
                                            std::vector<std::string_view>& fields) {
  const char* b = s.b;
  const size_t n = s.n, start = p;
  size_t q = p + 1;
  bool escaped = false;
  for (;;) {
    if (q >= n) {
      if (!s.eof) return Result::NeedMore;
      record_line_ = line_;
      starts_.push_back(start);
      fields.emplace_back();
      fail_at(fields.size() - 1, "unterminated quoted field (a \" without its closing \")");
    }
    if (b[q] == '"') {
      if (q + 1 >= n && !s.eof) return Result::NeedMore;
      if (q + 1 < n && b[q + 1] == '"') { escaped = true; q += 2; continue; }
      break;
    }
    if (b[q] == '\n') ++line;
    ++q;
  }
  std::string_view v(b + p + 1, q - p - 1);
  p = q + 1;
  if (escaped) {
    std::string u;
    u.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) { u += v[i]; if (v[i] == '"') ++i; }
    scratch_.push_back(std::move(u));
    v = scratch_.back();
  }
  starts_.push_back(start);
  fields.push_back(v);
  if (p >= n && !s.eof) return Result::NeedMore;
  if (p < n && b[p] != '\n' && b[p] != '\r') {
    const int m = s.sep_at(p);
    if (m < 0) return Result::NeedMore;
    if (m == 0) {
      starts_.push_back(p);  // point at the offending character
      fields.emplace_back();
      fail_at(fields.size() - 1, "unexpected character after a closing quote (a quoted field must end at a "
                                 "separator or the end of the line)");
    }
  }
  return Result::Ok;
}

// After a field: a separator continues the record (1, p past it, and past a run of them when
// they collapse); anything else ends it (0); -1: cannot tell before reading more.
inline int TextReader::after_field(const Scan& s, size_t& p) const {
  const size_t n = s.n;
  if (!(p < n && s.b[p] == s.s0 && s.sep_at(p) == 1)) return 0;
  p += s.sl;
  if (!opt_.collapse) return 1;
  for (;;) {
    if (p >= n) {
      if (!s.eof) return -1;
      break;
    }
    const int m = s.sep_at(p);
    if (m < 0) return -1;
    if (!m) break;
    p += s.sl;
  }
  return p >= n || s.b[p] == '\n' || s.b[p] == '\r' ? 0 : 1;  // trailing separators end the record
}

// The end of a record at p: its line end, then the UTF-8 check of the whole record.
inline TextReader::Result TextReader::end_record(const Scan& s, size_t p, int64_t line) {
  bool unterminated = false;
  if (p < s.n && s.b[p] == '\r') ++p;
  if (p < s.n && s.b[p] == '\n') {
    ++p;
    ++line;
  } else if (p >= s.n) {
    if (!s.eof) return Result::NeedMore;
    unterminated = true;
  }
  const size_t bad = utf8_invalid_at(s.b + rec_start_, p - rec_start_);
  pos_ = p;
  if (bad < p - rec_start_) fail_invalid_utf8(rec_start_ + bad);
  at_eof_unterminated_ = unterminated;
  line_ = line;
  return Result::Ok;
}

void TextReader::fail_invalid_utf8(size_t at) {
  // Find the field holding the bad byte, for the column.
  size_t k = 0;
  while (k + 1 < starts_.size() && starts_[k + 1] <= at) ++k;
  starts_.assign(1, at);
  fail_at(0, fmt::format("invalid UTF-8 (byte 0x{:02X}); if the file is Latin-1, set its encoding to latin-1",
                         static_cast<unsigned>(static_cast<unsigned char>(buf_[at]))));
}

int64_t TextReader::column(size_t k) const {
  if (k >= starts_.size()) return 1;
  const size_t at = starts_[k];
  size_t ls = at;
  while (ls > rec_start_ && buf_[ls - 1] != '\n') --ls;
  int64_t col = 1;
  for (size_t i = ls; i < at; ++i)
    if ((static_cast<unsigned char>(buf_[i]) & 0xC0) != 0x80) ++col;
  return col;
}

void TextReader::fail_at(size_t field, const std::string& message) const {
  int64_t line = record_line_;
  if (field < starts_.size())
    for (size_t i = rec_start_; i < starts_[field] && i < end_; ++i)
      if (buf_[i] == '\n') ++line;
  fail("{}:{}:{}: {}", path_, line, column(field), message);
}

void TextReader::fail_line(const std::string& message) const { fail("{}:{}: {}", path_, record_line_, message); }

}  // namespace rzoo
