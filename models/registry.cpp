#include "models/registry.h"

#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "models/context/ctr.h"
#include "models/general/autoencoder.h"
#include "models/general/bpr.h"
#include "models/general/content.h"
#include "models/general/ease.h"
#include "models/general/hybrid.h"
#include "models/general/ials.h"
#include "models/general/knn.h"
#include "models/general/mf_rating.h"
#include "models/general/ncf.h"
#include "models/general/pop.h"
#include "models/sequential/bert4rec.h"
#include "models/sequential/caser.h"
#include "models/sequential/gru4rec.h"
#include "models/sequential/markov.h"
#include "models/sequential/sasrec.h"

namespace rzoo {

const std::vector<ModelInfo>& registered_models() {
  static const std::vector<ModelInfo> models = [] {
    std::vector<ModelInfo> v = {
#define RZOO_MODEL(name, impl, description, paper) {#name, description, paper},
#include "models/registry.def"
#undef RZOO_MODEL
    };
    std::sort(v.begin(), v.end(), [](const ModelInfo& a, const ModelInfo& b) { return a.name < b.name; });
    return v;
  }();
  return models;
}

Recommender make_model(const std::string& name, const ModelContext& ctx) {
#define RZOO_MODEL(model_name, impl, description, paper) \
  if (name == #model_name) return Recommender(std::shared_ptr<RecommenderImpl>(std::make_shared<impl>(ctx)));
#include "models/registry.def"
#undef RZOO_MODEL
  std::string known;
  for (const auto& m : registered_models()) known += (known.empty() ? "" : ", ") + m.name;
  fail("unknown model '{}' (known models: {})", name, known);
}

namespace {
template <class T, class = void>
struct SequenceInput : std::false_type {};
template <class T>
struct SequenceInput<T, std::void_t<decltype(T::kSequenceInput)>> : std::bool_constant<T::kSequenceInput> {};
template <class T, class = void>
struct TrainRowsInput : std::true_type {};
template <class T>
struct TrainRowsInput<T, std::void_t<decltype(T::kReadsTrainRows)>> : std::bool_constant<T::kReadsTrainRows> {};
}  // namespace

bool model_reads_train_rows(const std::string& name) {
#define RZOO_MODEL(model_name, impl, description, paper) \
  if (name == #model_name) return TrainRowsInput<impl>::value;
#include "models/registry.def"
#undef RZOO_MODEL
  return true;
}

bool model_reads_sequences(const std::string& name) {
#define RZOO_MODEL(model_name, impl, description, paper) \
  if (name == #model_name) return SequenceInput<impl>::value;
#include "models/registry.def"
#undef RZOO_MODEL
  return false;
}

bool model_updates_fit(const std::string& name) {
  // A model that overrides fit_update: its member pointer's class is not the base's.
#define RZOO_MODEL(model_name, impl, description, paper) \
  if (name == #model_name)                               \
    return !std::is_same_v<decltype(&impl::fit_update), decltype(&RecommenderImpl::fit_update)>;
#include "models/registry.def"
#undef RZOO_MODEL
  return false;
}

}  // namespace rzoo
