// The inverse of a symmetric positive definite matrix for closed-form models (EASE), by blocks:
// nearly all of its work is matrix products through core/gemm.h, which run near the core's peak,
// where LAPACK's factor-then-invert (potrf + potri, as torch::cholesky_inverse does) spends much
// of its time in triangular kernels that do not (measured below, core/linalg.cpp).
#pragma once
#include <ATen/core/Tensor.h>

namespace rzoo {

// Inverts in place the symmetric positive definite matrix whose lower triangle (diagonal
// included) `m` holds; its strict upper triangle is not read. On return `m` holds the whole
// inverse, both triangles (symmetric up to float rounding). `m`: a square CPU float32 matrix with
// unit column stride (a contiguous tensor or a narrowed view of one). Returns false, leaving `m`
// undefined, when a pivot block is not positive definite (in float32: the matrix is singular or
// too ill-conditioned for single precision; redo it in float64).
// Other devices and dtypes go to LibTorch's Cholesky factorisation and inverse.
bool spd_inverse_lower_(at::Tensor& m);

}  // namespace rzoo
