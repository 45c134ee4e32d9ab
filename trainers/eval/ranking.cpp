// The ranking kernel is tight C++ over each user's score row (scores are computed by the model
// on its device, then copied to the CPU in chunks): one pass per user keeps a top-K heap and
// counts, for every target, the candidates ranked above it, so that every metric, AUC included,
// follows from the targets' exact ranks without sorting the catalogue.
#include "trainers/eval/ranking.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <functional>

#include "core/error.h"

namespace rzoo::eval_impl {

void nan_score(const std::string& model, int64_t user, int64_t item) {
  fail("model '{}' returned a NaN score (user index {}, item index {}): its training diverged or it is broken", model,
       user, item);
}

namespace {

// One user's row: s[j] scores candidate j, item cand[j] (or j when cand is null).
struct Row {
  const float* s;
  const int64_t* cand;
  int64_t n;
  const TieOrder& tie;
  int64_t item_of(int64_t j) const { return cand ? cand[j] : j; }
  uint64_t key_of(int64_t j) const { return (static_cast<uint64_t>(ord_bits(bits_of(s[j]))) << 32) | tie(item_of(j)); }
};

// How many of s[0, n) are greater than x, and how many equal (NaN, hence masked entries, are
// neither). SSE2 (every x86-64) compares four scores at once; this is the inner loop of
// evaluation, run once per target over the user's whole row.
inline int64_t count_greater(const float* s, int64_t n, float x, int64_t& equal) {
  int64_t gt = 0, eq = 0, j = 0;
#if defined(__SSE2__)
  const __m128 vx = _mm_set1_ps(x);
  while (j + 4 <= n) {
    // Lane counters are int32: flush every 2^28 blocks, long before they could overflow.
    __m128i agt = _mm_setzero_si128(), aeq = _mm_setzero_si128();
    const int64_t stop = std::min(n - 3, j + (int64_t{1} << 30));
    for (; j < stop; j += 4) {
      const __m128 v = _mm_loadu_ps(s + j);
      agt = _mm_sub_epi32(agt, _mm_castps_si128(_mm_cmpgt_ps(v, vx)));
      aeq = _mm_sub_epi32(aeq, _mm_castps_si128(_mm_cmpeq_ps(v, vx)));
    }
    alignas(16) int32_t g[4], e[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(g), agt);
    _mm_store_si128(reinterpret_cast<__m128i*>(e), aeq);
    gt += int64_t{g[0]} + g[1] + g[2] + g[3];
    eq += int64_t{e[0]} + e[1] + e[2] + e[3];
  }
#endif
  for (; j < n; ++j) gt += s[j] > x, eq += s[j] == x;
  equal = eq;
  return gt;
}

// The float whose ord_bits are o (ord_bits' inverse; -0 comes back as +0).
inline float float_of_ord(uint32_t o) {
  const uint32_t b = (o & 0x80000000u) ? (o & 0x7FFFFFFFu) : ~o;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Top K: a min-heap of keys in `heap`; a candidate whose score alone puts it below the heap's
// minimum is rejected before its tie key is computed. Once the heap is full, SSE2 tests four
// scores at a time against that minimum: a block where all four are below it (and none is NaN,
// i.e. masked) is skipped whole, which is nearly every block of a long row. Returns the number of
// masked entries.
inline int64_t top_k_heap(const Row& row, int64_t K, std::vector<uint64_t>& heap, const std::string& model,
                          int64_t user) {
  heap.clear();
  const auto K_ = static_cast<size_t>(K);
  uint64_t lo = 0;
  float lo_score = 0.0F;  // the heap minimum's score, once the heap is full
  bool full = false;
  int64_t masked = 0;
  const float* s = row.s;
  if (K_ == 0) {  // no heap: only the masked entries (and the NaN checks)
    for (int64_t q = 0; q < row.n; ++q)
      if (s[q] != s[q]) {
        if (bits_of(s[q]) != kMaskBits) nan_score(model, user, row.item_of(q));
        ++masked;
      }
    return masked;
  }
  const auto visit = [&](int64_t j) {
    const float f = s[j];
    const uint32_t b = bits_of(f);
    if (f != f) {
      if (b == kMaskBits) {
        ++masked;
        return;
      }
      nan_score(model, user, row.item_of(j));
    }
    const uint64_t hi = static_cast<uint64_t>(ord_bits(b)) << 32;
    if ((hi | 0xFFFFFFFFULL) < lo) return;
    const uint64_t key = hi | row.tie(row.item_of(j));
    if (heap.size() < K_) {
      heap.push_back(key);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
      if (heap.size() == K_) lo = heap.front(), full = true;
    } else if (key > heap.front()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      heap.back() = key;
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
      lo = heap.front();
    } else {
      return;
    }
    if (full) lo_score = float_of_ord(static_cast<uint32_t>(lo >> 32));
  };
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j + 4 <= row.n; j += 4) {
    // not (v < lo_score): v >= lo_score, or NaN (a masked entry, or a broken score).
    if (full && _mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(s + j), _mm_set1_ps(lo_score))) == 0) continue;
    for (int64_t q = j; q < j + 4; ++q) visit(q);
  }
#endif
  for (; j < row.n; ++j) visit(j);
  return masked;
}

// Target ranks (1 + the candidates whose key is greater) with few targets: count higher scores
// per target (vectorised), then break exact ties.
inline void ranks_by_count(const Row& row, const int64_t* tpos, int64_t T, int64_t* rank_out) {
  const float* s = row.s;
  for (int64_t t = 0; t < T; ++t) {
    const float st = s[tpos[t]];
    int64_t eq = 0;
    int64_t above = count_greater(s, row.n, st, eq);
    if (eq > 1) {
      const uint64_t kt = row.key_of(tpos[t]);
      for (int64_t j = 0; j < row.n; ++j)
        if (s[j] == st && row.key_of(j) > kt) ++above;
    }
    rank_out[t] = 1 + above;
  }
}

// The same with many targets: one pass; each candidate at or above the lowest target finds, by
// a branch-free binary search over the targets' keys, how many targets it outranks.
inline void ranks_by_search(const Row& row, const int64_t* tpos, int64_t T, Scratch& w, int64_t* rank_out) {
  w.tk.clear();
  for (int64_t t = 0; t < T; ++t) w.tk.emplace_back(row.key_of(tpos[t]), t);
  std::sort(w.tk.begin(), w.tk.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  w.tkeys.resize(w.tk.size());
  for (size_t t = 0; t < w.tk.size(); ++t) w.tkeys[t] = w.tk[t].first;
  const uint64_t tmin = w.tkeys.back();
  w.diff.assign(static_cast<size_t>(T) + 1, 0);
  const float* s = row.s;
  for (int64_t j = 0; j < row.n; ++j) {
    const uint32_t b = bits_of(s[j]);
    if (s[j] != s[j]) continue;  // masked
    const uint64_t hi = static_cast<uint64_t>(ord_bits(b)) << 32;
    if ((hi | 0xFFFFFFFFULL) < tmin) continue;
    const uint64_t key = hi | row.tie(row.item_of(j));
    if (key < tmin) continue;
    // p = targets with a key >= this one: this candidate outranks targets p.. (a target
    // itself lands just after its own position, counting for the targets below it).
    const uint64_t* base = w.tkeys.data();
    size_t len = w.tkeys.size();
    while (len > 1) {
      const size_t half = len / 2;
      base += half * static_cast<size_t>(base[half - 1] >= key);
      len -= half;
    }
    const auto p = static_cast<size_t>(base - w.tkeys.data()) + (*base >= key ? 1 : 0);
    if (p < static_cast<size_t>(T)) ++w.diff[p];
  }
  int64_t above = 0;
  for (int64_t t = 0; t < T; ++t) {
    above += w.diff[static_cast<size_t>(t)];
    rank_out[w.tk[static_cast<size_t>(t)].second] = 1 + above;
  }
}

}  // namespace

int64_t rank_row(const float* s, const int64_t* cand, int64_t n, const int64_t* tpos, int64_t T, const TieOrder& tie,
                 int64_t K, Scratch& w, int64_t* rank_out, int64_t* top_out, int64_t& n_top, const std::string& model,
                 int64_t user) {
  const Row row{s, cand, n, tie};
  for (int64_t t = 0; t < T; ++t)
    if (s[tpos[t]] != s[tpos[t]]) nan_score(model, user, row.item_of(tpos[t]));
  const int64_t masked = top_k_heap(row, K, w.heap, model, user);
  if (T <= 32)
    ranks_by_count(row, tpos, T, rank_out);
  else
    ranks_by_search(row, tpos, T, w, rank_out);
  std::sort(w.heap.begin(), w.heap.end(), std::greater<>());
  n_top = static_cast<int64_t>(w.heap.size());
  for (size_t i = 0; i < w.heap.size(); ++i) top_out[i] = tie.item(static_cast<uint32_t>(w.heap[i] & 0xFFFFFFFFULL));
  return n - masked;
}

}  // namespace rzoo::eval_impl
