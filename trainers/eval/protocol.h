// Candidate protocols (internal to the evaluator): full ranking, uni<N> / pop<N> sampled
// negatives and given candidates, with the protocol described in words (see trainers/evaluator.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"

namespace rzoo {
struct Csr;
struct Split;
struct EvalOptions;
struct EvalResult;
enum class Target;
}  // namespace rzoo

namespace rzoo::eval_impl {

struct Protocol {
  enum Type { Full, Uniform, Popularity, Given, Labeled } type = Full;
  int64_t n = 0;  // negatives per target (uni, pop)
};

// "full", "given", "labeled", "uni<N>" or "pop<N>" (N >= 1, at most 6 digits); false otherwise.
bool parse_protocol(const std::string& s, Protocol& p);

// The candidates of the sampled protocols. Sampled candidates depend only on (seed, user): every
// model is ranked against the same ones.
struct CandidateSource {
  Protocol proto;
  int64_t n_items = 0;
  std::vector<const Csr*> known;  // every positive of the user (train, valid, test)
  const Csr* given = nullptr;
  std::vector<double> cdf;  // popularity
  uint64_t seed = 0;
  mutable std::vector<char> taken;  // scratch bitmap over items (single-threaded use)
  mutable std::vector<int64_t> known_row, pool;

  // Appends user u's candidates after its targets tg[0, T) (already in out).
  void negatives(int64_t u, const int32_t* tg, int64_t T, std::vector<int64_t>& out) const;

 private:
  void given_negatives(int64_t u, const int32_t* tg, int64_t T, std::vector<int64_t>& out) const;
  void draw_from_pool(int64_t want, int64_t avail, Rng& rng, std::vector<int64_t>& out) const;
  void draw_by_rejection(int64_t want, Rng& rng, std::vector<int64_t>& out) const;
};

// Prepares the candidates of `proto` for the valid or test items of `split` and writes the
// protocol's name and its description in words into res.
CandidateSource setup_protocol(const Protocol& proto, const Split& split, Target target, const EvalOptions& opts,
                               int64_t n_items, EvalResult& res);

}  // namespace rzoo::eval_impl
