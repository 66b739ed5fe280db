// Fine-tuning workflow: init_from copies matching tensors, trainable globs freeze the rest.
#include "core/train/finetune.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

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

namespace moe {
namespace {

/// The tiny config as a dense model (moe_every 0) of FFN width 16.
nlohmann::json tiny_dense_json() {
  auto json = moe::testing::tiny_config_json();
  json["model"]["moe_every"] = 0;
  json["model"]["ffn_hidden"] = 16;
  json["train"]["steps"] = 3;
  return json;
}

TEST(Upcycle, EveryExpertIsTheDenseFFNAndOnlyUnitGatesPreserveTheFunction) {
  moe::testing::TempDir dir;
  const auto path = dir.file("dense.pt");
  Trainer dense(ExperimentConfig::from_json(tiny_dense_json(), "dense"));
  dense.train_until(3);
  save_model(path, dense.model());
  dense.model()->eval();
  torch::manual_seed(11);
  auto tokens = torch::randint(5, {3, 12}, torch::kLong);
  const auto reference = dense.model()->forward(tokens).logits;

  // Top-1 with a unit gate (normalize = true): each token's output is one expert's, so the
  // upcycled model equals the dense one only if every expert the router picks is the
  // dense FFN. The router is left as initialised (random), so several experts are used.
  auto json = moe::testing::tiny_config_json(1);
  json["moe"]["router"]["normalize"] = true;
  json["train"]["upcycle_from"] = path;
  Trainer upcycled(ExperimentConfig::from_json(json, "upcycled"));
  auto& model = upcycled.model();
  for (size_t l = 0; l < model->blocks->size(); ++l) {
    auto moe_block = model->blocks->ptr<BlockImpl>(l);
    auto dense_block = dense.model()->blocks->ptr<BlockImpl>(l);
    auto bank = moe_block->moe->experts->named_parameters();
    for (int64_t e = 0; e < 4; ++e) {
      EXPECT_TRUE(torch::equal(bank["w1"][e], dense_block->ffn->up->weight.t()));
      EXPECT_TRUE(torch::equal(bank["b2"][e], dense_block->ffn->down->bias));
    }
    EXPECT_TRUE(torch::equal(moe_block->attn->q->weight, dense_block->attn->q->weight));
    torch::NoGradGuard g;  // a router that spreads the tokens over the experts
    moe_block->moe->router->named_parameters()["gate.weight"].normal_(0.0, 1.0);
  }
  model->eval();
  auto out = model->forward(tokens);
  for (const auto& trace : out.traces) {
    EXPECT_GE(std::count_if(trace.load.begin(), trace.load.end(), [](int64_t n) { return n > 0; }),
              2);
  }
  EXPECT_TRUE(torch::allclose(reference, out.logits, 1e-5, 1e-5))
      << (reference - out.logits).abs().max().item<double>();
  {  // the check has teeth: one altered expert breaks it
    torch::NoGradGuard g;
    auto w1 = model->blocks->ptr<BlockImpl>(0)->moe->experts->named_parameters()["w1"];
    for (int64_t e = 0; e < 4; ++e) w1[e].mul_(1.0 + 0.5 * static_cast<double>(e));
  }
  EXPECT_FALSE(torch::allclose(reference, model->forward(tokens).logits, 1e-5, 1e-5));

  // Switch top-1 (the gate is the router probability p < 1): upcycling is not
  // function-preserving at step 0; each FFN output is scaled by its token's p.
  json["moe"]["router"].erase("normalize");
  Trainer switch_top1(ExperimentConfig::from_json(json, "switch"));
  switch_top1.model()->eval();
  EXPECT_FALSE(torch::allclose(reference, switch_top1.model()->forward(tokens).logits, 1e-3, 1e-3));

  // upcycle_noise perturbs each expert independently.
  json["train"]["upcycle_noise"] = 0.01;
  Trainer noisy(ExperimentConfig::from_json(json, "noisy"));
  auto bank = noisy.model()->blocks->ptr<BlockImpl>(0)->moe->experts->named_parameters();
  EXPECT_FALSE(torch::equal(bank["w1"][0], bank["w1"][1]));
  EXPECT_TRUE(torch::equal(bank["b1"][0], bank["b1"][1]));  // biases are copied exactly
}

TEST(Upcycle, MismatchesAreClearErrors) {
  moe::testing::TempDir dir;
  const auto dense_path = dir.file("dense.pt"), moe_path = dir.file("moe.pt");
  Trainer dense(ExperimentConfig::from_json(tiny_dense_json(), "dense"));
  save_model(dense_path, dense.model());
  auto json = moe::testing::tiny_config_json(2);
  Trainer sparse(ExperimentConfig::from_json(json, "moe"));
  save_model(moe_path, sparse.model());

  json["train"]["upcycle_from"] = moe_path;  // a MoE model has no dense FFN to copy
  expect_error([&] { Trainer t(ExperimentConfig::from_json(json, "x")); },
               "has no dense FFN at blocks.0.ffn.*");
  json["train"]["upcycle_from"] = dense_path;
  json["moe"]["experts"]["hidden"] = 8;  // the experts must have the dense width
  expect_error([&] { Trainer t(ExperimentConfig::from_json(json, "x")); },
               "use the dense model's model.ffn_hidden as moe.experts.hidden");
  // ReLU and GELU FFNs have the same shapes: the recorded activation tells them apart.
  auto relu = tiny_dense_json();
  relu["model"]["activation"] = "relu";
  const auto relu_path = dir.file("relu.pt");
  Trainer relu_dense(ExperimentConfig::from_json(relu, "relu"));
  save_model(relu_path, relu_dense.model());
  json["moe"]["experts"]["hidden"] = 16;
  json["train"]["upcycle_from"] = relu_path;
  expect_error([&] { Trainer t(ExperimentConfig::from_json(json, "x")); },
               "was trained with relu FFNs but the experts use gelu");
  json["moe"]["experts"]["activation"] = "relu";
  EXPECT_NO_THROW(Trainer t(ExperimentConfig::from_json(json, "x")));
  json["train"]["upcycle_from"] = dir.file("absent.pt");
  expect_error([&] { Trainer t(ExperimentConfig::from_json(json, "x")); },
               "train.upcycle_from: model file");
  json["train"]["init_from"] = dense_path;
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); },
               "at most one of init_from and upcycle_from");
}

}  // namespace
}  // namespace moe
