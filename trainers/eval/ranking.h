// The ranking kernel (internal to the evaluator): one user's candidate scores -> the exact rank
// of each target and the top-K items, under the seeded tie order (see trainers/evaluator.h).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"

namespace rzoo::eval_impl {

// ---- tie order -------------------------------------------------------------------------------
// A per-user bijection of item indices onto [0, 2^31 - 1): t(i) = (a i + b) mod p with the
// Mersenne prime p. Equal scores are ordered by t (larger first); distinct items never tie.
constexpr uint64_t kP = 2147483647ULL;
inline uint64_t mod_p(uint64_t x) {  // x < 2^63
  x = (x & kP) + (x >> 31);
  x = (x & kP) + (x >> 31);
  return x >= kP ? x - kP : x;
}
struct TieOrder {
  uint64_t a = 1, b = 0, a_inv = 1;
  TieOrder(uint64_t seed, int64_t user) {
    const uint64_t h = mix_seed(seed, static_cast<uint64_t>(user));
    a = 1 + (h % (kP - 1));
    b = (h >> 31) % kP;
    a_inv = 1;  // a^(p - 2) mod p (Fermat)
    uint64_t base = a, e = kP - 2;
    while (e) {
      if (e & 1) a_inv = mod_p(a_inv * base);
      base = mod_p(base * base);
      e >>= 1;
    }
  }
  uint32_t operator()(int64_t item) const { return static_cast<uint32_t>(mod_p(a * static_cast<uint64_t>(item) + b)); }
  int64_t item(uint32_t t) const { return static_cast<int64_t>(mod_p(mod_p(t + kP - b) * a_inv)); }
};

// Scores become order-preserving unsigned integers (-0 and +0 equal); the key puts the tie
// order in the low half, so keys of one user's candidates are distinct and totally ordered.
constexpr uint32_t kMaskBits = 0x7FC0DEADu;  // a NaN payload marking masked entries
inline uint32_t ord_bits(uint32_t b) {
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Per-thread buffers of rank_row, reused across users.
struct Scratch {
  std::vector<uint64_t> heap;
  std::vector<std::pair<uint64_t, int64_t>> tk;  // (key, target position), by key descending
  std::vector<uint64_t> tkeys;                   // the keys alone
  std::vector<int64_t> diff;
};

[[noreturn]] void nan_score(const std::string& model, int64_t user, int64_t item);

// Ranks one user's candidates. s[j] scores candidate j (item cand[j], or j when cand is null);
// entries with kMaskBits are not candidates. tpos[t] is the index in s of target t. Writes each
// target's rank (1-based among candidates) and the top min(K, candidates) items; returns the
// number of candidates.
int64_t rank_row(const float* s, const int64_t* cand, int64_t n, const int64_t* tpos, int64_t T, const TieOrder& tie,
                 int64_t K, Scratch& w, int64_t* rank_out, int64_t* top_out, int64_t& n_top, const std::string& model,
                 int64_t user);

}  // namespace rzoo::eval_impl
