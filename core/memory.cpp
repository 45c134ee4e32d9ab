#include "core/memory.h"

#include <cstdlib>  // first: a libc header defines __GLIBC__

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rzoo {

void trim_heap_if_due(double min_interval_s) {
#if defined(__GLIBC__)
  using Clock = std::chrono::steady_clock;
  static std::atomic<int64_t> last{0};
  const int64_t now = Clock::now().time_since_epoch().count();
  const int64_t gap = static_cast<int64_t>(min_interval_s * Clock::period::den / Clock::period::num);  // in ticks
  int64_t prev = last.load(std::memory_order_relaxed);
  if (now - prev < gap || !last.compare_exchange_strong(prev, now)) return;
  ::malloc_trim(0);
#else
  (void)min_interval_s;
#endif
}

// ---- The CPU block cache (memory.h) ----

namespace {

constexpr size_t kMinCached = size_t{1} << 20;
constexpr size_t kRound = size_t{1} << 16;
// A cached block serves a request of at least 1 / (1 + 1 / kSlack) of its size (kSlack 1: half).
constexpr size_t kSlack = 1;

// Large blocks start on a 2 MB boundary and ask for transparent huge pages (where the system
// allows them on request: /sys/kernel/mm/transparent_hugepage/enabled "madvise" or "always"), so
// that a fresh block costs one page fault per 2 MB instead of one per 4 KB.
constexpr size_t kHugePage = size_t{2} << 20;
bool huge_pages_wanted() {
  static const bool on = [] {
    const char* env = std::getenv("RZOO_CPU_HUGEPAGES");
    return env == nullptr || std::string(env) != "0";
  }();
  return on;
}

void* alloc_large(size_t n) {
#if defined(__linux__)
  if (n >= kHugePage && huge_pages_wanted()) {
    void* p = nullptr;
    if (::posix_memalign(&p, kHugePage, n) == 0 && p != nullptr) {
      ::madvise(p, n, MADV_HUGEPAGE);  // advice only: a refusal leaves ordinary pages
      return p;
    }
  }
#endif
  return c10::alloc_cpu(n);
}

class BlockCache final : public c10::Allocator {
 public:
  BlockCache() = default;

  // LibTorch 1.13 declares allocate const, 2.x not; each version overrides the one it has (no
  // `override`, so that both compile everywhere). copy_data is 2.x's, unused by 1.13.
  c10::DataPtr allocate(size_t n) const { return allocate_block(n); }
  c10::DataPtr allocate(size_t n) { return allocate_block(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const { return &BlockCache::deleter; }

  void release_all() {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& b : order_) drop.push_back(b.second);
      order_.clear();
      by_size_.clear();
      cached_ = 0;
    }
    for (void* p : drop) c10::free_cpu(p);
  }

  CpuBlockCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    CpuBlockCacheStats s;
    s.installed = true;
    s.hits = hits_;
    s.misses = misses_;
    s.live_bytes = static_cast<int64_t>(live_);
    s.cached_bytes = static_cast<int64_t>(cached_);
    s.high_water = static_cast<int64_t>(high_water_);
    return s;
  }

  static void deleter(void* p);

 private:
  using Order = std::list<std::pair<size_t, void*>>;  // cached blocks, oldest first

  // Bytes the C library gave for a small block (counted the same at allocation and at free).
  static size_t usable(void* p) {
#if defined(__GLIBC__)
    return ::malloc_usable_size(p);
#else
    (void)p;
    return 0;
#endif
  }

  // Frees cached blocks, oldest first, until live + cached + extra fits under the high-water mark
  // (or nothing is cached); the caller frees `drop` after unlocking.
  void evict_locked(size_t extra, std::vector<void*>& drop) const {
    while (!order_.empty() && live_ + cached_ + extra > high_water_) {
      const auto& oldest = order_.front();
      auto range = by_size_.equal_range(oldest.first);
      for (auto r = range.first; r != range.second; ++r)
        if (r->second == order_.begin()) {
          by_size_.erase(r);
          break;
        }
      cached_ -= oldest.first;
      drop.push_back(oldest.second);
      order_.pop_front();
    }
  }

  c10::DataPtr allocate_block(size_t n) const {
    std::vector<void*> drop;
    // Small blocks from the same system allocation as LibTorch's default (c10::alloc_cpu), but with
    // this allocator's deleter: raw_deallocate() (used by some LibTorch kernels) needs one deleter
    // for every block. They count as live, so that cached blocks make way for them too: the cache
    // never takes the tensors' memory above its largest live amount so far.
    if (n < kMinCached) {
      void* p = c10::alloc_cpu(n);
      if (p) {
        const size_t u = usable(p);
        {
          std::lock_guard<std::mutex> lock(mu_);
          live_ += u;
          evict_locked(0, drop);
          high_water_ = std::max(high_water_, live_ + cached_);
        }
        for (void* q : drop) c10::free_cpu(q);
      }
      return {p, p, &BlockCache::deleter, c10::Device(c10::DeviceType::CPU)};
    }
    size_t size = (n + kRound - 1) / kRound * kRound;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Best fit: the smallest cached block that holds the request, if at most twice its size.
      auto it = by_size_.lower_bound(size);
      if (it != by_size_.end() && it->first - size <= size / kSlack) {
        size = it->first;
        p = it->second->second;
        order_.erase(it->second);
        by_size_.erase(it);
        cached_ -= size;
        ++hits_;
      } else {
        ++misses_;
        evict_locked(size, drop);
      }
      // Counted before the system allocation so that a concurrent miss sees it.
      live_ += size;
      high_water_ = std::max(high_water_, live_ + cached_);
      if (p) sizes_[p] = size;
    }
    for (void* q : drop) c10::free_cpu(q);
    if (!p) {
      try {
        p = alloc_large(size);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        live_ -= size;
        throw;
      }
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = size;
    }
    return {p, p, &BlockCache::deleter, c10::Device(c10::DeviceType::CPU)};
  }

  void give_back(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) {  // a small block
      const size_t u = usable(p);
      live_ -= std::min(live_, u);
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    const size_t size = it->second;
    sizes_.erase(it);
    live_ -= size;
    order_.emplace_back(size, p);
    by_size_.emplace(size, std::prev(order_.end()));
    cached_ += size;
  }

  mutable std::mutex mu_;
  mutable Order order_;
  mutable std::multimap<size_t, Order::iterator> by_size_;  // ordered: best fit by lower_bound
  mutable std::unordered_map<void*, size_t> sizes_;
  mutable size_t live_ = 0, cached_ = 0, high_water_ = 0;
  mutable int64_t hits_ = 0, misses_ = 0;
};

// Never destroyed: tensors freed during exit still reach it.
BlockCache* g_cache = nullptr;

void BlockCache::deleter(void* p) { g_cache->give_back(p); }

}  // namespace

void install_cpu_block_cache() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("RZOO_CPU_BLOCK_CACHE");
    if (env != nullptr && std::string(env) == "0") return;
    g_cache = new BlockCache();
    c10::SetAllocator(c10::DeviceType::CPU, g_cache, /*priority=*/1);
  });
}

void release_cpu_block_cache() {
  if (g_cache) g_cache->release_all();
}

CpuBlockCacheStats cpu_block_cache_stats() { return g_cache ? g_cache->stats() : CpuBlockCacheStats{}; }

}  // namespace rzoo
