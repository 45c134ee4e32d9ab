// Internal to ItemKNN / UserKNN (models/general/knn*.cpp): the pieces fit() and the scorers share.
//   knn.cpp             options, construction
//   knn_similarity.cpp  the similarity policies; similarity rows, k-neighbour selection
//   knn_fit.cpp         fit(): training index, ratings, baselines, entries, stored state
//   knn_score.cpp       score() and score_all() (CPU, raw loops)
//   knn_export.cpp      the TorchScript export
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "models/general/knn.h"

namespace rzoo::knn_detail {

// Each list owner's entries: ids (the other end) and values, owner o's at [ptr[o], ptr[o + 1]).
struct Lists {
  std::vector<int64_t> ptr, id;
  std::vector<double> val;
};

// What the similarity of two entities is computed from: X = the entities' lists, Y = the other
// dimension's, ent = facts about each entity's whole vector.
struct SimilarityInput {
  const Lists& X;
  const Lists& Y;
  const std::vector<KNNEntity>& ent;
  const KNNSimilarity& policy;
  double shrinkage;
};

// The dense [n, n] similarity into out (zeroed beforehand; zero diagonal). Rows [lo, hi) only
// (hi < 0: n), the others left as they are (a distributed fit's share, see knn_fit.cpp).
void dense_similarity(const SimilarityInput& in, int64_t n, float* out, int64_t lo = 0, int64_t hi = -1);
// The k most similar of each entity, most similar first, into index / sim ([n, k]); rows with
// fewer padded by the entity itself with similarity 0. Rows [lo, hi) only, as above.
void top_k_neighbours(const SimilarityInput& in, int64_t n, int64_t k, int64_t* index, float* sim, int64_t lo = 0,
                      int64_t hi = -1);

// The same for the listed rows only (any order), the others left as they are.
void top_k_neighbours_rows(const SimilarityInput& in, int64_t n, int64_t k, int64_t* index, float* sim,
                           const std::vector<int64_t>& rows);
// Whether every value of X and Y is 1 (binary input: the rows then sum counts).
bool unit_values(const SimilarityInput& in);

// The k-lists transposed (prune column): x's entries at [ptr[x], ptr[x + 1]) are the (y, s_yx)
// with x in y's list, y ascending; padding slots included, weight 0.
struct TransposedLists {
  std::vector<int64_t> ptr, list;
  std::vector<float> weight;
};
TransposedLists transpose_neighbours(const int64_t* index, const float* sim, int64_t n, int64_t k);

// Better neighbour first: higher similarity, then lower index.
template <class T>
bool better(const T& x, const T& y) {
  return x.first > y.first || (x.first == y.first && x.second < y.second);
}

at::Tensor long_tensor(const std::vector<int64_t>& v);
// t itself when it is a contiguous CPU tensor, else a contiguous CPU copy.
at::Tensor on_cpu(const at::Tensor& t);

}  // namespace rzoo::knn_detail
