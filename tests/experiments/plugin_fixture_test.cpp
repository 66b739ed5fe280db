// A plugin is one pair of files: the test-only router "test_round_robin" and task
// "test_copy" (tests/plugin_fixtures/, each one .h/.cpp pair with one registration line,
// picked up by a CMake glob) appear in `moe plugins`, pass the contract tests
// (RouterContract/test_round_robin, ExpertContract/*_by_test_round_robin run on them
// because they iterate the registry), plan with --params and run in a sweep with the
// granularity axis, through moe_fixture_cli: the moe CLI with them linked in. Nothing in
// core/, experiments/ or the other tests names them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "results/report.h"
#include "tests/test_util.h"

namespace moe {
namespace {

class PluginFixture : public ::testing::Test {
 protected:
  std::string path(const std::string& n) { return tmp_.file(n); }

  /// Runs `binary args`, output in out.txt; the exit status.
  int run(const std::string& binary, const std::string& args) {
    const std::string cmd = binary + " " + args + " > " + path("out.txt") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string output() {
    std::ifstream in(path("out.txt"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string query(const std::string& db, const std::string& sql) {
    std::ostringstream out;
    results::run_query(db, sql, results::QueryFormat::kCsv, out);
    return out.str();
  }

  moe::testing::TempDir tmp_;
};

TEST_F(PluginFixture, ATestOnlyRouterAndTaskAreListedPlannedAndRunWithGranularity) {
  ASSERT_EQ(run(MOE_FIXTURE_BINARY, "plugins"), 0) << output();
  const auto listed = output();
  EXPECT_NE(listed.find("  test_round_robin\n"), std::string::npos) << listed;
  EXPECT_NE(listed.find("experts per token: k (nominal count; default 1)"), std::string::npos);
  EXPECT_NE(listed.find("  test_copy\n"), std::string::npos);
  ASSERT_EQ(run(MOE_BINARY, "plugins"), 0);
  EXPECT_EQ(output().find("test_round_robin"), std::string::npos) << "tests only";

  std::ofstream(path("s.toml"))
      << "name = \"fixture\"\nseeds = [0]\n[base]\ndevice = \"cpu\"\nthreads = 1\n"
      << "task = { name = \"test_copy\", seq_len = 8, vocab = 5, eval_sequences = 8 }\n"
      << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 16 }\n"
      << "moe = { num_experts = 2, router = { name = \"test_round_robin\" }, experts = { name = "
         "\"ffn\", hidden = 8 } }\n"
      << "train = { steps = 4, batch_size = 4, warmup = 1, log_every = 1, eval_batch_size = 8 }\n"
      << "[grid]\ngranularity = [1, 2]\n";
  // --params: the router's nominal count (k, default 1, x 2 at granularity 2) gives the
  // active parameters; they equal top_k's with the same k (both project W_r [d, N]).
  const auto active_column = [&](const std::string& binary, const std::string& file) {
    EXPECT_EQ(run(binary, "sweep plan " + file + " --params"), 0) << output();
    std::istringstream lines(output());
    std::string line, column;
    while (std::getline(lines, line)) {
      if (line.find("granularity=") != std::string::npos) {
        column += line.substr(line.find_last_of(' ') + 1) + " ";
      }
    }
    return column;
  };
  const auto active = active_column(MOE_FIXTURE_BINARY, path("s.toml"));
  std::ifstream in(path("s.toml"));
  std::stringstream text;
  text << in.rdbuf();
  auto top_k = text.str();
  top_k.replace(top_k.find("name = \"test_round_robin\""), 25, "name = \"top_k\", k = 1");
  std::ofstream(path("top_k.toml")) << top_k;
  EXPECT_EQ(active, active_column(MOE_FIXTURE_BINARY, path("top_k.toml")));
  EXPECT_EQ(active.find("nan"), std::string::npos) << active;
  EXPECT_EQ(std::count(active.begin(), active.end(), ' '), 2) << active;

  const auto db = path("r.sqlite");
  ASSERT_EQ(run(MOE_FIXTURE_BINARY, "sweep run " + path("s.toml") + " --db " + db), 0) << output();
  EXPECT_EQ(query(db,
                  "SELECT json_extract(config, '$.moe.num_experts') AS e, "
                  "json_extract(config, '$.moe.router.k') AS k, "
                  "json_extract(config, '$.moe.experts.hidden') AS h, status FROM runs ORDER BY e"),
            "e,k,h,status\n2,,8,completed\n4,2,4,completed\n");
}

}  // namespace
}  // namespace moe
