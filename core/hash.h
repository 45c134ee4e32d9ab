// Cryptographic digests of files and bytes: SHA-256 (FIPS 180-4) and MD5 (RFC 1321), for checking
// downloads against the checksums their publishers give (`rzoo data fetch`). MD5 is here only
// because some publishers (GroupLens for MovieLens 10M) give nothing else; it detects a damaged or
// changed download, not a forged one.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rzoo {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex();  // the digest as 64 lowercase hex digits; ends the computation

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

class Md5 {
 public:
  Md5();
  void update(const void* data, size_t n);
  std::string hex();  // 32 lowercase hex digits; ends the computation

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 4> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

// The digest of a whole file ("sha256" or "md5"); throws rzoo::Error naming the file when it
// cannot be read.
std::string file_digest(const std::string& path, const std::string& algorithm);

}  // namespace rzoo
