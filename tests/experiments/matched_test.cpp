// The demo's dense baselines are matched: `dense` on non-embedding active parameters per
// token, `dense_total` on non-embedding total parameters, each within 2% of every MoE
// method of the sweep (what `moe sweep plan --params` prints).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "experiments/param_counts.h"
#include "experiments/sweep_spec.h"

namespace moe {
namespace {

TEST(MatchedBaselines, QuickDemoDenseMatchesEveryMoEWithinTwoPercent) {
  const auto plan = load_sweep(std::string(MOE_SOURCE_DIR) + "/experiments/sweeps/quick.toml");
  std::map<std::string, ParamCounts> counts;  // method -> counts (seed 0's trial)
  for (const auto& t : plan.trials) {
    if (!counts.count(t.method)) counts[t.method] = nominal_param_counts(t.config);
  }
  ASSERT_TRUE(counts.count("dense"));
  ASSERT_TRUE(counts.count("dense_total"));
  int moes = 0;
  for (const auto& [method, c] : counts) {
    if (method.rfind("dense", 0) == 0) continue;
    ++moes;
    ASSERT_FALSE(std::isnan(c.nonembed_active)) << method;
    EXPECT_NEAR(counts["dense"].nonembed_active / c.nonembed_active, 1.0, 0.02)
        << method << ": active " << c.nonembed_active << " vs dense "
        << counts["dense"].nonembed_active;
    EXPECT_NEAR(counts["dense_total"].nonembed_total / c.nonembed_total, 1.0, 0.02)
        << method << ": total " << c.nonembed_total << " vs dense_total "
        << counts["dense_total"].nonembed_total;
    // And the comparison is not trivial: the MoE has several times dense's parameters.
    EXPECT_GT(c.nonembed_total, 2 * counts["dense"].nonembed_total) << method;
  }
  EXPECT_GE(moes, 2);
}

}  // namespace
}  // namespace moe
