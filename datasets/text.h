// Reading delimited text at memory speed, with exact error positions.
//
// TextReader streams a file in blocks (so a 500 MB ratings file never sits in memory whole) and
// hands out one record at a time as string_views into its block. It handles RFC 4180 quoting
// (separators, "" and newlines inside quotes), CRLF, a UTF-8 byte-order mark, multi-character
// separators (MovieLens' "::"), runs of whitespace as one separator, and Latin-1 input
// (transcoded to UTF-8 as it is read). Every record is checked to be valid UTF-8. Errors name
// file:line:column, the column counted in characters from 1.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace rzoo {

struct TextOptions {
  std::string sep = ",";     // field separator, one or more bytes
  bool quotes = true;        // RFC 4180 quoting (off for formats that never quote, e.g. u.item)
  bool collapse = false;     // runs of `sep` are one separator; leading/trailing ones ignored
  bool latin1 = false;       // input is Latin-1: transcode to UTF-8
  size_t block = 16u << 20;  // bytes read at a time
};

class TextReader {
 public:
  // `what` names the file's role in messages ("ratings file", "item file", ...).
  TextReader(std::string path, TextOptions opts, std::string what = "data file");
  ~TextReader();
  TextReader(const TextReader&) = delete;
  TextReader& operator=(const TextReader&) = delete;

  // The next non-blank record; false at the end of the file. The views stay valid until the
  // next call.
  bool next(std::vector<std::string_view>& fields);

  const std::string& path() const { return path_; }
  const std::string& what() const { return what_; }
  int64_t line() const { return record_line_; }  // first line of the current record
  int64_t records() const { return records_; }   // records returned so far
  uint64_t bytes() const { return file_bytes_; }   // size of the file
  uint64_t offset() const { return base_ + pos_; }  // bytes consumed so far (after transcoding)
  // The current record is the file's last and has no newline after it.
  bool last_unterminated() const { return at_eof_unterminated_; }
  // 1-based character column where field `k` of the current record starts.
  int64_t column(size_t k) const;
  // "path:line:col: message", thrown as rzoo::Error.
  [[noreturn]] void fail_at(size_t field, const std::string& message) const;
  [[noreturn]] void fail_line(const std::string& message) const;  // "path:line: message"

 private:
  enum class Result { Ok, NeedMore };
  Result parse_record(std::vector<std::string_view>& fields);
  // parse_record's steps (text.cpp).
  struct Scan;
  Result parse_quoted(const Scan& s, size_t& p, int64_t& line, std::vector<std::string_view>& fields);
  int after_field(const Scan& s, size_t& p) const;
  Result end_record(const Scan& s, size_t p, int64_t line);
  [[noreturn]] void fail_invalid_utf8(size_t at);
  bool refill();  // moves the current record to the front and reads more; false at end of file
  void check_utf8(size_t begin, size_t end) const;

  std::string path_, what_;
  TextOptions opt_;
  int fd_ = -1;
  std::string buf_;
  size_t end_ = 0;         // valid bytes in buf_
  size_t pos_ = 0;         // parse position
  size_t rec_start_ = 0;   // start of the current record in buf_
  bool eof_ = false;
  bool at_eof_unterminated_ = false;
  int64_t line_ = 1, record_line_ = 1, records_ = 0;
  uint64_t file_bytes_ = 0;
  uint64_t base_ = 0;      // bytes dropped from the front of buf_ so far
  bool first_block_ = true;
  std::vector<size_t> starts_;          // byte offset in buf_ of each field of the record
  std::deque<std::string> scratch_;     // unescaped quoted fields ("" -> ")
  std::string latin_;                   // raw Latin-1 bytes before transcoding
};

// Splits `s` on `sep` (a run of `sep` counts once when `collapse`); empty parts kept otherwise.
void split_fields(std::string_view s, char sep, bool collapse, std::vector<std::string_view>& out);

std::string_view trim(std::string_view s);

// Byte offset of the first invalid UTF-8 sequence in [p, p + n), or n when valid.
size_t utf8_invalid_at(const char* p, size_t n);

// Fast 64-bit hash of a byte string (ids, cache keys).
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0);

// Content checksum of a whole file (read in blocks); fails naming the file if it cannot be read.
uint64_t file_checksum(const std::string& path);

}  // namespace rzoo
