// core/gemm.h and models/fast_linear.h: products of hand-written training steps and of the sequence
// models' linear layers, through oneDNN's sgemm or LibTorch.
#include "helpers.h"

#include <dlfcn.h>

#include <limits>

#include <torch/torch.h>

#include "core/gemm.h"
#include "core/linalg.h"
#include "models/fast_linear.h"

using namespace rzoo;

namespace {
// Restores the oneDNN setting at the end of a test.
struct OneDnnSetting {
  bool saved;
  explicit OneDnnSetting(bool on) : saved(set_onednn_gemm(on)) {}
  ~OneDnnSetting() { set_onednn_gemm(saved); }
};
}  // namespace

TEST_CASE("gemm: oneDNN where the process has it, LibTorch otherwise", "[gemm]") {
  const bool has = ::dlsym(RTLD_DEFAULT, "dnnl_sgemm") != nullptr;
  // Debian's LibTorch links libdnnl; a LibTorch without it (or with it hidden) takes LibTorch's mm.
  if (!has) WARN("dnnl_sgemm not in this process: only the LibTorch path is tested");
  OneDnnSetting on(true);
  CHECK(onednn_gemm_active() == has);
  set_onednn_gemm(false);
  CHECK_FALSE(onednn_gemm_active());
}

TEST_CASE("gemm: C = beta C + alpha A B for plain, transposed and narrowed views, both paths agree with at::mm", "[gemm]") {
  torch::manual_seed(5);
  const auto big = torch::randn({70, 90});
  struct Case {
    const char* what;
    at::Tensor a, b;
  };
  const std::vector<Case> cases = {
      {"plain", torch::randn({33, 17}), torch::randn({17, 9})},
      {"A transposed", torch::randn({17, 33}).t(), torch::randn({17, 9})},
      {"B transposed", torch::randn({33, 17}), torch::randn({9, 17}).t()},
      {"both transposed", torch::randn({17, 33}).t(), torch::randn({9, 17}).t()},
      {"column blocks (W.narrow(1, ..))", big.narrow(1, 10, 20), big.narrow(1, 40, 30).narrow(0, 0, 20)},
      {"a column block transposed", torch::randn({5, 20}), big.narrow(1, 10, 20).t()},
      {"every other column (neither layout: LibTorch)", big.slice(1, 0, 40, 2), torch::randn({20, 6})},
      {"one row", torch::randn({1, 64}), torch::randn({64, 128})},
      {"K = 1", torch::randn({8, 1}), torch::randn({1, 5})},
  };
  for (const bool dnnl : {true, false}) {
    OneDnnSetting setting(dnnl);
    for (const auto& c : cases) {
      INFO(c.what << (dnnl ? ", oneDNN if present" : ", LibTorch"));
      const at::Tensor ref = torch::mm(c.a, c.b);
      CHECK(torch::allclose(gemm(c.a, c.b), ref, 1e-5, 1e-5));
      // Accumulating into a row block and into a column block of a larger matrix (beta 1 and 0.5):
      // the rest of the matrix is untouched.
      const auto start = torch::randn({ref.size(0) + 3, ref.size(1) + 4});
      auto whole = start.clone();
      auto C = whole.narrow(0, 2, ref.size(0)).narrow(1, 3, ref.size(1));
      gemm_into(C, c.a, c.b, 1.0f);
      auto expect = start.clone();
      expect.narrow(0, 2, ref.size(0)).narrow(1, 3, ref.size(1)).add_(ref);
      CHECK(torch::allclose(whole, expect, 1e-5, 1e-5));
      gemm_into(C, c.a, c.b, 0.5f);
      expect.narrow(0, 2, ref.size(0)).narrow(1, 3, ref.size(1)).mul_(0.5).add_(ref);
      CHECK(torch::allclose(whole, expect, 1e-5, 1e-5));
      // alpha: C = C - A B, then C = -2 A B over a C of NaN (beta 0 never reads C).
      gemm_into(C, c.a, c.b, 1.0f, -1.0f);
      expect.narrow(0, 2, ref.size(0)).narrow(1, 3, ref.size(1)).sub_(ref);
      CHECK(torch::allclose(whole, expect, 1e-5, 1e-5));
      C.fill_(std::numeric_limits<float>::quiet_NaN());
      gemm_into(C, c.a, c.b, 0.0f, -2.0f);
      expect.narrow(0, 2, ref.size(0)).narrow(1, 3, ref.size(1)).copy_(ref * -2.0);
      CHECK(torch::allclose(whole, expect, 1e-5, 1e-5));
    }
  }
  // A shape mismatch is refused with the shapes.
  auto C = torch::empty({3, 3});
  CHECK_THROWS_WITH(gemm_into(C, torch::randn({3, 2}), torch::randn({3, 3})), Catch::Contains("gemm_into: shapes"));
}

namespace {
// A random symmetric positive definite matrix of order n in float64: a Gram matrix of 0/1 rows
// (as EASE's) plus lambda I.
at::Tensor random_spd(int64_t n, double lambda) {
  const auto x = (torch::rand({2 * n + 10, n}, torch::kDouble) < 0.2).to(torch::kDouble);
  auto g = torch::mm(x.t(), x);
  g.diagonal().add_(lambda);
  return g;
}
}  // namespace

TEST_CASE("spd_inverse_lower_: the inverse from the lower triangle, by blocks, both gemm paths", "[gemm][linalg]") {
  torch::manual_seed(11);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const bool dnnl : {true, false}) {
    OneDnnSetting setting(dnnl);
    // 1 and 200: LAPACK alone; 257 and 600: one and two levels of blocks; 1031: odd halves.
    for (const int64_t n : {1, 200, 257, 600, 1031}) {
      INFO("n = " << n << (dnnl ? ", oneDNN if present" : ", LibTorch"));
      const auto g = random_spd(n, 5.0);
      const auto ref = torch::inverse(g);
      // In a larger matrix (row stride n + 7), its strict upper triangle NaN: never read; the
      // frame around it is untouched.
      auto frame = torch::full({n + 3, n + 7}, 7.0f);
      auto m = frame.narrow(0, 1, n).narrow(1, 2, n);
      m.copy_(g.to(torch::kFloat).tril());
      m.masked_fill_(torch::ones({n, n}, torch::kBool).triu(1), nan);
      REQUIRE(spd_inverse_lower_(m));
      CHECK(torch::equal(m, m.t()));  // both triangles, the same values
      // Within 3x of the error of LAPACK's float32 factor and inverse against the float64 inverse
      // (both grow with the condition number; measured: 1.0x at n <= 200, 1.3x, 1.8x and 2.1x at
      // n = 257, 600 and 1031 with lambda 5; 0.8x on EASE's G of the NCF ML-1M train).
      const auto rel_error = [&](const at::Tensor& p) {
        return ((p.to(torch::kDouble) - ref).norm() / ref.norm()).item<double>();
      };
      const double lapack = rel_error(torch::cholesky_inverse(torch::linalg_cholesky(g.to(torch::kFloat))));
      const double rel = rel_error(m);
      INFO("relative error " << rel << ", LAPACK float32 " << lapack);
      CHECK(rel < 3.0 * lapack + 1e-7);
      auto outside = frame.clone();
      outside.narrow(0, 1, n).narrow(1, 2, n).fill_(7.0f);
      CHECK(torch::equal(outside, torch::full({n + 3, n + 7}, 7.0f)));
    }
    // Not positive definite: the first pivot block is (I), the Schur complement is not
    // (I - 4 I): refused, at every order (the failure lies in the last LAPACK block).
    for (const int64_t n : {100, 600}) {
      const int64_t h = n / 2;
      auto m = torch::eye(n);
      m.narrow(0, h, n - h).narrow(1, 0, h).copy_(2.0 * torch::eye(n - h, h));
      CHECK_FALSE(spd_inverse_lower_(m));
    }
  }
  // float64 (LAPACK's factor and inverse), the same contract.
  const auto g = random_spd(300, 5.0);
  auto m = g.tril();
  REQUIRE(spd_inverse_lower_(m));
  CHECK(torch::allclose(m, torch::inverse(g), 1e-9, 1e-12));
  auto rect = torch::zeros({3, 4});
  CHECK_THROWS_WITH(spd_inverse_lower_(rect), Catch::Contains("square"));
}

TEST_CASE("fast_linear: torch::linear's values and gradients, with and without oneDNN", "[gemm]") {
  for (const bool dnnl : {true, false}) {
    OneDnnSetting setting(dnnl);
    torch::manual_seed(3);
    const auto big_w = torch::randn({40, 24});
    struct Case {
      const char* what;
      at::Tensor x, w, b;
    };
    const std::vector<Case> cases = {
        {"3-D input, bias", torch::randn({4, 7, 24}), torch::randn({16, 24}), torch::randn({16})},
        {"2-D input, no bias", torch::randn({9, 24}), torch::randn({5, 24}), at::Tensor()},
        {"a row block of a weight (W.narrow(0, ..)) and of a bias", torch::randn({6, 24}), big_w.narrow(0, 8, 20),
         torch::randn({40}).narrow(0, 8, 20)},
        {"a non-contiguous input", torch::randn({24, 6}).t(), torch::randn({16, 24}), torch::randn({16})},
        {"no rows", torch::randn({0, 24}), torch::randn({16, 24}), torch::randn({16})},
        {"one row (the bias rows are a copy, not the bias)", torch::randn({1, 24}), torch::randn({16, 24}),
         torch::randn({16})},
    };
    for (const auto& c : cases) {
      INFO(c.what << (dnnl ? ", oneDNN if present" : ", LibTorch"));
      auto grads = [&](bool fast) {
        auto x = c.x.clone().requires_grad_(true);
        auto w = c.w.clone().requires_grad_(true);
        auto b = c.b.defined() ? c.b.clone().requires_grad_(true) : at::Tensor();
        auto y = fast ? fast_linear(x, w, b) : torch::linear(x, w, b);
        // The inputs are read, never written.
        CHECK(torch::equal(w.detach(), c.w));
        if (b.defined()) CHECK(torch::equal(b.detach(), c.b));
        // A weighted sum, so that every output element has its own gradient.
        const auto g = torch::arange(y.numel(), torch::kFloat).reshape(y.sizes()).div(std::max<int64_t>(1, y.numel()));
        (y * g).sum().backward();
        std::vector<at::Tensor> out{y.detach(), x.grad(), w.grad()};
        if (b.defined()) out.push_back(b.grad());
        return out;
      };
      const auto got = grads(true), want = grads(false);
      REQUIRE(got.size() == want.size());
      for (size_t k = 0; k < got.size(); ++k) {
        INFO("tensor " << k << " (output, dx, dW, db)");
        REQUIRE(got[k].sizes() == want[k].sizes());
        CHECK(torch::allclose(got[k], want[k], 1e-5, 1e-5));
      }
    }
  }
}
