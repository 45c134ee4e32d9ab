// core/gemm.h and models/fast_linear.h: products of hand-written training steps and of the sequence
// models' linear layers, through oneDNN's sgemm or LibTorch.
#include "helpers.h"

#include <dlfcn.h>

#include <torch/torch.h>

#include "core/gemm.h"
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

TEST_CASE("gemm: C = beta C + A B for plain, transposed and narrowed views, both paths agree with at::mm", "[gemm]") {
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
    }
  }
  // A shape mismatch is refused with the shapes.
  auto C = torch::empty({3, 3});
  CHECK_THROWS_WITH(gemm_into(C, torch::randn({3, 2}), torch::randn({3, 3})), Catch::Contains("gemm_into: shapes"));
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
