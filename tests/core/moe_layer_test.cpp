// Sort-by-expert dispatch against a naive per-token loop, capacity and statistics.
#include "core/moe_layer.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>

#include "core/compat.h"
#include "core/experts.h"
#include "core/grouped_ffn.h"
#include "core/losses.h"
#include "core/router.h"
#include "core/train/device.h"
#include "core/train/evaluator.h"
#include "plugins/experts/ffn.h"
#include "plugins/routers/top_k.h"

namespace moe {
namespace {

constexpr int64_t kD = 6, kE = 4, kH = 5;

// y[t] = sum_s w[t,s] * (act(x W1[e] + b1[e]) W2[e] + b2[e]), one token at a time.
torch::Tensor naive(const FFNExperts& bank, const torch::Tensor& x, const Routing& r,
                    Activation act) {
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t < x.size(0); ++t) {
    auto y = torch::zeros({x.size(1)});
    for (int64_t s = 0; s < r.indices.size(1); ++s) {
      const int64_t e = r.indices[t][s].item<int64_t>();
      if (e < 0) continue;
      auto h = apply_activation(act, x[t].unsqueeze(0).mm(bank->w1[e]) + bank->b1[e]);
      y = y + r.weights[t][s] * (h.mm(bank->w2[e]) + bank->b2[e]).squeeze(0);
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

TEST(Dispatch, MatchesNaivePerTokenReferenceWithGradients) {
  // d = 19: the combine's vectorised dot product runs its 8-wide blocks and a tail.
  for (const int64_t d : {kD, int64_t{19}}) {
    for (const std::string act : {"gelu", "relu", "swiglu"}) {
      SCOPED_TRACE(act + " d=" + std::to_string(d));
      torch::manual_seed(3);
      FFNExperts bank(FFNExpertsOptions(d, kE, kH).activation(parse_activation(act)));
      {
        torch::NoGradGuard g;
        bank->b1.normal_();
        bank->b2.normal_();
      }
      // Hand-made routing with an unused slot (-1) and an expert nobody picks (3).
      Routing r;
      r.indices = torch::tensor({{0, 1}, {2, -1}, {1, 0}, {0, 2}, {2, 1}}, torch::kLong);
      r.weights = torch::tensor({{0.7, 0.3}, {1.0, 0.0}, {0.6, 0.4}, {0.5, 0.5}, {0.9, 0.1}},
                                torch::requires_grad());
      auto x = torch::randn({5, d}, torch::requires_grad());
      auto plan = plan_dispatch(r, kE, 0);
      EXPECT_EQ(plan.counts, (std::vector<int64_t>{3, 3, 3, 0}));
      EXPECT_EQ(plan.selected, 9);
      EXPECT_EQ(plan.slot_index[1][1].item<int64_t>(), -1);
      auto fast = bank->forward(x, r, plan).y;
      auto grad_out = torch::randn_like(fast);
      std::vector<torch::Tensor> wrt = {x, r.weights, bank->w1, bank->b1, bank->w2, bank->b2};
      auto g_fast = torch::autograd::grad({fast}, wrt, {grad_out});
      auto slow = naive(bank, x, r, parse_activation(act));
      auto g_slow = torch::autograd::grad({slow}, wrt, {grad_out}, {}, false, true);
      EXPECT_TRUE(torch::allclose(fast, slow, 1e-5, 1e-6));
      for (size_t i = 0; i < g_fast.size(); ++i) {
        EXPECT_TRUE(torch::allclose(g_fast[i], g_slow[i], 1e-4, 1e-5)) << "gradient " << i;
      }
      for (size_t i = 2; i < g_fast.size(); ++i) {  // w1, b1, w2, b2 of the expert nobody picks
        EXPECT_TRUE(g_fast[i][3].eq(0).all().item<bool>()) << "unpicked expert's gradient " << i;
      }
    }
  }
}

// grouped_ffn's operands and gradients for one case: rows sorted by expert, `counts` rows per
// expert, d = 8, h = 16 (kernel-aligned), in `options`.
struct FFNCase {
  torch::Tensor xs, w1, b1, w2, b2, grad;
  std::vector<int64_t> counts;
};

FFNCase ffn_case(Activation act, torch::TensorOptions options) {
  torch::manual_seed(11);
  FFNCase c;
  c.counts = {3, 0, 5, 1};  // expert 1 gets no rows
  const int64_t rows = 9, d = 8, h = 16, u = up_width(act, h), e = 4;
  auto make = [&](std::vector<int64_t> shape) {
    return torch::randn(shape).to(options).requires_grad_();
  };
  c.xs = make({rows, d});
  c.w1 = make({e, d, u});
  c.b1 = make({e, u});
  c.w2 = make({e, h, d});
  c.b2 = make({e, d});
  c.grad = torch::randn({rows, d}).to(options);
  return c;
}

std::vector<torch::Tensor> run_ffn(const FFNCase& c, Activation act, ExpertMatmuls how) {
  auto y = grouped_ffn(c.xs, c.w1, c.b1, c.w2, c.b2, c.counts, act, how);
  auto grads = torch::autograd::grad({y}, {c.xs, c.w1, c.b1, c.w2, c.b2}, {c.grad});
  grads.insert(grads.begin(), y.detach());
  return grads;
}

TEST(GroupedFFN, GroupedFormulationMatchesPerExpertMatmuls) {
  // The grouped path (at::_grouped_mm's layout: offsets, transposed weights, bias rows,
  // bias gradients as a matmul with ones) with its per-expert stand-in, against the
  // per-expert matmuls; an expert without rows gets zero gradients either way.
  for (const std::string name : {"gelu", "relu", "swiglu"}) {
    SCOPED_TRACE(name);
    const auto act = parse_activation(name);
    auto c = ffn_case(act, torch::kFloat);
    auto grouped = run_ffn(c, act, ExpertMatmuls::kGrouped);
    auto per_expert = run_ffn(c, act, ExpertMatmuls::kPerExpert);
    const char* what[] = {"y", "gx", "gw1", "gb1", "gw2", "gb2"};
    for (size_t i = 0; i < grouped.size(); ++i) {
      EXPECT_TRUE(torch::allclose(grouped[i], per_expert[i], 1e-5, 1e-5)) << what[i];
    }
    for (size_t i = 2; i < grouped.size(); ++i) {
      EXPECT_TRUE(grouped[i][1].eq(0).all().item<bool>()) << "expert 1's " << what[i];
    }
  }
  EXPECT_FALSE(grouped_kernel_applies(torch::zeros({4, 8}), torch::zeros({2, 8, 16}),
                                      torch::zeros({2, 16, 8})))
      << "the kernel is for CUDA bf16 only";
}

TEST(GroupedFFN, GroupedKernelMatchesPerExpertInBf16WithoutHostSyncs_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  const auto options = torch::TensorOptions(torch::kCUDA).dtype(torch::kBFloat16);
  for (const std::string name : {"gelu", "swiglu"}) {
    SCOPED_TRACE(name);
    const auto act = parse_activation(name);
    auto c = ffn_case(act, options);
    EXPECT_EQ(grouped_kernel_applies(c.xs, c.w1, c.w2), bool(MOE_HAVE_GROUPED_MM));
    auto kernel = run_ffn(c, act, ExpertMatmuls::kAuto);
    auto per_expert = run_ffn(c, act, ExpertMatmuls::kPerExpert);
    const char* what[] = {"y", "gx", "gw1", "gb1", "gw2", "gb2"};
    for (size_t i = 0; i < kernel.size(); ++i) {
      EXPECT_TRUE(
          torch::allclose(kernel[i].to(torch::kFloat), per_expert[i].to(torch::kFloat), 3e-2, 3e-2))
          << what[i];
      if (i >= 2) {
        EXPECT_TRUE(kernel[i][1].eq(0).all().item<bool>()) << "expert 1's " << what[i];
      }
    }
    run_ffn(c, act, ExpertMatmuls::kAuto);  // warm-up
    const auto syncs = count_cuda_syncs([&] { run_ffn(c, act, ExpertMatmuls::kAuto); });
    if (MOE_HAVE_GROUPED_MM) {
      EXPECT_EQ(syncs, 0) << "the grouped kernel path reads nothing back";
    }
    std::cout << "[ grouped  ] " << name << ": kernel " << MOE_HAVE_GROUPED_MM << ", " << syncs
              << " host syncs in forward + backward\n";
  }
}

TEST(Dispatch, CapacityDropsLaterTokensFirst) {
  Routing r;
  r.indices = torch::tensor({{0}, {0}, {0}, {1}}, torch::kLong);
  r.weights = torch::ones({4, 1});
  auto plan = plan_dispatch(r, 2, /*capacity=*/2);
  EXPECT_EQ(plan.dropped, 1);
  EXPECT_EQ(plan.counts, (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(torch::equal(plan.token_index, torch::tensor({0, 1, 3}, torch::kLong)));
  EXPECT_EQ(expert_capacity(1.0, 2, 10, 4), 5);  // ceil(1.0 * 2 * 10 / 4)
  EXPECT_EQ(expert_capacity(0.0, 2, 10, 4), 0);  // dropless
}

TEST(Dispatch, PriorityPlacesEveryFirstChoiceBeforeAnySecondChoice) {
  // Expert 0: token 0's second choice, tokens 1 and 2's first. Expert 1: token 0's first,
  // tokens 1 and 2's second. Capacity 2 per expert.
  Routing r;
  r.indices = torch::tensor({{1, 0}, {0, 1}, {0, 1}}, torch::kLong);
  r.weights = torch::ones({3, 2});
  auto kept = [](const DispatchPlan& p, int64_t expert) {
    std::vector<int64_t> out;
    auto e = p.expert_index.contiguous(), t = p.token_index.contiguous();
    for (int64_t i = 0; i < e.numel(); ++i) {
      if (e[i].item<int64_t>() == expert) out.push_back(t[i].item<int64_t>());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  auto priority = plan_dispatch(r, 2, 2, DropPolicy::kPriority);
  EXPECT_EQ(priority.dropped, 2);
  EXPECT_EQ(kept(priority, 0), (std::vector<int64_t>{1, 2}));  // both first choices
  EXPECT_EQ(kept(priority, 1), (std::vector<int64_t>{0, 1}));  // first, then token 1's second
  auto position = plan_dispatch(r, 2, 2, DropPolicy::kPosition);
  EXPECT_EQ(position.dropped, 2);
  EXPECT_EQ(kept(position, 0), (std::vector<int64_t>{0, 1}));  // token 2's first choice lost
  EXPECT_EQ(kept(position, 1), (std::vector<int64_t>{0, 1}));
  // Dropless ignores the policy.
  EXPECT_EQ(plan_dispatch(r, 2, 0, DropPolicy::kPriority).dropped, 0);
}

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

TEST(Losses, SequenceBalanceIsTheSwitchLossPerSequenceAveraged) {
  // Sequence 0: p [[.9, .1], [.6, .4]], both tokens on expert 0: f [1, 0], P [.75, .25]:
  // 2 * .75 = 1.5. Sequence 1: p [[.2, .8], [.7, .3]], experts 1 then 0: f [.5, .5],
  // P [.45, .55]: 2 * (.225 + .275) = 1.0. Mean 1.25 (the batch-level loss is 1.1).
  auto probs = torch::tensor({{.9, .1}, {.6, .4}, {.2, .8}, {.7, .3}}, torch::kDouble);
  auto assigned = torch::tensor({{1., 0.}, {1., 0.}, {0., 1.}, {1., 0.}}, torch::kDouble);
  auto seq = torch::tensor({0, 0, 1, 1}, torch::kLong);
  EXPECT_NEAR(sequence_balance_loss(probs, assigned, seq, 2).item<double>(), 1.25, 1e-12);
  EXPECT_NEAR(load_balance_loss(probs, assigned).item<double>(), 1.1, 1e-12);
  // Sequence 1 holding only its first token: 2 * .8 = 1.6; a sequence with no tokens
  // (id 2) is skipped: (1.5 + 1.6) / 2.
  auto three = torch::tensor({0, 0, 1}, torch::kLong);
  EXPECT_NEAR(sequence_balance_loss(probs.narrow(0, 0, 3), assigned.narrow(0, 0, 3), three, 3)
                  .item<double>(),
              1.55, 1e-12);
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

TEST(Evaluator, RoutingFluctuationIsTheShareOfChangedTopOne) {
  EvalResult a, b;
  a.probe_top1 = {torch::tensor({0, 1, 2, 3}), torch::tensor({1, 1})};
  b.probe_top1 = {torch::tensor({0, 1, 3, 3}), torch::tensor({0, 0})};
  EXPECT_EQ(routing_fluctuation(a, b), (std::vector<double>{0.25, 1.0}));
  EXPECT_TRUE(routing_fluctuation(EvalResult{}, b).empty());  // the first evaluation
}

}  // namespace
}  // namespace moe
