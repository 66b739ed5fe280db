// PEFT adapters (methods.md §5) against hand-computed cases.
#include "core/adapters.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/train/checkpoint.h"
#include "core/train/finetune.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

PeftOptions peft(const std::string& method, int64_t experts = 2, int64_t top_k = 0) {
  PeftOptions o;
  o.method = method;
  o.experts = experts;
  o.top_k = top_k;
  return o;
}

TEST(Adapters, MergedVectorIsTheProbabilityWeightedSum) {
  Adapter mov(peft("mov"), 2, 2);
  torch::NoGradGuard no_grad;
  mov->router.copy_(torch::eye(2));
  mov->vectors.copy_(torch::tensor({{2.0f, 3.0f}, {4.0f, 5.0f}}));
  auto h = torch::tensor({{1.0f, 0.0f}});
  // p = softmax([1, 0]) = [0.731059, 0.268941]; v = 0.731059 [2, 3] + 0.268941 [4, 5].
  EXPECT_TRUE(torch::allclose(mov->mixture(h), torch::tensor({{0.731059f, 0.268941f}})));
  EXPECT_TRUE(torch::allclose(mov(h, h), torch::tensor({{2.537883f, 0.0f}})));
}

TEST(Adapters, TopKDoesNotRenormalise) {
  Adapter mov(peft("mov", 3, 2), 3, 3);
  torch::NoGradGuard no_grad;
  mov->router.copy_(torch::eye(3));
  // softmax([2, 1, 0]) = [0.665241, 0.244728, 0.090031]; top-2 keeps the first two as is.
  auto p = mov->mixture(torch::tensor({{2.0f, 1.0f, 0.0f}}));
  EXPECT_TRUE(torch::allclose(p, torch::tensor({{0.665241f, 0.244728f, 0.0f}})));
  EXPECT_NEAR(p.sum().item<double>(), 0.909969, 1e-5);
}

TEST(Adapters, MoLoRAIsTheWeightedSumOfLoRADeltas) {
  Adapter molora(peft("molora", 3), 4, 5);
  torch::NoGradGuard no_grad;
  molora->b.normal_();
  auto x = torch::randn({6, 4}), out = torch::randn({6, 5});
  auto p = molora->mixture(x);
  auto expected = out.clone();
  for (int64_t e = 0; e < 3; ++e) {
    expected += (16.0 / 4) * p.select(1, e).unsqueeze(1) *
                torch::matmul(torch::matmul(x, molora->a[e]), molora->b[e]);
  }
  EXPECT_TRUE(torch::allclose(molora(x, out), expected, 1e-5, 1e-6));
}

TEST(Adapters, EveryMethodStartsAsTheIdentityOfThePretrainedModel) {
  moe::testing::TempDir dir;
  auto json = moe::testing::tiny_config_json();
  json["model"]["moe_every"] = 0;
  Trainer base(ExperimentConfig::from_json(json, "tiny"));
  base.train_until(2);
  save_model(dir.file("base.pt"), base.model());
  auto batch = base.task().eval_batches(Split::kValid, 4, 1).front();
  base.model()->eval();
  auto reference = base.model()->forward(batch.tokens, batch.features, batch.pad_mask);
  for (const std::string method : {"ia3", "mov", "lora", "molora"}) {
    SCOPED_TRACE(method);
    json["peft"] = {{"method", method}};
    json["train"]["init_from"] = dir.file("base.pt");
    Trainer tuned(ExperimentConfig::from_json(json, "tiny"));
    tuned.model()->eval();
    auto y = tuned.model()->forward(batch.tokens, batch.features, batch.pad_mask);
    EXPECT_TRUE(torch::allclose(y, reference, 1e-5, 1e-6));
    EXPECT_GT(tuned.model()->total_params(), base.model()->total_params());
  }
}

TEST(Adapters, IA3TrainableCountIsExact) {
  auto json = moe::testing::tiny_config_json();  // d 16, 2 layers, ffn_hidden 32
  json["model"]["moe_every"] = 0;
  json["peft"] = {{"method", "ia3"}};
  json["train"]["trainable"] = {"*_adapter.*"};
  Trainer t(ExperimentConfig::from_json(json, "tiny"));
  EXPECT_EQ(t.model()->trainable_params(), 2 * (16 + 16 + 32));  // keys, values, FFN
  json["peft"] = {{"method", "lora"}, {"rank", 2}};  // q, k, v, o, up, down: 2 (in + out)
  Trainer l(ExperimentConfig::from_json(json, "tiny"));
  EXPECT_EQ(l.model()->trainable_params(), 2 * (4 * 2 * 32 + 2 * (16 + 32) + 2 * (32 + 16)));
  json["peft"] = {{"method", "nope"}};
  moe::testing::expect_error([&] { ExperimentConfig::from_json(json, "tiny"); },
                             "parameter 'method' = 'nope'; valid: ia3 | mov | lora | molora");
}

}  // namespace
}  // namespace moe
