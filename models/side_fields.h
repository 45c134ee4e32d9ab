// Side-feature embeddings added to a latent-factor model's id embeddings (model.fields: true of
// bpr and mf; of the sequence models for their item tables, item fields only). The user and item
// fields of `dataset.fields` (datasets/fields.h: tokens, token sequences, floats) get D-vectors
// in one table; an entity's vector is
//   v(e) = known(e) * id_emb[e] + sum over its field slots s of weight[s] * table[index[s]]
// where known(e) is 1 when the entity has training interactions and 0 otherwise, so a cold item
// (side features, no interactions) is scored from its features instead of an untrained random
// id vector (the "ID + attribute embeddings" of SVDFeature, Chen et al., JMLR 2012, and of
// LightFM, Kula, CBRecSys 2015). With `with_bias`, each table row also has a scalar that adds up
// to the entity's bias the same way (mf's b_u and b_i: a cold item's bias comes from its fields).
//
// Fields are summed with the feature models' field bag (models/field_bag.h: one fused pass on
// the CPU, no [B, S, D] temporary). The models export the resulting vectors (computed once), so
// their TorchScript stays plain MF.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "datasets/fields.h"
#include "models/recommender.h"

namespace rzoo {

class SideFieldsImpl : public torch::nn::Module {
 public:
  // The fields of ctx (ctx.data and its dataset.fields; ctx.split for known()); `model` names the
  // model in errors. Fails when dataset.fields gives neither side a field, or names a context
  // field (those belong to the feature models: fm, widedeep, deepfm, dcnv2).
  SideFieldsImpl(const std::string& model, const ModelContext& ctx, int64_t dim, double init_std, bool with_bias);

  // The vectors of users / items `idx` [B] from their id vectors `id` [B, W]: [B, W], W = D, or
  // D + 1 with_bias (the id's bias as column D; the result's column D is the entity's bias).
  at::Tensor users(const at::Tensor& id, const at::Tensor& idx) const;
  at::Tensor items(const at::Tensor& id, const at::Tensor& idx) const;
  // The fields' part alone of users `idx`: [B, W] (what fold-in subtracts from a fitted vector).
  at::Tensor user_fields(const at::Tensor& idx) const;
  // "field: <name> <kind> ..." per field (the run's fields.txt).
  std::vector<std::string> describe() const;

  FieldLayout layout;
  at::Tensor table;                  // [R, D] (+ its bias column when with_bias: [R, D + 1])
  at::Tensor u_index, u_weight;      // [U, Su] long, [U, Su] (Su = 0: the user side has no field)
  at::Tensor i_index, i_weight;      // [I, Si] long, [I, Si]
  at::Tensor u_known, i_known;       // [U], [I] 1 = has training interactions, 0 = its id is unused

 private:
  // sum of weight * table rows over the slots of entities idx: [B, W].
  at::Tensor bag(const at::Tensor& index, const at::Tensor& weight, const at::Tensor& idx) const;
};
TORCH_MODULE(SideFields);

// The sequence models' model.fields (item fields only: their user side has no fields): SideFields
// over dataset.fields, refusing user fields (and, as SideFields does, a layout without a field).
SideFields item_side_fields(const std::string& model, const ModelContext& ctx, int64_t dim, double init_std,
                            bool with_bias = false);
// An item table w [I + extra, D] (rows past n_items: padding, mask token) with the items' fields
// added to its first n_items rows (SideFields::items); w itself when side is null.
at::Tensor with_item_fields(const SideFields& side, const at::Tensor& w, int64_t n_items);

}  // namespace rzoo
