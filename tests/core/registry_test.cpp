#include "core/registry.h"

#include <gtest/gtest.h>

#include "core/adapters.h"
#include "core/data/task.h"
#include "core/experts.h"
#include "core/plugin_spec.h"
#include "core/router.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

// Golden list: a plugin silently dropped by the linker, or renamed, fails here.
TEST(Registry, GoldenNames) {
  EXPECT_EQ(router_registry().names(),
            (std::vector<std::string>{"adaptive", "expert_choice", "inf_moe", "remoe", "top_k",
                                      "top_p"}));
  EXPECT_EQ(expert_registry().names(), (std::vector<std::string>{"ffn", "hyper", "inf_ffn"}));
  EXPECT_EQ(adapter_registry().names(), (std::vector<std::string>{"ia3", "lora", "molora", "mov"}));
  EXPECT_EQ(task_registry().names(),
            (std::vector<std::string>{"brown_lm", "brown_pos", "facts", "mod_sum", "pointer_chase",
                                      "tokens", "wordnet_sst"}));
}

// Facts about a router live in its registration, not in name lists elsewhere: matched
// compute and the granularity axis ask the registry which routers' k sets their experts.
TEST(Registry, RouterFactsAreRegistryTags) {
  EXPECT_EQ(routers_with_tag(kKSetsExperts),
            (std::vector<std::string>{"expert_choice", "remoe", "top_k"}));
  EXPECT_TRUE(router_has_tag("top_k", kKSetsExperts));
  EXPECT_FALSE(router_has_tag("top_p", kKSetsExperts));
  EXPECT_FALSE(router_has_tag("no_such_router", kKSetsExperts));
}

TEST(Registry, DuplicateNameThrows) {
  Registry<int> r("widget");
  r.add({"a", "", {}, [] { return std::make_shared<int>(1); }});
  expect_error(
      [&] {
        r.add({"a", "", {}, [] { return std::make_shared<int>(2); }});
      },
      "widget 'a' is registered twice");
}

TEST(Registry, UnknownRouterListsKnown) {
  LayerContext ctx{8, 4, 0, 1};
  expect_error(
      [&] { make_router(PluginSpec("router", "nope", {}), ctx); },
      "unknown router 'nope'; known: [adaptive, expert_choice, inf_moe, remoe, top_k, top_p]");
  expect_error([&] { make_expert_bank(PluginSpec("experts", "nope", {}), ctx); },
               "unknown expert bank 'nope'; known: [ffn, hyper, inf_ffn]");
}

TEST(PluginSpec, UnknownKeyListsKnown) {
  LayerContext ctx{8, 4, 0, 1};
  expect_error(
      [&] {
        make_router(PluginSpec("router", "top_k", {{"kk", 2}}), ctx);
      },
      "router 'top_k': unknown parameter 'kk'; known: [bias_update_rate, center_bias, k, noise, "
      "noise_std, normalize, score, z_loss]");
}

TEST(PluginSpec, WrongTypeNamesKeyAndType) {
  PluginSpec spec("router", "top_k", {{"k", "two"}});
  expect_error([&] { spec.get<int64_t>("k", 2); },
               "router 'top_k': parameter 'k' expected an integer, got string 'two'");
}

TEST(PluginSpec, DefaultsAndBlocks) {
  PluginSpec spec("x", "y", {{"a", 1.5}, {"t", {{"b", 1}}}});
  EXPECT_DOUBLE_EQ(spec.get<double>("a", 0.0), 1.5);
  EXPECT_EQ(spec.get<int64_t>("missing", 4), 4);
  EXPECT_EQ(spec.block("t")["b"], 1);
  EXPECT_NO_THROW(spec.check_all_read());
}

// One message style for every plugin option, wherever the plugin is built from.
TEST(OptionCheck, OneMessageStyle) {
  const LayerContext ctx{8, 4, 0, 2};
  expect_error(
      [&] {
        make_router(PluginSpec("router", "top_k", {{"k", 9}}), ctx);
      },
      "router 'top_k': parameter 'k' expected 1..num_experts (4), got 9");
  expect_error(
      [&] {
        make_router(PluginSpec("router", "top_p", {{"threshold", 1.5}}), ctx);
      },
      "router 'top_p': parameter 'threshold' expected in [0, 1], got 1.5");
  expect_error(
      [&] {
        make_router(PluginSpec("router", "inf_moe", {{"weight", "soft"}}), ctx);
      },
      "router 'inf_moe': parameter 'weight' expected one of [sigmoid, softmax, "
      "straight_through, hard], got 'soft'");
  expect_error(
      [&] {
        make_expert_bank(PluginSpec("experts", "ffn", {{"activation", "tanh"}}), ctx);
      },
      "experts 'ffn': parameter 'activation' expected one of [gelu, relu, swiglu], got 'tanh'");
  expect_error(
      [&] {
        make_expert_bank(PluginSpec("experts", "inf_ffn", {{"activation", "swiglu"}}), ctx);
      },
      "experts 'inf_ffn': parameter 'activation' expected one of [gelu, relu], got 'swiglu'");
  expect_error(
      [&] {
        make_adapter(PeftOptions{"molora", {{"top_k", 11}}}, 8, 8);
      },
      "adapter 'molora': parameter 'top_k' expected 0 (soft merge) .. experts (10), "
      "got 11");
  expect_error(
      [&] {
        make_adapter(PeftOptions{"mov", {{"experts", 0}}}, 8, 8);
      },
      "adapter 'mov': parameter 'experts' expected an integer in [1, 4096], got 0");
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(3), "3");
  EXPECT_EQ(format_number(1e-5), "1e-05");
  EXPECT_EQ(format_number(30), "30");  // an integer as one, not 3e+01
  EXPECT_EQ(format_number(1e308), "1e+308");
  EXPECT_EQ(parse_activation("swiglu"), Activation::kSwiglu);
  expect_error([] { parse_activation("tanh"); }, "expected one of [gelu, relu, swiglu]");
}

}  // namespace
}  // namespace moe
