// core/gemm.h: the products of hand-written training steps, through oneDNN's sgemm or LibTorch.
#include "helpers.h"

#include <dlfcn.h>

#include <torch/torch.h>

#include "core/gemm.h"

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
