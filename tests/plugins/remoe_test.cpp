// remoe (ReLU routing, arXiv 2412.14711) against hand-computed cases.
#include "plugins/routers/remoe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/train/trainer.h"
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
  std::vector<LayerTrace> t(1);
  t[0].tokens = 3;
  t[0].selected = 4;  // sparsity 1 - 4/9 = 5/9 < 2/3: too dense, lambda *= 2
  router->after_step(t, 0);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 2.0);
  t[0].selected = 1;  // sparsity 8/9 > 2/3: too sparse, lambda /= 2
  router->after_step(t, 0);
  router->after_step(t, 0);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 0.5);
  t[0].selected = 3;  // exactly on target: divided, as the reference does
  router->after_step(t, 0);
  EXPECT_DOUBLE_EQ(router->l1_coef.item<double>(), 0.25);
  // The coefficient is a buffer (saved in checkpoints), not a parameter.
  for (const auto& p : router->parameters()) EXPECT_FALSE(p.is_same(router->l1_coef));
  bool buffer = false;
  for (const auto& b : router->named_buffers()) buffer |= b.key() == "l1_coef";
  EXPECT_TRUE(buffer);
}

TEST(ReMoE, ModelScopeSteersByTheMeanSparsityOfAllLayers) {
  // Two MoE layers, N = 3, k = 1 (target 2/3): layer 0 too dense (sparsity 1 - 4/9 =
  // 5/9), layer 1 too sparse (1 - 1/9 = 8/9); mean 13/18 > 2/3.
  std::vector<LayerTrace> t(2);
  t[0].tokens = t[1].tokens = 3;
  t[0].selected = 4;
  t[1].selected = 1;
  auto model0 = hand_router(false, 1.0), model1 = hand_router(false, 1.0);
  model0->after_step(t, 0);
  model1->after_step(t, 1);
  // l1_scope = "model" (default): both layers divide by alpha and stay equal.
  EXPECT_DOUBLE_EQ(model0->l1_coef.item<double>(), 0.5);
  EXPECT_DOUBLE_EQ(model1->l1_coef.item<double>(), 0.5);
  // l1_scope = "layer": each follows its own sparsity.
  LayerContext ctx{2, 3, 0, 2};
  auto layer0 = moe::make_router(
      PluginSpec("router", "remoe",
                 {{"k", 1}, {"alpha", 2.0}, {"l1_init", 1.0}, {"l1_scope", "layer"}}),
      ctx);
  auto layer1 = moe::make_router(
      PluginSpec("router", "remoe",
                 {{"k", 1}, {"alpha", 2.0}, {"l1_init", 1.0}, {"l1_scope", "layer"}}),
      ctx);
  layer0->after_step(t, 0);
  layer1->after_step(t, 1);
  EXPECT_DOUBLE_EQ(layer0->named_buffers()["l1_coef"].item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(layer1->named_buffers()["l1_coef"].item<double>(), 0.5);
}

TEST(ReMoE, TrainingDrivesOneModelWideCoefficient) {
  // A short training run of a 2-layer ReMoE model: the coefficient moves (starting at
  // 1e-8 it must grow while the layers are denser than the target) and both layers
  // hold the same value; per layer (l1_scope = "layer") the layers' values part.
  auto json = testing::tiny_config_json();
  json["moe"]["router"] = {{"name", "remoe"}, {"k", 1}};
  json["train"]["steps"] = 30;
  auto coefs = [&](const nlohmann::json& j) {
    Trainer trainer(ExperimentConfig::from_json(j, "remoe"));
    trainer.train_until(30);
    std::vector<double> out;
    for (const auto& layer : trainer.model()->moe_layers()) {
      out.push_back(layer->router->named_buffers()["l1_coef"].item<double>());
    }
    return out;
  };
  const auto model = coefs(json);
  ASSERT_EQ(model.size(), 2u);
  EXPECT_GT(model[0], 1e-8);
  EXPECT_DOUBLE_EQ(model[0], model[1]);
  json["moe"]["router"]["l1_scope"] = "layer";
  const auto layer = coefs(json);
  EXPECT_NE(layer[0], layer[1]);
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
