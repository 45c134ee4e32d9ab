// Seeded random streams. std::mt19937_64 is bit-exact across standard libraries; the
// distributions are our own (Lemire's multiply-shift) because std::uniform_int_distribution is
// not, and a run must give the same numbers on every machine.
#pragma once
#include <cstdint>
#include <random>

namespace rzoo {

// SplitMix64 finaliser: turns (seed, stream) pairs into well-separated seeds.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}
  Rng(uint64_t seed, uint64_t stream) : engine_(mix_seed(seed, stream)) {}
  uint64_t next() { return engine_(); }
  // Uniform integer in [0, n), n > 0. The bias of the multiply-shift is < n / 2^64: negligible.
  int64_t uniform(int64_t n) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(engine_()) * static_cast<uint64_t>(n)) >> 64);
  }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform01() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  template <class It>
  void shuffle(It first, It last) {  // Fisher-Yates
    for (auto n = last - first; n > 1; --n) std::swap(first[n - 1], first[uniform(n)]);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace rzoo
