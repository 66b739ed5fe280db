// remoe (ReLU routing, arXiv 2412.14711) against hand-computed cases.
#include "plugins/routers/remoe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/test_util.h"

namespace moe {
namespace {

// 3 experts: logits [x0, x1, -x0].
ReMoERouter hand_router(bool balanced, double l1_init = 0.5) {
  ReMoERouter r(ReMoERouterOptions(2, 3).k(1).l1_init(l1_init).alpha(2.0).balanced(balanced));
  torch::NoGradGuard g;
  r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {-1.0f, 0.0f}}));
  return r;
}

// Token a: logits [2, 1, -2] -> w [2, 1, 0]; token b: [-1, -3, 1] -> w [0, 0, 1];
// token c: [-1, -1, 1] -> w [0, 0, 1].
torch::Tensor hidden() { return torch::tensor({{2.0f, 1.0f}, {-1.0f, -3.0f}, {-1.0f, -1.0f}}); }

TEST(ReMoE, ExpertsWithPositiveReLUAreUsedWithTheirRawWeights) {
  auto r = hand_router(false)->forward(hidden());
  ASSERT_EQ(r.indices.size(1), 2);  // the widest token uses 2 experts
  EXPECT_EQ(r.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[0][1].item<int64_t>(), 1);
  EXPECT_NEAR(r.weights[0][0].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(r.weights[0][1].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(r.indices[1][0].item<int64_t>(), 2);
  EXPECT_EQ(r.indices[1][1].item<int64_t>(), -1);
  EXPECT_NEAR(r.weights[1][0].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(r.weights[1][1].item<double>(), 0.0);
}

TEST(ReMoE, L1PenaltyPlainAndLoadBalanced) {
  // Plain: lambda * mean_t sum_e w = 0.5 * (3 + 1 + 1) / 3.
  auto plain = hand_router(false)->forward(hidden());
  EXPECT_NEAR(plain.aux_losses.at("l1").item<double>(), 0.5 * 5.0 / 3.0, 1e-6);
  // Balanced: f_e = N / (k T) * #tokens using e = 3/3 * [1, 1, 2] = [1, 1, 2];
  // sum_e f_e sum_t w_te = 1*2 + 1*1 + 2*2 = 7; times lambda / T = 0.5 * 7 / 3.
  auto balanced = hand_router(true)->forward(hidden());
  EXPECT_NEAR(balanced.aux_losses.at("l1").item<double>(), 0.5 * 7.0 / 3.0, 1e-6);
  // The penalty's gradient reaches the gate.
  auto router = hand_router(true);
  router->forward(hidden()).aux_losses.at("l1").backward();
  EXPECT_GT(router->gate->weight.grad().abs().sum().item<double>(), 0);
}

TEST(ReMoE, CoefficientMovesByAlphaTowardTheTargetSparsity) {
  auto router = hand_router(false, 1.0);  // N = 3, k = 1: target sparsity 2/3
  LayerTrace t;
  t.tokens = 3;
  t.selected = 4;  // sparsity 1 - 4/9 = 5/9 < 2/3: too dense, lambda *= 2
  router->after_step(t);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 2.0);
  t.selected = 1;  // sparsity 8/9 > 2/3: too sparse, lambda /= 2
  router->after_step(t);
  router->after_step(t);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 0.5);
  t.selected = 3;  // exactly on target: unchanged
  router->after_step(t);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 0.5);
  // The coefficient is a buffer (saved in checkpoints), not a parameter.
  for (const auto& p : router->parameters()) EXPECT_FALSE(p.is_same(router->l1_coef));
  bool buffer = false;
  for (const auto& b : router->named_buffers()) buffer |= b.key() == "l1_coef";
  EXPECT_TRUE(buffer);
}

TEST(ReMoE, BadOptionsAreRefused) {
  LayerContext ctx{2, 4, 0, 1};
  testing::expect_error(
      [&] {
        moe::make_router(PluginSpec("router", "remoe", {{"alpha", 1.0}}), ctx);
      },
      "alpha");
  testing::expect_error(
      [&] {
        moe::make_router(PluginSpec("router", "remoe", {{"k", 5}}), ctx);
      },
      "1..num_experts");
}

}  // namespace
}  // namespace moe
