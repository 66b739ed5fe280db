// moe query and moe merge (results/report.h): the by_method view, read-only queries, merged
// shards.
#include "results/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "results/compare.h"
#include "results/store.h"
#include "tests/results/store_fixture.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

using moe::testing::expect_error;

TEST_F(StoreTest, ByMethodIsMeanAndSampleStdOverSeeds) {
  {
    Store s(path("a.sqlite"));
    add_run(s, "a0", "A", 0, 0.80, 100);
    add_run(s, "a1", "A", 1, 0.90, 100);
    add_run(s, "b0", "B", 0, 0.70, 50);
    add_run(s, "c0", "C", 0, 0.60, 80);  // dominated by B? no: B is cheaper and better
    add_run(s, "f0", "A", 2, 0.10, 100, RunStatus::kFailed);  // failed runs are not averaged
  }
  std::ostringstream out;
  run_query(path("a.sqlite"),
            "SELECT method, n, test_accuracy_mean_std FROM by_method ORDER BY method",
            QueryFormat::kCsv, out);
  // A: mean 0.85, sample std sqrt(((0.05)^2 * 2) / 1) = 0.0707
  EXPECT_EQ(out.str(),
            "method,n,test_accuracy_mean_std\nA,2,0.8500 ± 0.0707\nB,1,0.7000 ± 0.0000\n"
            "C,1,0.6000 ± 0.0000\n");
  std::ostringstream front;
  run_query(path("a.sqlite"), "SELECT method FROM pareto", QueryFormat::kCsv, front);
  EXPECT_EQ(front.str(), "method\nB\nA\n");
  std::ostringstream layers;
  run_query(path("a.sqlite"), "SELECT count(*) AS n, avg(mean_experts) AS k FROM layers",
            QueryFormat::kJson, layers);
  EXPECT_NE(layers.str().find("\"n\": 5, \"k\": 1.5"), std::string::npos) << layers.str();
}

TEST_F(StoreTest, QueryRefusesWrites) {
  { Store s(path("a.sqlite")); }
  std::ostringstream out;
  expect_error([&] { run_query(path("a.sqlite"), "DELETE FROM runs", QueryFormat::kTable, out); },
               "refusing a statement that writes");
  expect_error(
      [&] { run_query(path("a.sqlite"), "SELECT 1; DROP TABLE runs", QueryFormat::kTable, out); },
      "one statement at a time");
  expect_error([&] { run_query(path("missing.sqlite"), "SELECT 1", QueryFormat::kTable, out); },
               "no such file");
  run_query(path("a.sqlite"), "SELECT 1 AS one, 'x' AS s", QueryFormat::kTable, out);
  EXPECT_EQ(out.str(), "one  s\n---  -\n1    x\n(1 row)\n");
}

TEST_F(StoreTest, MergePrefersCompletedAndNeverDuplicates) {
  {
    Store a(path("a.sqlite"));
    add_run(a, "k1", "A", 0, 0.8, 10);
    add_run(a, "k2", "A", 1, 0.1, 10, RunStatus::kFailed);
    Store b(path("b.sqlite"));
    add_run(b, "k2", "A", 1, 0.9, 10);  // completed here: beats a's failure
    add_run(b, "k3", "B", 0, 0.7, 5);
    add_run(b, "k1", "A", 0, 0.0, 10, RunStatus::kFailed);  // failed here: a's completed run stays
  }
  EXPECT_EQ(merge_databases(path("m.sqlite"), {path("a.sqlite"), path("b.sqlite")}), 4);
  EXPECT_EQ(merge_databases(path("m.sqlite"), {path("a.sqlite"), path("b.sqlite")}), 0);
  std::ostringstream out;
  run_query(path("m.sqlite"),
            "SELECT run_key, status, test_accuracy, (SELECT count(*) FROM metrics m WHERE m.run_id "
            "= final.run_id) AS rows FROM final ORDER BY run_key",
            QueryFormat::kCsv, out);
  EXPECT_EQ(out.str(),
            "run_key,status,test_accuracy,rows\nk1,completed,0.8,3\nk2,completed,0.9,3\nk3,"
            "completed,0.7,3\n");
  {
    Store c(path("c.sqlite"));
    c.db().exec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  }
  expect_error([&] { merge_databases(path("m.sqlite"), {path("c.sqlite")}); },
               "has schema version " + std::to_string(kSchemaVersion + 1) + ", expected 1.." +
                   std::to_string(kSchemaVersion));
}

// Shards of a [tune] sweep: the labels' parts travel, and the choice is made again over
// the merged runs (shard a alone would choose lr=1, the merged runs choose lr=2).
TEST_F(StoreTest, MergeOfTunedShardsChoosesAgain) {
  auto shard = [&](const std::string& file, const std::string& tune, double valid) {
    Store s(path(file));
    s.upsert_sweep("tw", "spec", "valid_loss");
    for (int64_t seed = 0; seed < 2; ++seed) {
      const std::string key = tune + std::to_string(seed);
      s.ensure_run({key, "tw", "m " + tune, "{}", seed, "m", "", tune});
      const auto id = s.start_run(key, "h", 1, "cpu", "t", "v");
      s.add_metric(id, 1, "final", "valid_loss", valid);
      s.finish_run(id, RunStatus::kCompleted, "");
    }
    record_selections(s.db(), "tw");
  };
  shard("a.sqlite", "lr=1", 2.0);
  shard("b.sqlite", "lr=2", 1.0);
  EXPECT_EQ(merge_databases(path("m.sqlite"), {path("a.sqlite"), path("b.sqlite")}), 4);
  std::ostringstream out;
  run_query(path("m.sqlite"), "SELECT preset, tune, metric, score, n, candidates FROM selections",
            QueryFormat::kCsv, out);
  EXPECT_EQ(out.str(), "preset,tune,metric,score,n,candidates\nm,lr=2,valid_loss,1,2,2\n");
}

}  // namespace
}  // namespace moe::results
