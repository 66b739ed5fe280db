// The evaluator's routing diagnostics (core/train/evaluator.h).
#include "core/train/evaluator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace moe {
namespace {

TEST(Evaluator, RoutingFluctuationIsTheShareOfChangedTopOne) {
  EvalResult a, b;
  a.probe_top1 = {torch::tensor({0, 1, 2, 3}), torch::tensor({1, 1})};
  b.probe_top1 = {torch::tensor({0, 1, 3, 3}), torch::tensor({0, 0})};
  EXPECT_EQ(routing_fluctuation(a, b), (std::vector<double>{0.25, 1.0}));
  EXPECT_TRUE(routing_fluctuation(EvalResult{}, b).empty());  // the first evaluation
}

}  // namespace
}  // namespace moe
