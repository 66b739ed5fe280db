// The MoE layer (core/moe_layer.h): capacity, dropped and padded tokens, its trace and
// statistics, the sequence-wise balance loss it adds.
#include "core/moe_layer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "core/router.h"
#include "plugins/experts/ffn.h"
#include "plugins/routers/top_k.h"

namespace moe {
namespace {

constexpr int64_t kD = 6, kE = 4, kH = 5;

TEST(MoELayer, CapacityFollowsSelectedSlotsAndEvalFactor) {
  // top_p with a high threshold keeps several experts for some tokens: the capacity is
  // ceil(CF * selected / E), not CF * widest row * T / E.
  torch::manual_seed(6);
  const LayerContext ctx{kD, kE, 0, 1};
  auto router = make_router(PluginSpec("router", "top_p", {{"threshold", 0.3}}), ctx);
  auto bank = make_expert_bank(PluginSpec("experts", "ffn", {{"hidden", kH}}), ctx);
  MoELayer layer(router, bank, MoELayerOptions(kE).capacity_factor(1.0).eval_capacity_factor(0));
  auto x = torch::randn({32, kD});
  layer->train();
  auto train = layer->forward(x);
  const int64_t selected = train.trace.selected;
  const int64_t capacity = (selected + kE - 1) / kE;  // ceil(1.0 * selected / 4)
  int64_t over = 0;                                   // slots beyond the capacity of each expert
  for (auto v : train.trace.load) over += std::max<int64_t>(0, v - capacity);
  EXPECT_EQ(train.trace.dropped, over);
  layer->eval();  // eval_capacity_factor 0: dropless
  EXPECT_EQ(layer->forward(x).trace.dropped, 0);
}

TEST(MoELayer, DroppedTokensGetZeroOutputAndAreCounted) {
  torch::manual_seed(0);
  MoELayer layer(
      Router(std::shared_ptr<RouterImpl>(TopKRouter(TopKRouterOptions(kD, kE).k(1)).ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(kD, kE, kH)).ptr())),
      MoELayerOptions(kE).capacity_factor(0.25));  // capacity ceil(.25*8/4) = 1
  layer->eval();
  auto out = layer->forward(torch::randn({8, kD}));
  const auto& y = out.y;
  LayerStats st;
  st.add(out.trace);
  EXPECT_EQ(st.tokens, 8);
  EXPECT_EQ(st.selected_slots, 8);
  const int64_t zero_rows = y.abs().sum(1).eq(0).sum().item<int64_t>();
  EXPECT_EQ(zero_rows, st.dropped_slots);
  EXPECT_GE(st.dropped_slots, 4);  // at most 4 experts x 1 slot survive
  EXPECT_NEAR(st.dropped_fraction(), st.dropped_slots / 8.0, 1e-12);
}

TEST(MoELayer, StatisticsMatchTheRouting) {
  torch::manual_seed(1);
  MoELayer layer(
      Router(std::shared_ptr<RouterImpl>(TopKRouter(TopKRouterOptions(kD, kE).k(2)).ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(kD, kE, kH)).ptr())),
      MoELayerOptions(kE));
  auto x = torch::randn({10, kD});
  LayerStats st;
  st.add(layer->forward(x).trace);
  auto r = layer->router->forward(x);
  EXPECT_DOUBLE_EQ(st.mean_experts(), 2.0);
  EXPECT_EQ(st.histogram, (std::vector<double>{0, 0, 10}));
  double load_total = 0;
  for (int64_t e = 0; e < kE; ++e) {
    EXPECT_EQ(st.load[e], r.indices.eq(e).sum().item<int64_t>());
    load_total += st.load_fraction()[e];
  }
  EXPECT_NEAR(load_total, 1.0, 1e-12);
  auto p = r.probs.to(torch::kDouble);
  EXPECT_NEAR(st.entropy(), (-(p * p.log()).sum(1)).mean().item<double>(), 1e-6);
}

TEST(LayerStats, StatisticsCombineByTheirReduction) {
  // Two forwards of layer A, one of layer B, each with a sum, a mean and a max statistic.
  auto trace = [](double units, double sigma, double peak) {
    LayerTrace t;
    add_stat(t.stats, "units", units, Reduce::kSum);
    add_stat(t.stats, "sigma", torch::tensor(sigma), Reduce::kMean);
    add_stat(t.stats, "peak", peak, Reduce::kMax);
    return t;
  };
  LayerStats a, b;
  a.add(trace(4, 0.5, 3));
  a.add(trace(8, 1.5, 1));
  b.add(trace(10, 3.0, 2));
  // Within a layer, over forwards: sum and mean averaged per forward, max the maximum.
  EXPECT_EQ(a.statistics(),
            (std::map<std::string, double>{{"peak", 3}, {"sigma", 1}, {"units", 6}}));
  // Over layers: sum adds (6 + 10), mean averages ((1 + 3) / 2), max is the maximum.
  EXPECT_EQ(combine_layers({a, b}),
            (std::map<std::string, double>{{"peak", 3}, {"sigma", 2}, {"units", 16}}));
}

TEST(MoELayer, ForwardReturnsItsTraceAndKeepsNoRoutingState) {
  torch::manual_seed(2);
  MoELayer layer(
      Router(std::shared_ptr<RouterImpl>(TopKRouter(TopKRouterOptions(kD, kE).k(2)).ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(kD, kE, kH)).ptr())),
      MoELayerOptions(kE));
  auto x = torch::randn({2, 3, kD});
  auto out = layer->forward(x);
  EXPECT_EQ(out.y.sizes(), x.sizes());
  EXPECT_EQ(out.trace.tokens, 6);
  EXPECT_EQ(out.trace.selected, 12);
  EXPECT_TRUE(torch::equal(out.trace.token_experts, torch::full({6}, 2, torch::kLong)));
  EXPECT_EQ(out.trace.aux_losses.count("balance"), 1u);
  EXPECT_TRUE(out.trace.aux_losses.at("balance").requires_grad());
  // A second pass on other input does not change the first pass's trace.
  auto first_load = out.trace.load;
  layer->forward(torch::randn({5, kD}));
  EXPECT_EQ(out.trace.load, first_load);
  int64_t total = 0;
  for (auto v : first_load) total += v;
  EXPECT_EQ(total, 12);
}

TEST(MoELayer, PaddingIsNotRoutedAndCountsNowhere) {
  torch::manual_seed(4);
  MoELayer layer(
      Router(std::shared_ptr<RouterImpl>(TopKRouter(TopKRouterOptions(kD, kE).k(2)).ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(kD, kE, kH)).ptr())),
      MoELayerOptions(kE));
  auto x = torch::randn({2, 4, kD});
  auto pad = torch::tensor({{false, false, false, true}, {false, false, true, true}});
  auto out = layer->forward(x, pad);
  // Pads: output 0, no experts; the 5 real tokens are routed exactly as they are alone.
  auto flat_y = out.y.reshape({8, kD});
  for (int64_t p : {3, 6, 7}) EXPECT_EQ(flat_y[p].abs().sum().item<double>(), 0.0) << p;
  EXPECT_EQ(out.trace.tokens, 5);
  EXPECT_EQ(out.trace.selected, 10);
  EXPECT_TRUE(
      torch::equal(out.trace.token_experts, torch::tensor({2, 2, 2, 0, 2, 2, 0, 0}, torch::kLong)));
  auto real = torch::stack({x[0][0], x[0][1], x[0][2], x[1][0], x[1][1]});
  auto alone = layer->forward(real);
  EXPECT_TRUE(
      torch::allclose(alone.trace.aux_losses.at("balance"), out.trace.aux_losses.at("balance")));
  EXPECT_TRUE(
      torch::allclose(alone.y, flat_y.index_select(0, torch::tensor({0, 1, 2, 4, 5})), 1e-5, 1e-6));
  LayerStats st;
  st.add(out.trace);
  EXPECT_EQ(st.tokens, 5);
  EXPECT_EQ(st.histogram, (std::vector<double>{0, 0, 5}));  // pads are not 0-expert tokens
}

TEST(MoELayer, SequenceBalanceLossIsDeepSeekV3sSequenceWiseLoss) {
  // DeepSeek-V3 (arXiv 2412.19437, eqs. 17-20) on a hand batch, N = 3, K = 2: per
  // sequence of T tokens, f_i = N / (K T) * #{t: i in TopK(s_t)} over the unbiased
  // scores, P_i = mean_t s_it / sum_j s_jt, L = sum_i f_i P_i; averaged over sequences.
  // Sigmoid scores s = sigmoid([x0, x1, 0]); the aux-loss-free bias [0, 0, 3] would put
  // expert 2 into every token's choice, but the loss counts the unbiased top-2.
  TopKRouter router(TopKRouterOptions(2, 3).k(2).score("sigmoid").bias_update_rate(1e-3));
  {
    torch::NoGradGuard g;
    router->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.0f, 0.0f}}));
    router->expert_bias.copy_(torch::tensor({0.0f, 0.0f, 3.0f}));
  }
  MoELayer layer(
      Router(std::shared_ptr<RouterImpl>(router.ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(2, 3, 4)).ptr())),
      MoELayerOptions(3));
  // Sequence 0: (2, 1) -> top-2 {0, 1}; (-1, 1) -> {1, 2}. Sequence 1: (1, -1) -> {0, 2};
  // (0.5, 2) -> {1, 0}.
  const double x[4][2] = {{2, 1}, {-1, 1}, {1, -1}, {0.5, 2}};
  const int top2[4][2] = {{0, 1}, {1, 2}, {0, 2}, {1, 0}};
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  double expected = 0, batch_f[3] = {0, 0, 0}, batch_p[3] = {0, 0, 0};
  for (int seq = 0; seq < 2; ++seq) {
    double f[3] = {0, 0, 0}, p[3] = {0, 0, 0};
    for (int t = 2 * seq; t < 2 * seq + 2; ++t) {
      const double s[3] = {sig(x[t][0]), sig(x[t][1]), 0.5};
      for (int i = 0; i < 3; ++i) p[i] += s[i] / (s[0] + s[1] + s[2]) / 2;
      for (int j = 0; j < 2; ++j) f[top2[t][j]] += 3.0 / (2 * 2);
    }
    for (int i = 0; i < 3; ++i) {
      expected += f[i] * p[i] / 2;
      batch_f[i] += f[i] / 2;
      batch_p[i] += p[i] / 2;
    }
  }
  auto hidden = torch::tensor({{{2.0f, 1.0f}, {-1.0f, 1.0f}}, {{1.0f, -1.0f}, {0.5f, 2.0f}}});
  auto out = layer->forward(hidden);
  EXPECT_NEAR(out.trace.aux_losses.at("balance_seq").item<double>(), expected, 1e-6);
  // The batch-level loss: the same over all four tokens.
  double batch = 0;
  for (int i = 0; i < 3; ++i) batch += batch_f[i] * batch_p[i];
  EXPECT_NEAR(out.trace.aux_losses.at("balance").item<double>(), batch, 1e-6);
  // A padded batch: the pads belong to no sequence's f or P.
  torch::manual_seed(5);
  MoELayer big(
      Router(std::shared_ptr<RouterImpl>(TopKRouter(TopKRouterOptions(kD, kE).k(2)).ptr())),
      ExpertBank(std::shared_ptr<ExpertBankImpl>(FFNExperts(FFNExpertsOptions(kD, kE, kH)).ptr())),
      MoELayerOptions(kE));
  auto xs = torch::randn({3, 5, kD});
  auto pad = torch::zeros({3, 5}, torch::kBool);
  pad[2].fill_(true);  // the whole third row is padding: two sequences remain
  auto padded = big->forward(xs, pad);
  auto first_two = big->forward(xs.narrow(0, 0, 2));
  EXPECT_NEAR(padded.trace.aux_losses.at("balance_seq").item<double>(),
              first_two.trace.aux_losses.at("balance_seq").item<double>(), 1e-6);
}

TEST(LayerStats, DiagnosticsMatchHandValues) {
  LayerStats st;
  st.load = {6, 2, 0, 0, 2};  // 10 slots over 5 experts; mean 2
  st.tokens = 10;
  st.histogram = {0, 6, 3, 1};  // tokens using 0, 1, 2, 3 experts
  EXPECT_EQ(st.dead_experts(), 2);
  // Population variance ((6-2)^2 + 0 + 4 + 4 + 0) / 5 = 4.8.
  EXPECT_NEAR(st.load_cv(), std::sqrt(4.8) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(st.load_max_over_mean(), 3.0);
  EXPECT_DOUBLE_EQ(st.load_top20_share(), 0.6);  // ceil(0.2 * 5) = 1 expert: 6 of 10
  EXPECT_EQ(st.experts_quantile(0.5), 1);        // 6 of 10 tokens use <= 1
  EXPECT_EQ(st.experts_quantile(0.9), 2);        // 9 of 10 use <= 2
  EXPECT_EQ(st.experts_quantile(0.99), 3);
  // Saturation: mean over tokens of the largest probability.
  LayerTrace t;
  t.router_probs = torch::tensor({{0.7, 0.2, 0.1}, {0.4, 0.3, 0.3}}, torch::kDouble);
  t.tokens = 2;
  LayerStats s2;
  s2.add(t);
  EXPECT_NEAR(s2.saturation(), 0.55, 1e-12);
}

}  // namespace
}  // namespace moe
