// Auxiliary losses (core/losses.h) on hand-computed cases.
#include "core/losses.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace moe {
namespace {

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

}  // namespace
}  // namespace moe
