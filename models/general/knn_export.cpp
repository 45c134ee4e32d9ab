// ItemKNN / UserKNN TorchScript export: Sarwar et al., WWW 2001; Herlocker et al., SIGIR 1999;
// Koren, TKDD 2010. See knn.h.
// The exported _score / _score_all compute what knn_score.cpp computes, with tensor operations.
#include <torch/torch.h>

#include <string>

#include <fmt/core.h>

#include "models/general/knn.h"

namespace rzoo {

// ---------------------------------------------------------------------------------------------
// TorchScript export

namespace {

// The users' (ids') segments [indptr[id], indptr[id + 1]): each entry's row in ids, column within
// its row and position in the segment arrays, and the longest row (at least 1).
constexpr const char* kSegments = R"PY(
def _knn_segments(self, indptr: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor, Tensor, int]:
    starts = indptr.index_select(0, ids)
    counts = indptr.index_select(0, ids + 1) - starts
    row = torch.repeat_interleave(torch.arange(ids.size(0)), counts)
    first = torch.cumsum(counts, 0) - counts
    col = torch.arange(row.size(0)) - first.index_select(0, row)
    pos = starts.index_select(0, row) + col
    longest = 1
    if ids.size(0) > 0:
        longest = max(int(counts.max()), 1)
    return row, col, pos, longest
)PY";

constexpr const char* kItemRanking = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    q = users.unsqueeze(1) * N_ITEMS + self.nbr_index.index_select(0, items)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q).view(-1)).view(q.size()) == q
    w = self.nbr_sim.index_select(0, items).double()
    return torch.where(found, w, torch.zeros_like(w)).sum(1).float()

def _score_all(self, users: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.train_indptr, users)
    x = torch.zeros(users.size(0), N_ITEMS).double()
    x.index_put_((row, torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)), torch.ones(row.size(0)).double())
    sim = self.nbr_sim.double()
    out = torch.zeros(users.size(0), N_ITEMS).double()
    for t in range(K_NEIGHBORS):
        out += x.index_select(1, self.nbr_index.select(1, t)) * sim.select(1, t)
    return out.float()
)PY";

constexpr const char* kItemRankingFoldIn = R"PY(
def _score_fold_in(self, items: Tensor) -> Tensor:
    x = torch.zeros(N_ITEMS).double()
    x.index_fill_(0, items, 1.0)
    return (x.index_select(0, self.nbr_index.reshape(-1)).view(N_ITEMS, K_NEIGHBORS) * self.nbr_sim.double()).sum(1).float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    x = torch.zeros(N_ITEMS)
    x.index_fill_(0, items, 1.0)
    nb = self.nbr_index[item]
    hit = torch.nonzero(x.index_select(0, nb) > 0).reshape(-1)
    return nb.index_select(0, hit), self.nbr_sim[item].index_select(0, hit).double()
)PY";

constexpr const char* kUserRanking = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    q = self.nbr_index.index_select(0, users) * N_ITEMS + items.unsqueeze(1)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q).view(-1)).view(q.size()) == q
    w = self.nbr_sim.index_select(0, users).double()
    return torch.where(found, w, torch.zeros_like(w)).sum(1).float()

def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    nb = self.nbr_index.index_select(0, users).reshape(-1)
    w = self.nbr_sim.index_select(0, users).double().reshape(-1)
    row, col, pos, longest = self._knn_segments(self.train_indptr, nb)
    target = torch.div(row, K_NEIGHBORS, rounding_mode='floor') * N_ITEMS + torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)
    out = torch.zeros(b * N_ITEMS).double()
    out.index_add_(0, target, w.index_select(0, row))
    return out.view(b, N_ITEMS).float()
)PY";

// UserKNN fold-in (ranking, row pruning, binary entries): what history_neighbours() and
// score_fold_in() compute in knn_score.cpp, as tensor operations (sums in another order: equal
// up to double rounding). SIMILARITY is the policy's formula; ENTRIES the items' entries.
constexpr const char* kUserRankingFoldIn = R"PY(
def _user_neighbours(self, items: Tensor) -> Tuple[Tensor, Tensor]:
    ptr = self.train_indptr
    cnt_v = ptr[1:] - ptr[:-1]
    users = torch.repeat_interleave(torch.arange(N_USERS), cnt_v)
    its = self.train_keys.narrow(0, 0, users.size(0)) - users * N_ITEMS
    ENTRIES
    h = torch.zeros(N_ITEMS).double()
    h.index_fill_(0, items, 1.0)
    ev = e.index_select(0, its)
    co = h.index_select(0, its)
    zero = torch.zeros(N_USERS).double()
    n = zero.index_add(0, users, co)
    ab = zero.index_add(0, users, co * ev * ev)
    norm_v = torch.sqrt(zero.index_add(0, users, ev * ev))
    cv = cnt_v.double()
    ch = float(items.size(0))
    norm_h = torch.sqrt((h * e * h * e).sum())
    SIMILARITY
    val = val * (n / (n + SHRINKAGE))
    drop = (n == 0) | ((n == ch) & (cv == ch))
    f = torch.where(drop, zero, val).float()
    order = torch.sort(f, descending=True, stable=True)[1][:K_NEIGHBORS]
    keep = order.index_select(0, torch.nonzero(f.index_select(0, order) != 0).reshape(-1))
    return keep, f.index_select(0, keep)

def _score_fold_in(self, items: Tensor) -> Tensor:
    nb, w = self._user_neighbours(items)
    row, col, pos, longest = self._knn_segments(self.train_indptr, nb)
    out = torch.zeros(N_ITEMS).double()
    out.index_add_(0, torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS), w.double().index_select(0, row))
    return out.float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    nb, w = self._user_neighbours(items)
    q = nb * N_ITEMS + item
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q)) == q
    hit = torch.nonzero(found).reshape(-1)
    return nb.index_select(0, hit), w.index_select(0, hit).double()
)PY";

// Ranking with prune column: the transposed lists as segments of (nbr_list, nbr_weight).
constexpr const char* kItemColumn = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, items)
    q = users.index_select(0, row) * N_ITEMS + self.nbr_list.index_select(0, pos)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q)) == q
    w = self.nbr_weight.index_select(0, pos).double()
    out = torch.zeros(users.size(0)).double()
    out.index_add_(0, row, torch.where(found, w, torch.zeros_like(w)))
    return out.float()

def _score_all(self, users: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.train_indptr, users)
    x = torch.zeros(users.size(0), N_ITEMS).double()
    x.index_put_((row, torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)), torch.ones(row.size(0)).double())
    owner = torch.repeat_interleave(torch.arange(N_ITEMS), self.nbr_ptr[1:] - self.nbr_ptr[:-1])
    out = torch.zeros(users.size(0), N_ITEMS).double()
    out.index_add_(1, owner, x.index_select(1, self.nbr_list) * self.nbr_weight.double().unsqueeze(0))
    return out.float()
)PY";

constexpr const char* kItemColumnFoldIn = R"PY(
def _score_fold_in(self, items: Tensor) -> Tensor:
    x = torch.zeros(N_ITEMS).double()
    x.index_fill_(0, items, 1.0)
    owner = torch.repeat_interleave(torch.arange(N_ITEMS), self.nbr_ptr[1:] - self.nbr_ptr[:-1])
    out = torch.zeros(N_ITEMS).double()
    out.index_add_(0, owner, x.index_select(0, self.nbr_list) * self.nbr_weight.double())
    return out.float()

def _explain(self, items: Tensor, item: int) -> Tuple[Tensor, Tensor]:
    x = torch.zeros(N_ITEMS)
    x.index_fill_(0, items, 1.0)
    b = int(self.nbr_ptr[item])
    e = int(self.nbr_ptr[item + 1])
    seg = self.nbr_list[b:e]
    hit = torch.nonzero(x.index_select(0, seg) > 0).reshape(-1)
    return seg.index_select(0, hit), self.nbr_weight[b:e].index_select(0, hit).double()
)PY";

constexpr const char* kUserColumn = R"PY(
def _score(self, users: Tensor, items: Tensor) -> Tensor:
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, users)
    q = self.nbr_list.index_select(0, pos) * N_ITEMS + items.index_select(0, row)
    found = self.train_keys.index_select(0, torch.searchsorted(self.train_keys, q)) == q
    w = self.nbr_weight.index_select(0, pos).double()
    out = torch.zeros(users.size(0)).double()
    out.index_add_(0, row, torch.where(found, w, torch.zeros_like(w)))
    return out.float()

def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    row, col, pos, longest = self._knn_segments(self.nbr_ptr, users)
    nb = self.nbr_list.index_select(0, pos)
    w = self.nbr_weight.index_select(0, pos).double()
    row2, col2, pos2, longest2 = self._knn_segments(self.train_indptr, nb)
    target = row.index_select(0, row2) * N_ITEMS + torch.remainder(self.train_keys.index_select(0, pos2), N_ITEMS)
    out = torch.zeros(b * N_ITEMS).double()
    out.index_add_(0, target, w.index_select(0, row2))
    return out.view(b, N_ITEMS).float()
)PY";

// Rating mode, pairs: each pair's candidate neighbours padded to [B, L] (ids, residuals, real),
// their similarities g (0 unless real and > 0), the k best by a stable sort (ties by position =
// by lower id), then b_ui + sum g z / sum g.
constexpr const char* kRatingPairs = R"PY(
def _knn_predict(self, g: Tensor, z: Tensor, base: Tensor) -> Tensor:
    if g.size(1) > K_NEIGHBORS:
        g, order = torch.sort(g, dim=1, descending=True, stable=True)
        g = g[:, :K_NEIGHBORS]
        z = z.gather(1, order[:, :K_NEIGHBORS])
    gd = g.double()
    num = (gd * z).sum(1)
    den = gd.sum(1)
    return base + torch.where(den > 0, num / den, torch.zeros_like(den))

def _score(self, users: Tensor, items: Tensor) -> Tensor:
    b = users.size(0)
    OWNER_SEGMENTS
    ids = torch.zeros(b, longest).long()
    ids.index_put_((row, col), NEIGHBOUR_IDS)
    z = torch.zeros(b, longest).double()
    z.index_put_((row, col), self.train_resid.index_select(0, pos).double())
    real = torch.zeros(b, longest)
    real.index_put_((row, col), torch.ones(row.size(0)))
    g = self.sim.view(-1).index_select(0, (TARGET.unsqueeze(1) * N_ENTITIES + ids).view(-1)).view(b, longest)
    g = torch.where((real > 0) & (g > 0), g, torch.zeros_like(g))
    base = self.mu.double() + self.bu.index_select(0, users).double() + self.bi.index_select(0, items).double()
    return self._knn_predict(g, z, base).float()
)PY";

constexpr const char* kItemRatingAll = R"PY(
def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    out = torch.zeros(b, N_ITEMS).double()
    for r in range(b):
        u = int(users[r])
        start = int(self.train_indptr[u])
        end = int(self.train_indptr[u + 1])
        hist = torch.remainder(self.train_keys[start:end], N_ITEMS)
        z = self.train_resid[start:end].double()
        g = self.sim.index_select(1, hist)
        g = torch.where(g > 0, g, torch.zeros_like(g))
        out[r] = self._knn_predict(g, z.unsqueeze(0).expand(N_ITEMS, end - start), torch.zeros(N_ITEMS).double())
    base = self.mu.double() + self.bu.index_select(0, users).double().unsqueeze(1) + self.bi.double().unsqueeze(0)
    return (base + out).float()
)PY";

// UserKNN rating, all items: per user, the raters of every item in order of similarity to u
// (rank by a stable descending sort), the first k with s > 0 of each item.
constexpr const char* kUserRatingAll = R"PY(
def _score_all(self, users: Tensor) -> Tensor:
    b = users.size(0)
    n = self.item_order.size(0)
    keys = self.train_keys.index_select(0, self.item_order)
    item = torch.remainder(keys, N_ITEMS)
    rater = torch.div(keys, N_ITEMS, rounding_mode='floor')
    z = self.train_resid.index_select(0, self.item_order).double()
    within = torch.arange(n) - self.item_indptr.index_select(0, item)
    out = torch.zeros(b, N_ITEMS).double()
    for r in range(b):
        s = self.sim[int(users[r])]
        rank = torch.argsort(torch.sort(s, descending=True, stable=True)[1])
        perm = torch.argsort(item * N_USERS + rank.index_select(0, rater))
        w = s.index_select(0, rater.index_select(0, perm)).double()
        w = torch.where((within < K_NEIGHBORS) & (w > 0), w, torch.zeros_like(w))
        num = torch.zeros(N_ITEMS).double().index_add_(0, item, w * z.index_select(0, perm))
        den = torch.zeros(N_ITEMS).double().index_add_(0, item, w)
        out[r] = torch.where(den > 0, num / den, torch.zeros_like(den))
    base = self.mu.double() + self.bu.index_select(0, users).double().unsqueeze(1) + self.bi.double().unsqueeze(0)
    return (base + out).float()
)PY";

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

}  // namespace

ScriptExport KNNImpl::script_export() const {
  ScriptExport e;
  e.fold_in = folds_in();
  e.explain_kind = explain_kind();
  auto add = [&](const char* name, const at::Tensor& t) { e.tensors.emplace_back(name, t.detach().to(torch::kCPU).clone()); };
  add("train_keys", train_keys);
  add("train_indptr", train_indptr);
  std::string code = kSegments;
  if (!rating_) {
    if (options.prune() == "column") {
      add("nbr_ptr", nbr_ptr);
      add("nbr_list", nbr_list);
      add("nbr_weight", nbr_weight);
      code += item_based_ ? std::string(kItemColumn) + kItemColumnFoldIn : kUserColumn;
    } else {
      add("nbr_index", nbr_index);
      add("nbr_sim", nbr_sim);
      if (item_based_) {
        code += std::string(kItemRanking) + kItemRankingFoldIn;
      } else {
        code += kUserRanking;
        if (folds_in()) {
          std::string f = kUserRankingFoldIn;
          replace_all(f, "ENTRIES", options.idf()
              ? "df = torch.zeros(N_ITEMS).double().index_add(0, its, torch.ones(its.size(0)).double())\n"
                "    e = torch.where(df > 0, torch.log(torch.full_like(df, N_USERS) / df.clamp(min=1.0)), torch.zeros_like(df))"
              : "e = torch.ones(N_ITEMS).double()");
          const std::string sim = options.similarity();
          std::string formula;
          if (sim == "cosine") {
            formula = "den = norm_h * norm_v\n    val = torch.where(den > 0, torch.clamp(ab / den.clamp(min=1e-300), -1.0, 1.0), zero)";
          } else if (sim == "asymmetric_cosine") {
            const double a = options.asymmetric_alpha();
            formula = fmt::format("den = torch.pow(norm_h, {:.17g}) * torch.pow(norm_v, {:.17g})\n"
                                  "    val = torch.where(den > 0, ab / den.clamp(min=1e-300), zero)", 2 * a, 2 * (1 - a));
          } else {  // jaccard
            formula = "den = ch + cv - n\n    val = torch.where(den > 0, n / den.clamp(min=1e-300), zero)";
          }
          replace_all(f, "SIMILARITY", formula);
          replace_all(f, "SHRINKAGE", fmt::format("{:.17g}", options.shrinkage()));
          code += f;
        }
      }
    }
  } else {
    add("sim", sim);
    add("train_resid", train_resid);
    add("mu", mu);
    add("bu", bu);
    add("bi", bi);
    std::string pairs = kRatingPairs;
    if (item_based_) {
      // Candidates: the items u rated; similarity row: the target item.
      replace_all(pairs, "OWNER_SEGMENTS", "row, col, pos, longest = self._knn_segments(self.train_indptr, users)");
      replace_all(pairs, "NEIGHBOUR_IDS", "torch.remainder(self.train_keys.index_select(0, pos), N_ITEMS)");
      replace_all(pairs, "TARGET", "items");
      replace_all(pairs, "N_ENTITIES", "N_ITEMS");
      code += pairs + kItemRatingAll;
    } else {
      // Candidates: the users who rated i; similarity row: the user.
      add("item_indptr", item_indptr);
      add("item_order", item_order);
      replace_all(pairs, "OWNER_SEGMENTS",
                  "row, col, q, longest = self._knn_segments(self.item_indptr, items)\n"
                  "    pos = self.item_order.index_select(0, q)");
      replace_all(pairs, "NEIGHBOUR_IDS", "torch.div(self.train_keys.index_select(0, pos), N_ITEMS, rounding_mode='floor')");
      replace_all(pairs, "TARGET", "users");
      replace_all(pairs, "N_ENTITIES", "N_USERS");
      code += pairs + kUserRatingAll;
    }
  }
  replace_all(code, "N_ITEMS", std::to_string(n_items_));
  replace_all(code, "N_USERS", std::to_string(n_users_));
  replace_all(code, "K_NEIGHBORS", std::to_string(k_));
  e.code = code;
  return e;
}

}  // namespace rzoo
