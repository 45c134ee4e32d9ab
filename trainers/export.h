// TorchScript export: a trained model as one self-contained file that plain PyTorch
// (torch.jit.load) and C++ (torch::jit::load) load without any rzoo code.
//
// The exported module (always on the CPU; move it with .to()) has these methods:
//   score(users: Tensor[B], items: Tensor[B]) -> Tensor[B]       user and item indices
//   recommend(users: Tensor[B], k: int) -> (scores [B, k'], items [B, k'])   k' = min(k, items);
//       each user's known items (every interaction in the data it was trained on) are masked
//       with -inf, so they come last and are never recommended ahead of an unseen item
//   user_index(user: str) -> int,  item_index(item: str) -> int    raw id -> index, -1 if unknown
//   recommend_raw(user: str, k: int, fallback: bool = False) -> (items: List[str], scores: List[float])
//       raw ids in and out; an unknown user is an error, or (fallback) the most popular items
// and attributes: model_name, n_users, n_items, user_ids, item_ids, item_titles (empty when the
// data has no titles), popularity (training interactions per item).
// Files inside the archive (torch.jit.load(path, _extra_files={...})): config.yaml (the run's
// resolved config), users.txt and items.txt (raw ids in index order), metrics.json (the run's
// results, when exported from a run folder), rzoo.txt (version and model).
#pragma once
#include <string>

namespace rzoo {

class Config;
class Logger;
class RecommenderImpl;
struct Dataset;
struct Split;

struct ExportInputs {
  const Config* config = nullptr;
  const Dataset* data = nullptr;  // id maps, titles, and the known items masked by recommend()
  const Split* split = nullptr;   // training popularity
  std::string metrics_json;       // "" = none
};

// Writes `model` as TorchScript to `out` (atomically: a damaged or partial file is never left
// under that name).
void export_model(const RecommenderImpl& model, const ExportInputs& in, const std::string& out);

// Exports a finished run's best model (rebuilding its data from RUN_DIR/config.yaml).
void export_run(const std::string& run_dir, const std::string& out, Logger& log);

}  // namespace rzoo
