#include "core/simd.h"

namespace rzoo {

RZOO_SIMD_CLONES float simd_fma_probe(float a, float b, float c) { return a * b + c; }

}  // namespace rzoo
