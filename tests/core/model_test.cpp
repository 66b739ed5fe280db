#include "core/transformer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config_error.h"

namespace moe {
namespace {

TransformerOptions small(Head head, bool causal, int64_t moe_every) {
  MoEConfig moe;
  moe.num_experts = 4;
  moe.router = {{"name", "top_k"}, {"k", 2}};
  moe.experts = {{"name", "ffn"}, {"hidden", 8}};
  return TransformerOptions()
      .vocab_size(11)
      .feature_vocab(5)
      .d_model(8)
      .layers(2)
      .heads(2)
      .max_len(6)
      .causal(causal)
      .head(head)
      .num_classes(3)
      .ffn_hidden(16)
      .moe_every(moe_every)
      .moe(moe);
}

TEST(Transformer, HeadShapes) {
  torch::manual_seed(0);
  auto tokens = torch::randint(11, {2, 6}, torch::kLong);
  auto feats = torch::randint(5, {2, 6, 2}, torch::kLong);
  EXPECT_EQ(Transformer(small(Head::kLm, true, 1))->forward(tokens).logits.sizes(),
            (std::vector<int64_t>{2, 6, 11}));
  EXPECT_EQ(Transformer(small(Head::kTag, false, 1))->forward(tokens, feats).logits.sizes(),
            (std::vector<int64_t>{2, 6, 3}));
  EXPECT_EQ(Transformer(small(Head::kCls, false, 0))->forward(tokens).logits.sizes(),
            (std::vector<int64_t>{2, 3}));
}

TEST(Transformer, CausalAttentionIgnoresTheFuture) {
  torch::manual_seed(0);
  Transformer causal(small(Head::kLm, true, 1)), bidir(small(Head::kTag, false, 1));
  auto a = torch::randint(11, {1, 6}, torch::kLong);
  auto b = a.clone();
  b[0][5] = (a[0][5].item<int64_t>() + 1) % 11;
  EXPECT_TRUE(torch::allclose(causal->forward(a).logits.narrow(1, 0, 5),
                              causal->forward(b).logits.narrow(1, 0, 5), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(bidir->forward(a).logits.narrow(1, 0, 5),
                               bidir->forward(b).logits.narrow(1, 0, 5), 1e-5, 1e-6));
}

TEST(Attention, AlibiBiasMatchesHandComputedWeights) {
  // q = k = 0 makes every score 0, so the weights are softmax_j(-slope_h * |i - j|); with
  // v = identity and o = identity the output is those weights applied to the inputs.
  Attention attn(2, 2, /*causal=*/false, /*alibi=*/true);
  {
    torch::NoGradGuard g;
    for (auto* lin : {&attn->q, &attn->k}) {
      (*lin)->weight.zero_();
      (*lin)->bias.zero_();
    }
    for (auto* lin : {&attn->v, &attn->o}) {
      (*lin)->weight.copy_(torch::eye(2));
      (*lin)->bias.zero_();
    }
  }
  auto x = torch::tensor({{{1.0f, 10.0f}, {2.0f, 20.0f}, {3.0f, 30.0f}}});
  auto y = attn->forward(x);
  // Head h reads channel h (d_head = 1); slopes 2^-4 and 2^-8.
  for (int h = 0; h < 2; ++h) {
    const double slope = std::pow(2.0, -8.0 * (h + 1) / 2);
    for (int i = 0; i < 3; ++i) {
      double z = 0, acc = 0;
      for (int j = 0; j < 3; ++j) {
        const double w = std::exp(-slope * std::abs(i - j));
        z += w;
        acc += w * x[0][j][h].item<double>();
      }
      EXPECT_NEAR(y[0][i][h].item<double>(), acc / z, 1e-5) << "head " << h << " token " << i;
    }
  }
}

TEST(Transformer, PaddingIsNeverAttendedAndNotPooled) {
  torch::manual_seed(0);
  Transformer model(small(Head::kCls, false, 1));
  auto a = torch::randint(11, {1, 6}, torch::kLong);
  auto b = a.clone();
  b[0][4] = (a[0][4].item<int64_t>() + 3) % 11;
  b[0][5] = (a[0][5].item<int64_t>() + 3) % 11;
  auto pad = torch::tensor({{false, false, false, false, true, true}});
  EXPECT_TRUE(torch::allclose(model->forward(a, {}, pad).logits, model->forward(b, {}, pad).logits,
                              1e-5, 1e-6));
}

TEST(Transformer, MoeEveryPlacesLayers) {
  EXPECT_EQ(Transformer(small(Head::kLm, true, 0))->moe_layers().size(), 0u);
  EXPECT_EQ(Transformer(small(Head::kLm, true, 1))->moe_layers().size(), 2u);
  auto opt = small(Head::kLm, true, 2);
  Transformer every2(opt);
  EXPECT_EQ(every2->moe_layers().size(), 1u);
  auto first = every2->blocks->ptr<BlockImpl>(0);
  auto second = every2->blocks->ptr<BlockImpl>(1);
  EXPECT_TRUE(first->ffn && !first->moe);    // layer 0 dense
  EXPECT_TRUE(second->moe && !second->ffn);  // layer 1 MoE
}

TEST(Transformer, ActiveParamsCountSelectedExpertsOnly) {
  Transformer dense(small(Head::kLm, true, 0));
  EXPECT_DOUBLE_EQ(dense->active_params({}), static_cast<double>(dense->total_params()));
  Transformer sparse(small(Head::kLm, true, 1));
  // Each ffn expert: w1 8x8 + b1 8 + w2 8x8 + b2 8 = 144 params; 4 experts per layer.
  const double total = static_cast<double>(sparse->total_params());
  EXPECT_DOUBLE_EQ(sparse->active_params({2.0, 1.5}), total - 2 * 4 * 144 + (2.0 + 1.5) * 144);
  EXPECT_EQ(sparse->trainable_params(), sparse->total_params());
}

TEST(Transformer, FlopsCountDenseLayers) {
  Transformer dense(small(Head::kLm, true, 0));
  // Per layer: 2*4*d^2 + 2*2*S*d + 2*(d*h + h*d); head 2*d*V. d=8, S=6, h=16, V=11.
  const double per_layer = 2 * 4 * 64 + 2 * 2 * 6 * 8 + 2 * (8 * 16 + 16 * 8);
  EXPECT_DOUBLE_EQ(dense->flops_per_token({}, 6), 2 * per_layer + 2 * 8 * 11);
}

TEST(Transformer, NonEmbeddingCountsAndFlopsByPartByHand) {
  // d = 8, V = 11, max_len 6, feature vocab 5: embeddings 11*8 + 6*8 + 5*8 = 176.
  Transformer dense(small(Head::kLm, true, 0));
  EXPECT_EQ(dense->embedding_params(), 176);
  // Per layer: LN 2*16, attention 4*(64+8) = 288, FFN 8*16+16 + 16*8+8 = 280 -> 600;
  // final LN 16; tied head: nothing of its own. 2 * 600 + 16 = 1216.
  EXPECT_EQ(dense->total_params() - dense->embedding_params(), 1216);
  // An untied tag head (8*3 + 3 = 27) counts.
  Transformer tag(small(Head::kTag, false, 0));
  EXPECT_EQ(tag->total_params() - tag->embedding_params(), 1216 + 27);
  // MoE, 2 of 4 experts of 144 params, router 8*4 (no bias): per layer 32 + 288 + 32 + 2*144.
  Transformer sparse(small(Head::kLm, true, 1));
  EXPECT_DOUBLE_EQ(sparse->active_params({2.0, 2.0}) - sparse->embedding_params(),
                   2 * (32 + 288 + 32 + 2 * 144) + 16);
  // FLOPs by part at S = 6 with 2 experts per token: attention 2*4*64 + 2*2*6*8 per layer,
  // experts 2 * (2 * (8*8 + 8*8)), router 2*8*4, head 2*8*11.
  const auto f = sparse->flops_breakdown({2.0, 2.0}, 6);
  EXPECT_DOUBLE_EQ(f.attention, 2 * (2 * 4 * 64 + 2 * 2 * 6 * 8));
  EXPECT_DOUBLE_EQ(f.ffn, 2 * 2 * (2 * (8 * 8 + 8 * 8)));
  EXPECT_DOUBLE_EQ(f.router, 2 * (2 * 8 * 4));
  EXPECT_DOUBLE_EQ(f.adapters, 0);
  EXPECT_DOUBLE_EQ(f.head, 2 * 8 * 11);
  EXPECT_DOUBLE_EQ(f.total(), sparse->flops_per_token({2.0, 2.0}, 6));
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Transformer, SharedExpertsAreAlwaysOnAndCounted) {
  torch::manual_seed(3);
  auto options = small(Head::kTag, false, 1);
  auto plain = Transformer(options);
  options.moe().shared_experts = 2;
  auto shared = Transformer(options);
  auto block = shared->blocks->ptr<BlockImpl>(0);
  ASSERT_TRUE(block->shared);
  // Two experts of the bank's width (hidden 8) held as one FFN of width 16.
  EXPECT_EQ(block->shared->up->weight.sizes(), (std::vector<int64_t>{16, 8}));
  // y = h + shared(f) + routed(f), f = LN(h), h = x + attn(LN(x)).
  block->eval();
  auto x = torch::randn({2, 6, 8});
  auto h = x + block->attn(block->ln1(x));
  auto f = block->ln2(h);
  auto expected = h + block->moe->forward(f).y + block->shared(f);
  EXPECT_TRUE(torch::allclose(block->forward(x).x, expected, 1e-5, 1e-6));
  // Counted in full: every shared parameter is active, and its FLOPs are in the FFN part.
  const int64_t extra = 2 * (8 * 16 + 16) + 2 * (16 * 8 + 8);  // two layers' up and down
  EXPECT_EQ(shared->total_params() - plain->total_params(), extra);
  EXPECT_NEAR(shared->active_params({2, 2}) - plain->active_params({2, 2}), extra, 1e-9);
  EXPECT_NEAR(shared->flops_breakdown({2, 2}, 6).ffn - plain->flops_breakdown({2, 2}, 6).ffn,
              2 * 2.0 * (8 * 16 + 16 * 8), 1e-9);
}

TEST(Transformer, SharedExpertsNeedABankWithAnFFNWidth) {
  auto options = small(Head::kTag, false, 1);
  options.moe().shared_experts = 1;
  options.moe().router = {{"name", "inf_moe"}};
  options.moe().experts = {{"name", "inf_ffn"}};
  try {
    Transformer{options};
    ADD_FAILURE() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "moe.shared_experts") << e.what();
  }
}

}  // namespace
}  // namespace moe
