// Side-feature embeddings for bpr and mf (see side_fields.h).
#include "models/side_fields.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/strings.h"
#include "datasets/dataset.h"
#include "models/field_bag.h"

namespace rzoo {

SideFieldsImpl::SideFieldsImpl(const std::string& model, const ModelContext& ctx, int64_t dim, double init_std,
                               bool with_bias) {
  TORCH_CHECK(ctx.data, model, ": model.fields needs the dataset (its user and item side features)");
  const Csr* train = ctx.split ? &ctx.split->train : nullptr;
  layout = build_fields(*ctx.data, ctx.config, /*with_ids=*/false, train);
  if (layout.context.n_fields() > 0)
    fail("{}: model.fields adds user and item fields only; dataset.fields names context fields ({}), which the "
         "feature models (fm, widedeep, deepfm, dcnv2) use",
         model, join(layout.context.names, ", "));
  if (layout.user.field_index(kHistoryField) >= 0)
    fail("{}: model.fields adds static user and item fields; dataset.fields names '{}' (the user's training "
         "items, which a training pair must not see its own item in), which the feature models (fm, widedeep, "
         "deepfm, dcnv2) use",
         model, kHistoryField);
  if (layout.user.n_fields() == 0 && layout.item.n_fields() == 0)
    fail("{}: model.fields is true but dataset.fields gives no user or item field (dataset {} has no side features "
         "it could use)",
         model, ctx.data->name);
  TORCH_CHECK(layout.user.n_entities == ctx.n_users && layout.item.n_entities == ctx.n_items, model,
              ": the dataset's users/items (", layout.user.n_entities, ", ", layout.item.n_entities,
              ") differ from the model's (", ctx.n_users, ", ", ctx.n_items, ")");
  // The bias column rides along as column D, so one bag gives vector and bias; it starts at 0.
  auto t = torch::randn({layout.table_rows, dim}) * init_std;
  if (with_bias) t = torch::cat({t, torch::zeros({layout.table_rows, 1})}, 1);
  table = register_parameter("table", t);
  const auto& U = layout.user;
  const auto& I = layout.item;
  u_index = register_buffer("u_index", slot_rows(U));
  u_weight = register_buffer("u_weight", slot_weights(U));
  i_index = register_buffer("i_index", slot_rows(I));
  i_weight = register_buffer("i_weight", slot_weights(I));
  // An id seen in training counts; the others' rows (random, or pushed down as sampled negatives
  // only) would be noise. Without a split every id counts.
  auto uk = torch::ones({ctx.n_users}), ik = torch::ones({ctx.n_items});
  if (train) {
    const SeenInTraining seen = seen_in_training(*train, ctx.n_users, ctx.n_items);
    float* pu = uk.data_ptr<float>();
    float* pi = ik.data_ptr<float>();
    for (int64_t u = 0; u < ctx.n_users; ++u) pu[u] = seen.users[static_cast<size_t>(u)] ? 1.0F : 0.0F;
    for (int64_t i = 0; i < ctx.n_items; ++i) pi[i] = seen.items[static_cast<size_t>(i)] ? 1.0F : 0.0F;
  }
  u_known = register_buffer("u_known", uk);
  i_known = register_buffer("i_known", ik);
}

at::Tensor SideFieldsImpl::bag(const at::Tensor& index, const at::Tensor& weight, const at::Tensor& idx) const {
  const int64_t B = idx.size(0), S = index.size(1);
  if (S == 0) return torch::zeros({B, table.size(1)}, table.options());
  // All of an entity's slots make one field: x = sum_s w[s] * table[rows[s]].
  return field_bag(table, index.index_select(0, idx), weight.index_select(0, idx),
                   torch::zeros({S}, torch::TensorOptions(torch::kLong).device(idx.device())), 1)
      .squeeze(1);  // [B, W]
}

at::Tensor SideFieldsImpl::users(const at::Tensor& id, const at::Tensor& idx) const {
  TORCH_CHECK(id.dim() == 2 && id.size(1) == table.size(1), "side fields: id vectors must be [B, ", table.size(1),
              "], got ", id.sizes());
  return id * u_known.index_select(0, idx).unsqueeze(1) + bag(u_index, u_weight, idx);
}

at::Tensor SideFieldsImpl::items(const at::Tensor& id, const at::Tensor& idx) const {
  TORCH_CHECK(id.dim() == 2 && id.size(1) == table.size(1), "side fields: id vectors must be [B, ", table.size(1),
              "], got ", id.sizes());
  return id * i_known.index_select(0, idx).unsqueeze(1) + bag(i_index, i_weight, idx);
}

at::Tensor SideFieldsImpl::user_fields(const at::Tensor& idx) const { return bag(u_index, u_weight, idx); }

SideFields item_side_fields(const std::string& model, const ModelContext& ctx, int64_t dim, double init_std,
                            bool with_bias) {
  SideFields side(model, ctx, dim, init_std, with_bias);
  if (side->layout.user.n_fields() > 0)
    fail("{}: model.fields adds item fields only; dataset.fields gives user fields ({}): name the item fields, "
         "e.g. dataset.fields: [\"item:*\"]",
         model, join(side->layout.user.names, ", "));
  return side;  // (no field at all: SideFields' own error)
}

at::Tensor with_item_fields(const SideFields& side, const at::Tensor& w, int64_t n_items) {
  if (!side) return w;
  const auto idx = torch::arange(n_items, torch::TensorOptions(torch::kLong).device(w.device()));
  return torch::cat({side->items(w.narrow(0, 0, n_items), idx), w.narrow(0, n_items, w.size(0) - n_items)}, 0);
}

std::vector<std::string> SideFieldsImpl::describe() const {
  std::vector<std::string> v;
  for (const auto& s : layout.schema) v.push_back("field: " + s);
  return v;
}

}  // namespace rzoo
