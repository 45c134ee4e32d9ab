// One thread count for every pool in the process (`threads: N`): LibTorch's intra-op pool (and
// through it OpenMP's), and the BLAS library's own pool, which LibTorch does not size. Debian's
// LibTorch calls OpenBLAS (libopenblas0-pthread), whose worker threads spin in sched_yield after
// each multi-threaded call: without this, `threads: 1` still kept a second core busy.
#pragma once

#include <string>

namespace rzoo {

// Sets the pools to n threads (n >= 1). The BLAS pool is found at run time (OpenBLAS's
// openblas_set_num_threads, MKL's MKL_Set_Num_Threads): with neither loaded nothing else changes.
// Also flushes denormal floats to zero on the calling thread and the intra-op workers
// (flush_denormals).
void set_thread_pools(int n);

// Denormal floats (|x| < 1.18e-38) read and written as zero on the calling thread (x86's FTZ and
// DAZ, through LibTorch's setFlushDenormal; PyTorch's torch.set_flush_denormal): each operation on
// one takes a microcode assist of 100+ cycles, and training state can fill with them. Measured:
// GMF on the NCF ML-1M train with lazy_adam and weight decay 1e-5 took 19.6 s for its second
// epoch with denormals and 7.3 s flushed (6.7 s without weight decay), the same loss to 6 digits.
// RZOO_FLUSH_DENORMAL=0 keeps IEEE denormals. Returns whether flushing is on (false on CPUs
// without the modes, or with the variable at 0).
bool flush_denormals();

// The BLAS library's thread count as it reports it, or -1 when there is no known BLAS.
int blas_threads();

// Runs the BLAS library with one thread for the guard's lifetime, then restores its count. For
// steps of small products: OpenBLAS's second thread made a NeuMF step of 2048 rows through
// 128-128-64 layers 13% slower (0.277 against 0.244 s an epoch), 4% faster at 8192 rows, 10% at
// 32768 (bench notes in README). Cheap (a variable of the library; no thread is made or joined).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

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
// OpenBLAS's own workers wait for the next call in sched_yield for 2^28 cycles (~0.1 s) before
// sleeping; on busy cores each yield hands the core to another process for a time slice while
// the caller waits for the worker: NeuMF with 2 threads beside two busy fuzzers took 5-6 s an
// epoch against 0.23 s with 1; with OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles, the least it takes)
// 0.75-1.0 s (2^14: 1.2-1.8 s), and on the idle machine no different (0.286 against 0.282 s).
// These are read from the environment when the OpenMP and BLAS runtimes load, before main(), so
// the program sets GOMP_SPINCOUNT=10000 (and Intel OpenMP's KMP_BLOCKTIME=0, and
// OPENBLAS_THREAD_TIMEOUT=4 unless set) and executes itself again, once. A wait policy or spin
// count the user set is kept.
// OpenBLAS (Debian's 0.3.21, built for every x86 kernel set) picks its kernels from the CPU's
// family and model number, and a model newer than its release gets the oldest, Prescott (SSE3):
// on an Intel Emerald Rapids Xeon (family 6, model 207; 2026-12-07) a 2048x2048 sgemm ran at 24
// GFLOP/s on one core against 138-156 with the kernels its features allow, and Prescott's strsm
// crashed EASE on S3-Rec's Beauty file (SIGSEGV in strsm_kernel_RT_PRESCOTT). Where OpenBLAS
// reports Prescott, OPENBLAS_CORETYPE is not set and the CPU has AVX, the program sets
// OPENBLAS_CORETYPE to the newest kernel set its features allow (openblas_core_for) and executes
// itself again, in the same single re-execution. Returns only when nothing was done (all set
// already, or the exec failed).
void reexec_with_runtime_settings(char** argv);

// The CPU features that choose an OpenBLAS kernel set (x86-64; all false elsewhere).
struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false, avx512 = false /* F, CD, BW, DQ and VL */, avx512_bf16 = false;
  static CpuFeatures of_this_cpu();
};

// The OPENBLAS_CORETYPE for a CPU with `f` whose OpenBLAS reports `reported` (its
// openblas_get_corename()): "" unless OpenBLAS fell back to "Prescott" on a CPU with AVX; then
// Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512), Haswell (AVX2 and FMA) or Sandybridge (AVX),
// the same order as OpenBLAS's own choice by features for the models it knows.
std::string openblas_core_for(const std::string& reported, const CpuFeatures& f);

// OpenBLAS's kernel set in this process ("" without OpenBLAS).
std::string openblas_core();

}  // namespace rzoo
