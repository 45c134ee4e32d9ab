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

void reexec_with_short_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  ::setenv("GOMP_SPINCOUNT", "10000", 1);
  ::setenv("KMP_BLOCKTIME", "0", 0);
  ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  ::execv("/proc/self/exe", argv);  // returns only on failure: run on with the default policy
}

}  // namespace rzoo
