// Curriculum ordering, the epoch sampler and the difficulty statistics, on hand examples.
#include "core/train/curriculum.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <numeric>
#include <set>

#include "core/train/evaluator.h"
#include "core/train/sampler.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(Curriculum, OrdersByCosineToTheLeastComplexSample) {
  // L1 norms 1.0, .1, .3, .5, .1: the anchor is sample 1 (first of the two smallest).
  // Cosine to a = (.1, 0): s1 = s4 = 1, s3 = .4/sqrt(.17) = .970, s0 = .707, s2 = 0.
  auto c = torch::tensor({{0.5, 0.5}, {0.1, 0.0}, {0.0, 0.3}, {0.4, 0.1}, {0.1, 0.0}});
  EXPECT_EQ(curriculum_order(c, 1e-8, iota(5)), (std::vector<int64_t>{1, 4, 3, 0, 2}));
  // Ties (s1, s4 are identical rows) keep the base order.
  EXPECT_EQ(curriculum_order(c, 1e-8, {4, 3, 2, 1, 0}), (std::vector<int64_t>{4, 1, 3, 0, 2}));
}

TEST(Curriculum, AllZeroAnchorFallsBackToL1Norm) {
  // Anchor sample 1 is all zero: order by ascending L1 (0, .1, .4, .5).
  auto c = torch::tensor({{0.2, 0.2}, {0.0, 0.0}, {0.1, 0.0}, {0.5, 0.0}});
  EXPECT_EQ(curriculum_order(c, 1e-8, iota(4)), (std::vector<int64_t>{1, 2, 0, 3}));
}

TEST(Curriculum, MultiExpertFractionIgnoresPadding) {
  auto used = torch::tensor({2, 1, 3, 0, 1, 1, 2, 2}, torch::kLong);
  auto pad = torch::tensor({{false, false, false, false}, {false, false, false, true}});
  auto r = multi_expert_fraction(used, 2, pad);
  EXPECT_NEAR(r[0].item<double>(), 0.5, 1e-7);        // 2 of 4
  EXPECT_NEAR(r[1].item<double>(), 1.0 / 3.0, 1e-7);  // 1 of 3 real tokens
}

TEST(Spearman, HandComputedTable) {
  // (level, experts): (0,1) x2, (0,2), (1,2) x2. Mean ranks: X 2, 2, 2, 4.5, 4.5;
  // Y 1.5, 1.5, 4, 4, 4. sxy = 5, sxx = syy = 7.5: rho = 2/3.
  EXPECT_NEAR(spearman_from_table({{2, 1}, {0, 2}}), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(spearman_from_table({{3, 0}, {0, 2}}), 1.0, 1e-12);
  EXPECT_NEAR(spearman_from_table({{0, 3}, {2, 0}}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(spearman_from_table({{3}, {2}})));  // experts constant
}

ExperimentConfig pool_config(const std::string& sampling) {
  auto j = testing::tiny_config_json();
  j["task"]["train_sequences"] = 40;
  j["moe"]["router"] = {{"name", "adaptive"}, {"threshold", 0.3}};
  j["train"]["sampling"] = sampling;
  return ExperimentConfig::from_json(j, "test");
}

TEST(Sampler, EpochsVisitEverySampleOnceAndReshuffle) {
  auto config = pool_config("epochs");
  auto task = make_task(PluginSpec::from_block("task", config.task), {});
  BatchSampler sampler(*task, config.train, config.seed, 2);  // batch 16, pool 40: 2 steps
  std::set<int64_t> epoch0;
  for (int64_t step = 0; step < 2; ++step) {
    sampler.batch(step);
    epoch0.insert(sampler.last_ids().begin(), sampler.last_ids().end());
  }
  EXPECT_EQ(epoch0.size(), 32u);
  const auto first = sampler.order();
  sampler.batch(2);
  EXPECT_NE(sampler.order(), first);
  auto sorted = sampler.order();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, iota(40));
}

TEST(Sampler, CurriculumOrdersTheNextEpochByRecordedComplexity) {
  auto config = pool_config("curriculum");
  torch::manual_seed(0);
  auto task = make_task(PluginSpec::from_block("task", config.task), {});
  auto model = build_model(config, task->info());
  BatchSampler sampler(*task, config.train, config.seed, 2);
  auto complexity = torch::zeros({40, 2});
  std::set<int64_t> seen;
  for (int64_t step = 0; step < 2; ++step) {
    auto batch = sampler.batch(step);
    torch::NoGradGuard g;
    auto out = model->forward(batch.tokens, batch.features, batch.pad_mask);
    sampler.record_routing(out.traces, batch);
    auto ids = torch::tensor(sampler.last_ids(), torch::kLong);
    for (int64_t l = 0; l < 2; ++l) {
      auto r = multi_expert_fraction(out.traces[l].token_experts, 16, {});
      complexity.select(1, l).index_copy_(0, ids, r);
      seen.insert(sampler.last_ids().begin(), sampler.last_ids().end());
    }
  }
  ASSERT_GT(complexity.sum().item<double>(), 0) << "threshold 0.3 should pair some tokens";
  sampler.batch(2);
  const auto& order = sampler.order();
  // The 8 samples epoch 0 never reached come first; then the seen ones by similarity.
  for (int64_t i = 0; i < 8; ++i) EXPECT_FALSE(seen.count(order[i]));
  auto rest = std::vector<int64_t>(order.begin() + 8, order.end());
  auto sub = complexity.index_select(0, torch::tensor(rest, torch::kLong)).to(torch::kDouble);
  auto l1 = sub.sum(1);
  EXPECT_NEAR(l1[0].item<double>(), l1.min().item<double>(), 1e-7) << "anchor first";
  auto a = sub[0];
  auto sim = sub.matmul(a) / (sub.norm(2, 1) * a.norm() + 1e-8);
  for (int64_t i = 1; i < sim.size(0); ++i) {
    EXPECT_LE(sim[i].item<double>(), sim[i - 1].item<double>() + 1e-9) << "at " << i;
  }
}

TEST(Sampler, IidOnlyForTasksWithoutPool) {
  auto config = pool_config("epochs");
  config.train.batch_size = 64;  // larger than the pool of 40
  auto task = make_task(PluginSpec::from_block("task", config.task), {});
  testing::expect_error([&] { BatchSampler(*task, config.train, 0, 2); },
                        "smaller than train.batch_size");
}

}  // namespace
}  // namespace moe
