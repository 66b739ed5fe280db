// ∞-MoE (methods.md §3): router inf_moe and bank inf_ffn against hand-computed cases and
// the averaged-mask identity.
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "core/moe_layer.h"
#include "plugins/experts/inf_ffn.h"
#include "plugins/routers/inf_moe.h"
#include "tests/test_util.h"

namespace moe {
namespace {

constexpr int64_t kD = 8, kG = 8, kT = 32;

InfMoERouter hand_router(const std::string& score, const std::string& weight) {
  // d = 2, G = 4, d_z = 1, r = 0.5 (two blocks kept), z = mu = 1 for every token.
  InfMoERouter router(
      InfMoERouterOptions(2, 4).d_z(1).r(0.5).score(score).weight(weight).deterministic(true));
  torch::NoGradGuard no_grad;
  router->mu->weight.zero_();
  router->mu->bias.fill_(1.0);
  if (score == "linear") {
    router->score_map.copy_(torch::tensor({{1.0f}, {-1.0f}, {2.0f}, {0.5f}}));
  } else {
    router->score_map.copy_(torch::tensor({{0.0f}, {1.0f}, {3.0f}, {-1.0f}}));
  }
  return router;
}

void expect_row(const Routing& r, std::vector<int64_t> idx, std::vector<float> w,
                std::vector<float> probs) {
  ASSERT_EQ(r.indices.size(1), static_cast<int64_t>(idx.size()));
  EXPECT_TRUE(torch::equal(r.indices[0], torch::tensor(idx)));
  EXPECT_TRUE(torch::allclose(r.weights[0], torch::tensor(w), 1e-5, 1e-6)) << r.weights[0];
  EXPECT_TRUE(torch::allclose(r.probs[0], torch::tensor(probs), 1e-4, 1e-6)) << r.probs[0];
}

TEST(InfMoE, HandComputedMasksAndWeights) {
  auto x = torch::randn({3, 2});
  // Linear scores s = A z = [1, -1, 2, 0.5]: blocks 2 and 0 kept.
  auto r = hand_router("linear", "sigmoid")->forward(x);
  // sigmoid(1) = 0.731059, sigmoid(2) = 0.880797; probs = a / (a0 + a2).
  expect_row(r, {0, 2}, {0.731059f, 0.880797f}, {0.453545f, 0, 0.546455f, 0});
  // softmax over the kept scores times 2: 2 e^1/(e^1+e^2), 2 e^2/(e^1+e^2).
  r = hand_router("linear", "softmax")->forward(x);
  expect_row(r, {0, 2}, {0.537883f, 1.462117f}, {0.268941f, 0, 0.731059f, 0});
  r = hand_router("linear", "straight_through")->forward(x);
  expect_row(r, {0, 2}, {1.0f, 1.0f}, {0.5f, 0, 0.5f, 0});
  // Positions c = [0, 1, 3, -1]: s = -(z - c)^2 = [-1, 0, -4, -4]: blocks 1 and 0 kept.
  r = hand_router("positions", "sigmoid")->forward(x);
  expect_row(r, {0, 1}, {0.268941f, 0.5f}, {0.349781f, 0.650219f, 0, 0});
}

TEST(InfMoE, UnionOfTwoSamples) {
  // Two samples of one token keeping different blocks: the union has both, and each
  // block's weight is the mean over samples (0 where a sample did not keep it).
  InfMoERouter router(InfMoERouterOptions(2, 4).d_z(1).r(0.25));
  torch::NoGradGuard no_grad;
  router->score_map.copy_(torch::tensor({{1.0f}, {-1.0f}, {0.5f}, {-0.5f}}));
  auto r = router->route_samples(torch::tensor({1.0f, -1.0f}).view({2, 1, 1}));
  // z = 1 keeps block 0 (s = 1), z = -1 keeps block 1 (s = 1): weights sigmoid(1) / 2.
  expect_row(r, {0, 1}, {0.365529f, 0.365529f}, {0.5f, 0.5f, 0, 0});
  EXPECT_EQ(r.nominal_experts, 2.0);
  EXPECT_EQ(r.stats.at("nominal_experts").value.item<double>(), 2.0);
}

TEST(InfMoE, SigmaIsClamped) {
  InfMoERouter router(InfMoERouterOptions(kD, kG).log_sigma_min(-3).log_sigma_max(1));
  auto x = torch::randn({kT, kD});
  torch::NoGradGuard no_grad;
  router->log_sigma->bias.fill_(10.0);
  EXPECT_TRUE(
      torch::allclose(router->forward(x).extras.at("sigma"), torch::full({kT, 16}, std::exp(1.0))));
  router->log_sigma->bias.fill_(-10.0);
  auto r = router->forward(x);
  EXPECT_TRUE(torch::allclose(r.extras.at("sigma"), torch::full({kT, 16}, std::exp(-3.0))));
  EXPECT_NEAR(r.stats.at("sigma_mean").value.item<double>(), std::exp(-3.0), 1e-6);
}

MoELayer make_layer(InfMoERouterOptions ro, const std::string& compute = "gather") {
  torch::manual_seed(3);
  std::shared_ptr<RouterImpl> router = std::make_shared<InfMoERouterImpl>(ro);
  std::shared_ptr<ExpertBankImpl> bank =
      std::make_shared<InfFFNExpertsImpl>(InfFFNExpertsOptions(kD, kG).D_mult(4).compute(compute));
  return MoELayer(Router(router), ExpertBank(bank), MoELayerOptions(kG));
}

TEST(InfMoE, AveragedMaskEqualsMeanOfSamplePasses) {
  auto layer = make_layer(InfMoERouterOptions(kD, kG).K(3));
  auto* router = layer->router->as<InfMoERouterImpl>();
  auto* bank = layer->experts->as<InfFFNExpertsImpl>();
  auto x = torch::randn({kT, kD});
  auto routing = router->forward(x);
  auto run = [&](const Routing& r) { return bank->forward(x, r, plan_dispatch(r, kG, 0)).y; };
  auto y = run(routing);
  const auto& z = routing.extras.at("z");
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{3, kT, 16}));
  auto mean = torch::zeros_like(y);
  for (int64_t k = 0; k < 3; ++k) mean += run(router->route_samples(z.narrow(0, k, 1))) / 3.0;
  EXPECT_TRUE(torch::allclose(y, mean, 1e-5, 1e-6));
  // The gathered pass equals the masked dense form.
  bank->set_compute("dense");
  EXPECT_TRUE(torch::allclose(y, run(routing), 1e-5, 1e-6));
  // The union holds between n and K * n blocks per token (n = 2 of 8).
  auto used = routing.indices.ge(0).sum(1);
  EXPECT_TRUE(used.ge(2).all().item<bool>() && used.le(6).all().item<bool>());
}

void expect_router_grads(const std::string& weight, bool expected) {
  SCOPED_TRACE("weight = " + weight);
  auto layer = make_layer(InfMoERouterOptions(kD, kG).weight(weight));
  layer->forward(torch::randn({kT, kD})).y.pow(2).sum().backward();
  auto* router = layer->router->as<InfMoERouterImpl>();
  for (auto* p : {&router->mu->weight, &router->log_sigma->weight, &router->score_map}) {
    const bool has = p->grad().defined() && p->grad().abs().sum().item<double>() > 0;
    EXPECT_EQ(has, expected);
  }
}

TEST(InfMoE, GradientReachesMuSigmaAndScoresUnlessHard) {
  expect_router_grads("sigmoid", true);
  expect_router_grads("softmax", true);
  expect_router_grads("straight_through", true);
  expect_router_grads("hard", false);
}

struct CaptureWarnings : c10::WarningHandler {
  void process(const c10::Warning& w) override { messages.push_back(w.msg()); }
  std::vector<std::string> messages;
};

TEST(InfMoE, HardMaskWarns) {
  CaptureWarnings capture;
  c10::WarningUtils::WarningHandlerGuard guard(&capture);
  InfMoERouter router(InfMoERouterOptions(kD, kG).weight("hard"));
  ASSERT_EQ(capture.messages.size(), 1u);
  EXPECT_NE(capture.messages[0].find("no gradient"), std::string::npos);
}

TEST(InfMoE, EvalTimeKChangesOutputAndCost) {
  auto layer = make_layer(InfMoERouterOptions(kD, kG).K(2));
  layer->eval();
  auto x = torch::randn({kT, kD});
  auto out2 = layer->forward(x);
  const auto& y2 = out2.y;
  EXPECT_TRUE(torch::equal(y2, layer->forward(x).y)) << "eval must be reproducible";
  const double union2 = out2.trace.mean_experts();
  layer->router->set_inference_option("K", 8);
  auto out8 = layer->forward(x);
  const auto& y8 = out8.y;
  const double union8 = out8.trace.mean_experts();
  EXPECT_FALSE(torch::allclose(y2, y8));
  EXPECT_GT(union8, union2);                    // more samples, larger union, more FLOPs per token
  layer->router->set_inference_option("K", 0);  // deterministic z = mu
  auto outd = layer->forward(x);
  const auto& yd = outd.y;
  EXPECT_DOUBLE_EQ(outd.trace.mean_experts(), 2.0);  // exactly n blocks
  EXPECT_FALSE(torch::allclose(yd, y2));
  testing::expect_error([&] { layer->router->set_inference_option("K", 1.5); }, "integer >= 0");
  // Training draws fresh noise at every forward.
  layer->train();
  layer->router->set_inference_option("K", 2);
  EXPECT_FALSE(torch::allclose(layer->forward(x).y, layer->forward(x).y));
}

TEST(InfMoE, StatisticsAndActiveParameters) {
  auto layer = make_layer(InfMoERouterOptions(kD, kG).K(2));
  LayerStats st;
  st.add(layer->forward(torch::randn({kT, kD})).trace);
  auto stats = st.statistics();
  const int64_t block = 4 * kD / kG;  // D = 4 d = 32 units, 8 blocks of 4
  EXPECT_DOUBLE_EQ(stats.at("nominal_units"), 2.0 * 2 * block);
  EXPECT_NEAR(stats.at("union_units"), st.mean_experts() * block, 1e-9);
  EXPECT_GT(stats.at("sigma_mean"), 0.5);  // initialised at sigma = 1
  EXPECT_EQ(layer->experts->params_per_expert(), block * (2 * kD + 1));
  EXPECT_EQ(layer->experts->flops_per_expert_token(), 4 * kD * block);
  testing::expect_error([] { InfFFNExperts(InfFFNExpertsOptions(kD, 5)); },
                        "divisible by moe.num_experts");
}

TEST(InfMoE, RouterFlopsCountTheMapsAndEverySamplesScores) {
  // d = 8, d_z = 4, G = 8: maps 2 * 2 * 8 * 4 = 128; linear scores 2 * 4 * 8 = 64 per sample.
  InfMoERouter linear(InfMoERouterOptions(8, 8).d_z(4).K(2));
  EXPECT_DOUBLE_EQ(linear->flops_per_token(), 128 + 2 * 64);
  InfMoERouter det(InfMoERouterOptions(8, 8).d_z(4).K(2).deterministic(true));
  EXPECT_DOUBLE_EQ(det->flops_per_token(), 128 + 64);
  // positions: 3 * 4 * 8 + 4 = 100 per sample.
  InfMoERouter pos(InfMoERouterOptions(8, 8).d_z(4).K(3).score("positions"));
  EXPECT_DOUBLE_EQ(pos->flops_per_token(), 128 + 3 * 100);
  // The standard gate: 2 d N.
  const LayerContext ctx{8, 4, 0, 2};
  EXPECT_DOUBLE_EQ(make_router(PluginSpec("router", "top_k", {}), ctx)->flops_per_token(), 64);
}

}  // namespace
}  // namespace moe
