// Sort-by-expert dispatch (core/dispatch.h) against a naive per-token loop, capacity and
// drop policies.
#include "core/dispatch.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "core/experts.h"
#include "core/router.h"
#include "plugins/experts/ffn.h"

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

}  // namespace
}  // namespace moe
