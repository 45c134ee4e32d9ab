#include "core/gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <ATen/ATen.h>

namespace rzoo {

namespace {
// oneDNN's C API (dnnl.h, not installed by Debian's libtorch-dev): row-major C = alpha op(A)
// op(B) + beta C; returns dnnl_success (0).
using DnnlSgemm = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

DnnlSgemm find_dnnl() {
  static const DnnlSgemm f = [] {
    const char* env = std::getenv("RZOO_ONEDNN_GEMM");
    if (env != nullptr && std::strcmp(env, "0") == 0) return DnnlSgemm{nullptr};
    return reinterpret_cast<DnnlSgemm>(::dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
  }();
  return f;
}

std::atomic<bool> g_enabled{true};

// The layout of a 2-D float matrix for a row-major sgemm: 'N' with its row stride, or 'T' (a
// transposed view: unit row stride) with its column stride; false for any other layout.
bool layout(const at::Tensor& t, char& trans, int64_t& ld) {
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(1, t.size(1))) {
    trans = 'N';
    ld = t.stride(0);
    return true;
  }
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(0))) {
    trans = 'T';
    ld = t.stride(1);
    return true;
  }
  return false;
}
}  // namespace

bool gemm_readable(const at::Tensor& t) {
  char trans = 0;
  int64_t ld = 0;
  return t.dim() == 2 && layout(t, trans, ld);
}

bool onednn_gemm_active() { return g_enabled.load(std::memory_order_relaxed) && find_dnnl() != nullptr; }

bool set_onednn_gemm(bool on) { return g_enabled.exchange(on); }

void gemm_into(at::Tensor& C, const at::Tensor& A, const at::Tensor& B, float beta, float alpha) {
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && C.dim() == 2 && A.size(1) == B.size(0) && C.size(0) == A.size(0) &&
                  C.size(1) == B.size(1),
              "gemm_into: shapes ", C.sizes(), " = ", A.sizes(), " x ", B.sizes());
  const int64_t M = A.size(0), N = B.size(1), K = A.size(1);
  char ta = 0, tb = 0;
  int64_t lda = 0, ldb = 0;
  const DnnlSgemm f = onednn_gemm_active() ? find_dnnl() : nullptr;
  if (f != nullptr && M > 0 && N > 0 && K > 0 && A.device().is_cpu() && B.device().is_cpu() && C.device().is_cpu() &&
      A.scalar_type() == at::kFloat && B.scalar_type() == at::kFloat && C.scalar_type() == at::kFloat &&
      C.stride(1) == 1 && C.stride(0) >= N && layout(A, ta, lda) && layout(B, tb, ldb) &&
      f(ta, tb, M, N, K, alpha, A.data_ptr<float>(), lda, B.data_ptr<float>(), ldb, beta, C.data_ptr<float>(),
        C.stride(0)) == 0)
    return;
  if (beta == 0.0f) {  // C is not read (addmm_ would: 0 * NaN is NaN)
    at::mm_out(C, A, B);
    if (alpha != 1.0f) C.mul_(alpha);
  } else {
    C.addmm_(A, B, beta, alpha);
  }
}

at::Tensor gemm(const at::Tensor& A, const at::Tensor& B) {
  at::Tensor C = at::empty({A.size(0), B.size(1)}, A.options());
  gemm_into(C, A, B, 0.0f);
  return C;
}

}  // namespace rzoo
