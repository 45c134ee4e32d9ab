// One thread count for every pool in the process (`threads: N`): LibTorch's intra-op pool (and
// through it OpenMP's), and the BLAS library's own pool, which LibTorch does not size. Debian's
// LibTorch calls OpenBLAS (libopenblas0-pthread), whose worker threads spin in sched_yield after
// each multi-threaded call: without this, `threads: 1` still kept a second core busy.
#pragma once

namespace rzoo {

// Sets the pools to n threads (n >= 1). The BLAS pool is found at run time (OpenBLAS's
// openblas_set_num_threads, MKL's MKL_Set_Num_Threads): with neither loaded nothing else changes.
void set_thread_pools(int n);

// The BLAS library's thread count as it reports it, or -1 when there is no known BLAS.
int blas_threads();

// OpenMP's default wait policy lets a thread that reaches the end of a parallel region spin for
// a while (libgomp: 300,000 iterations) before sleeping. When other processes hold the cores,
// the spinning thread takes the CPU its partner needs to finish, and every one of the thousands
// of small parallel regions of a training epoch waits a scheduler time slice: measured on 2 busy
// cores, NeuMF with 2 threads ran 5x slower than with 1 (39 s against 7.4 s), and BPR 80x. Never
// spinning (OMP_WAIT_POLICY=PASSIVE) fixes that but pays a futex wake-up at every region: on an
// idle machine 2 threads then ran FM on ML-100K 2.3x slower than spinning (0.21 s against 0.09 s
// an epoch), BPR 2x, NeuMF 1.5x. A short spin (GOMP_SPINCOUNT=10000, microseconds) keeps the
// fast hand-over between back-to-back regions and sleeps before a scheduler slice is lost: on
// the idle machine within 10% of spinning, on 2 busy cores as fast as PASSIVE or faster (FM 0.28
// against 0.35 s, NeuMF 8.2 against 16.1 s, BPR 0.87 against 0.81 s; bench notes in README).
// These are read from the environment when the OpenMP runtime loads, before main(), so the
// program sets GOMP_SPINCOUNT=10000 (and Intel OpenMP's KMP_BLOCKTIME=0) and executes itself
// again, once. A wait policy or spin count the user set is kept. Returns only when nothing was
// done (already set, or the exec failed).
void reexec_with_short_openmp_spin(char** argv);

}  // namespace rzoo
