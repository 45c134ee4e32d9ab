// Helpers for ScriptExport (models/recommender.h) shared by the model families.
#pragma once
#include <ATen/core/Tensor.h>

namespace rzoo {

// A tensor as an export attribute: detached from autograd, on the CPU, owning its memory.
inline at::Tensor cpu_copy(const at::Tensor& t) { return t.detach().to(at::kCPU).clone(); }

}  // namespace rzoo
