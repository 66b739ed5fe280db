// LibTorch-version seams (core/compat.h), bf16 autocast training, attention's SDPA path and
// the MFU summary.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/compat.h"
#include "core/train/trainer.h"
#include "core/transformer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

TEST(Compat, AutocastGuardEnablesAndRestores) {
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  {
    compat::AutocastGuard on(c10::DeviceType::CPU, true, torch::kBFloat16);
    EXPECT_TRUE(compat::autocast_enabled(c10::DeviceType::CPU));
    auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    {
      compat::NoAutocast off;
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
    }
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  compat::AutocastGuard off(c10::DeviceType::CPU, false);
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
}

/// The explicit attention, one (batch, head, query) at a time.
torch::Tensor naive_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, bool causal, bool alibi,
                              const torch::Tensor& pad) {
  const int64_t b = q.size(0), h = q.size(1), s = q.size(2), dh = q.size(3);
  auto out = torch::zeros_like(q);
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t hi = 0; hi < h; ++hi) {
      const double slope = std::pow(2.0, -8.0 * (hi + 1) / h);
      for (int64_t i = 0; i < s; ++i) {
        std::vector<double> score(s, -INFINITY);
        for (int64_t j = 0; j < s; ++j) {
          if ((causal && j > i) || (pad.defined() && pad[bi][j].item<bool>())) continue;
          score[j] = (q[bi][hi][i] * k[bi][hi][j]).sum().item<double>() / std::sqrt(double(dh));
          if (alibi) score[j] -= slope * std::abs(double(i - j));
        }
        double mx = -INFINITY, z = 0;
        for (double x : score) mx = std::max(mx, x);
        for (double x : score) z += std::exp(x - mx);
        for (int64_t j = 0; j < s; ++j) {
          out[bi][hi][i] += std::exp(score[j] - mx) / z * v[bi][hi][j];
        }
      }
    }
  }
  return out;
}

TEST(Compat, WarningCounterCountsMatchingWarningsAndRestoresTheHandler) {
  {
    compat::WarningCounter counter("synchroniz");
    TORCH_WARN("called a synchronizing CUDA operation");
    TORCH_WARN("something else");
    TORCH_WARN("called a synchronizing CUDA operation");
    EXPECT_EQ(counter.count(), 2);
    {
      compat::WarningCounter inner("else");
      TORCH_WARN("something else");
      EXPECT_EQ(inner.count(), 1);
    }
    TORCH_WARN("synchronize again");  // back to the outer counter
    EXPECT_EQ(counter.count(), 3);
  }
}

TEST(Attention, ExplicitAndSdpaPathsMatchTheDefinition) {
  ASSERT_TRUE(kUseSdpa) << "the model's attention does not take the SDPA path";
  torch::manual_seed(0);
  auto q = torch::randn({2, 2, 5, 4}), k = torch::randn({2, 2, 5, 4}),
       v = torch::randn({2, 2, 5, 4});
  auto pad = torch::tensor({{false, false, false, false, true}, {false, false, false, true, true}});
  for (bool causal : {false, true}) {
    for (bool alibi : {false, true}) {
      for (const auto& mask : {torch::Tensor(), pad}) {
        auto expected = naive_attention(q, k, v, causal, alibi, mask);
        auto explicit_path = attend(q, k, v, causal, alibi, mask, /*use_sdpa=*/false);
        EXPECT_TRUE(torch::allclose(explicit_path, expected, 1e-5, 1e-5))
            << "causal " << causal << " alibi " << alibi << " pad " << mask.defined();
        // at::scaled_dot_product_attention (every supported LibTorch has it) agrees.
        auto sdpa_path = attend(q, k, v, causal, alibi, mask, /*use_sdpa=*/true);
        EXPECT_TRUE(torch::allclose(sdpa_path, explicit_path, 1e-5, 1e-5))
            << "causal " << causal << " alibi " << alibi << " pad " << mask.defined();
      }
    }
  }
}

TEST(Precision, Bf16TrainingTracksFp32AndRoutesInFp32) {
  auto json = moe::testing::tiny_config_json(2);
  json["train"]["steps"] = 30;
  json["train"]["log_every"] = 30;
  Trainer fp32(ExperimentConfig::from_json(json, "fp32"));
  json["train"]["precision"] = "bf16";
  Trainer bf16(ExperimentConfig::from_json(json, "bf16"));
  // Parameters and optimizer state stay fp32.
  for (const auto& p : bf16.model()->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  auto tokens = torch::randint(5, {2, 12}, torch::kLong);
  auto out = bf16.model()->forward(tokens);
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat);
  for (const auto& t : out.traces) EXPECT_EQ(t.router_probs.scalar_type(), torch::kFloat);
  for (const auto& kv : out.aux_losses) EXPECT_EQ(kv.second.scalar_type(), torch::kFloat);
  const auto a = fp32.run(), b = bf16.run();
  // Same seed, same batches: the bf16 run's losses stay within 2% of fp32's.
  const double la = a.summary.test_loss, lb = b.summary.test_loss;
  EXPECT_NEAR(lb, la, 0.02 * la) << "fp32 " << la << " bf16 " << lb;
  EXPECT_NE(la, lb) << "bf16 changed nothing: autocast is not on";
}

TEST(Precision, MfuIsModelFlopsOverThePeak) {
  auto json = moe::testing::tiny_config_json(2);
  json["train"]["steps"] = 4;
  json["train"]["peak_tflops"] = 0.5;
  Trainer trainer(ExperimentConfig::from_json(json, "tiny"));
  const auto s = trainer.run().summary;
  EXPECT_NEAR(s.model_flops_per_s, 3 * s.flops_per_token * s.train_tokens_per_s,
              1e-6 * s.model_flops_per_s);
  EXPECT_DOUBLE_EQ(s.peak_flops_per_s, 0.5e12);
  EXPECT_NEAR(s.mfu, s.model_flops_per_s / 0.5e12, 1e-12);
  // Without an override the CPU peak is probed: positive, and MFU below 1.
  json["train"].erase("peak_tflops");
  Trainer probed(ExperimentConfig::from_json(json, "tiny"));
  const auto p = probed.run().summary;
  EXPECT_GT(p.peak_flops_per_s, 1e8);
  EXPECT_GT(p.mfu, 0);
  EXPECT_LT(p.mfu, 1);
  moe::testing::expect_error(
      [&] {
        json["train"]["precision"] = "fp16";
        ExperimentConfig::from_json(json, "x.toml");
      },
      "expected one of [fp32, bf16], got 'fp16'");
}

}  // namespace
}  // namespace moe
