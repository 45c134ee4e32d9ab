// Runtime-dispatched vector code for rzoo's few hand-written hot loops (iALS conjugate gradient,
// per-sample SGD, NCF's fused loss, Adam's update). The build targets baseline x86-64 (SSE2), so
// that one binary runs on any x86-64 machine; RZOO_SIMD_CLONES compiles a function twice more, for
// AVX-512 ("avx512f", which GCC compiles with FMA too) and for AVX + FMA ("fma"), and the dynamic
// loader picks the best the CPU has (GCC/Clang target_clones, an ifunc). Inline helpers called
// from such a function are compiled into each clone. Elsewhere (other architectures, other
// compilers) it is empty.
//
// Why feature names and not "arch=skylake-avx512" / "arch=haswell": GCC's resolver tests an arch=
// clone with __builtin_cpu_is, that is the CPU's model, not its features, so any other model (seen:
// a cloud Xeon that reports model 167 and has AVX-512; likewise Ice Lake, Sapphire Rapids, AMD Zen)
// ran the SSE2 copy. A feature clone is tested with __builtin_cpu_supports. "fma" rather than
// "avx2": these loops are float arithmetic, and GCC's "avx2" alone compiles no FMA; with both
// listed, the resolver would rank avx2 first. tests/test_threads.cpp checks that the FMA copy runs
// where the CPU has FMA (simd_fma_probe below).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(RZOO_NO_SIMD_CLONES) && \
    !defined(__SANITIZE_ADDRESS__)
#define RZOO_SIMD_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#define RZOO_HAS_SIMD_CLONES 1
#else
#define RZOO_SIMD_CLONES
#define RZOO_HAS_SIMD_CLONES 0
#endif

// For the helpers such a function calls: a helper the compiler leaves out of line is compiled once,
// for the baseline, and every clone calls that copy (seen: iALS's conjugate-gradient dot products
// ran as SSE2 code inside the AVX-512 clone). Forced inline, each clone gets its own.
#if defined(__GNUC__) || defined(__clang__)
#define RZOO_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define RZOO_ALWAYS_INLINE inline
#endif

namespace rzoo {

// a * b + c from a RZOO_SIMD_CLONES function (core/simd.cpp): rounded once where the clone that
// runs has FMA (the compiler contracts the expression there), twice in the baseline copy. With
// a = b = 1 + 2^-12 and c = -(1 + 2^-11) it returns 2^-24 from an FMA clone and 0 from SSE2: a test
// reads from it which copy the loader picked.
float simd_fma_probe(float a, float b, float c);

}  // namespace rzoo
