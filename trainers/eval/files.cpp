// Result files of a run folder: per-user values, rankings and the item facts (see
// trainers/evaluator.h).
#include <cmath>
#include <string>

#include "core/checkpoint.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "trainers/eval/beyond.h"
#include "trainers/evaluator.h"

namespace rzoo {

namespace {
std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

void write_user_values(const EvalResult& r, const std::string& path) {
  std::string text = "user,n_targets,n_candidates";
  for (const auto& [name, v] : r.per_user) text += "," + name;
  text += "\n";
  for (size_t i = 0; i < r.users.size(); ++i) {
    text += fmt::format("{},{},{}", r.users[i], r.n_targets[i], r.n_candidates[i]);
    for (const auto& [name, v] : r.per_user)
      text += std::isnan(v[i]) ? std::string(",nan") : fmt::format(",{:.17g}", v[i]);
    text += "\n";
  }
  write_file_atomic(path, text);
}

void write_rankings(const EvalResult& r, const std::string& path) {
  if (r.top.size() != r.users.size()) fail("write_rankings: the evaluation kept no rankings (eval.save_rankings)");
  std::string text = "user\ttargets\tranks\ttop\tn_candidates\n";
  for (size_t i = 0; i < r.users.size(); ++i)
    text += fmt::format("{}\t{}\t{}\t{}\t{}\n", r.users[i], join(r.targets[i]), join(r.ranks[i]), join(r.top[i]),
                        r.n_candidates[i]);
  write_file_atomic(path, text);
}

void write_item_facts(const Split& split, const Dataset* data, const EvalOptions& opts, const std::string& path) {
  bool features = data != nullptr;
  if (features)
    for (const auto& name : opts.diversity_features) {
      const Feature* f = data->item_info.find(name);
      features = features && f && f->kind != Feature::Kind::Float;
    }
  const eval_impl::ItemFacts f = eval_impl::item_facts(split, data, opts, features);
  std::string text = "item\ttrain_users\tfeatures\n";
  for (size_t i = 0; i < f.pop.size(); ++i) {
    text += fmt::format("{}\t{}\t", i, f.pop[i]);
    if (features)
      for (int64_t p = f.feat_ptr[i]; p < f.feat_ptr[i + 1]; ++p)
        text += (p > f.feat_ptr[i] ? " " : "") + std::to_string(f.feat[static_cast<size_t>(p)]);
    text += "\n";
  }
  write_file_atomic(path, text);
}

}  // namespace rzoo
