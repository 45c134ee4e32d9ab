// Runtime-dispatched vector code for rzoo's few hand-written hot loops (iALS conjugate gradient,
// per-sample SGD). The build targets baseline x86-64 (SSE2), so that one binary runs on any
// x86-64 machine; RZOO_SIMD_CLONES compiles a function twice more, for AVX2 + FMA (x86-64-v3,
// "haswell") and AVX-512 ("skylake-avx512"), and the dynamic loader picks the best the CPU has
// (GCC/Clang target_clones, an ifunc). Inline helpers called from such a function are compiled
// into each clone. Elsewhere (other architectures, other compilers) it is empty.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(RZOO_NO_SIMD_CLONES) && \
    !defined(__SANITIZE_ADDRESS__)
#define RZOO_SIMD_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define RZOO_SIMD_CLONES
#endif

// For the helpers such a function calls: a helper the compiler leaves out of line is compiled once,
// for the baseline, and every clone calls that copy (seen: iALS's conjugate-gradient dot products
// ran as SSE2 code inside the AVX-512 clone). Forced inline, each clone gets its own.
#if defined(__GNUC__) || defined(__clang__)
#define RZOO_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define RZOO_ALWAYS_INLINE inline
#endif
