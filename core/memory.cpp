#include "core/memory.h"

#include <cstdlib>  // first: a libc header defines __GLIBC__

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <chrono>

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

}  // namespace rzoo
