// moe compare's statistics against values computed independently.
#include "results/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe::results {
namespace {

// Reference: R 4.x, `t.test(1:5)`: mean 3, 95 percent confidence interval 1.036757 4.963243
// (t_{0.975, 4} = 2.776445, sd = 1.581139).
TEST(Stats, MeanCIMatchesR) {
  const auto ci = mean_ci95({1, 2, 3, 4, 5});
  EXPECT_EQ(ci.n, 5u);
  EXPECT_DOUBLE_EQ(ci.mean, 3.0);
  EXPECT_NEAR(ci.sd, 1.581139, 1e-6);
  EXPECT_NEAR(ci.lo, 1.036757, 1e-6);
  EXPECT_NEAR(ci.hi, 4.963243, 1e-6);
  // n = 2: t_{0.975, 1} = 12.7062 (every t table): 0 and 1 give 0.5 +- 12.7062 * 0.5.
  const auto two = mean_ci95({0, 1});
  EXPECT_NEAR(two.hi - two.mean, 12.7062047 * std::sqrt(0.5) / std::sqrt(2.0), 1e-6);
  EXPECT_TRUE(std::isnan(mean_ci95({4}).lo));
}

// Reference: Student's (1908) sleep data as in R's `datasets::sleep`;
// `t.test(extra ~ group, data = sleep, paired = TRUE)` prints t = -4.0621, df = 9,
// p-value = 0.002833, 95 percent confidence interval -2.4598858 -0.7001142, mean
// difference -1.58.
TEST(Stats, PairedTTestMatchesRsSleepExample) {
  const std::vector<double> g1 = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
  const std::vector<double> g2 = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
  const auto r = paired_t_test(g1, g2);
  EXPECT_NEAR(r.diff.mean, -1.58, 1e-12);
  EXPECT_NEAR(r.t, -4.0621, 1e-4);
  EXPECT_NEAR(r.p, 0.002833, 1e-6);
  EXPECT_NEAR(r.diff.lo, -2.4598858, 1e-7);
  EXPECT_NEAR(r.diff.hi, -0.7001142, 1e-7);
  // Symmetric: swapping the samples flips the sign, keeps p.
  EXPECT_NEAR(paired_t_test(g2, g1).t, 4.0621, 1e-4);
  // Degenerate cases: identical samples (p = 1), a constant shift (p = 0), one pair (NaN).
  EXPECT_EQ(paired_t_test({1, 2}, {1, 2}).p, 1.0);
  EXPECT_EQ(paired_t_test({2, 3}, {1, 2}).p, 0.0);
  EXPECT_TRUE(std::isnan(paired_t_test({2}, {1}).p));
}

TEST(Stats, TwoSidedPOfAKnownT) {
  // Differences {1, 3}: mean 2, sd sqrt(2), t = 2 / (sqrt(2) / sqrt(2)) = 2 with 1 degree of
  // freedom; two-sided p = 1 - 2 atan(2) / pi = 0.2951672 (the t(1) law is Cauchy's; R:
  // 2 * pt(-2, 1)).
  const auto r = paired_t_test({1, 3}, {0, 0});
  EXPECT_NEAR(r.t, 2.0, 1e-12);
  EXPECT_NEAR(r.p, 0.2951672, 1e-7);
}

// Holm by hand: p = (0.01, 0.04, 0.03, 0.005). Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03,
// 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> max(0.06, 0.04) = 0.06 (monotone step-down).
TEST(Stats, HolmAdjustsStepDownByHand) {
  const auto a = holm_adjust({0.01, 0.04, 0.03, 0.005});
  ASSERT_EQ(a.size(), 4u);
  EXPECT_NEAR(a[0], 0.03, 1e-12);
  EXPECT_NEAR(a[1], 0.06, 1e-12);
  EXPECT_NEAR(a[2], 0.06, 1e-12);
  EXPECT_NEAR(a[3], 0.02, 1e-12);
  // Capped at 1; NaN does not count as a test.
  const auto b = holm_adjust({0.6, NAN, 0.3});
  EXPECT_NEAR(b[0], 0.6, 1e-12);
  EXPECT_TRUE(std::isnan(b[1]));
  EXPECT_NEAR(b[2], 0.6, 1e-12);
  EXPECT_EQ(holm_adjust({0.9, 0.8})[0], 1.0);
}

}  // namespace
}  // namespace moe::results
