// Giving freed memory back to the system during long loops. glibc's malloc raises its mmap
// threshold after large blocks are freed, so later large tensors come from the heap, and the
// heap's free space between live blocks is kept by the process: measured on BERT4Rec (RecBole's
// shape on ML-100K, one epoch), peak RSS 5.1 GB against 2.0 GB with a fixed mmap threshold.
// malloc_trim returns those free pages (madvise), keeping the faster heap allocation.
#pragma once

#include <cstdint>

namespace rzoo {

// malloc_trim(0) when at least `min_interval_s` seconds have passed since the last call from
// this function (process-wide), so that a loop of tiny steps pays nothing measurable. A no-op
// where the C library has no malloc_trim.
void trim_heap_if_due(double min_interval_s = 0.5);

// A cache of large CPU blocks behind LibTorch's CPU allocator (installed process-wide by the rzoo
// program). Why: a tensor of more than 32 MB always comes from mmap in glibc (its largest mmap
// threshold) and goes back at free, so every training step of a large batch pays a page fault and a
// zeroed page for each 4 KB of its activations: SASRec with RecBole's shape (ML-100K, batch 2048
// prefix rows) spent 41% of its epoch in the kernel (perf). The cache keeps freed blocks of 1 MB or
// more and serves a request (rounded up to 64 KB) with the smallest cached block that holds it, if
// that block is at most twice its size: length-bucketed batches (train.sequence.bucket) change the
// size of every logits block from one batch to the next: with exact sizes only, GRU4Rec on
// Beauty (one epoch, 1 thread) spent 8.2 s in the kernel with 4.6 M page faults; with best fit
// 3.9 s and 2.3 M, at a lower peak (1.23 against 1.40 GB). Blocks of 2 MB or
// more start on a 2 MB boundary and ask for transparent huge pages (madvise; where the system
// grants them, a fresh block faults once per 2 MB: 0.3 M faults in the same epoch; an S1 SASRec
// epoch took 9% less CPU time; RZOO_CPU_HUGEPAGES=0 turns that off). It never holds more
// than the largest amount of tensor memory live so far (blocks of every size counted): on a miss,
// and on every smaller allocation, it frees cached blocks (oldest first) until live + cached fits
// under that high-water mark, so the cache does not raise the tensors' peak.
// release_cpu_block_cache() frees all of it (evaluation calls it before it scores, validation and
// test alike: training's block sizes are not scoring's; between epochs the cache is kept). Memory
// the cache cannot see (the C library's heap for other data) can still add to the peak: measured
// 2026-12-05, peak RSS with / without the cache: SASRec (one epoch, RecBole's shape) 1.52 / 1.82 GB
// and 77 / 102 s (glibc's heap kept more than the cache does), NeuMF (W6) 246 / 231 MB, iALS
// Cholesky (W3) 482 / 428 MB; caching only blocks above 32 MB (those glibc always maps) gave SASRec
// 87 s and 2.07 GB per epoch against 77 s and 1.52 GB. RZOO_CPU_BLOCK_CACHE=0 in the environment
// leaves LibTorch's allocator in place.
void install_cpu_block_cache();
void release_cpu_block_cache();

struct CpuBlockCacheStats {
  bool installed = false;
  int64_t hits = 0, misses = 0;
  int64_t live_bytes = 0, cached_bytes = 0, high_water = 0;  // live: tensor blocks of every size
};
CpuBlockCacheStats cpu_block_cache_stats();

}  // namespace rzoo
