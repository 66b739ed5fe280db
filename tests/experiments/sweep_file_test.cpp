// The sweep file reader alone (experiments/sweep_file.h): what it reads, before anything
// is expanded; sweep_spec_test covers the planner over it.
#include "experiments/sweep_file.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/config_error.h"
#include "tests/test_util.h"

namespace moe::sweep_file {
namespace {

TEST(SweepFile, ReadsHeaderBaseAndAxesOnce) {
  moe::testing::TempDir dir;
  const auto path = dir.file("s.toml");
  std::ofstream(path) << "name = \"s\"\nseeds = [3, 4]\n[base]\n\"train.steps\" = 5\n"
                      << "model = { d_model = 16 }\n[presets.a]\n\"moe.num_experts\" = 2\n"
                      << "[grid]\nmethod = [\"a\"]\n\"train.lr\" = [0.1, 0.2]\n";
  SweepPlan plan;
  const auto src = read_sweep_file(path, plan);
  EXPECT_EQ(plan.path, path);
  EXPECT_NE(plan.spec_text.find("name = \"s\""), std::string::npos);
  SweepSpec spec;
  read_header(src, plan, spec);
  EXPECT_EQ(plan.name, "s");
  EXPECT_EQ(spec.seeds, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(read_base(src),
            (nlohmann::json{{"train", {{"steps", 5}}}, {"model", {{"d_model", 16}}}}));
  read_axes(src, plan, spec);
  ASSERT_EQ(spec.grid.size(), 2u);
  EXPECT_EQ(spec.presets.at("a"), (nlohmann::json{{"moe", {{"num_experts", 2}}}}));
}

TEST(SweepFile, AnUnknownTopLevelKeyNamesFileAndLine) {
  moe::testing::TempDir dir;
  const auto path = dir.file("u.toml");
  std::ofstream(path) << "name = \"u\"\nseeds = [0]\n\ngird = { x = [1] }\n";
  SweepPlan plan;
  try {
    read_sweep_file(path, plan);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.line(), 4);
    EXPECT_NE(std::string(e.what()).find("unknown key 'gird'; known: ["), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moe::sweep_file
