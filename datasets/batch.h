// What the data pipeline hands a gradient model: the input types a model declares
// (RecBole's InputType) and the training batch the samplers build for each of them.
// Lives in datasets/ because the samplers (datasets/sampler.h) build it; models/ sees it through
// models/recommender.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace rzoo {

enum class InputType {
  None,       // closed form: fit() once, no batches
  Pointwise,  // (user, item, label in {0,1}): positives plus `neg_per_pos` sampled negatives each
  Pairwise,   // (user, positive item, sampled negative item)
  Sequence,   // a user's recent items in time order and the next item(s) (SequenceBatcher)
  Users,      // a batch of users (every user with a training interaction, once per epoch);
              // the model reads their training histories from its own state (autoencoders)
};
const char* to_string(InputType t);

// One training batch. Which fields are set depends on the input type:
//   Pointwise: users [B], items [B], labels [B] (float 0/1)
//   Pairwise:  users [B], items [B] (positives), neg_items [B]
//   Sequence, train.sequence.augment prefix: users [B], seq [B, L] (the items before the target,
//              most recent last, left-padded with n_items), items [B] (next item), neg_items [B]
//   Sequence, augment none: users [B], seq [B, L], items [B, L] (the next item at every
//              position; n_items where none), neg_items [B, L]
//   Users:     users [B]
//   Pointwise on labelled rows (dataset.label_threshold) with context fields: also context [B, C]
//   (long), each row's context tokens (datasets/fields.h), undefined otherwise.
struct Batch {
  at::Tensor users, items, neg_items, labels, seq, context;
  int64_t size() const { return users.defined() ? users.size(0) : 0; }
};

}  // namespace rzoo
