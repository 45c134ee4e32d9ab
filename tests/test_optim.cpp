// LazyAdam and FusedAdam against torch::optim::Adam and by hand; sparse embedding gradients against dense ones.
#include "helpers.h"

#include <torch/torch.h>

#include <cmath>

#include "trainers/fused_adam.h"
#include "trainers/lazy_adam.h"
#include "trainers/trainer.h"

using namespace rzoo;
using namespace rzoo::test;

namespace {
// A few steps of `opt` on p with the gradients gs (dense [N, D], or rows given sparse).
void run_steps(torch::optim::Optimizer& opt, at::Tensor& p, const std::vector<at::Tensor>& gs, bool sparse) {
  for (const auto& g : gs) {
    opt.zero_grad();
    p.mutable_grad() = sparse ? g.to_sparse(1) : g.clone();  // row-sparse, as an embedding's
    opt.step();
  }
}

// LibTorch's intra-op thread count for one test, restored after it.
struct IntraOpThreads {
  explicit IntraOpThreads(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~IntraOpThreads() { at::set_num_threads(saved); }
  int saved;
};
}  // namespace

TEST_CASE("lazy_adam: dense gradients give exactly Adam's steps, with weight decay", "[optim]") {
  torch::manual_seed(1);
  const auto init = torch::randn({5, 3});
  std::vector<at::Tensor> gs;
  for (int s = 0; s < 4; ++s) gs.push_back(torch::randn({5, 3}));
  auto a = init.clone().requires_grad_(), b = init.clone().requires_grad_();
  torch::optim::Adam adam({a}, torch::optim::AdamOptions(0.05).weight_decay(0.1));
  LazyAdam lazy({b}, torch::optim::AdamOptions(0.05).weight_decay(0.1));
  run_steps(adam, a, gs, false);
  run_steps(lazy, b, gs, false);
  CHECK(torch::allclose(a, b, 1e-6, 1e-7));
}

TEST_CASE("lazy_adam: sparse rows by hand, untouched rows keep values and moments", "[optim]") {
  // One step from zero moments: m = (1 - b1) g, v = (1 - b2) g^2, so the step is
  // lr * g / (|g| + eps') = lr * sign(g) up to eps: rows 0 and 2 move by -lr sign(g), row 1 not.
  auto p = torch::zeros({3, 2}).requires_grad_();
  LazyAdam opt({p}, torch::optim::AdamOptions(0.1));
  auto g = torch::zeros({3, 2});
  g[0][0] = 2.0;
  g[0][1] = -0.5;
  g[2][1] = 3.0;
  run_steps(opt, p, {g}, true);
  CHECK(p[0][0].item<double>() == Approx(-0.1).margin(1e-6));
  CHECK(p[0][1].item<double>() == Approx(0.1).margin(1e-6));
  CHECK(p[2][1].item<double>() == Approx(-0.1).margin(1e-6));
  CHECK(p[1].abs().sum().item<double>() == 0.0);
  // A second step touching row 1 only: rows 0 and 2 stay put (dense Adam would move them on
  // their momentum); row 1 takes its own first-step size (its moments were never decayed, but
  // the bias correction uses the parameter's step count 2).
  const auto before = p.detach().clone();
  auto g2 = torch::zeros({3, 2});
  g2[1][0] = 1.0;
  run_steps(opt, p, {g2}, true);
  CHECK(torch::equal(p[0], before[0]));
  CHECK(torch::equal(p[2], before[2]));
  const double b1 = 0.9, b2 = 0.999, m = (1 - b1) * 1.0, v = (1 - b2) * 1.0;
  const double expect = -0.1 / (1 - b1 * b1) * m / (std::sqrt(v) / std::sqrt(1 - b2 * b2) + 1e-8);
  CHECK(p[1][0].item<double>() == Approx(expect).epsilon(1e-5));
  // When every row is in every batch, lazy equals dense Adam.
  torch::manual_seed(2);
  const auto init = torch::randn({4, 3});
  std::vector<at::Tensor> gs;
  for (int s = 0; s < 3; ++s) gs.push_back(torch::randn({4, 3}));
  auto a = init.clone().requires_grad_(), b = init.clone().requires_grad_();
  torch::optim::Adam adam({a}, torch::optim::AdamOptions(0.05));
  LazyAdam lazy({b}, torch::optim::AdamOptions(0.05));
  run_steps(adam, a, gs, false);
  run_steps(lazy, b, gs, true);
  CHECK(torch::allclose(a, b, 1e-6, 1e-7));
}

TEST_CASE("lazy_adam: save and load continue exactly, a foreign state is refused", "[optim]") {
  torch::manual_seed(3);
  const auto init = torch::randn({4, 2});
  std::vector<at::Tensor> gs;
  for (int s = 0; s < 4; ++s) gs.push_back(torch::randn({4, 2}) * (torch::rand({4, 1}) < 0.5).to(torch::kFloat));
  auto a = init.clone().requires_grad_();
  LazyAdam full({a}, torch::optim::AdamOptions(0.05));
  run_steps(full, a, gs, true);

  auto b = init.clone().requires_grad_();
  LazyAdam first({b}, torch::optim::AdamOptions(0.05));
  run_steps(first, b, {gs[0], gs[1]}, true);
  TempDir t;
  {
    torch::serialize::OutputArchive out;
    first.save(out);
    out.save_to(t.file("opt.pt"));
  }
  LazyAdam second({b}, torch::optim::AdamOptions(0.05));
  torch::serialize::InputArchive in;
  in.load_from(t.file("opt.pt"));
  second.load(in);
  run_steps(second, b, {gs[2], gs[3]}, true);
  CHECK(torch::equal(a, b));

  auto c = init.clone().requires_grad_();
  torch::optim::Adam adam({c}, torch::optim::AdamOptions(0.05));
  torch::serialize::OutputArchive out;
  adam.save(out);
  out.save_to(t.file("adam.pt"));
  torch::serialize::InputArchive in2;
  in2.load_from(t.file("adam.pt"));
  LazyAdam other({c}, torch::optim::AdamOptions(0.05));
  CHECK_THROWS_WITH(other.load(in2), Catch::Matchers::Contains("not a lazy_adam state"));
}

TEST_CASE("sparse embedding gradients: sgd and adagrad take the same steps as with dense ones", "[optim]") {
  for (const std::string name : {"sgd", "adagrad"}) {
    TrainOptions o;
    o.optimizer = name;
    CHECK(sparse_gradients_are_exact(o));
    o.weight_decay = 0.01;
    CHECK_FALSE(sparse_gradients_are_exact(o));
    torch::manual_seed(4);
    torch::nn::Embedding dense(10, 4), sparse(10, 4);
    {
      torch::NoGradGuard g;
      sparse->weight.copy_(dense->weight);
    }
    set_sparse_embeddings(*sparse, true);
    CHECK(sparse->options.sparse());
    auto od = make_optimizer(name, dense->parameters(), 0.1, 0.0, 0.0);
    auto os = make_optimizer(name, sparse->parameters(), 0.1, 0.0, 0.0);
    for (int s = 0; s < 3; ++s) {
      const auto idx = torch::tensor({1, 3, 3, 7}, torch::kLong) + s;
      for (auto* pair : {&dense, &sparse}) {
        auto& opt = pair == &dense ? od : os;
        opt->zero_grad();
        (*pair)->forward(idx).pow(2).sum().backward();
        opt->step();
      }
      CHECK(sparse->weight.grad().is_sparse());
    }
    INFO(name);
    CHECK(torch::allclose(dense->weight, sparse->weight, 1e-6, 1e-7));
  }
  TrainOptions lazy;
  lazy.optimizer = "lazy_adam";
  lazy.weight_decay = 0.1;
  CHECK(sparse_gradients_are_exact(lazy));
  TrainOptions adam;
  CHECK_FALSE(sparse_gradients_are_exact(adam));
}

TEST_CASE("fused adam: Adam's steps over several parameters, across threads, gradients left zero", "[optim]") {
  // Two parameters larger than the pass's grain (so that, with two threads, a chunk spans the end of
  // one and the start of the next), a small one, and one without a gradient (skipped, as by Adam).
  IntraOpThreads threads(2);
  torch::manual_seed(5);
  const std::vector<at::Tensor> init = {torch::randn({300000}), torch::randn({7, 3}), torch::randn({1000, 250}),
                                        torch::randn({4})};
  for (const double wd : {0.0, 0.05}) {
    std::vector<at::Tensor> a, b;
    for (const auto& t : init) {
      a.push_back(t.clone().requires_grad_());
      b.push_back(t.clone().requires_grad_());
    }
    torch::optim::Adam adam(a, torch::optim::AdamOptions(0.01).weight_decay(wd));
    FusedAdam fused(b, torch::optim::AdamOptions(0.01).weight_decay(wd));
    for (int s = 0; s < 5; ++s) {
      for (size_t k = 0; k + 1 < init.size(); ++k) {
        const auto g = torch::randn_like(init[k]);
        a[k].mutable_grad() = g.clone();
        b[k].mutable_grad() = g.clone();
      }
      adam.step();
      fused.step();
      CHECK(fused.gradients_zeroed());
      for (size_t k = 0; k + 1 < init.size(); ++k) CHECK(b[k].grad().abs().max().item<float>() == 0.0f);
    }
    INFO("weight decay " << wd);
    for (size_t k = 0; k < init.size(); ++k) CHECK(torch::allclose(a[k], b[k], 1e-5, 1e-6));
    CHECK(torch::equal(b[3], init[3]));
    // The same state and checkpoint format as torch::optim::Adam: each continues the other.
    TempDir t;
    {
      torch::serialize::OutputArchive out;
      fused.save(out);
      out.save_to(t.file("fused.pt"));
    }
    torch::serialize::InputArchive in;
    in.load_from(t.file("fused.pt"));
    std::vector<at::Tensor> c;
    for (const auto& p : b) c.push_back(p.detach().clone().requires_grad_());
    torch::optim::Adam resumed(c, torch::optim::AdamOptions(0.01).weight_decay(wd));
    resumed.load(in);
    const auto g = torch::randn_like(init[1]);
    b[1].mutable_grad() = g.clone();
    c[1].mutable_grad() = g.clone();
    fused.step();
    resumed.step();
    CHECK(torch::allclose(b[1], c[1], 1e-5, 1e-6));
  }
}

TEST_CASE("fused adam: a sparse gradient takes torch::optim::Adam's own step", "[optim]") {
  torch::manual_seed(6);
  torch::nn::Embedding e(10, 4);
  set_sparse_embeddings(*e, true);
  auto opt = make_optimizer("adam", e->parameters(), 0.1, 0.0, 0.0);
  auto* fused = dynamic_cast<FusedAdam*>(opt.get());
  REQUIRE(fused != nullptr);
  const auto before = e->weight.detach().clone();
  opt->zero_grad();
  e->forward(torch::tensor({1, 3}, torch::kLong)).sum().backward();
  REQUIRE(e->weight.grad().is_sparse());
  // torch::optim::Adam refuses sparse gradients; the fused step must not read them as dense.
  CHECK_THROWS(opt->step());
  CHECK_FALSE(fused->gradients_zeroed());
  CHECK(torch::equal(e->weight.detach(), before));
}
