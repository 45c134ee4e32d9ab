// Single-precision matrix products for hand-written training steps (NCF's fused loss), through
// oneDNN's sgemm where the process has it, else LibTorch's mm (OpenBLAS, MKL, cuBLAS).
// Why: Debian's LibTorch links libdnnl (its mkldnn backend) but sends torch::mm to OpenBLAS,
// which is slow on the skinny shapes of a recommender's MLP. Measured 2026-12-06 on the AMD EPYC
// machine, one thread, row-major: [2048, 128] x [128, 64] 22.5 GFLOP/s with OpenBLAS against 35.2
// with oneDNN; [64, 2048] x [2048, 128] (a weight gradient) 11.0 against 26.8; [900, 64] x
// [64, 128] 31.4 against 34.1. oneDNN runs on OpenMP's thread count (LibTorch's intra-op
// threads), and on one thread inside a parallel region. The sums are in another order than
// OpenBLAS's: the same values up to float rounding, and a run repeats exactly.
#pragma once
#include <ATen/core/Tensor.h>

namespace rzoo {

// C = beta * C + alpha * A B, for CPU float32 2-D tensors; A and B may be transposed views (a unit
// stride along either dimension), C a view with unit column stride (e.g. a narrow over rows or
// columns). Other layouts, dtypes and devices go to LibTorch (at::addmm_ / at::mm_out).
void gemm_into(at::Tensor& C, const at::Tensor& A, const at::Tensor& B, float beta = 0.0f, float alpha = 1.0f);
// A B into a new [A.size(0), B.size(1)] tensor.
at::Tensor gemm(const at::Tensor& A, const at::Tensor& B);
// Whether gemm_into reads the 2-D matrix `t` in place (a unit stride along one dimension);
// another layout needs a contiguous copy first.
bool gemm_readable(const at::Tensor& t);

// Whether gemm_into uses oneDNN (found in the process and not turned off by RZOO_ONEDNN_GEMM=0 or
// set_onednn_gemm(false)). set_onednn_gemm is for tests: it returns the previous setting.
bool onednn_gemm_active();
bool set_onednn_gemm(bool on);

}  // namespace rzoo
