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
// a while before sleeping. When other processes hold the cores, the spinning thread takes the
// CPU its partner needs to finish, and every one of the thousands of small parallel regions of a
// training epoch waits a scheduler time slice: measured on 2 busy cores, NeuMF with 2 threads
// ran 5x slower than with 1 (39 s against 7.4 s), and BPR 80x. With the passive policy the
// 2-thread run took 5.9 s. The policy is read from the environment when the OpenMP runtime
// loads, before main(), so the program sets OMP_WAIT_POLICY=PASSIVE (and Intel OpenMP's
// KMP_BLOCKTIME=0) and executes itself again, once. A policy the user set is kept. Returns only
// when nothing was done (policy already set, or the exec failed).
void reexec_with_passive_openmp(char** argv);

}  // namespace rzoo
