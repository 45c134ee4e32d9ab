// Slots -> fields: the weighted sum of table rows that the feature models (models/context) and
// the side fields of bpr / mf (models/side_fields.h) compute for every entity or pair:
//   x[b, f, :] = sum over slots s with field[s] = f of w[b, s] * table[rows[b, s], :]
// table [R, C], rows [B, S] long, w [B, S], field [S] long in [0, n_fields) -> x [B, n_fields, C].
// Differentiable in `table`. On the CPU in float it is one fused pass forward and one backward
// (field_bag.cpp says why); elsewhere (CUDA, other dtypes) the same with tensor operations, the
// form the TorchScript exports use.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "datasets/fields.h"

namespace rzoo {

at::Tensor field_bag(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& w, const at::Tensor& field,
                     int64_t n_fields);

// A side's slots as tensors: rows [n_entities, S] long and weights [n_entities, S] float.
at::Tensor slot_rows(const FieldSide& side);
at::Tensor slot_weights(const FieldSide& side);

}  // namespace rzoo
