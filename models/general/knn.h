// ItemKNN and UserKNN: neighbourhood collaborative filtering.
// Sarwar, Karypis, Konstan & Riedl, "Item-Based Collaborative Filtering Recommendation
// Algorithms", WWW 2001 (item-based; cosine, adjusted cosine and Pearson similarities);
// Herlocker, Konstan, Borchers & Riedl, "An Algorithmic Framework for Performing Collaborative
// Filtering", SIGIR 1999 (user-based; Pearson, significance weighting of small supports);
// Koren, "Factor in the Neighbors: Scalable and Accurate Collaborative Filtering", TKDD 2010
// (baseline predictor b_ui = mu + b_u + b_i, shrunk similarities, Pearson on baseline residuals),
// with the conventions of Surprise's KNNWithMeans / KNNBaseline (Hug, JOSS 2020).
//
// Both models are closed-form. "Entities" are what the model compares: items (ItemKNN) or users
// (UserKNN); each is a vector over the other dimension (its users, resp. its items).
//
// Similarities (model.similarity; over the co-raters C = the users (items) both entities have,
// n = |C|; a, b = the two entities' entries):
//   cosine           sum_C a b / (|a| |b|), full-vector norms (Sarwar's cosine; Surprise's
//                    `cosine` takes the norms over C instead). Entries are 1 in ranking mode
//                    (binary cosine = n / sqrt(n_a n_b)), ratings in rating mode.
//   jaccard          n / (n_a + n_b - n) on the binary vectors (any mode).
//   adjusted_cosine  entries r - mean of the other dimension (ItemKNN: the user's mean rating,
//                    Sarwar's adjusted cosine; UserKNN: the item's mean rating), then
//                    sum_C a b / sqrt(sum_C a^2 sum_C b^2): norms over the co-raters, as in Sarwar.
//   pearson          Pearson correlation of the ratings over C, each entity centred on its own
//                    mean over C: (n sum ab - sum a sum b) / sqrt((n sum a^2 - (sum a)^2)
//                    (n sum b^2 - (sum b)^2)) (Surprise's `pearson`).
//   pearson_baseline entries r_ui - (mu + b_u + b_i) with the ALS baseline below, then
//                    sum_C a b / sqrt(sum_C a^2 sum_C b^2) (Koren 2010; Surprise's
//                    `pearson_baseline`).
// A zero denominator gives similarity 0. Every similarity is then shrunk towards 0 by its
// support: s' = s * n / (n + model.shrinkage) (Koren 2010; Surprise shrinks pearson_baseline
// by (n - 1) / (n - 1 + shrinkage) and zeroes supports below 2, which differs only for tiny
// supports).
// An entity is never its own neighbour. The similarity is a small run-time policy object
// (KNNSimilarity) chosen by name, shared by both models.
//
// Modes (model.mode):
//   ranking  Each entity keeps its k = model.neighbors most similar entities (by value, ties by
//            lower index; zero similarities are never neighbours, negative ones (pearson,
//            adjusted cosine) only when fewer than k are positive), the others count as 0.
//            ItemKNN: score(u, i) = sum over u's training items j among i's k neighbours of
//            s_ij (the neighbours of the *target* item i; Sarwar's item-item model; not
//            normalised, so items with many of the user's items nearby score high).
//            UserKNN: score(u, i) = sum over u's k neighbours v that have i of s_uv.
//            model.prune says whose k-lists count. `row` (the default, above): the k neighbours
//            of the entity scored (the target item i; the user u). `column`: entity x counts
//            for y when y is among x's k most similar (the columns of the k-pruned similarity
//            matrix, as in Dacrema et al., RecSys 2019, whose UserKNN re-runs on the NCF splits
//            use it), weighted by the similarity x gave y:
//              ItemKNN: score(u, i) = sum over u's items j with i among j's k neighbours of s_ji
//              UserKNN: score(u, i) = sum over users v who have i, u among v's k neighbours, of s_vu
//            A hub then lends its weight to everyone it is near, but a user (item) close to
//            many is no longer limited to k neighbours.
//   rating   The predicted rating (Surprise's KNNWithMeans / KNNBaseline):
//              r_ui = b_ui + sum_{j in N} s_ij (r_uj - b_uj) / sum_{j in N} s_ij
//            ItemKNN: N = the k items most similar to i among those u rated, with s_ij > 0
//            (Surprise takes the k most similar and skips those with s <= 0: the same set).
//            UserKNN: N = the k users most similar to u among those who rated i, s_uv > 0.
//            Ties by lower index. Without such a neighbour, r_ui = b_ui. b_ui comes from
//            model.baseline: `mean` (ItemKNN: the item's mean rating, UserKNN: the user's; the
//            global mean for an entity without ratings; KNNWithMeans) or `als`: mu + b_u + b_i
//            by alternating least squares as in Surprise / Koren: for each epoch,
//              b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (reg_item + |R(i)|), then
//              b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (reg_user + |R(u)|)
//            (Surprise's defaults reg_user 15, reg_item 10, 10 epochs; KNNBaseline).
//            score_all gives the predicted rating of every item (ranking metrics still apply).
// Ratings are the dataset's ratings at the split's training rows (repeated (user, item) rows
// are averaged); ranking mode with cosine or jaccard needs no ratings.
//
// State (buffers, shapes fixed at construction; nnz = training interactions, taken from
// ModelContext::split, or from the first fit() when the context has no split):
//   train_keys [nnz + 1] int64 u * I + i of each training pair, ascending, then the sentinel
//              U * I: user u's items are [train_indptr[u], train_indptr[u + 1]) and a pair is
//              looked up by binary search. 8 bytes per interaction: 8 MB for ML-1M, 160 MB for
//              ML-20M, where a dense [U, I] uint8 history would need 22 MB and 3.7 GB.
//   train_indptr [U + 1] int64
//   ranking:   nbr_index [n, k] int64, nbr_sim [n, k] float: each entity's k neighbours, most
//              similar first (rows with fewer padded by the entity itself with similarity 0),
//              n = I (ItemKNN) or U (UserKNN), k = min(neighbors, n - 1). 12 n k bytes.
//              prune column: also nbr_ptr [n + 1], nbr_list [n k] int64, nbr_weight [n k]
//              float: the k-lists transposed (x's entries at [nbr_ptr[x], nbr_ptr[x + 1]) are
//              the (y, s_yx) with x in y's list, y ascending; padding slots included, weight 0).
//   rating:    sim [n, n] float, the full similarity (zero diagonal): a prediction needs the k
//              most similar among the entities the user rated, which any truncation would
//              lose. 4 n^2 bytes: 11 MB for ML-100K items, 55 MB for ML-1M items, 146 MB for
//              ML-1M users; refused above 8 GiB.
//              train_resid [nnz + 1] float (r_ui - b_ui per training pair, 0 for the sentinel),
//              mu [1], bu [U], bi [I] float: b_ui = mu + bu[u] + bi[i].
//              UserKNN also item_indptr [I + 1] and item_order [nnz] int64: the training pairs
//              grouped by item (users ascending), as positions into train_keys.
// Scores are computed on the CPU with raw loops (double accumulation); on another device the
// buffers are copied to the CPU for each call.
#pragma once
#include <torch/arg.h>

#include <memory>
#include <string>
#include <vector>

#include "models/recommender.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// Similarity policy

// Sums over the co-raters of two entities x and y (a = x's entry, b = y's).
struct KNNCoSums {
  double n = 0, ab = 0, aa = 0, bb = 0, a = 0, b = 0;
};
// Facts about one entity's whole vector.
struct KNNEntity {
  double count = 0;  // entries
  double norm = 0;   // sqrt of the sum of squared entries
};

class KNNSimilarity {
 public:
  // What an entity's entries are.
  enum class Input {
    Binary,            // 1 for every interaction
    Rating,            // the rating
    CentredByOther,    // rating minus the mean rating of the other dimension's entity
    BaselineResidual,  // rating minus the ALS baseline mu + b_u + b_i
  };
  // Which co-rater sums value() reads (the accumulation loop computes only those).
  enum class Sums { Count, Dot, CoNorms, Pearson };  // n | n, ab | n, ab, aa, bb | all six

  virtual ~KNNSimilarity() = default;
  virtual const char* name() const = 0;
  virtual Input input(bool rating_mode) const = 0;
  virtual Sums sums() const = 0;
  // The similarity before shrinkage (0 for a zero denominator).
  virtual double value(const KNNCoSums& s, const KNNEntity& x, const KNNEntity& y) const = 0;
  bool needs_ratings(bool rating_mode) const { return input(rating_mode) != Input::Binary; }
};

// The known names, in documentation order: cosine, adjusted_cosine, pearson, pearson_baseline, jaccard,
// asymmetric_cosine.
const std::vector<std::string>& knn_similarity_names();
// Throws naming model.similarity and listing the known names for an unknown name.
std::shared_ptr<const KNNSimilarity> make_knn_similarity(const std::string& name, double asymmetric_alpha = 0.5);

// ---------------------------------------------------------------------------------------------
// Models

struct KNNOptions {
  // Reads model.* (the defaults given when cfg is null).
  static KNNOptions from_config(const Config* cfg, KNNOptions defaults);
  TORCH_ARG(std::string, similarity) = "cosine";  // see knn_similarity_names()
  TORCH_ARG(double, shrinkage) = 100.0;           // >= 0; 0 = none
  TORCH_ARG(int64_t, neighbors) = 100;            // k >= 1
  TORCH_ARG(std::string, mode) = "ranking";       // ranking | rating
  TORCH_ARG(std::string, baseline) = "als";       // mean | als (rating mode)
  TORCH_ARG(double, baseline_reg_user) = 15.0;    // ALS regularisation of b_u (Surprise: 15)
  TORCH_ARG(double, baseline_reg_item) = 10.0;    // ALS regularisation of b_i (Surprise: 10)
  TORCH_ARG(int64_t, baseline_epochs) = 10;       // ALS sweeps (Surprise: 10)
  TORCH_ARG(bool, idf) = false;                   // binary input: weight entries by idf (see .yaml)
  TORCH_ARG(double, asymmetric_alpha) = 0.5;      // asymmetric_cosine's alpha in [0, 1] (0.5 = cosine)
  TORCH_ARG(std::string, prune) = "row";          // ranking: row | column (see the file comment)
};

// The shared implementation; ItemKNN and UserKNN differ in which dimension is the entity.
class KNNImpl : public RecommenderImpl {
 public:
  KNNImpl(std::string name, const ModelContext& ctx, KNNOptions options, bool item_based);

  InputType input_type() const override { return InputType::None; }
  void fit(const Csr& train) override;
  // Ranking mode: a row's k-list depends only on the entries of its entity and of the entities
  // it shares an interaction with, so the rows of the entities whose entries changed and of
  // those sharing an interaction with them (before or after) are recomputed, the others are the
  // parent's: the same lists as fit(train). Rating mode and pearson_baseline (global baselines)
  // refit in full.
  UpdateResult fit_update(const ParentFit& parent, const Csr& train) override;
  at::Tensor score(const at::Tensor& users, const at::Tensor& items) override;  // [B]
  at::Tensor score_all(const at::Tensor& users) override;                       // [B, I]
  // Fold-in: ItemKNN in ranking mode scores a history as it scores a user with those items
  // (the sums of its k-lists' similarities; exactly a known user's scores). UserKNN in ranking
  // mode with row pruning and a similarity of binary entries (cosine, jaccard,
  // asymmetric_cosine; idf weighting included): the history is a new user, compared with every
  // training user exactly as fit() compares two users (same entries, sums in the same order,
  // shrinkage), its k most similar training users are its neighbours, and item i scores the sum
  // of the similarities of the neighbours that have i. A training user whose items are exactly
  // the history is taken to be the same user and is not its own neighbour, so a known user's
  // own items give exactly its trained scores. Rating mode (a history carries no ratings),
  // UserKNN with rating-based similarities and UserKNN with column pruning (the new user would
  // change the training users' own k-lists) refuse.
  bool folds_in() const override;
  at::Tensor score_fold_in(const at::Tensor& items) override;  // [n] -> [I]
  // Explanation (ranking mode). ItemKNN: history item j contributes its similarity s_ij from the
  // kept neighbour lists (row pruning: j among i's k neighbours; column pruning: i in j's list).
  // UserKNN: the evidence is "users", the history's neighbours that have the item, each with its
  // similarity. Either way the contributions add up to the fold-in score.
  std::string explain_kind() const override { return folds_in() ? (item_based_ ? "items" : "users") : ""; }
  std::pair<at::Tensor, at::Tensor> explain(const at::Tensor& items, int64_t item) override;
  ScriptExport script_export() const override;

  bool rating_mode() const { return rating_; }
  bool item_based() const { return item_based_; }
  int64_t n_entities() const { return item_based_ ? n_items_ : n_users_; }

  KNNOptions options;
  // See the file comment. Undefined tensors where the mode does not use them.
  at::Tensor train_keys, train_indptr;           // [nnz + 1], [U + 1] int64
  at::Tensor nbr_index, nbr_sim;                 // ranking: [n, k] int64, float
  at::Tensor nbr_ptr, nbr_list, nbr_weight;      // ranking, prune column: [n + 1], [n k] int64, [n k] float
  at::Tensor sim;                                // rating: [n, n] float
  at::Tensor train_resid, mu, bu, bi;            // rating: [nnz + 1], [1], [U], [I] float
  at::Tensor item_indptr, item_order;            // rating UserKNN: [I + 1], [nnz] int64

 private:
  void check_ranges(const at::Tensor& users, const at::Tensor* items) const;
  // UserKNN fold-in: the history's neighbours (training users), most similar first, with their
  // similarities (see folds_in()).
  std::vector<std::pair<float, int64_t>> history_neighbours(const at::Tensor& items) const;
  void resize_storage(int64_t nnz);

  bool item_based_, rating_;
  int64_t k_;  // neighbours kept (ranking) or used per prediction (rating)
  std::shared_ptr<const KNNSimilarity> similarity_;
  const Dataset* data_ = nullptr;  // ratings; used by fit() only, while the data is alive
  const Split* split_ = nullptr;
};

class ItemKNNImpl : public KNNImpl {
 public:
  static KNNOptions defaults() { return KNNOptions(); }  // neighbors 100, shrinkage 100
  explicit ItemKNNImpl(const ModelContext& ctx);
  ItemKNNImpl(const ModelContext& ctx, KNNOptions options);
};
TORCH_MODULE(ItemKNN);

class UserKNNImpl : public KNNImpl {
 public:
  static KNNOptions defaults() { return KNNOptions().neighbors(50).shrinkage(10.0); }
  explicit UserKNNImpl(const ModelContext& ctx);
  UserKNNImpl(const ModelContext& ctx, KNNOptions options);
};
TORCH_MODULE(UserKNN);

}  // namespace rzoo
