// Contract tests every registered router and expert bank must pass, run over
// registry.names() so a new plugin is covered the moment it registers.
#include <gtest/gtest.h>
#include <torch/torch.h>

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

void expect_valid_routing(const Routing& r, int64_t tokens) {
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
  EXPECT_TRUE(r.indices.ge(0).any(1).all().item<bool>()) << "every token needs an expert";
}

torch::Tensor routing_loss(const Routing& r) {
  auto loss = (r.weights * torch::linspace(0.5, 1.5, r.weights.numel(), r.weights.options())
                               .view(r.weights.sizes()))
                  .sum();
  for (const auto& kv : r.aux_losses) loss = loss + kv.second;
  return loss;
}

void expect_all_grads(torch::nn::Module& m, const std::string& what) {
  for (const auto& p : m.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << what << ": no gradient for " << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << what << ": zero grad for "
                                                              << p.key();
  }
}

TEST(RouterContract, EveryRegisteredRouter) {
  for (const auto& name : router_registry().names()) {
    SCOPED_TRACE("router " + name);
    auto router = new_router(name);
    auto x = torch::randn({kT, kD});
    auto x_copy = x.clone();
    auto r = router->forward(x);
    EXPECT_TRUE(torch::equal(x, x_copy)) << "router modified its input";
    expect_valid_routing(r, kT);
    routing_loss(r).backward();
    expect_all_grads(*router, name);

    // Determinism: same seed, same parameters, same routing.
    auto again = new_router(name)->forward(x);
    EXPECT_TRUE(torch::equal(r.indices, again.indices));
    EXPECT_TRUE(torch::allclose(r.weights, again.weights));

    // Every tensor is registered: converting the module converts all of it.
    router->to(torch::kDouble);
    auto rd = router->forward(x.to(torch::kDouble));
    expect_valid_routing(rd, kT);
    EXPECT_EQ(rd.probs.scalar_type(), torch::kDouble);
  }
}

TEST(ExpertContract, EveryRegisteredExpertBank) {
  for (const auto& name : expert_registry().names()) {
    SCOPED_TRACE("expert bank " + name);
    for (const auto& router_name : router_registry().names()) {
      SCOPED_TRACE("routed by " + router_name);
      // Eval mode: a sampling router (inf_moe) then draws the same noise at every
      // forward, so the determinism and dtype comparisons below apply; gradients still flow.
      auto layer = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
      layer->eval();
      auto x = torch::randn({2, kT / 2, kD});
      auto y = layer->forward(x);
      EXPECT_EQ(y.sizes(), x.sizes());
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
      auto loss = y.pow(2).sum();
      for (const auto& kv : layer->aux_losses()) loss = loss + kv.second;
      loss.backward();
      expect_all_grads(*layer, name);

      auto again = MoELayer(new_router(router_name), new_bank(name), MoELayerOptions(kE));
      again->eval();
      EXPECT_TRUE(torch::allclose(again->forward(x), y));

      layer->to(torch::kDouble);
      auto yd = layer->forward(x.to(torch::kDouble));
      EXPECT_EQ(yd.scalar_type(), torch::kDouble);
      EXPECT_TRUE(torch::allclose(yd.to(torch::kFloat), y, 1e-4, 1e-5));
    }
    EXPECT_GT(new_bank(name)->params_per_expert(), 0);
    EXPECT_GT(new_bank(name)->flops_per_expert_token(), 0);
  }
}

}  // namespace
}  // namespace moe
