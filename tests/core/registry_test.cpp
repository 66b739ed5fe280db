#include "core/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/adapters.h"
#include "core/data/task.h"
#include "core/experts.h"
#include "core/plugin_spec.h"
#include "core/router.h"
#include "core/train/config.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

/// The names without the test-only plugins (tests/plugin_fixtures/, named test_*).
std::vector<std::string> shipped(std::vector<std::string> names) {
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) { return n.rfind("test_", 0) == 0; }),
              names.end());
  return names;
}

// Golden list: a plugin silently dropped by the linker, or renamed, fails here.
TEST(Registry, GoldenNames) {
  EXPECT_EQ(shipped(router_registry().names()),
            (std::vector<std::string>{"adaptive", "expert_choice", "inf_moe", "remoe", "top_k",
                                      "top_p"}));
  EXPECT_EQ(expert_registry().names(), (std::vector<std::string>{"ffn", "hyper", "inf_ffn"}));
  EXPECT_EQ(adapter_registry().names(), (std::vector<std::string>{"ia3", "lora", "molora", "mov"}));
  EXPECT_EQ(shipped(task_registry().names()),
            (std::vector<std::string>{"brown_lm", "brown_pos", "facts", "mod_sum", "pointer_chase",
                                      "tokens", "wordnet_sst"}));
}

// Facts about a plugin live in its registration, not in name lists elsewhere: matched
// compute, the memory estimate and the granularity axis ask the registry.
TEST(Registry, RouterFactsAreInTheRegistry) {
  EXPECT_EQ(shipped(routers_with_nominal_experts()),
            (std::vector<std::string>{"expert_choice", "remoe", "top_k"}));
  EXPECT_EQ(nominal_experts({{"name", "top_k"}}), 2) << "its default k";
  EXPECT_EQ(nominal_experts({{"name", "remoe"}, {"k", 3}}), 3);
  EXPECT_FALSE(nominal_experts({{"name", "top_p"}}).has_value()) << "only measured";
  EXPECT_THROW(nominal_experts({{"name", "no_such_router"}}), std::invalid_argument);
  // Granularity: k x m; top_k keeps a k = 1 base's unit gate.
  nlohmann::json r = {{"name", "top_k"}, {"k", 1}};
  router_registry().entry("top_k").facts.refine(r, 1, 4);
  EXPECT_EQ(r, (nlohmann::json{{"name", "top_k"}, {"k", 4}, {"normalize", false}}));
  nlohmann::json ec = {{"name", "expert_choice"}};
  router_registry().entry("expert_choice").facts.refine(ec, 2, 2);
  EXPECT_EQ(ec, (nlohmann::json{{"name", "expert_choice"}, {"k", 4}}));
}

TEST(Registry, LossCoefficientsAreTheRoutersDeclaredAuxLosses) {
  // The [loss] keys and their defaults come from the registry (config.h names none).
  std::map<std::string, double> defaults;
  for (const auto& t : loss_terms()) defaults[t.name] = t.coefficient;
  EXPECT_EQ(
      defaults,
      (std::map<std::string, double>{
          {"balance", 1e-2}, {"balance_seq", 0.0}, {"entropy", 1e-4}, {"l1", 1.0}, {"z", 1e-3}}));
  EXPECT_EQ(ExperimentConfig().loss_coefs, defaults);
  const auto z = std::find_if(loss_terms().begin(), loss_terms().end(),
                              [](const AuxLossDoc& d) { return d.name == "z"; });
  ASSERT_NE(z, loss_terms().end());
  EXPECT_NE(z->help.find("; routers: expert_choice, top_k"), std::string::npos) << z->help;

  // A new router's loss is a new key; one name with two defaults is refused.
  RouterRegistry r("router");
  const auto add = [&](const std::string& name, std::vector<AuxLossDoc> (*losses)()) {
    RouterFacts facts;
    facts.aux_losses = losses;
    r.add({name, "", {}, nullptr, {}, facts});
  };
  add("a", [] { return std::vector<AuxLossDoc>{{"mine", 0.5, "a loss"}}; });
  add("b", [] { return std::vector<AuxLossDoc>{{"mine", 0.5, "a loss"}}; });
  const auto terms = loss_terms_of(r);
  ASSERT_EQ(terms.size(), 2u);
  EXPECT_EQ(terms[1].name, "mine");
  EXPECT_EQ(terms[1].help, "a loss; routers: a, b");
  add("c", [] { return std::vector<AuxLossDoc>{{"mine", 2.0, "a loss"}}; });
  expect_error([&] { loss_terms_of(r); },
               "router 'c': aux loss 'mine' registered with default 2, another router with 0.5");
}

TEST(Registry, BankFactsAreInTheRegistry) {
  BankShapeContext ctx;
  ctx.d_model = 16;
  ctx.num_experts = 4;
  ctx.num_layers = 2;
  const auto ffn = bank_shape({{"name", "ffn"}}, ctx);
  EXPECT_EQ(ffn.per_expert, 64) << "4 d_model";
  EXPECT_EQ(ffn.units, 256);
  const auto inf = bank_shape({{"name", "inf_ffn"}, {"D", 2}}, ctx);
  EXPECT_EQ(inf.units, 32) << "D d_model";
  EXPECT_EQ(inf.per_expert, 8);
  // HyperMoE: its host's experts plus its own parameters.
  const auto hyper =
      bank_shape({{"name", "hyper"}, {"inner", {{"name", "ffn"}, {"hidden", 8}}}}, ctx);
  EXPECT_EQ(hyper.per_expert, 8);
  EXPECT_GT(hyper.layer_params, 0);
  EXPECT_GT(hyper.model_params, 0);
  // Granularity: the FFN experts' width / m; HyperMoE's host experts, not its own MLP.
  nlohmann::json b = {{"name", "ffn"}, {"hidden", 30}};
  refine_bank(b, 16, 2);
  EXPECT_EQ(b["hidden"], 15);
  EXPECT_THROW(refine_bank(b, 16, 2), std::invalid_argument) << "15 / 2";
  nlohmann::json h = {{"name", "hyper"}, {"hidden", 12}};
  refine_bank(h, 16, 2);
  EXPECT_EQ(h,
            (nlohmann::json{
                {"name", "hyper"}, {"hidden", 12}, {"inner", {{"name", "ffn"}, {"hidden", 32}}}}));
}

TEST(Registry, EachFamilysDefaultIsDeclaredByItsPlugin) {
  // What a config gets without naming a plugin: declared beside the plugin's registration
  // (MOE_DEFAULT_PLUGIN), so config.h and transformer.h name none.
  const ExperimentConfig c;
  EXPECT_EQ(c.task["name"], task_registry().default_name());
  EXPECT_EQ(c.moe.router["name"], router_registry().default_name());
  EXPECT_EQ(c.moe.experts["name"], expert_registry().default_name());
  EXPECT_TRUE(task_registry().has(task_registry().default_name()));
  EXPECT_TRUE(router_registry().has(router_registry().default_name()));
  EXPECT_TRUE(expert_registry().has(expert_registry().default_name()));
  Registry<int> r("widget");
  expect_error([&] { r.default_name(); }, "widget: no default registered");
  r.set_default("a");
  r.set_default("a");  // the same again: fine
  expect_error([&] { r.set_default("b"); }, "widget: two defaults, 'a' and 'b'");
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
  expect_error([&] { make_router(PluginSpec("router", "nope", {}), ctx); },
               // (up to where the test-only router of tests/plugin_fixtures/ sorts in)
               "unknown router 'nope'; known: [adaptive, expert_choice, inf_moe, remoe, ");
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
