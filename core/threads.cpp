#include "core/threads.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <ATen/Context.h>
#include <ATen/Parallel.h>

namespace rzoo {

namespace {
template <typename F>
F find_symbol(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, name));
}
}  // namespace

void set_thread_pools(int n) {
  if (n < 1) n = 1;
  at::set_num_threads(n);  // LibTorch's intra-op pool; with the OpenMP backend also omp_set_num_threads
  if (auto set = find_symbol<void (*)(int)>("openblas_set_num_threads")) set(n);
  if (auto set = find_symbol<void (*)(int)>("MKL_Set_Num_Threads")) set(n);
  flush_denormals();
  // Start the intra-op workers now, with the run's set-up, rather than inside the first parallel
  // operation of training: that put the threads' creation and first wake-ups (4-5 ms) into the
  // first epoch of BPR-MF on ML-100K with 2 threads (19 ms against 14.6 ms with 1; the later
  // epochs equal), where they were timed as training. Each worker sets its own denormal mode
  // (threads made later inherit the creating thread's; workers made earlier do not).
  if (n > 1) at::parallel_for(0, n, 1, [](int64_t, int64_t) { flush_denormals(); });
}

bool flush_denormals() {
  const char* env = std::getenv("RZOO_FLUSH_DENORMAL");
  const bool on = env == nullptr || std::string(env) != "0";
  return at::globalContext().setFlushDenormal(on) && on;
}

namespace {
using SetThreads = void (*)(int);
SetThreads blas_setter() {
  static const SetThreads set = [] {
    if (auto f = find_symbol<SetThreads>("openblas_set_num_threads")) return f;
    return find_symbol<SetThreads>("MKL_Set_Num_Threads");
  }();
  return set;
}
}  // namespace

SingleThreadedBlas::SingleThreadedBlas() : saved_(blas_threads()) {
  if (saved_ > 1 && blas_setter() != nullptr) blas_setter()(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (saved_ > 1 && blas_setter() != nullptr) blas_setter()(saved_);
}

int blas_threads() {
  using GetThreads = int (*)();
  static const GetThreads get = [] {
    if (auto f = find_symbol<GetThreads>("openblas_get_num_threads")) return f;
    return find_symbol<GetThreads>("MKL_Get_Max_Threads");
  }();
  return get != nullptr ? get() : -1;
}

CpuFeatures CpuFeatures::of_this_cpu() {
  CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
  // libgcc's checks include the operating system's support of the AVX and AVX-512 registers.
  __builtin_cpu_init();
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  return f;
}

std::string openblas_core_for(const std::string& reported, const CpuFeatures& f) {
  if (reported != "Prescott") return {};
  if (f.avx512_bf16) return "Cooperlake";
  if (f.avx512) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  if (f.avx) return "Sandybridge";
  return {};
}

std::string openblas_core() {
  using CoreName = char* (*)();
  const auto name = find_symbol<CoreName>("openblas_get_corename");
  const char* s = name != nullptr ? name() : nullptr;
  return s != nullptr ? std::string(s) : std::string();
}

void reexec_with_runtime_settings(char** argv) {
  bool again = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", "10000", 1);
    ::setenv("KMP_BLOCKTIME", "0", 0);
    ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    again = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    const std::string core = openblas_core_for(openblas_core(), CpuFeatures::of_this_cpu());
    if (!core.empty()) {
      ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      again = true;
    }
  }
  if (again) ::execv("/proc/self/exe", argv);  // returns only on failure: run on as started
}

}  // namespace rzoo
