// expert_choice against hand-computed cases (Zhou et al. 2022).
#include "plugins/routers/expert_choice.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/moe_layer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

std::vector<int64_t> ints(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// 2 experts reading x0 and x1; 4 tokens.
ExpertChoiceRouter hand_router(double capacity_factor, int64_t k = 1) {
  ExpertChoiceRouter r(ExpertChoiceRouterOptions(2, 2).k(k).capacity_factor(capacity_factor));
  torch::NoGradGuard g;
  r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}}));
  return r;
}

// p[:, 0] = sigmoid(x0 - x1): token 0: sigmoid(3), token 1: sigmoid(1), token 2: sigmoid(0),
// token 3: sigmoid(-2).
torch::Tensor hidden() {
  return torch::tensor({{3.0f, 0.0f}, {1.0f, 0.0f}, {0.0f, 0.0f}, {0.0f, 2.0f}});
}

TEST(ExpertChoice, CapacityIsCeilOfFactorTimesKTokensOverExperts) {
  EXPECT_EQ(expert_choice_capacity(1.0, 2, 64, 8), 16);
  EXPECT_EQ(expert_choice_capacity(1.25, 1, 10, 4), 4);  // ceil(3.125)
  EXPECT_EQ(expert_choice_capacity(1.0, 2, 3, 8), 1);    // at least one
  EXPECT_EQ(expert_choice_capacity(4.0, 2, 10, 2), 10);  // at most T
  EXPECT_EQ(expert_choice_capacity(1.0, 2, 0, 8), 0);
}

TEST(ExpertChoice, EachExpertTakesItsTopCTokensWithSoftmaxWeights) {
  // C = ceil(1 * 1 * 4 / 2) = 2. Expert 0 takes tokens 0, 1 (largest p0); expert 1 takes
  // tokens 3, 2 (p1 = 1 - p0: 0.88, 0.5). Each token gets exactly one expert here.
  auto r = hand_router(1.0)->forward(hidden());
  ASSERT_EQ(r.indices.size(1), 1);
  EXPECT_EQ(ints(r.indices.squeeze(1)), std::vector<int64_t>({0, 0, 1, 1}));
  auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  EXPECT_NEAR(r.weights[0][0].item<double>(), sig(3), 1e-6);
  EXPECT_NEAR(r.weights[1][0].item<double>(), sig(1), 1e-6);
  EXPECT_NEAR(r.weights[2][0].item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(r.weights[3][0].item<double>(), sig(2), 1e-6);
  EXPECT_EQ(r.aux_losses.count("balance"), 0u) << "balanced by construction";
  EXPECT_EQ(r.aux_losses.count("z"), 1u);
}

TEST(ExpertChoice, ATokenMayGetSeveralExpertsOrNone) {
  // C = ceil(1.5 * 1 * 4 / 2) = 3: expert 0 takes 0, 1, 2; expert 1 takes 3, 2, 1.
  auto r = hand_router(1.5)->forward(hidden());
  ASSERT_EQ(r.indices.size(1), 2);
  auto count = r.indices.ge(0).sum(1);
  EXPECT_EQ(ints(count), std::vector<int64_t>({1, 2, 2, 1}));
  // Token 1 has experts 0 and 1 in ascending order, weights p0 and p1 (not renormalised).
  EXPECT_EQ(r.indices[1][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[1][1].item<int64_t>(), 1);
  EXPECT_NEAR((r.weights[1][0] + r.weights[1][1]).item<double>(), 1.0, 1e-6);
  // C = 1 with k = 1, cf = 0.5: expert 0 takes token 0, expert 1 token 3; 1, 2 get none.
  auto few = hand_router(0.5)->forward(hidden());
  EXPECT_EQ(ints(few.indices.ge(0).sum(1)), std::vector<int64_t>({1, 0, 0, 1}));
  // In a layer, the tokens without an expert output 0 and count in the load as nothing.
  auto layer =
      MoELayer(Router(std::shared_ptr<RouterImpl>(hand_router(0.5).ptr())),
               make_expert_bank(PluginSpec("experts", "ffn", {}), LayerContext{2, 2, 0, 1}),
               MoELayerOptions(2));
  auto out = layer->forward(hidden());
  EXPECT_EQ(out.trace.selected, 2);
  EXPECT_EQ(out.trace.load, (std::vector<int64_t>{1, 1}));
  EXPECT_TRUE(out.y[1].eq(0).all().item<bool>());
}

TEST(ExpertChoice, RefusesACausalModelUnlessAllowed) {
  LayerContext causal{4, 2, 0, 1, /*causal=*/true};
  testing::expect_error(
      [&] { moe::make_router(PluginSpec("router", "expert_choice", {}), causal); },
      "leaks the future");
  auto allowed =
      moe::make_router(PluginSpec("router", "expert_choice", {{"allow_noncausal", true}}), causal);
  EXPECT_TRUE(allowed);
  LayerContext bidirectional{4, 2, 0, 1, /*causal=*/false};
  EXPECT_TRUE(moe::make_router(PluginSpec("router", "expert_choice", {}), bidirectional));
}

}  // namespace
}  // namespace moe
