// top_k against hand-computed cases (methods.md §0).
#include "plugins/routers/top_k.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/losses.h"
#include "tests/test_util.h"

namespace moe {
namespace {

// Gate W_r rows: expert 0 reads x0, expert 1 reads x1, expert 2 reads nothing.
TopKRouter make_router(int64_t k) {
  TopKRouter r(TopKRouterOptions(2, 3).k(k).normalize(k > 1));
  torch::NoGradGuard g;
  r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.0f, 0.0f}}));
  return r;
}

// Token a: logits [2, 1, 0]; token b: logits [-1, 1, 0].
torch::Tensor hidden() { return torch::tensor({{2.0f, 1.0f}, {-1.0f, 1.0f}}); }

double softmax_at(std::vector<double> z, int i) {
  double s = 0;
  for (double v : z) s += std::exp(v);
  return std::exp(z[i]) / s;
}

TEST(TopK, SwitchTop1KeepsRawProbability) {
  auto r = make_router(1)->forward(hidden());
  EXPECT_EQ(r.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[1][0].item<int64_t>(), 1);
  EXPECT_NEAR(r.weights[0][0].item<double>(), softmax_at({2, 1, 0}, 0), 1e-6);  // 0.6652
  EXPECT_NEAR(r.weights[1][0].item<double>(), softmax_at({-1, 1, 0}, 1), 1e-6);
}

TEST(TopK, GShardTop2Renormalises) {
  auto r = make_router(2)->forward(hidden());
  // Token a: experts 0 and 1, gates p0/(p0+p1) = e^2/(e^2+e) = sigmoid(1).
  EXPECT_EQ(r.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[0][1].item<int64_t>(), 1);
  const double s1 = 1.0 / (1.0 + std::exp(-1.0));
  EXPECT_NEAR(r.weights[0][0].item<double>(), s1, 1e-6);
  EXPECT_NEAR(r.weights[0][1].item<double>(), 1 - s1, 1e-6);
  // Token b: experts 1 (logit 1) then 2 (logit 0).
  EXPECT_EQ(r.indices[1][0].item<int64_t>(), 1);
  EXPECT_EQ(r.indices[1][1].item<int64_t>(), 2);
  EXPECT_NEAR(r.weights[1][0].item<double>(), s1, 1e-6);
}

TEST(TopK, BalanceCountsAllKChoicesAndZLossMatchHandValues) {
  auto r = make_router(2)->forward(hidden());
  // Token a chose {0, 1}, token b {1, 2}: f = counts / (T k) = [1, 2, 1] / 4 (Megatron-Core's
  // switch_load_balancing_loss_func; GShard's paper counted only the first choices).
  const std::vector<double> pa = {softmax_at({2, 1, 0}, 0), softmax_at({2, 1, 0}, 1),
                                  softmax_at({2, 1, 0}, 2)};
  const std::vector<double> pb = {softmax_at({-1, 1, 0}, 0), softmax_at({-1, 1, 0}, 1),
                                  softmax_at({-1, 1, 0}, 2)};
  double balance = 0;
  const double f[3] = {0.25, 0.5, 0.25};
  for (int i = 0; i < 3; ++i) balance += 3 * f[i] * (pa[i] + pb[i]) / 2;
  EXPECT_NEAR(r.aux_losses.at("balance").item<double>(), balance, 1e-5);  // 1.2107
  const double lse_a = std::log(std::exp(2) + std::exp(1) + 1);
  const double lse_b = std::log(std::exp(-1) + std::exp(1) + 1);
  EXPECT_NEAR(r.aux_losses.at("z").item<double>(), (lse_a * lse_a + lse_b * lse_b) / 2, 1e-5);

  // loss.balance_count = "first": f from the first choices only, [1/2, 1/2, 0].
  LayerContext first{2, 3, 0, 1, false, nullptr, /*balance_all_choices=*/false};
  auto router = moe::make_router(PluginSpec("router", "top_k", {{"k", 2}}), first);
  {
    torch::NoGradGuard g;
    router->named_parameters()["gate.weight"].copy_(make_router(2)->gate->weight);
  }
  const double first_only = 3 * (0.5 * (pa[0] + pb[0]) / 2 + 0.5 * (pa[1] + pb[1]) / 2);
  EXPECT_NEAR(router->forward(hidden()).aux_losses.at("balance").item<double>(), first_only,
              1e-5);  // 1.2488
}

TEST(TopK, SigmoidScoresHaveNoZLossUnlessAsked) {
  LayerContext ctx{2, 3, 0, 1};
  auto sigmoid = moe::make_router(PluginSpec("router", "top_k", {{"score", "sigmoid"}}), ctx);
  EXPECT_EQ(sigmoid->forward(hidden()).aux_losses.count("z"), 0u);  // DeepSeek-V3: none
  auto asked = moe::make_router(
      PluginSpec("router", "top_k", {{"score", "sigmoid"}, {"z_loss", true}}), ctx);
  EXPECT_EQ(asked->forward(hidden()).aux_losses.count("z"), 1u);
  auto off = moe::make_router(PluginSpec("router", "top_k", {{"z_loss", false}}), ctx);
  EXPECT_EQ(off->forward(hidden()).aux_losses.count("z"), 0u);
  EXPECT_EQ(make_router(2)->forward(hidden()).aux_losses.count("z"), 1u);  // softmax: on
}

TEST(TopK, BalanceLossIsOneWhenPerfectlyBalanced) {
  auto probs = torch::full({4, 4}, 0.25);
  auto assigned = torch::eye(4);
  EXPECT_NEAR(load_balance_loss(probs, assigned).item<double>(), 1.0, 1e-6);
}

TEST(TopK, Top1RouterGetsGradientFromTheGate) {
  auto router = make_router(1);
  auto r = router->forward(hidden());
  r.weights.sum().backward();
  EXPECT_GT(router->gate->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(TopK, NoiseOnlyWhileTraining) {
  torch::manual_seed(0);
  TopKRouter router(TopKRouterOptions(2, 3).k(1).noise_std(1.0).noise("logit"));
  auto x = torch::randn({64, 2});
  router->eval();
  auto a = router->forward(x).probs, b = router->forward(x).probs;
  EXPECT_TRUE(torch::equal(a, b));
  router->train();
  EXPECT_FALSE(torch::equal(router->forward(x).probs, a));
}

TEST(TopK, SigmoidScoresSelectAndRenormaliseOverTheChosen) {
  // Token a: logits [2, 1, 0] -> s = [0.880797, 0.731059, 0.5]; top-2 {0, 1}, gates
  // s / (0.880797 + 0.731059); p = s / sum s for the balance loss.
  TopKRouter r(TopKRouterOptions(2, 3).k(2).score("sigmoid"));
  {
    torch::NoGradGuard g;
    r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.0f, 0.0f}}));
  }
  auto out = r->forward(hidden());
  const double s0 = 1 / (1 + std::exp(-2.0)), s1 = 1 / (1 + std::exp(-1.0)), s2 = 0.5;
  EXPECT_EQ(out.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(out.indices[0][1].item<int64_t>(), 1);
  EXPECT_NEAR(out.weights[0][0].item<double>(), s0 / (s0 + s1), 1e-6);
  EXPECT_NEAR(out.weights[0][1].item<double>(), s1 / (s0 + s1), 1e-6);
  EXPECT_NEAR(out.probs[0][2].item<double>(), s2 / (s0 + s1 + s2), 1e-6);
  // Token b: logits [-1, 1, 0] -> the chosen pair is {1, 2}.
  EXPECT_EQ(out.indices[1][0].item<int64_t>(), 1);
  EXPECT_EQ(out.indices[1][1].item<int64_t>(), 2);
}

TEST(TopK, JitterScalesTheInputAndTheZLossUsesTheRoutingLogits) {
  torch::manual_seed(1);
  auto r = make_router(1);
  TopKRouter jitter(TopKRouterOptions(2, 3).k(1).noise_std(0.5));  // noise = jitter
  TopKRouter logit(TopKRouterOptions(2, 3).k(1).noise_std(0.5).noise("logit"));
  for (auto* router : {&jitter, &logit}) {
    torch::NoGradGuard g;
    (*router)->gate->weight.copy_(r->gate->weight);
  }
  auto x = torch::randn({256, 2});
  auto clean = r->forward(x);
  for (auto* router : {&jitter, &logit}) {
    auto noisy = (*router)->forward(x);  // training mode
    EXPECT_FALSE(torch::allclose(noisy.probs, clean.probs));
    EXPECT_FALSE(torch::allclose(noisy.aux_losses.at("z"), clean.aux_losses.at("z")));
    (*router)->eval();  // no noise: the clean logits route, and carry the z-loss
    EXPECT_TRUE(
        torch::allclose((*router)->forward(x).aux_losses.at("z"), clean.aux_losses.at("z")));
    (*router)->train();
  }
  // The z-loss is that of the jittered logits (Switch, Megatron-Core): the same draw of
  // U(0.5, 1.5) replayed by hand.
  torch::manual_seed(3);
  auto routed = jitter->forward(x);
  torch::manual_seed(3);
  auto u = torch::empty_like(x).uniform_(0.5, 1.5);
  auto jittered_logits = torch::matmul(x * u, r->gate->weight.t());
  EXPECT_NEAR(routed.aux_losses.at("z").item<double>(),
              torch::logsumexp(jittered_logits, -1).pow(2).mean().item<double>(), 1e-5);
  // Jitter multiplies each input coordinate by a factor in [0.5, 1.5]: expert 0's logit
  // (x0) stays within that band of the clean one and keeps its sign.
  torch::manual_seed(2);
  auto jittered_p = jitter->forward(x).probs;
  auto ratio =
      (jittered_p.log() - jittered_p.log().select(1, 2).unsqueeze(1)).select(1, 0) / x.select(1, 0);
  EXPECT_TRUE(ratio.ge(0.5 - 1e-5).all().item<bool>());
  EXPECT_TRUE(ratio.le(1.5 + 1e-5).all().item<bool>());
  testing::expect_error([] { TopKRouter(TopKRouterOptions(2, 3).noise_std(1.0)); }, "< 1");
}

TEST(TopK, AuxLossFreeBiasChoosesAndUpdatesBySignOfTheLoadGap) {
  TopKRouter r(TopKRouterOptions(2, 4).k(1).bias_update_rate(0.1).center_bias(true));
  ASSERT_TRUE(r->expert_bias.defined());
  EXPECT_FALSE(r->expert_bias.requires_grad());
  for (const auto& p : r->parameters()) EXPECT_FALSE(p.is_same(r->expert_bias));
  // Load [0, 0, 0, 8], mean 2: b += 0.1 * sign(2 - load) = [0.1, 0.1, 0.1, -0.1], then
  // re-centred (mean 0.05): [0.05, 0.05, 0.05, -0.15].
  std::vector<LayerTrace> t(1);
  t[0].load = {0, 0, 0, 8};
  r->after_step(t, 0);
  EXPECT_TRUE(torch::allclose(r->expert_bias, torch::tensor({0.05f, 0.05f, 0.05f, -0.15f})));
  // The bias only chooses: a bias large enough moves the choice, the gate stays s.
  {
    torch::NoGradGuard g;
    r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.0f, 0.0f}, {0.0f, 0.0f}}));
    r->expert_bias.copy_(torch::tensor({0.0f, 0.0f, 0.0f, 1.0f}));
  }
  r->eval();
  auto out = r->forward(torch::tensor({{2.0f, 1.0f}}));  // p = softmax([2, 1, 0, 0])
  EXPECT_EQ(out.indices[0][0].item<int64_t>(), 3);       // p3 + 1 > p0
  EXPECT_NEAR(out.weights[0][0].item<double>(), out.probs[0][3].item<double>(), 1e-7);
}

TEST(TopK, AuxLossFreeTop2BiasSelectsOnlyAndTheOverloadedExpertLosesBias) {
  // DeepSeek-V3: sigmoid scores s, experts = top-2 of s + b, gates = s renormalised over
  // the two chosen (the bias never enters a gate), balance f from the unbiased top-2.
  TopKRouter r(TopKRouterOptions(2, 3).k(2).score("sigmoid").bias_update_rate(0.25));
  {
    torch::NoGradGuard g;
    r->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.0f, 0.0f}}));
    r->expert_bias.copy_(torch::tensor({0.0f, -0.5f, 0.0f}));  // pushes expert 1 out
  }
  r->eval();
  // Token (2, 1): s = [sigmoid 2, sigmoid 1, 0.5]; s + b = [0.881, 0.231, 0.5]: experts
  // {0, 2} (unbiased top-2 would be {0, 1}).
  auto out = r->forward(torch::tensor({{2.0f, 1.0f}}));
  const double s0 = 1 / (1 + std::exp(-2.0)), s1 = 1 / (1 + std::exp(-1.0)), s2 = 0.5;
  EXPECT_EQ(out.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(out.indices[0][1].item<int64_t>(), 2);
  EXPECT_NEAR(out.weights[0][0].item<double>(), s0 / (s0 + s2), 1e-6);
  EXPECT_NEAR(out.weights[0][1].item<double>(), s2 / (s0 + s2), 1e-6);
  // Balance: f over the unbiased choices {0, 1}: [1/2, 1/2, 0]; P = s / sum s.
  const double sum = s0 + s1 + s2;
  EXPECT_NEAR(out.aux_losses.at("balance").item<double>(), 3 * 0.5 * (s0 + s1) / sum, 1e-6);
  // After a step with load [6, 2, 0] (mean 8/3): the overloaded expert 0's bias falls,
  // the under-loaded ones' rise, by the rate.
  std::vector<LayerTrace> t(1);
  t[0].load = {6, 2, 0};
  r->after_step(t, 0);
  EXPECT_TRUE(torch::allclose(r->expert_bias, torch::tensor({-0.25f, -0.25f, 0.25f})));
}

TEST(TopK, WrongShapeIsAClearError) {
  auto router = make_router(2);
  try {
    router->forward(torch::zeros({4, 3}));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("router 'top_k': expected hidden [tokens, 2], got [4, 3]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moe
