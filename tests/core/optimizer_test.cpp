// The optimizer and gradient handling of training (core/train/optimizer.h).
#include "core/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

namespace moe {
namespace {

TEST(Optimizer, AdapterVectorsAndBiasesGetNoWeightDecay) {
  torch::OrderedDict<std::string, torch::Tensor> params;
  params.insert("embed.weight", torch::zeros({5, 4}, torch::requires_grad()));
  params.insert("layers.0.ffn_adapter.vectors", torch::ones({2, 4}, torch::requires_grad()));
  params.insert("layers.0.ffn_adapter.down", torch::zeros({4, 2}, torch::requires_grad()));
  params.insert("layers.0.ffn_adapter.bias", torch::zeros({4}, torch::requires_grad()));
  params.insert("layers.0.ffn.w1", torch::zeros({4, 4}));  // frozen: not optimised
  TrainOptions train;
  train.lr = 0.01;
  train.weight_decay = 0.1;
  auto opt = make_optimizer(params, train);
  const auto& groups = opt->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  auto decay = [&](size_t g) {
    return static_cast<const torch::optim::AdamWOptions&>(groups[g].options()).weight_decay();
  };
  auto holds = [&](size_t g, const std::string& name) {
    for (const auto& p : groups[g].params()) {
      if (p.is_same(params[name])) return true;
    }
    return false;
  };
  EXPECT_EQ(groups[0].params().size(), 2u);
  EXPECT_TRUE(holds(0, "embed.weight") && holds(0, "layers.0.ffn_adapter.down"));
  EXPECT_DOUBLE_EQ(decay(0), 0.1);
  EXPECT_EQ(groups[1].params().size(), 2u);
  EXPECT_TRUE(holds(1, "layers.0.ffn_adapter.vectors") && holds(1, "layers.0.ffn_adapter.bias"));
  EXPECT_DOUBLE_EQ(decay(1), 0.0);
  const auto& adamw = static_cast<const torch::optim::AdamWOptions&>(groups[0].options());
  EXPECT_DOUBLE_EQ(adamw.lr(), 0.01);
  EXPECT_EQ(std::get<1>(adamw.betas()), 0.98);
  // Without adapters: one group.
  torch::OrderedDict<std::string, torch::Tensor> plain;
  plain.insert("embed.weight", torch::zeros({5, 4}, torch::requires_grad()));
  EXPECT_EQ(make_optimizer(plain, train)->param_groups().size(), 1u);
}

TEST(Optimizer, ClipGradNormMatchesLibTorchWithoutAHostRead) {
  auto grads_of = [](double scale) {
    torch::manual_seed(5);
    std::vector<torch::Tensor> ps;
    for (auto shape : {std::vector<int64_t>{3, 4}, std::vector<int64_t>{7}}) {
      auto p = torch::randn(shape).requires_grad_();
      p.mutable_grad() = torch::randn(shape) * scale;
      ps.push_back(p);
    }
    ps.push_back(torch::randn({2}).requires_grad_());  // no gradient: skipped
    return ps;
  };
  for (double max_norm : {0.5, 1e9, 0.0}) {
    auto ours = grads_of(2.0), theirs = grads_of(2.0);
    const auto norm = clip_grad_norm(ours, max_norm);
    const double expected = torch::nn::utils::clip_grad_norm_(
        theirs, max_norm > 0 ? max_norm : std::numeric_limits<double>::infinity());
    EXPECT_EQ(norm.dim(), 0);
    EXPECT_DOUBLE_EQ(norm.item<double>(), expected);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_TRUE(torch::equal(ours[i].grad(), theirs[i].grad())) << "max_norm " << max_norm;
    }
    // A hand case: clipping to 0.5 leaves a total norm of 0.5 (up to the 1e-6 guard).
    if (max_norm == 0.5) {
      auto after = torch::stack({ours[0].grad().norm(), ours[1].grad().norm()}).norm();
      EXPECT_NEAR(after.item<double>(), 0.5, 1e-5);
    }
  }
}

}  // namespace
}  // namespace moe
