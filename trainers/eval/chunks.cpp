// The ranking pass: scoring of user chunks (the model, on its device) and the per-user ranking
// (tight C++ on the CPU, see ranking.cpp), with where the time went.
#include "trainers/eval/chunks.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>

#include "datasets/dataset.h"
#include "models/recommender.h"
#include "trainers/eval/ranking.h"
#include "trainers/evaluator.h"

namespace rzoo::eval_impl {

namespace {

using Clock = std::chrono::steady_clock;

// A chunk of users, res.users[start, start + c), with their scores.
struct Chunk {
  int64_t start = 0, c = 0;
  at::Tensor scores;  // full: [c, n_items]; sampled: [pairs], user r's at [cand_ptr[r], cand_ptr[r + 1])
  std::vector<int64_t> cand, cand_ptr;  // sampled: each user's candidates (its targets first)
};

// Time spent, in nanoseconds summed over threads.
struct PassTimes {
  std::atomic<int64_t> mask{0}, rank{0}, metrics{0};
};

// Bytes per user of a chunk: the scores (4 B per item), their CPU copy when the model runs
// elsewhere, and the model's own temporaries (assumed no larger than its output).
int64_t bytes_per_user(const RankingPass& p) { return p.n_items * (p.device.is_cpu() ? 8 : 12) + 8 * p.kmax; }
int64_t memory_budget(const RankingPass& p) { return p.opts.memory_mb * (int64_t{1} << 20); }
// Users per chunk when eval.batch_users is 0: as many as the memory budget holds, but on the CPU
// no more than ~4 MB of scores (at least 32 users): a chunk's scores are then still in cache when
// they are ranked, and the same memory serves the next chunk instead of fresh pages. On the NCF
// ML-1M shape (6,040 x 3,706, BPR-MF) one 90 MB chunk took 0.110 s to evaluate, chunks of 128-256
// users 0.061 s. Off the CPU larger chunks keep the device busy: the budget alone decides.
int64_t chunk_users(const RankingPass& p) {
  int64_t c = std::max<int64_t>(1, memory_budget(p) / std::max<int64_t>(bytes_per_user(p), 1));
  if (p.device.is_cpu()) c = std::min(c, std::max<int64_t>(32, (int64_t{4} << 20) / std::max<int64_t>(4 * p.n_items, 1)));
  return c;
}

// score_all for users[0, c) on the CPU: [c, n_items], contiguous.
at::Tensor score_rows(const RankingPass& p, int64_t* users, int64_t c) {
  auto u = torch::from_blob(users, {c}, torch::kLong).to(p.device);
  auto rows = p.model.score_all(u).to(torch::kFloat);
  TORCH_CHECK(rows.dim() == 2 && rows.size(0) == c && rows.size(1) == p.n_items, "model '", p.model.name(),
              "': score_all returned shape ", rows.sizes(), ", expected [", c, ", ", p.n_items, "]");
  return rows.to(torch::kCPU).contiguous();
}

void score_full_chunk(const RankingPass& p, EvalResult& res, Chunk& ch) {
  const auto n_eval = static_cast<int64_t>(res.users.size());
  const int64_t c = p.opts.batch_users > 0 ? p.opts.batch_users : chunk_users(p);
  ch.c = std::min(c, n_eval - ch.start);
  ch.scores = score_rows(p, res.users.data() + ch.start, ch.c);
}

// The chunk's users and their candidates (targets, then sampled negatives), as many as fit.
void gather_candidates(const RankingPass& p, const EvalResult& res, Chunk& ch) {
  const auto n_eval = static_cast<int64_t>(res.users.size());
  ch.cand.clear();
  ch.cand_ptr.assign(1, 0);
  ch.c = 0;
  // Per user: the row (4 B/item, twice off the CPU); per pair: the evaluator's arrays (~40 B).
  const int64_t max_pairs = std::max<int64_t>(1, memory_budget(p) / 48);
  const int64_t max_users = chunk_users(p);
  const int64_t batch_users = p.opts.batch_users;
  while (ch.start + ch.c < n_eval && (batch_users <= 0 ? ch.c < max_users : ch.c < batch_users)) {
    const int64_t u = res.users[static_cast<size_t>(ch.start + ch.c)];
    const size_t before = ch.cand.size();
    ch.cand.insert(ch.cand.end(), p.truth.row_begin(u), p.truth.row_end(u));
    p.cs.negatives(u, p.truth.row_begin(u), p.truth.row_size(u), ch.cand);
    if (ch.c > 0 && batch_users <= 0 && static_cast<int64_t>(ch.cand.size()) > max_pairs) {
      ch.cand.resize(before);
      break;
    }
    ch.cand_ptr.push_back(static_cast<int64_t>(ch.cand.size()));
    ++ch.c;
  }
}

// Candidates are scored through score_all (one row per user, then picked): for every model that
// is one matrix product, where score() on (user, item) pairs can cost a gathered row per pair
// (EASE: a whole history row); unless the model says pairs are cheaper.
void score_sampled_chunk(const RankingPass& p, EvalResult& res, Chunk& ch) {
  gather_candidates(p, res, ch);
  const auto m = static_cast<int64_t>(ch.cand.size());
  const int64_t c = ch.c;
  if (p.model.pair_scoring_cheaper()) {
    std::vector<int64_t> pair_users(static_cast<size_t>(m));
    for (int64_t r = 0; r < c; ++r)
      std::fill(pair_users.begin() + ch.cand_ptr[static_cast<size_t>(r)],
                pair_users.begin() + ch.cand_ptr[static_cast<size_t>(r) + 1],
                res.users[static_cast<size_t>(ch.start + r)]);
    auto scores = p.model
                      .score(torch::from_blob(pair_users.data(), {m}, torch::kLong).to(p.device),
                             torch::from_blob(ch.cand.data(), {m}, torch::kLong).to(p.device))
                      .to(torch::kFloat);
    TORCH_CHECK(scores.dim() == 1 && scores.size(0) == m, "model '", p.model.name(), "': score returned shape ",
                scores.sizes(), ", expected [", m, "]");
    ch.scores = scores.to(torch::kCPU).contiguous();
    return;
  }
  const at::Tensor rows = score_rows(p, res.users.data() + ch.start, c);
  ch.scores = torch::empty({m}, torch::kFloat);
  const float* rp = rows.data_ptr<float>();
  float* out = ch.scores.data_ptr<float>();
  for (int64_t r = 0; r < c; ++r)
    for (int64_t j = ch.cand_ptr[static_cast<size_t>(r)]; j < ch.cand_ptr[static_cast<size_t>(r) + 1]; ++j)
      out[j] = rp[r * p.n_items + ch.cand[static_cast<size_t>(j)]];
}

// Per-thread state of the ranking of a chunk.
struct UserWork {
  Scratch w;
  std::vector<int64_t> ranks, tpos;
  int64_t t_mask = 0, t_rank = 0, t_metrics = 0;  // ns
};

int64_t ns_between(Clock::time_point a, Clock::time_point z) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(z - a).count();
}

// Ranks user r of the chunk: masks its known items (full), ranks, and writes its per-user
// metrics (out: its row of vals) and top list (top, nt).
void rank_user(const RankingPass& p, Chunk& ch, int64_t r, UserWork& uw, EvalResult& res, double* out, int64_t* top,
               int64_t& nt) {
  const auto t_a = Clock::now();
  const size_t g = static_cast<size_t>(ch.start + r);
  const int64_t u = res.users[g];
  const int64_t T = p.truth.row_size(u);
  const Csr::Index* tg = p.truth.row_begin(u);
  const TieOrder tie(p.opts.seed, u);
  uw.ranks.assign(static_cast<size_t>(T), 0);
  uw.tpos.resize(static_cast<size_t>(T));
  float* sp = ch.scores.data_ptr<float>();
  const std::string& mname = p.model.name();
  int64_t n_cand;
  if (p.proto.type == Protocol::Full) {
    float* row = sp + r * p.n_items;
    for (const Csr* m : p.masked)
      for (const Csr::Index* q = m->row_begin(u); q != m->row_end(u); ++q)
        if (!std::binary_search(tg, tg + T, *q)) std::memcpy(row + *q, &kMaskBits, 4);
    std::copy(tg, tg + T, uw.tpos.begin());
    uw.t_mask += ns_between(t_a, Clock::now());
    n_cand =
        rank_row(row, nullptr, p.n_items, uw.tpos.data(), T, tie, p.kmax, uw.w, uw.ranks.data(), top, nt, mname, u);
  } else {
    const int64_t off = ch.cand_ptr[static_cast<size_t>(r)];
    const int64_t n = ch.cand_ptr[static_cast<size_t>(r) + 1] - off;
    std::iota(uw.tpos.begin(), uw.tpos.end(), int64_t{0});
    n_cand = rank_row(sp + off, ch.cand.data() + off, n, uw.tpos.data(), T, tie, p.kmax, uw.w, uw.ranks.data(), top, nt,
                      mname, u);
  }
  const auto t_b = Clock::now();
  res.n_candidates[g] = n_cand;
  if (p.opts.save_rankings) {
    res.targets[g].assign(tg, tg + T);
    res.ranks[g] = uw.ranks;
    res.top[g].assign(top, top + nt);
  }
  std::sort(uw.ranks.begin(), uw.ranks.end());
  for (size_t ci = 0; ci < p.cols.size(); ++ci) {
    const MetricColumn& col = p.cols[ci];
    if (is_rank_kind(col.kind))
      out[ci] = rank_value(col, uw.ranks.data(), T, n_cand, p.tb);
    else if (is_top_kind(col.kind))
      out[ci] = beyond_value(col, top, nt, p.facts);
  }
  const auto t_c = Clock::now();
  uw.t_rank += ns_between(t_a, t_b);
  uw.t_metrics += ns_between(t_b, t_c);
}

// Ranks the users of a scored chunk (in parallel: each user's numbers are its own).
void rank_chunk(const RankingPass& p, Chunk& ch, EvalResult& res, std::vector<double>& vals,
                std::vector<int64_t>& top_buf, std::vector<int64_t>& n_top, PassTimes& times) {
  const size_t nc = p.cols.size();
  at::parallel_for(0, ch.c, 1, [&](int64_t b, int64_t e) {
    UserWork uw;
    for (int64_t r = b; r < e; ++r)
      rank_user(p, ch, r, uw, res, vals.data() + static_cast<size_t>(ch.start + r) * nc, top_buf.data() + r * p.kmax,
                n_top[static_cast<size_t>(r)]);
    times.mask += uw.t_mask, times.rank += uw.t_rank - uw.t_mask, times.metrics += uw.t_metrics;
  });
}

}  // namespace

void rank_users(const RankingPass& p, EvalResult& res, std::vector<double>& vals, TopCounts& counts) {
  const auto n_eval = static_cast<int64_t>(res.users.size());
  auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  PassTimes times;
  Chunk ch;
  std::vector<int64_t> top_buf, n_top;
  for (ch.start = 0; ch.start < n_eval; ch.start += ch.c) {
    const auto ts = Clock::now();
    if (p.proto.type == Protocol::Full)
      score_full_chunk(p, res, ch);
    else
      score_sampled_chunk(p, res, ch);
    res.seconds_scoring += secs(ts, Clock::now());
    top_buf.assign(static_cast<size_t>(ch.c * p.kmax), -1);
    n_top.assign(static_cast<size_t>(ch.c), 0);
    rank_chunk(p, ch, res, vals, top_buf, n_top, times);
    // Catalogue-level counts (sequential: shared arrays).
    counts.add(p.cols, top_buf.data(), static_cast<size_t>(p.kmax), n_top, ch.c);
  }
  res.seconds_masking = static_cast<double>(times.mask.load()) * 1e-9;
  res.seconds_ranking = static_cast<double>(times.rank.load()) * 1e-9;
  res.seconds_metrics = static_cast<double>(times.metrics.load()) * 1e-9;
}

}  // namespace rzoo::eval_impl
