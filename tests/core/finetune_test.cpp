// Fine-tuning workflow: init_from copies matching tensors, trainable globs freeze the rest.
#include "core/train/finetune.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/train/checkpoint.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;
using moe::testing::tiny_config_json;

TEST(Finetune, TrainableCountIsExactOnAHandBuiltModel) {
  torch::nn::Sequential net(torch::nn::Linear(3, 2), torch::nn::Linear(2, 1));  // 8 + 3
  EXPECT_EQ(apply_trainable(*net, {"1.*"}, "test"), 3);
  EXPECT_FALSE(net[0]->parameters()[0].requires_grad());
  EXPECT_TRUE(net[1]->parameters()[0].requires_grad());
  EXPECT_EQ(apply_trainable(*net, {"*.bias"}, "test"), 2 + 1);
  EXPECT_EQ(apply_trainable(*net, {}, "test"), 11);
  expect_error([&] { apply_trainable(*net, {"head.*"}, "sweep.toml"); },
               "sweep.toml: train.trainable pattern 'head.*' matches no parameter");
}

TEST(Finetune, FrozenParametersStayPutAndHaveNoOptimizerState) {
  auto json = tiny_config_json();
  json["train"]["steps"] = 5;
  json["train"]["trainable"] = {"head.*", "*.router.*"};
  Trainer trainer(ExperimentConfig::from_json(json, "tiny"));
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : trainer.model()->named_parameters()) before[p.key()] = p.value().clone();
  trainer.train_until(5);
  int64_t trainable_tensors = 0, trainable = 0, total = 0;
  for (const auto& p : trainer.model()->named_parameters()) {
    const bool train =
        p.key().rfind("head.", 0) == 0 || p.key().find(".router.") != std::string::npos;
    EXPECT_EQ(p.value().requires_grad(), train) << p.key();
    EXPECT_EQ(torch::equal(p.value(), before[p.key()]), !train) << p.key();
    trainable_tensors += train;
    trainable += train ? p.value().numel() : 0;
    total += p.value().numel();
  }
  // The optimizer holds exactly the trainable tensors, and state for nothing else.
  int64_t in_optimizer = 0;
  for (const auto& g : trainer.optimizer().param_groups()) in_optimizer += g.params().size();
  EXPECT_EQ(in_optimizer, trainable_tensors);
  EXPECT_EQ(static_cast<int64_t>(trainer.optimizer().state().size()), trainable_tensors);
  EXPECT_EQ(trainer.model()->trainable_params(), trainable);
  EXPECT_LT(trainable, total);
}

TEST(Finetune, InitFromCopiesMatchingTensorsAndKeepsANewHeadFresh) {
  moe::testing::TempDir dir;
  const auto path = dir.file("pre.pt");
  auto json = tiny_config_json();
  json["train"]["steps"] = 3;
  Trainer pre(ExperimentConfig::from_json(json, "tiny"));
  pre.train_until(3);
  save_model(path, pre.model());
  // Same backbone, a task with another number of classes: the head cannot be reused.
  json["task"]["modulus"] = 7;
  json["train"]["init_from"] = path;
  json["seed"] = 99;
  Trainer fine(ExperimentConfig::from_json(json, "tiny"));
  auto pre_params = pre.model()->named_parameters();
  for (const auto& p : fine.model()->named_parameters()) {
    const bool head = p.key().rfind("head.", 0) == 0 || p.key().rfind("tok_emb.", 0) == 0;
    if (pre_params[p.key()].sizes() != p.value().sizes()) {
      EXPECT_TRUE(head) << p.key();
      continue;
    }
    EXPECT_TRUE(torch::equal(p.value(), pre_params[p.key()])) << p.key();
  }
  json["train"]["init_from"] = dir.file("missing.pt");
  expect_error([&] { Trainer t(ExperimentConfig::from_json(json, "tiny")); },
               "train.init_from: model file");
}

}  // namespace
}  // namespace moe
