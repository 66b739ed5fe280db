// Contract tests every registered router and expert bank must pass, parameterised over
// registry.names() so a new plugin is covered the moment it registers and a failure
// names it (RouterContract/top_k, ExpertContract/hyper_by_top_p).
#include <gtest/gtest.h>

#include <torch/cuda.h>
#include <torch/torch.h>
#include <algorithm>

#include "core/dispatch.h"
#include "core/experts.h"
#include "core/moe_layer.h"
#include "core/router.h"

namespace moe {
namespace {

constexpr int64_t kD = 8, kE = 4, kT = 64;
const LayerContext kCtx{kD, kE, 0, 2};

Router new_router(const std::string& name, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return make_router(PluginSpec("router", name, {}), kCtx);
}

ExpertBank new_bank(const std::string& name, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return make_expert_bank(PluginSpec("experts", name, {}), kCtx);
}

/// Routers under which a token may get no expert (expert choice, ReLU routing): a fact of
/// their registration.
bool may_skip_tokens(const std::string& router) {
  return router_registry().entry(router).facts.may_skip_tokens;
}

void expect_valid_routing(const Routing& r, int64_t tokens, bool every_token = true) {
  ASSERT_EQ(r.weights.dim(), 2);
  EXPECT_EQ(r.weights.sizes(), r.indices.sizes());
  EXPECT_EQ(r.indices.size(0), tokens);
  EXPECT_EQ(r.indices.scalar_type(), torch::kLong);
  EXPECT_EQ(r.probs.sizes(), (std::vector<int64_t>{tokens, kE}));
  EXPECT_TRUE(r.indices.ge(-1).all().item<bool>());
  EXPECT_TRUE(r.indices.lt(kE).all().item<bool>());
  EXPECT_TRUE(r.weights.ge(0).all().item<bool>());
  EXPECT_TRUE(r.weights.masked_select(r.indices.lt(0)).eq(0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(r.probs.sum(-1), torch::ones({tokens}, r.probs.options()), 1e-5));
  if (every_token) {
    EXPECT_TRUE(r.indices.ge(0).any(1).all().item<bool>()) << "every token needs an expert";
  }
}

torch::Tensor routing_loss(const Routing& r) {
  auto loss =
      (r.weights *
       torch::linspace(0.5, 1.5, r.weights.numel(), r.weights.options()).view(r.weights.sizes()))
          .sum();
  for (const auto& kv : r.aux_losses) loss = loss + kv.second;
  return loss;
}

void expect_all_grads(torch::nn::Module& m, const std::string& what) {
  for (const auto& p : m.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << what << ": no gradient for " << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0)
        << what << ": zero grad for " << p.key();
  }
}

/// Sampling routers draw their noise from the device's generator, so the CPU and the GPU
/// see different draws: the device comparisons route deterministically (inf_moe: K = 0).
void without_sampling(RouterImpl& router) {
  const auto knobs = router.inference_options();  // inf_moe: K = 0 routes by z = mu
  if (std::find(knobs.begin(), knobs.end(), "K") != knobs.end()) {
    router.set_inference_option("K", 0);
  }
}

/// Every gradient of `gpu` equals the CPU module's within float tolerance.
void expect_same_grads(torch::nn::Module& cpu, torch::nn::Module& gpu, const std::string& what) {
  const auto on_gpu = gpu.named_parameters();
  for (const auto& p : cpu.named_parameters()) {
    const auto* q = on_gpu.find(p.key());
    ASSERT_NE(q, nullptr) << what << ": " << p.key() << " missing on the GPU";
    ASSERT_EQ(p.value().grad().defined(), q->grad().defined()) << what << ": " << p.key();
    if (!p.value().grad().defined()) continue;
    EXPECT_TRUE(torch::allclose(q->grad().cpu(), p.value().grad(), 1e-3, 1e-5))
        << what << ": gradient of " << p.key() << " differs on the GPU";
  }
}

/// Names a parameterised case after its plugin(s), so a failure names the plugin.
std::string case_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

class RouterContract : public ::testing::TestWithParam<std::string> {};

TEST_P(RouterContract, ValidRoutingGradientsDeterminismAndDouble) {
  const auto& name = GetParam();
  auto router = new_router(name);
  auto x = torch::randn({kT, kD});
  auto x_copy = x.clone();
  auto r = router->forward(x);
  EXPECT_TRUE(torch::equal(x, x_copy)) << "router modified its input";
  expect_valid_routing(r, kT, !may_skip_tokens(name));
  // Every aux loss it returns is one it declares (its [loss] key and default).
  const auto declared = router_registry().entry(name).facts.aux_losses();
  for (const auto& kv : r.aux_losses) {
    EXPECT_TRUE(std::any_of(declared.begin(), declared.end(),
                            [&](const AuxLossDoc& d) { return d.name == kv.first; }))
        << "aux loss '" << kv.first << "' is not in its aux_losses()";
  }
  routing_loss(r).backward();
  expect_all_grads(*router, name);

  // Determinism: same seed, same parameters, same routing.
  auto again = new_router(name)->forward(x);
  EXPECT_TRUE(torch::equal(r.indices, again.indices));
  EXPECT_TRUE(torch::allclose(r.weights, again.weights));

  // Every tensor is registered: converting the module converts all of it.
  router->to(torch::kDouble);
  auto rd = router->forward(x.to(torch::kDouble));
  expect_valid_routing(rd, kT, !may_skip_tokens(name));
  EXPECT_EQ(rd.probs.scalar_type(), torch::kDouble);
}

TEST_P(RouterContract, SameOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  const auto& name = GetParam();
  auto cpu = new_router(name), gpu = new_router(name);
  gpu->to(torch::kCUDA);
  for (auto* r : {&cpu, &gpu}) {
    (*r)->eval();
    without_sampling(**r);
  }
  auto x = torch::randn({kT, kD});
  auto a = cpu->forward(x);
  auto b = gpu->forward(x.to(torch::kCUDA));
  EXPECT_TRUE(b.weights.is_cuda() && b.indices.is_cuda() && b.probs.is_cuda());
  EXPECT_TRUE(torch::equal(a.indices, b.indices.cpu())) << name << ": routing differs on the GPU";
  EXPECT_TRUE(torch::allclose(a.weights, b.weights.cpu(), 1e-4, 1e-6));
  EXPECT_TRUE(torch::allclose(a.probs, b.probs.cpu(), 1e-4, 1e-6));
  routing_loss(a).backward();
  routing_loss(b).backward();
  expect_same_grads(*cpu, *gpu, name);
}

INSTANTIATE_TEST_SUITE_P(Registered, RouterContract, ::testing::ValuesIn(router_registry().names()),
                         case_name);

/// (expert bank, router) pairs: every bank routed by every router.
class ExpertContract : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ExpertContract, ShapesGradientsDeterminismDoubleAndTrace) {
  const auto& [name, router_name] = GetParam();
  // Eval mode: a sampling router (inf_moe) then draws the same noise at every forward, so
  // the determinism and dtype comparisons below apply; gradients still flow.
  auto layer = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
  layer->eval();
  auto x = torch::randn({2, kT / 2, kD});
  auto out = layer->forward(x);
  const auto& y = out.y;
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  // The trace describes this pass.
  EXPECT_EQ(out.trace.tokens, kT);
  EXPECT_EQ(out.trace.token_experts.numel(), kT);
  EXPECT_EQ(static_cast<int64_t>(out.trace.load.size()), kE);
  int64_t load = 0;
  for (auto v : out.trace.load) load += v;
  EXPECT_EQ(load, out.trace.selected);
  EXPECT_EQ(out.trace.token_experts.sum().item<int64_t>(), out.trace.selected);
  auto loss = y.pow(2).sum();
  for (const auto& kv : out.trace.aux_losses) loss = loss + kv.second;
  loss.backward();
  expect_all_grads(*layer, name);

  auto again = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
  again->eval();
  EXPECT_TRUE(torch::allclose(again->forward(x).y, y));

  layer->to(torch::kDouble);
  auto yd = layer->forward(x.to(torch::kDouble)).y;
  EXPECT_EQ(yd.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(yd.to(torch::kFloat), y, 1e-4, 1e-5));
  EXPECT_GT(new_bank(name)->params_per_expert(), 0);
  EXPECT_GT(new_bank(name)->flops_per_expert_token(), 0);
}

TEST_P(ExpertContract, SameOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  const auto& [name, router_name] = GetParam();
  auto cpu = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
  auto gpu = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
  gpu->to(torch::kCUDA);
  for (auto* l : {&cpu, &gpu}) {
    (*l)->eval();
    without_sampling(*(*l)->router);
  }
  auto x = torch::randn({2, kT / 2, kD});
  auto a = cpu->forward(x);
  auto b = gpu->forward(x.to(torch::kCUDA));
  ASSERT_TRUE(b.y.is_cuda());
  EXPECT_TRUE(torch::allclose(a.y, b.y.cpu(), 1e-4, 1e-5)) << name << " by " << router_name;
  EXPECT_EQ(a.trace.load, b.trace.load);
  EXPECT_EQ(a.trace.selected, b.trace.selected);
  auto loss = [](const MoEOutput& o) {
    auto l = o.y.pow(2).sum();
    for (const auto& kv : o.trace.aux_losses) l = l + kv.second;
    return l;
  };
  loss(a).backward();
  loss(b).backward();
  expect_same_grads(*cpu, *gpu, name + " by " + router_name);
}

INSTANTIATE_TEST_SUITE_P(
    Registered, ExpertContract,
    ::testing::Combine(::testing::ValuesIn(expert_registry().names()),
                       ::testing::ValuesIn(router_registry().names())),
    [](const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& info) {
      return std::get<0>(info.param) + "_by_" + std::get<1>(info.param);
    });

}  // namespace
}  // namespace moe
