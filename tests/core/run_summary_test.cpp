#include "core/train/run_summary.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe {
namespace {

TEST(RunSummary, SummarizesTheEvaluationsAndTraining) {
  EvalResult valid, test;
  valid.accuracy = 0.5;
  valid.loss = 1.5;
  test.accuracy = 0.25;
  test.loss = 2.0;
  test.perplexity = 7.0;
  test.active_params = 300;
  test.nonembed_active_params = 200;
  test.flops = {10, 20, 3, 0, 7};
  test.flops_per_token = 40;
  test.tokens_per_s = 50;
  TrainingTotals t;
  t.train_seconds = 4;
  t.train_tokens = 400;  // 100 tokens/s
  t.train_flops_per_token = 120;
  t.peak_flops_per_s = 1e5;
  t.target_set = true;  // never reached
  const auto s = summarize(valid, test, /*lm_head=*/false, {1000, 250, 400}, t);
  EXPECT_EQ(s.test_accuracy, 0.25);
  EXPECT_EQ(s.valid_loss, 1.5);
  EXPECT_FALSE(s.test_perplexity) << "a perplexity only for LM heads";
  EXPECT_DOUBLE_EQ(s.trainable_percent, 25);
  EXPECT_EQ(s.nonembed_total_params, 600);
  EXPECT_DOUBLE_EQ(s.train_tokens_per_s, 100);
  EXPECT_DOUBLE_EQ(s.model_flops_per_s, 12000);
  EXPECT_DOUBLE_EQ(s.mfu, 0.12);
  EXPECT_FALSE(s.mean_experts) << "dense: no MoE layer";
  EXPECT_TRUE(std::isnan(s.steps_to_target.value()));
  EXPECT_FALSE(s.checkpoint_seconds);

  const auto m = final_metrics(s);
  EXPECT_EQ(m.at("flops_per_token/ffn"), 20);
  EXPECT_EQ(m.at("flops_per_token/head"), 7);
  EXPECT_EQ(m.at("total_params"), 1000);
  EXPECT_EQ(m.count("test_perplexity") + m.count("mean_experts") + m.count("checkpoint_seconds"),
            0u);
  EXPECT_TRUE(m.count("steps_to_target") && std::isnan(m.at("steps_to_target")));
  // The same numbers come back from the map as from the fields, whatever the name.
  EXPECT_EQ(m.at("mfu"), s.mfu);
  EXPECT_EQ(m.at("eval_tokens_per_s"), 50);
}

}  // namespace
}  // namespace moe
