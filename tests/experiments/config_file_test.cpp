#include "experiments/config_file.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

TEST(ConfigFile, TomlBecomesJson) {
  auto j = parse_toml("seed = 3\n[moe]\nrouter = { name = \"top_k\", k = 1 }\n[train]\nlr = 1e-3\n",
                      "t.toml");
  EXPECT_EQ(j["seed"], 3);
  EXPECT_EQ(j["moe"]["router"]["k"], 1);
  EXPECT_DOUBLE_EQ(j["train"]["lr"].get<double>(), 1e-3);
}

TEST(ConfigFile, SyntaxErrorNamesFileAndLine) {
  expect_error([] { parse_toml("a = 1\nb = = 2\n", "bad.toml"); }, "bad.toml:2:");
  expect_error([] { load_toml_file("/nonexistent/x.toml"); }, "cannot read the file");
}

TEST(ConfigFile, OverridesAreTyped) {
  nlohmann::json j = {{"train", {{"steps", 10}}}};
  apply_override(j, "train.steps=200");
  apply_override(j, "train.lr=2e-3");
  apply_override(j, "moe.router.name=top_k");
  apply_override(j, "train.resume=true");
  EXPECT_EQ(j["train"]["steps"], 200);
  EXPECT_DOUBLE_EQ(j["train"]["lr"].get<double>(), 2e-3);
  EXPECT_EQ(j["moe"]["router"]["name"], "top_k");
  EXPECT_EQ(j["train"]["resume"], true);
  expect_error([&] { apply_override(j, "nokey"); }, "expected key=value");
  expect_error([&] { apply_override(j, "train.steps.x=1"); }, "'train.steps' is a value");
}

TEST(ConfigFile, CheckedInConfigsParse) {
  const std::string path = std::string(MOE_SOURCE_DIR) + "/experiments/configs/brown_pos_top2.toml";
  EXPECT_NO_THROW(ExperimentConfig::from_json(load_config(path, {"moe.router.k=1"}), path));
}

}  // namespace
}  // namespace moe
