// HyperMoE (methods.md §4): per-set generation, selection embedding, gradients, sharing.
#include "plugins/experts/hyper.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "core/moe_layer.h"
#include "core/transformer.h"
#include "plugins/routers/top_k.h"
#include "tests/plugins/hyper_reference.h"
#include "tests/test_util.h"

namespace moe {
namespace {

constexpr int64_t kD = 8, kE = 4;

HyperExperts make_bank(uint64_t seed = 0) {
  torch::manual_seed(seed);
  const LayerContext ctx{kD, kE, 0, 2};
  auto bank = std::dynamic_pointer_cast<HyperExpertsImpl>(
      make_expert_bank(PluginSpec("experts", "hyper", {{"bottleneck", 3}}), ctx).ptr());
  // Heads start tiny (near-zero adapters); make them large so equality checks mean something.
  torch::NoGradGuard g;
  for (auto& p : bank->hyper->parameters()) p.normal_(0.0, 0.5);
  return HyperExperts(bank);
}

TEST(Hyper, PerSetGenerationEqualsPerToken) {
  auto bank = make_bank();
  torch::manual_seed(1);
  auto x = torch::randn({64, kD});
  TopKRouter router(TopKRouterOptions(kD, kE).k(2));
  auto mask = bank->selection_mask(router->forward(x));
  Stats stats;
  auto per_set = bank->adapter(x, mask, &stats);
  auto per_token = testing::hyper_adapter_per_token(*bank, x, mask);
  EXPECT_GT(per_token.abs().max().item<double>(), 0.1);
  EXPECT_TRUE(torch::allclose(per_set, per_token, 1e-5, 1e-5));
  EXPECT_LE(stats.at("distinct_sets").value.item<double>(), 6);  // C(4, 2)
  // Gradients agree too.
  auto g = torch::randn_like(per_set);
  auto params = bank->parameters();
  auto ga = torch::autograd::grad({(per_set * g).sum()}, params, {}, true, false, true);
  auto gb = torch::autograd::grad({(per_token * g).sum()}, params, {}, true, false, true);
  for (size_t i = 0; i < params.size(); ++i) {
    if (!ga[i].defined()) continue;  // the inner experts play no part in the adapter
    EXPECT_TRUE(torch::allclose(ga[i], gb[i], 1e-4, 1e-5)) << "param " << i;
  }
}

TEST(Hyper, SelectionEmbeddingIsTheSumOfTheUnselected) {
  auto bank = make_bank();
  {
    torch::NoGradGuard g;
    bank->expert_emb.zero_();
    bank->expert_emb.narrow(1, 0, 2).copy_(
        torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {10.f, 0.f}, {0.f, 10.f}}));
  }
  // Token selects experts {0, 2}: e_hat = Emb[1] + Emb[3] = (0, 11).
  Routing r;
  r.indices = torch::tensor({{0, 2}, {3, -1}}, torch::kLong);
  auto e = bank->selection_embedding(bank->selection_mask(r));
  EXPECT_FLOAT_EQ(e[0][0].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(e[0][1].item<float>(), 11.f);
  // Token with {3} only (second slot unused): Emb[0] + Emb[1] + Emb[2] = (11, 1).
  EXPECT_FLOAT_EQ(e[1][0].item<float>(), 11.f);
  EXPECT_FLOAT_EQ(e[1][1].item<float>(), 1.f);
}

MoELayer hyper_layer(int64_t k, bool normalize) {
  torch::manual_seed(3);
  const LayerContext ctx{kD, kE, 0, 2};
  auto router = Router(std::shared_ptr<RouterImpl>(
      std::make_shared<TopKRouterImpl>(TopKRouterOptions(kD, kE).k(k).normalize(normalize))));
  auto bank = make_expert_bank(PluginSpec("experts", "hyper", {}), ctx);
  return MoELayer(router, bank, MoELayerOptions(kE));
}

TEST(Hyper, GradientsReachEmbeddingsMlpHypernetworkAndRouter) {
  auto layer = hyper_layer(2, true);
  auto y = layer->forward(torch::randn({2, 16, kD})).y;
  y.pow(2).sum().backward();  // the task-like loss alone, no aux losses
  for (const auto& p : layer->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(Hyper, TopOneWithSwitchGateTrainsTheRouterFromTheTaskLoss) {
  auto x = torch::randn({2, 16, kD});
  auto gate_grad = [&](bool normalize) {
    auto layer = hyper_layer(1, normalize);
    layer->forward(x).y.pow(2).sum().backward();
    return layer->router->named_parameters()["gate.weight"].grad().abs().sum().item<double>();
  };
  // top_k never renormalises k = 1 (normalize applies to k >= 2), so even normalize = true
  // keeps the Switch gate p_i: the pitfall (a gate identically 1) cannot be configured.
  EXPECT_GT(gate_grad(false), 0) << "Switch gate p_i carries the task gradient";
  EXPECT_GT(gate_grad(true), 0);
}

TEST(Hyper, OneHypernetworkSharedByAllLayersAndCountedHonestly) {
  auto options = TransformerOptions()
                     .vocab_size(10)
                     .d_model(kD)
                     .layers(3)
                     .heads(2)
                     .max_len(8)
                     .num_classes(10)
                     .moe_every(1);
  MoEConfig moe;
  moe.num_experts = kE;
  moe.router = {{"name", "top_k"}, {"k", 2}};
  moe.experts = {
      {"name", "hyper"}, {"bottleneck", 3}, {"inner", {{"name", "ffn"}, {"hidden", 16}}}};
  torch::manual_seed(0);
  Transformer model(options.moe(moe));
  auto layers = model->moe_layers();
  ASSERT_EQ(layers.size(), 3u);
  auto bank = [&](size_t l) {
    return std::dynamic_pointer_cast<HyperExpertsImpl>(layers[l]->experts.ptr());
  };
  EXPECT_EQ(bank(0)->hyper.get(), bank(2)->hyper.get());
  ASSERT_TRUE(model->shared);
  std::set<const void*> seen;
  for (const auto& p : model->parameters()) EXPECT_TRUE(seen.insert(p.data_ptr()).second);
  EXPECT_TRUE(model->named_parameters().contains("shared.hyper.trunk.weight"));
  // Active = the same model's active count without generators, + one adapter per layer.
  int64_t generators = 0;
  for (const auto& p : model->shared->parameters()) generators += p.numel();
  int64_t banks = 0;
  for (size_t l = 0; l < 3; ++l) {
    for (const auto& p : layers[l]->experts->parameters()) banks += p.numel();
  }
  const int64_t per_expert = (kD * 16 + 16 + 16 * kD + kD);
  const double adapter = 2 * kD * 3 + kD + 3;
  const double expected =
      model->total_params() - generators - banks + 3 * (2 * per_expert + adapter);
  EXPECT_DOUBLE_EQ(model->active_params({2, 2, 2}), expected);
  EXPECT_EQ(bank(0)->params_per_expert(), per_expert);
}

TEST(Hyper, ExpertEmbeddingsStartAsTheReferencesNormalOne) {
  // nn.Embedding's N(0, 1), so e_hat (a sum of embeddings) is O(1) like the layer embedding
  // it is concatenated with; 0.02 made the generated adapter nearly selection-blind.
  const LayerContext ctx{kD, kE, 0, 2};
  torch::manual_seed(5);
  auto bank = make_expert_bank(PluginSpec("experts", "hyper", {{"embed_dim", 64}}), ctx);
  const double std_1 = bank->as<HyperExpertsImpl>()->expert_emb.std().item<double>();
  EXPECT_GT(std_1, 0.85);
  EXPECT_LT(std_1, 1.15);
  auto small = make_expert_bank(
      PluginSpec("experts", "hyper", {{"embed_dim", 64}, {"embed_init_std", 0.02}}), ctx);
  EXPECT_NEAR(small->as<HyperExpertsImpl>()->expert_emb.std().item<double>(), 0.02, 0.004);
  testing::expect_error(
      [&] {
        make_expert_bank(PluginSpec("experts", "hyper", {{"embed_init_std", 0.0}}), ctx);
      },
      "experts 'hyper': parameter 'embed_init_std' expected in (0, 1000], got 0");
}

}  // namespace
}  // namespace moe
