// adaptive gating against hand-computed cases (methods.md §2).
#include "plugins/routers/adaptive.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/test_util.h"

namespace moe {
namespace {

// Gate = identity and hidden = log p, so softmax(W x) = p exactly as written.
AdaptiveRouter identity_router(AdaptiveRouterOptions o) {
  AdaptiveRouter r(o);
  torch::NoGradGuard g;
  r->gate->weight.copy_(torch::eye(4));
  return r;
}

AdaptiveRouterOptions opts() { return AdaptiveRouterOptions(4, 4); }

// a: pair gap .05/.85 = .059 -> two experts; b: gap .4/.8 = .5 -> one;
// c: an exact tie -> gap 0 -> two, lower index first.
torch::Tensor hand_probs() {
  return torch::tensor(
      {{0.45f, 0.40f, 0.10f, 0.05f}, {0.60f, 0.20f, 0.10f, 0.10f}, {0.10f, 0.40f, 0.10f, 0.40f}});
}

TEST(Adaptive, SelectionAndMixedWeights) {
  auto r = identity_router(opts())->forward(torch::log(hand_probs()));
  ASSERT_EQ(r.indices.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r.indices[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[0][1].item<int64_t>(), 1);
  EXPECT_EQ(r.indices[1][0].item<int64_t>(), 0);
  EXPECT_EQ(r.indices[1][1].item<int64_t>(), -1);
  EXPECT_EQ(r.indices[2][0].item<int64_t>(), 1);
  EXPECT_EQ(r.indices[2][1].item<int64_t>(), 3);
  // Two-expert tokens: GShard gates; one-expert tokens: Switch p1.
  EXPECT_NEAR(r.weights[0][0].item<double>(), 0.45 / 0.85, 1e-6);
  EXPECT_NEAR(r.weights[0][1].item<double>(), 0.40 / 0.85, 1e-6);
  EXPECT_NEAR(r.weights[1][0].item<double>(), 0.60, 1e-6);
  EXPECT_EQ(r.weights[1][1].item<double>(), 0.0);
  EXPECT_NEAR(r.weights[2][0].item<double>(), 0.5, 1e-6);
}

TEST(Adaptive, RawGapAndRawCombine) {
  // p = [.5, .3, .1, .1]: raw gap .2, pair gap .25. At T = .22 only the raw gap pairs it.
  auto p = torch::tensor({{0.5f, 0.3f, 0.1f, 0.1f}});
  auto pair = identity_router(opts().threshold(0.22))->forward(torch::log(p));
  EXPECT_EQ(pair.indices[0][1].item<int64_t>(), -1);
  auto raw =
      identity_router(opts().threshold(0.22).gap("raw").combine("raw"))->forward(torch::log(p));
  EXPECT_EQ(raw.indices[0][1].item<int64_t>(), 1);
  EXPECT_NEAR(raw.weights[0][0].item<double>(), 0.5, 1e-6);  // not renormalised
  EXPECT_NEAR(raw.weights[0][1].item<double>(), 0.3, 1e-6);
  // renorm: a lone expert gets weight 1.
  auto renorm = identity_router(opts().combine("renorm"))->forward(torch::log(p));
  EXPECT_NEAR(renorm.weights[0][0].item<double>(), 1.0, 1e-6);
}

TEST(Adaptive, BalanceLossCountsOnlyTopOneTokens) {
  auto probs = hand_probs().narrow(0, 0, 2);  // a (two experts) and b (one, expert 0)
  auto r = identity_router(opts())->forward(torch::log(probs));
  // f1 = [1, 0, 0, 0] (token b only); P_0 = (.45 + .6) / 2 = .525; loss = 4 * .525 = 2.1.
  EXPECT_NEAR(r.aux_losses.at("balance").item<double>(), 2.1, 1e-5);
  EXPECT_EQ(r.aux_losses.size(), 1u);  // no z-loss
  // All tokens paired: no top-1 tokens, loss 0.
  auto all_two = identity_router(opts().threshold(1.0))->forward(torch::log(probs));
  EXPECT_NEAR(all_two.aux_losses.at("balance").item<double>(), 0.0, 1e-7);
}

TEST(Adaptive, InferenceOptionsChangeRoutingNotParameters) {
  auto router = identity_router(opts());
  auto x = torch::log(hand_probs());
  auto before = router->gate->weight.clone();
  router->set_inference_option("force_top1", 1);
  EXPECT_TRUE(router->forward(x).indices.select(1, 1).eq(-1).all().item<bool>());
  router->set_inference_option("force_top1", 0);
  router->set_inference_option("threshold", 1.0);
  EXPECT_TRUE(router->forward(x).indices.select(1, 1).ge(0).all().item<bool>());
  router->set_inference_option("threshold", 0.0);  // only the exact tie pairs
  EXPECT_EQ(router->forward(x).indices.select(1, 1).ge(0).sum().item<int64_t>(), 1);
  EXPECT_TRUE(torch::equal(before, router->gate->weight));
  testing::expect_error([&] { router->set_inference_option("p", 1); },
                        "known: [threshold, force_top1]");
}

TEST(Adaptive, BadParametersAreNamed) {
  const LayerContext ctx{8, 4, 0, 2};
  testing::expect_error(
      [&] {
        make_router(PluginSpec("router", "adaptive", {{"gap", "normed"}}), ctx);
      },
      "[pair, raw]");
  testing::expect_error(
      [&] {
        make_router(PluginSpec("router", "adaptive", {{"combine", "x"}}), ctx);
      },
      "[mixed, raw, renorm]");
}

}  // namespace
}  // namespace moe
