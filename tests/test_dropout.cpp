// fast_dropout (models/dropout.h): the mask's statistics, its independence from the thread count
// and from the tensor's size, reproducibility under torch::manual_seed, and the gradient.
#include "helpers.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <vector>

#include "models/dropout.h"

namespace {

struct Threads {
  int saved;
  explicit Threads(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(saved); }
};

std::vector<float> mask(int64_t n, double p, uint64_t seed) {
  std::vector<float> m(static_cast<size_t>(n));
  rzoo::dropout_mask(m.data(), n, p, seed);
  return m;
}

}  // namespace

TEST_CASE("fast_dropout: the mask keeps 1 - p of the elements, scaled by 1 / (1 - p), uniformly over the tensor",
          "[dropout]") {
  const int64_t n = 1 << 21;  // 128 blocks of the mask's 2^14
  for (const double p : {0.1, 0.5, 0.8}) {
    INFO("p " << p);
    const auto m = mask(n, p, 12345);
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t kept = 0, other = 0, runs = 0;
    std::vector<int64_t> per_part(16, 0);
    for (int64_t i = 0; i < n; ++i) {
      if (m[static_cast<size_t>(i)] == scale) {
        ++kept;
        ++per_part[static_cast<size_t>(i * 16 / n)];
      } else if (m[static_cast<size_t>(i)] != 0.0f) {
        ++other;
      }
      if (i > 0 && (m[static_cast<size_t>(i)] == 0.0f) != (m[static_cast<size_t>(i - 1)] == 0.0f)) ++runs;
    }
    CHECK(other == 0);
    // Binomial sd of the kept fraction: sqrt(p (1 - p) / n) < 0.00035; 0.002 is > 5 sd.
    CHECK(std::abs(static_cast<double>(kept) / n - (1 - p)) < 0.002);
    for (const int64_t k : per_part) CHECK(std::abs(static_cast<double>(k) / (n / 16) - (1 - p)) < 0.01);
    // Independent draws change state between neighbours with probability 2 p (1 - p).
    CHECK(std::abs(static_cast<double>(runs) / (n - 1) - 2 * p * (1 - p)) < 0.003);
  }
  // Two seeds: independent masks agree where both keep or both drop, p^2 + (1 - p)^2 of the time.
  const auto a = mask(n, 0.5, 1), b = mask(n, 0.5, 2);
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) same += (a[static_cast<size_t>(i)] == b[static_cast<size_t>(i)]);
  CHECK(std::abs(static_cast<double>(same) / n - 0.5) < 0.002);
}

TEST_CASE("fast_dropout: the same mask with 1 or 2 threads and for any size beyond an element", "[dropout]") {
  std::vector<float> one, two;
  {
    Threads t(1);
    one = mask(1000003, 0.3, 99);
  }
  {
    Threads t(2);
    two = mask(1000003, 0.3, 99);
  }
  CHECK(one == two);
  const auto shorter = mask(40000, 0.3, 99);
  CHECK(std::equal(shorter.begin(), shorter.end(), one.begin()));
}

TEST_CASE("fast_dropout: identity in eval mode and at p 0, reproducible under manual_seed, gradient = the mask",
          "[dropout]") {
  const auto x = torch::randn({64, 50, 32}).requires_grad_();
  CHECK(rzoo::fast_dropout(x, 0.5, false).is_same(x));
  CHECK(rzoo::fast_dropout(x, 0.0, true).is_same(x));
  torch::manual_seed(7);
  const auto y1 = rzoo::fast_dropout(x, 0.4, true);
  const auto y1b = rzoo::fast_dropout(x, 0.4, true);  // the next call draws another seed
  torch::manual_seed(7);
  const auto y2 = rzoo::fast_dropout(x, 0.4, true);
  CHECK(torch::equal(y1, y2));
  CHECK(!torch::equal(y1, y1b));
  // y = x * m: d sum(y w) / dx = m w, with m = y / x (x is never 0 here).
  const auto w = torch::randn_like(x);
  (y1 * w).sum().backward();
  const auto m = (y1 / x).detach();
  // Seen failing once in a full CTest run (2026-12-06) and not again in 90 reruns: say where.
  const auto bad = ((m != 0) & ((m - 1.0 / 0.6).abs() >= 1e-5)).flatten().nonzero();
  if (bad.numel() > 0) {
    const int64_t k = bad[0].item<int64_t>();
    INFO(bad.numel() << " elements off the mask; first at " << k << ": x " << x.flatten()[k].item<float>() << ", y "
                     << y1.flatten()[k].item<float>() << ", y1b " << y1b.flatten()[k].item<float>() << ", y2 "
                     << y2.flatten()[k].item<float>());
    CHECK(bad.numel() == 0);
  }
  CHECK(((m == 0) | ((m - 1.0 / 0.6).abs() < 1e-5)).all().item<bool>());
  CHECK(torch::allclose(x.grad(), m * w, 1e-5, 1e-6));
  REQUIRE_THROWS_WITH(rzoo::fast_dropout(x, 1.0, true), Catch::Contains("fast_dropout: p must be in [0, 1), got 1"));
}
