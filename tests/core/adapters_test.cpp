// PEFT adapters (methods.md §5) against hand-computed cases.
#include "core/adapters.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "core/train/checkpoint.h"
#include "core/train/finetune.h"
#include "core/train/trainer.h"
#include "plugins/adapters/lora.h"
#include "plugins/adapters/scaling.h"
#include "tests/test_util.h"

namespace moe {
namespace {

PeftOptions peft(const std::string& method, int64_t experts = 2, int64_t top_k = 0) {
  PeftOptions o;
  o.method = method;
  o.params = {{"experts", experts}, {"top_k", top_k}};
  return o;
}

template <class T>
std::shared_ptr<T> make(const PeftOptions& o, int64_t d_in, int64_t d_out, int64_t heads = 1) {
  auto a = std::dynamic_pointer_cast<T>(make_adapter(o, d_in, d_out, heads));
  EXPECT_TRUE(a);
  return a;
}

TEST(Adapters, MergedVectorIsTheProbabilityWeightedSum) {
  auto mov = make<MoVAdapter>(peft("mov"), 2, 2);
  torch::NoGradGuard no_grad;
  mov->router.copy_(torch::eye(2));
  mov->vectors.copy_(torch::tensor({{2.0f, 3.0f}, {4.0f, 5.0f}}));
  auto h = torch::tensor({{1.0f, 0.0f}});
  // p = softmax([1, 0]) = [0.731059, 0.268941]; v = 0.731059 [2, 3] + 0.268941 [4, 5].
  EXPECT_TRUE(torch::allclose(mov->mixture(h), torch::tensor({{0.731059f, 0.268941f}})));
  EXPECT_TRUE(torch::allclose(mov->forward(h, h), torch::tensor({{2.537883f, 0.0f}})));
}

TEST(Adapters, TopKDoesNotRenormalise) {
  auto mov = make<MoVAdapter>(peft("mov", 3, 2), 3, 3);
  torch::NoGradGuard no_grad;
  mov->router.copy_(torch::eye(3));
  // softmax([2, 1, 0]) = [0.665241, 0.244728, 0.090031]; top-2 keeps the first two as is.
  auto p = mov->mixture(torch::tensor({{2.0f, 1.0f, 0.0f}}));
  EXPECT_TRUE(torch::allclose(p, torch::tensor({{0.665241f, 0.244728f, 0.0f}})));
  EXPECT_NEAR(p.sum().item<double>(), 0.909969, 1e-5);
}

TEST(Adapters, MoVRoutesPerHeadAtKeysAndValues) {
  // n = 4, two heads of width 2, two experts per head. Router input h = [1, 0, 0, 1].
  auto mov = make<MoVAdapter>(peft("mov"), 4, 4, /*heads=*/2);
  ASSERT_EQ(mov->router.sizes(), (std::vector<int64_t>{4, 4}));
  ASSERT_EQ(mov->vectors.sizes(), (std::vector<int64_t>{2, 2, 2}));
  torch::NoGradGuard no_grad;
  // Head 0's logits = h[0] * [1, 0]; head 1's = h[3] * [0, 2].
  mov->router.zero_();
  mov->router[0][0] = 1.0f;
  mov->router[3][3] = 2.0f;
  mov->vectors.copy_(torch::tensor({{{2.0f, 3.0f}, {4.0f, 5.0f}}, {{1.0f, 1.0f}, {3.0f, 7.0f}}}));
  auto h = torch::tensor({{1.0f, 0.0f, 0.0f, 1.0f}});
  // Head 0: softmax([1, 0]) = [0.731059, 0.268941]; head 1: softmax([0, 2]) = [0.119203,
  // 0.880797].
  auto p = mov->mixture(h);
  EXPECT_TRUE(
      torch::allclose(p, torch::tensor({{{0.731059f, 0.268941f}, {0.119203f, 0.880797f}}})));
  // Scales: head 0 = .731059 [2, 3] + .268941 [4, 5]; head 1 = .119203 [1, 1] + .880797 [3, 7].
  const float s0 = 0.731059f * 2 + 0.268941f * 4, s3 = 0.119203f * 1 + 0.880797f * 7;
  EXPECT_TRUE(torch::allclose(mov->forward(h, h), torch::tensor({{s0, 0.0f, 0.0f, s3}}), 1e-5));
  // route = "token" keeps one mixture over the whole vector.
  PeftOptions token = peft("mov");
  token.params["route"] = "token";
  EXPECT_EQ(make<MoVAdapter>(token, 4, 4, 2)->vectors.sizes(), (std::vector<int64_t>{2, 4}));
}

TEST(Adapters, TopKKeepsExactlyKUnderTies) {
  auto p = mixture_from_logits(torch::tensor({{1.0f, 1.0f, 1.0f, 0.0f}}), 2);
  EXPECT_EQ(p.gt(0).sum().item<int64_t>(), 2);
}

TEST(Adapters, ScaleVectorsGetNoWeightDecay) {
  auto json = moe::testing::tiny_config_json();
  json["peft"] = {{"method", "ia3"}};
  json["train"]["weight_decay"] = 0.1;
  Trainer t(ExperimentConfig::from_json(json, "tiny"));  // the whole model trains
  // Each parameter's weight decay: 0 for the (IA)^3 vectors, 0.1 for everything else.
  int64_t vectors = 0, others = 0;
  for (const auto& group : t.optimizer().param_groups()) {
    const double wd =
        static_cast<const torch::optim::AdamWOptions&>(group.options()).weight_decay();
    for (const auto& p : group.params()) {
      bool is_vector = false;
      for (const auto& kv : t.model()->named_parameters()) {
        if (kv.value().is_same(p))
          is_vector = kv.key().find("_adapter.vectors") != std::string::npos;
      }
      EXPECT_EQ(wd, is_vector ? 0.0 : 0.1);
      (is_vector ? vectors : others) += 1;
    }
  }
  EXPECT_GT(vectors, 0);
  EXPECT_GT(others, 0);
}

TEST(Adapters, MoLoRAIsTheWeightedSumOfLoRADeltas) {
  auto molora = make<LoRAAdapter>(peft("molora", 3), 4, 5);
  torch::NoGradGuard no_grad;
  molora->b.normal_();
  auto x = torch::randn({6, 4}), out = torch::randn({6, 5});
  auto p = molora->mixture(x);
  auto expected = out.clone();
  for (int64_t e = 0; e < 3; ++e) {
    expected += (16.0 / 4) * p.select(1, e).unsqueeze(1) *
                torch::matmul(torch::matmul(x, molora->a[e]), molora->b[e]);
  }
  EXPECT_TRUE(torch::allclose(molora->forward(x, out), expected, 1e-5, 1e-6));
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
  auto reference = base.model()->forward(batch.tokens, batch.features, batch.pad_mask).logits;
  for (const std::string method : {"ia3", "mov", "lora", "molora"}) {
    SCOPED_TRACE(method);
    json["peft"] = {{"method", method}};
    json["train"]["init_from"] = dir.file("base.pt");
    Trainer tuned(ExperimentConfig::from_json(json, "tiny"));
    tuned.model()->eval();
    auto y = tuned.model()->forward(batch.tokens, batch.features, batch.pad_mask).logits;
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
                             "section 'peft': parameter 'method' expected one of [ia3, lora, "
                             "molora, mov], got 'nope'");
  // Each adapter reads its own parameters: a setting it does not have is an error.
  json["peft"] = {{"method", "ia3"}, {"rank", 2}};
  moe::testing::expect_error([&] { ExperimentConfig::from_json(json, "tiny"); },
                             "adapter 'ia3': unknown parameter 'rank'");
  json["peft"] = {{"method", "molora"}, {"experts", 3}, {"top_k", 4}};
  moe::testing::expect_error([&] { ExperimentConfig::from_json(json, "tiny"); },
                             "adapter 'molora': parameter 'top_k' expected 0 (soft merge) .. "
                             "experts (3), got 4");
}

// The contract every adapter plugin keeps, run for each registered name.
class AdapterContract : public ::testing::TestWithParam<std::string> {
 protected:
  PeftOptions options() const {
    PeftOptions o;
    o.method = GetParam();
    return o;
  }
  bool scaling() const { return adapter_at(options(), "mid"); }
  int64_t d_in() const { return 6; }
  int64_t d_out() const { return scaling() ? 6 : 5; }
};

TEST_P(AdapterContract, ShapesAndIdentityAtInitialisation) {
  torch::manual_seed(0);
  auto a = make_adapter(options(), d_in(), d_out());
  auto x = torch::randn({3, 4, d_in()});
  auto out = scaling() ? x : torch::randn({3, 4, d_out()});
  auto y = a->forward(x, out);
  EXPECT_EQ(y.sizes(), out.sizes());
  EXPECT_TRUE(torch::allclose(y, out, 1e-6, 1e-7)) << "an adapter starts as the identity";
  EXPECT_GT(a->flops_per_token(), 0);
  EXPECT_FALSE(a->parameters().empty());
}

TEST_P(AdapterContract, DoubleAndDeterministic) {
  torch::manual_seed(3);
  auto a = make_adapter(options(), d_in(), d_out());
  torch::manual_seed(3);
  auto b = make_adapter(options(), d_in(), d_out());
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(a->parameters()[i], b->parameters()[i]));
  }
  torch::NoGradGuard no_grad;
  for (auto& p : a->parameters()) p.add_(torch::randn_like(p) * 0.1);  // away from identity
  auto x = torch::randn({5, d_in()});
  auto out = scaling() ? x : torch::randn({5, d_out()});
  auto y = a->forward(x, out);
  EXPECT_TRUE(torch::equal(y, a->forward(x, out)));
  a->to(torch::kDouble);
  auto yd = a->forward(x.to(torch::kDouble), out.to(torch::kDouble));
  EXPECT_EQ(yd.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(yd.to(torch::kFloat), y, 1e-5, 1e-6));
}

TEST_P(AdapterContract, SameOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  torch::manual_seed(4);
  auto cpu = make_adapter(options(), d_in(), d_out());
  torch::manual_seed(4);
  auto gpu = make_adapter(options(), d_in(), d_out());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : cpu->parameters()) p.add_(torch::randn_like(p) * 0.1);  // away from identity
    for (size_t i = 0; i < cpu->parameters().size(); ++i) {
      gpu->parameters()[i].copy_(cpu->parameters()[i]);
    }
  }
  gpu->to(torch::kCUDA);
  auto x = torch::randn({2, 5, d_in()});
  auto out = scaling() ? x : torch::randn({2, 5, d_out()});
  auto y = cpu->forward(x, out);
  auto yg = gpu->forward(x.to(torch::kCUDA), out.to(torch::kCUDA));
  ASSERT_TRUE(yg.is_cuda());
  EXPECT_TRUE(torch::allclose(y, yg.cpu(), 1e-4, 1e-5));
  y.pow(2).sum().backward();
  yg.pow(2).sum().backward();
  const auto cp = cpu->parameters(), gp = gpu->parameters();
  for (size_t i = 0; i < cp.size(); ++i) {
    ASSERT_TRUE(gp[i].grad().defined());
    EXPECT_TRUE(torch::allclose(cp[i].grad(), gp[i].grad().cpu(), 1e-3, 1e-5)) << "param " << i;
  }
}

TEST_P(AdapterContract, FrozenBackboneGradientsReachOnlyAdapters) {
  auto json = moe::testing::tiny_config_json();
  json["model"]["moe_every"] = 0;
  json["peft"] = {{"method", GetParam()}};
  json["train"]["trainable"] = {"*_adapter.*"};
  Trainer t(ExperimentConfig::from_json(json, "tiny"));
  auto batch = t.task().eval_batches(Split::kValid, 4, 1).front();
  auto logits = t.model()->forward(batch.tokens, batch.features, batch.pad_mask).logits;
  logits.pow(2).mean().backward();
  int64_t adapters = 0;
  for (const auto& kv : t.model()->named_parameters()) {
    const bool adapter = kv.key().find("_adapter.") != std::string::npos;
    adapters += adapter;
    EXPECT_EQ(kv.value().requires_grad(), adapter) << kv.key();
    EXPECT_EQ(kv.value().grad().defined(), adapter) << kv.key();
  }
  EXPECT_GT(adapters, 0);
}

INSTANTIATE_TEST_SUITE_P(Registered, AdapterContract,
                         ::testing::ValuesIn(adapter_registry().names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace moe
