// top_p against hand-computed cases (methods.md §1).
#include "plugins/routers/top_p.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tests/test_util.h"

namespace moe {
namespace {

std::vector<int64_t> row_indices(const torch::Tensor& idx, int64_t row) {
  auto r = idx[row].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

// Rows: top-1 above p; a tie between experts 1 and 3; a flat distribution.
torch::Tensor hand_probs() {
  return torch::tensor(
      {{0.50f, 0.30f, 0.15f, 0.05f}, {0.10f, 0.35f, 0.20f, 0.35f}, {0.25f, 0.25f, 0.25f, 0.25f}});
}

TEST(TopP, SelectionMatchesHandCases) {
  auto [w, idx] = top_p_select(hand_probs(), 0.4, 0);
  // Exclusive cumsums: [0, .5, ...] -> 1 expert; [0, .35, .7, ...] -> 2; [0, .25, .5] -> 2.
  ASSERT_EQ(idx.size(1), 2);  // slots = the widest row
  EXPECT_EQ(row_indices(idx, 0), (std::vector<int64_t>{0, -1}));
  EXPECT_EQ(row_indices(idx, 1), (std::vector<int64_t>{1, 3}));  // tie: lower index first
  EXPECT_EQ(row_indices(idx, 2), (std::vector<int64_t>{0, 1}));
  // Raw probabilities, not renormalised; unused slots weigh 0.
  EXPECT_FLOAT_EQ(w[0][0].item<float>(), 0.50f);
  EXPECT_FLOAT_EQ(w[0][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(w[1][0].item<float>(), 0.35f);
  EXPECT_FLOAT_EQ(w[1][1].item<float>(), 0.35f);
  EXPECT_FLOAT_EQ(w[2][1].item<float>(), 0.25f);
}

TEST(TopP, CrossingExpertIsKeptAndFlatUsesMany) {
  // p = 0.6: the flat row keeps experts until .75 > .6: three (the crossing one included).
  auto [w, idx] = top_p_select(hand_probs(), 0.6, 0);
  EXPECT_EQ(row_indices(idx, 2), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(row_indices(idx, 0), (std::vector<int64_t>{0, 1, -1}));  // .5 <= .6: two
  // p = 0.9 keeps everything of the flat row; max_experts caps it.
  EXPECT_EQ(std::get<1>(top_p_select(hand_probs(), 0.9, 0)).size(1), 4);
  auto capped = std::get<1>(top_p_select(hand_probs(), 0.9, 2));
  EXPECT_EQ(capped.size(1), 2);
  EXPECT_EQ(row_indices(capped, 2), (std::vector<int64_t>{0, 1}));
  // p = 0: one expert per token, ties or not.
  EXPECT_EQ(std::get<1>(top_p_select(hand_probs(), 0.0, 0)).size(1), 1);
}

TEST(TopP, BoundaryUsesTheExclusiveCumulativeSum) {
  // The mass before the second expert is exactly the threshold (as float32): the reference
  // keeps it (0.4 <= 0.4); cumsum - sorted rounds to 0.40000004 and would drop it.
  auto probs = torch::tensor({{0.4f, 0.1668088f, 0.1668088f, 0.1668088f, 0.0995736f}});
  const auto sorted = probs[0];
  const float rounded = (sorted.cumsum(0) - sorted)[1].item<float>();
  ASSERT_GT(rounded, 0.4f) << "the case must exercise the rounding difference";
  auto idx = std::get<1>(top_p_select(probs, 0.4, 0));
  EXPECT_EQ(row_indices(idx, 0), (std::vector<int64_t>{0, 1}));
  // Ties: experts 1, 2 and 3 are equal; at p = 0.6 two of them are kept, lower index first.
  EXPECT_EQ(row_indices(std::get<1>(top_p_select(probs, 0.6, 0)), 0),
            (std::vector<int64_t>{0, 1, 2}));
}

// Gate = identity and hidden = log p, so softmax(W x) = p exactly as written.
TopPRouter identity_router(double threshold) {
  TopPRouter r(TopPRouterOptions(4, 4).threshold(threshold));
  torch::NoGradGuard g;
  r->gate->weight.copy_(torch::eye(4));
  return r;
}

TEST(TopP, LossesMatchHandValues) {
  auto probs = torch::tensor({{0.50f, 0.30f, 0.15f, 0.05f}, {0.25f, 0.25f, 0.25f, 0.25f}});
  auto r = identity_router(0.4)->forward(torch::log(probs));
  ASSERT_TRUE(torch::allclose(r.probs, probs, 1e-6, 1e-6));
  // Selected sets {0} and {0, 1}: f = [1, .5, 0, 0]; P = [.375, .275, .2, .15];
  // balance = 4 * (1 * .375 + .5 * .275) = 2.05.
  EXPECT_NEAR(r.aux_losses.at("balance").item<double>(), 2.05, 1e-5);
  const double h0 =
      -(0.5 * std::log(0.5) + 0.3 * std::log(0.3) + 0.15 * std::log(0.15) + 0.05 * std::log(0.05));
  EXPECT_NEAR(r.aux_losses.at("entropy").item<double>(), (h0 + std::log(4.0)) / 2, 1e-5);
  EXPECT_EQ(r.aux_losses.count("z"), 0u);
}

TEST(TopP, EvalTimeThresholdChangesRoutingNotParameters) {
  torch::manual_seed(3);
  TopPRouter router(TopPRouterOptions(8, 8).threshold(0.3));
  router->eval();
  auto x = torch::randn({64, 8});
  auto before = router->gate->weight.clone();
  const double k_low = router->forward(x).indices.ge(0).sum().item<double>() / 64;
  router->set_inference_option("threshold", 0.9);
  const double k_high = router->forward(x).indices.ge(0).sum().item<double>() / 64;
  EXPECT_GT(k_high, k_low + 1);
  EXPECT_TRUE(torch::equal(before, router->gate->weight));
  EXPECT_EQ(router->options().threshold(), 0.9);
  testing::expect_error([&] { router->set_inference_option("k", 2); }, "known: [threshold]");
  testing::expect_error([&] { router->set_inference_option("threshold", 1.5); }, "[0, 1]");
}

TEST(TopP, BadParametersAreNamed) {
  const LayerContext ctx{8, 4, 0, 2};
  testing::expect_error(
      [&] {
        make_router(PluginSpec("router", "top_p", {{"threshold", 2.0}}), ctx);
      },
      "threshold");
  testing::expect_error(
      [&] {
        make_router(PluginSpec("router", "top_p", {{"max_experts", 9}}), ctx);
      },
      "max_experts");
}

}  // namespace
}  // namespace moe
