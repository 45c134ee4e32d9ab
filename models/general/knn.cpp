// ItemKNN / UserKNN: Sarwar et al., "Item-Based Collaborative Filtering Recommendation
// Algorithms", WWW 2001; Herlocker et al., "An Algorithmic Framework for Performing Collaborative
// Filtering", SIGIR 1999; Koren, "Factor in the Neighbors", TKDD 2010. See knn.h.
// Options and construction; the rest in knn_similarity.cpp, knn_fit.cpp, knn_score.cpp and
// knn_export.cpp (see knn_internal.h).
#include "models/general/knn.h"

#include <torch/torch.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/config.h"
#include "datasets/dataset.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// Options and construction

KNNOptions KNNOptions::from_config(const Config* cfg, KNNOptions o) {
  if (!cfg) return o;
  o.similarity(cfg->get_choice("model.similarity", knn_similarity_names()));
  o.shrinkage(cfg->get_double("model.shrinkage", 0.0));
  o.neighbors(cfg->get_int("model.neighbors", 1));
  o.mode(cfg->get_choice("model.mode", {"ranking", "rating"}));
  o.baseline(cfg->get_choice("model.baseline", {"mean", "als"}));
  o.baseline_reg_user(cfg->get_double("model.baseline_reg_user", 0.0));
  o.baseline_reg_item(cfg->get_double("model.baseline_reg_item", 0.0));
  o.baseline_epochs(cfg->get_int("model.baseline_epochs", 0));
  o.idf(cfg->get_bool("model.idf"));
  o.asymmetric_alpha(cfg->get_double("model.asymmetric_alpha", 0.0, 1.0));
  o.prune(cfg->get_choice("model.prune", {"row", "column"}));
  return o;
}

KNNImpl::KNNImpl(std::string name, const ModelContext& ctx, KNNOptions opts, bool item_based)
    : RecommenderImpl(std::move(name), ctx), options(std::move(opts)), item_based_(item_based) {
  const std::string nm = this->name();
  TORCH_CHECK(options.mode() == "ranking" || options.mode() == "rating", nm,
              ": model.mode must be 'ranking' or 'rating', got '", options.mode(), "'");
  TORCH_CHECK(options.baseline() == "mean" || options.baseline() == "als", nm,
              ": model.baseline must be 'mean' or 'als', got '", options.baseline(), "'");
  TORCH_CHECK(options.neighbors() >= 1, nm, ": model.neighbors must be >= 1, got ", options.neighbors());
  TORCH_CHECK(options.shrinkage() >= 0.0 && std::isfinite(options.shrinkage()), nm,
              ": model.shrinkage must be a finite number >= 0, got ", options.shrinkage());
  TORCH_CHECK(options.baseline_reg_user() >= 0.0, nm, ": model.baseline_reg_user must be >= 0, got ",
              options.baseline_reg_user());
  TORCH_CHECK(options.baseline_reg_item() >= 0.0, nm, ": model.baseline_reg_item must be >= 0, got ",
              options.baseline_reg_item());
  TORCH_CHECK(options.baseline_epochs() >= 0, nm, ": model.baseline_epochs must be >= 0, got ", options.baseline_epochs());
  rating_ = options.mode() == "rating";
  TORCH_CHECK(options.prune() == "row" || options.prune() == "column", nm,
              ": model.prune must be 'row' or 'column', got '", options.prune(), "'");
  TORCH_CHECK(!rating_ || options.prune() == "row", nm,
              ": model.prune 'column' applies to model.mode 'ranking' only (rating mode keeps the full similarity)");
  TORCH_CHECK(options.asymmetric_alpha() >= 0 && options.asymmetric_alpha() <= 1, nm,
              ": model.asymmetric_alpha must be in [0, 1], got ", options.asymmetric_alpha());
  similarity_ = make_knn_similarity(options.similarity(), options.asymmetric_alpha());

  if (rating_ || similarity_->needs_ratings(rating_)) {
    const std::string why = rating_ ? std::string("model.mode 'rating'") : "model.similarity '" + options.similarity() + "'";
    TORCH_CHECK(ctx.data && ctx.split, nm, ": ", why,
                " needs the training ratings, but the model was built without its dataset and split");
    TORCH_CHECK(ctx.data->has_ratings(), nm, ": ", why, " needs ratings, but the dataset '", ctx.data->name,
                "' has none (use model.mode: ranking with similarity cosine or jaccard)");
  }
  data_ = ctx.data;
  split_ = ctx.split;

  const int64_t n = n_entities();
  const int64_t nnz = ctx.split ? ctx.split->train.nnz() : 0;
  train_keys = register_buffer("train_keys", torch::full({nnz + 1}, n_users_ * n_items_, torch::kLong));
  train_indptr = register_buffer("train_indptr", torch::zeros({n_users_ + 1}, torch::kLong));
  if (rating_) {
    const double gib = 4.0 * static_cast<double>(n) * static_cast<double>(n) / (1024.0 * 1024.0 * 1024.0);
    TORCH_CHECK(gib <= 8.0, nm, ": model.mode 'rating' keeps the dense [", n, ", ", n, "] similarity (",
                fmt::format("{:.1f}", gib), " GiB), more than the 8 GiB allowed; use model.mode: ranking");
    k_ = options.neighbors();
    sim = register_buffer("sim", torch::zeros({n, n}));
    train_resid = register_buffer("train_resid", torch::zeros({nnz + 1}));
    mu = register_buffer("mu", torch::zeros({1}));
    bu = register_buffer("bu", torch::zeros({n_users_}));
    bi = register_buffer("bi", torch::zeros({n_items_}));
    if (!item_based_) {
      item_indptr = register_buffer("item_indptr", torch::zeros({n_items_ + 1}, torch::kLong));
      item_order = register_buffer("item_order", torch::zeros({nnz}, torch::kLong));
    }
  } else {
    k_ = std::min(options.neighbors(), std::max<int64_t>(n - 1, 1));
    // Unfilled slots hold the entity itself with similarity 0 (never a real neighbour).
    nbr_index = register_buffer("nbr_index", torch::arange(n, torch::kLong).unsqueeze(1).repeat({1, k_}).contiguous());
    nbr_sim = register_buffer("nbr_sim", torch::zeros({n, k_}));
    if (options.prune() == "column") {
      nbr_ptr = register_buffer("nbr_ptr", torch::arange(0, (n + 1) * k_, k_, torch::kLong));
      nbr_list = register_buffer("nbr_list", nbr_index.view(-1).clone());
      nbr_weight = register_buffer("nbr_weight", torch::zeros({n * k_}));
    }
  }
}

// Only for a model built without a split, whose nnz is unknown until fit(). In place: the
// members share their TensorImpl with the module's registered buffers.
void KNNImpl::resize_storage(int64_t nnz) {
  train_keys.resize_({nnz + 1});
  if (rating_) {
    train_resid.resize_({nnz + 1});
    if (!item_based_) item_order.resize_({nnz});
  }
}

ItemKNNImpl::ItemKNNImpl(const ModelContext& ctx) : ItemKNNImpl(ctx, KNNOptions::from_config(ctx.config, defaults())) {}
ItemKNNImpl::ItemKNNImpl(const ModelContext& ctx, KNNOptions options) : KNNImpl("itemknn", ctx, std::move(options), true) {}

UserKNNImpl::UserKNNImpl(const ModelContext& ctx) : UserKNNImpl(ctx, KNNOptions::from_config(ctx.config, defaults())) {}
UserKNNImpl::UserKNNImpl(const ModelContext& ctx, KNNOptions options) : KNNImpl("userknn", ctx, std::move(options), false) {}

}  // namespace rzoo
