#include "results/store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "results/compare.h"
#include "results/plot_util.h"
#include "results/report.h"
#include "results/schema.sql.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

using moe::testing::expect_error;

class StoreTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return tmp_.file(name); }

  /// A completed run with final metrics.
  static void add_run(Store& s, const std::string& key, const std::string& method, int64_t seed,
                      double acc, double active, const std::string& status = "completed") {
    s.ensure_run({key, "sw", method, "{}", seed, "", "", ""});
    const auto id = s.start_run(key, "host", 1, "cpu", "LibTorch", "v");
    s.add_metric(id, 10, "final", "test_accuracy", acc);
    s.add_metric(id, 10, "final", "active_params", active);
    s.add_metric(id, 10, "final", "nonembed_active_params", active / 2);
    s.add_layer_stat(id, 10, "test", 0, "mean_experts", 1.5);
    s.finish_run(id, status, status == "failed" ? "boom" : "");
  }

  moe::testing::TempDir tmp_;
};

TEST_F(StoreTest, NonFiniteValuesRoundTrip) {
  Store s(path("a.sqlite"));
  s.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  s.add_metric(id, 1, "train", "nan", NAN);
  s.add_metric(id, 1, "train", "inf", INFINITY);
  s.add_metric(id, 1, "train", "ninf", -INFINITY);
  s.add_metric(id, 1, "train", "one", 1.0);
  s.flush();
  auto q = s.db().prepare("SELECT name, value, value_text FROM metrics ORDER BY name");
  std::map<std::string, double> got;
  while (q.step()) got[q.get_text(0)] = decode_value(q, 1, 2);
  EXPECT_TRUE(std::isnan(got["nan"]));
  EXPECT_EQ(got["inf"], INFINITY);
  EXPECT_EQ(got["ninf"], -INFINITY);
  EXPECT_EQ(got["one"], 1.0);
}

TEST_F(StoreTest, RunLifecycleAndSchemaVersion) {
  Store s(path("a.sqlite"));
  s.ensure_run({"k", "sw", "m", "{\"seed\":3}", 3, "", "", ""});
  s.ensure_run({"k", "sw", "other", "{}", 9, "", "", ""});  // existing key: only the label follows
  auto r = s.find_run("k");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, "queued");
  EXPECT_EQ(r->method, "other");
  EXPECT_EQ(r->seed, 3);
  EXPECT_EQ(r->config_json, "{\"seed\":3}");
  s.ensure_run({"k", "sw", "m", "{}", 3, "", "", ""});
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  EXPECT_EQ(s.find_run("k")->status, "running");
  EXPECT_EQ(s.find_run("k")->attempts, 1);
  s.finish_run(id, "failed", "non-finite training loss");
  EXPECT_EQ(s.find_run("k")->error, "non-finite training loss");
  {
    auto v = s.db().prepare("PRAGMA user_version");
    v.step();
    EXPECT_EQ(v.get_int(0), kSchemaVersion);
  }
  s.db().exec("PRAGMA user_version = 99");
  expect_error([&] { Store again(path("a.sqlite")); }, "schema version 99 is newer");
}

TEST_F(StoreTest, OlderFilesMigrateKeepingTheirRows) {
  // A version-2 file as moe-lab wrote it: the version-1 tables (no attempt column).
  {
    Db old(path("old.sqlite"), false);
    old.exec(kTablesV1);
    old.exec(
        "INSERT INTO runs(id, run_key, sweep, method, seed, config, status, attempts) VALUES "
        "(1, 'k1', 'sw', 'm', 0, '{}', 'completed', 2), (2, 'k2', 'sw', 'm', 1, '{}', 'queued', 0);"
        "INSERT INTO metrics(run_id, step, split, name, value) VALUES "
        "(1, 5, 'final', 'test_accuracy', 0.75), (1, 5, 'final', 'active_params', 10);"
        "INSERT INTO layer_stats(run_id, step, split, layer, name, value) VALUES "
        "(1, 5, 'test', 0, 'mean_experts', 2);"
        "PRAGMA user_version = 2");
  }
  // Readers never migrate; they say how.
  expect_error([&] { compare_methods(path("old.sqlite"), "", "", "test_accuracy"); },
               "has schema version 2 of 5; readers never migrate");
  Store s(path("old.sqlite"));
  auto v = s.db().prepare("PRAGMA user_version");
  v.step();
  EXPECT_EQ(v.get_int(0), kSchemaVersion);
  std::ostringstream out;
  run_query(path("old.sqlite"),
            "SELECT (SELECT min(attempt) || '/' || count(*) FROM metrics) AS m, "
            "(SELECT attempt FROM layer_stats) AS l, "
            "(SELECT test_accuracy FROM final WHERE run_key = 'k1') AS acc, "
            "(SELECT mean_experts FROM layers) AS k, "
            "(SELECT count(*) FROM sqlite_master WHERE type = 'view') AS views",
            QueryFormat::kCsv, out);
  EXPECT_EQ(out.str(), "m,l,acc,k,views\n2/2,2,0.75,2,7\n");
}

TEST_F(StoreTest, ClaimsAreAtomicAndAttemptsNeverMix) {
  Store a(path("c.sqlite")), b(path("c.sqlite"));  // two processes' connections
  a.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  auto queued = [](const RunRow& r) { return r.status == "queued"; };
  const auto ca = a.claim_run("k", "h", 11, queued);
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca->attempt, 1);
  EXPECT_FALSE(b.claim_run("k", "h", 12, queued)) << "the run is no longer queued";
  const auto id = a.start_attempt("k", 1, "h", 13, "cpu", "t", "v");
  EXPECT_EQ(a.find_run("k")->pid, 13);
  a.add_metric(id, 1, "train", "loss", 1.0);
  a.flush();
  // b takes the run over (as for a stale heartbeat): a can write nothing more; a's rows
  // stay until b's worker says which of them its continuation keeps.
  const auto cb = b.claim_run("k", "h2", 14, [](const RunRow&) { return true; });
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->attempt, 2);
  auto count = [&] {
    auto q = b.db().prepare("SELECT count(*) FROM metrics");
    q.step();
    return q.get_int(0);
  };
  EXPECT_EQ(count(), 1);
  a.add_metric(id, 2, "train", "loss", 2.0);
  expect_error([&] { a.flush(); }, "attempt 1 is no longer current");
  EXPECT_FALSE(a.heartbeat(id, 1));
  EXPECT_FALSE(a.finish_run(id, "completed", ""));
  expect_error([&] { a.start_attempt("k", 1, "h", 15, "cpu", "t", "v"); },
               "attempt 1 is not current (the run is running at attempt 2)");
  EXPECT_EQ(b.start_attempt("k", 2, "h2", 16, "cpu", "t", "v"), id);
  expect_error([&] { a.keep_rows_through(id, -1, false); }, "attempt 1 is no longer current");
  b.keep_rows_through(id, -1, false);  // a fresh start
  EXPECT_EQ(count(), 0);
  b.add_metric(id, 1, "train", "loss", 3.0);
  EXPECT_TRUE(b.heartbeat(id, 2));
  EXPECT_TRUE(b.finish_run(id, "completed", ""));
  EXPECT_EQ(count(), 1);
  auto q = b.db().prepare("SELECT attempt, value FROM metrics");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.get_int(0), 2);
  EXPECT_EQ(q.get_double(1), 3.0);
  EXPECT_EQ(b.find_run("k")->status, "completed");
  EXPECT_EQ(b.find_run("k")->attempts, 2);
}

// A continuation from a checkpoint keeps the rows up to its step as its own attempt's and
// deletes the rest; at the last step, the evaluations written after the checkpoint go too.
TEST_F(StoreTest, KeepRowsThroughKeepsTheCheckpointsRowsAsTheNewAttempts) {
  Store s(path("k.sqlite"));
  s.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  auto rows = [&] {
    std::string out;
    auto q = s.db().prepare(
        "SELECT step || split || name || '@' || attempt FROM metrics ORDER BY step, split, name");
    while (q.step()) out += q.get_text(0) + " ";
    auto l =
        s.db().prepare("SELECT step || split || '@' || attempt FROM layer_stats ORDER BY step");
    while (l.step()) out += "L" + l.get_text(0) + " ";
    return out;
  };
  const auto write = [&](int64_t id) {
    for (int64_t step = 1; step <= 4; ++step) {
      s.add_metric(id, step, "train", "loss", 1.0);
      s.add_layer_stat(id, step, "train", 0, "mean_experts", 1.0);
    }
    s.add_metric(id, 2, "valid", "loss", 1.0);
    s.add_metric(id, 2, "resume", "from_step", 2.0);
    for (const char* split : {"valid", "test", "final"}) s.add_metric(id, 4, split, "loss", 1.0);
    s.flush();
  };
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  write(id);
  s.claim_run("k", "h", 2, [](const RunRow&) { return true; });
  s.start_attempt("k", 2, "h", 2, "cpu", "t", "v");
  s.keep_rows_through(id, 2, false);  // a checkpoint at step 2 of 4
  EXPECT_EQ(rows(), "1trainloss@2 2trainloss@2 2validloss@2 L1train@2 L2train@2 ");
  write(id);  // (duplicates of steps 1-2 only to test the next call)
  s.claim_run("k", "h", 3, [](const RunRow&) { return true; });
  s.start_attempt("k", 3, "h", 3, "cpu", "t", "v");
  s.keep_rows_through(id, 4, true);  // the checkpoint at the last step: evaluations redone
  EXPECT_EQ(rows().find("4validloss"), std::string::npos) << rows();
  EXPECT_EQ(rows().find("4finalloss"), std::string::npos) << rows();
  EXPECT_NE(rows().find("4trainloss@3"), std::string::npos) << rows();
  EXPECT_NE(rows().find("L4train@3"), std::string::npos) << rows();
}

TEST_F(StoreTest, ByMethodIsMeanAndSampleStdOverSeeds) {
  {
    Store s(path("a.sqlite"));
    add_run(s, "a0", "A", 0, 0.80, 100);
    add_run(s, "a1", "A", 1, 0.90, 100);
    add_run(s, "b0", "B", 0, 0.70, 50);
    add_run(s, "c0", "C", 0, 0.60, 80);             // dominated by B? no: B is cheaper and better
    add_run(s, "f0", "A", 2, 0.10, 100, "failed");  // failed runs are not averaged
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
    add_run(a, "k2", "A", 1, 0.1, 10, "failed");
    Store b(path("b.sqlite"));
    add_run(b, "k2", "A", 1, 0.9, 10);  // completed here: beats a's failure
    add_run(b, "k3", "B", 0, 0.7, 5);
    add_run(b, "k1", "A", 0, 0.0, 10, "failed");  // failed here: a's completed run stays
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
    c.db().exec("PRAGMA user_version = 6");
  }
  expect_error([&] { merge_databases(path("m.sqlite"), {path("c.sqlite")}); },
               "has schema version 6, expected 1..5");
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
      s.finish_run(id, "completed", "");
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

TEST_F(StoreTest, ParetoPlotFromAFixtureDatabase) {
  {
    Store s(path("a.sqlite"));
    add_run(s, "a0", "A", 0, 0.80, 100);
    add_run(s, "b0", "B", 0, 0.70, 50);
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    expect_error([&] { plot_pareto(path("a.sqlite"), "", path("plots")); },
                 "gnuplot not found; install it with: apt-get install gnuplot-nox");
    return;
  }
  const auto png = plot_pareto(path("a.sqlite"), "sw", path("plots"));
  EXPECT_GT(std::filesystem::file_size(png), 1000u);
  EXPECT_GT(std::filesystem::file_size(path("plots/pareto.svg")), 1000u);
  std::ifstream dat(path("plots/pareto.dat"));
  std::string all((std::istreambuf_iterator<char>(dat)), {});
  EXPECT_NE(all.find("\"A\"\t50\t0.8\t0\t1"), std::string::npos) << "non-embedding x" << all;
  plot_pareto(path("a.sqlite"), "sw", path("plots"), "active_params", "std");
  std::ifstream dat2(path("plots/pareto.dat"));
  std::string all2((std::istreambuf_iterator<char>(dat2)), {});
  EXPECT_NE(all2.find("\"A\"\t100\t0.8"), std::string::npos) << all2;
  expect_error([&] { plot_pareto(path("a.sqlite"), "nope", path("plots")); },
               "no completed runs with nonembed_active_params in sweep 'nope'");
  expect_error(
      [&] { plot_pareto(path("a.sqlite"), "", path("plots"), "params"); },
      "--x 'params': expected one of [nonembed_active_params, active_params, flops_per_token]");
}

TEST(PlotUtil, TicLabelsAreLiteral) {
  // Level names such as facts' "top 25% facts" are gnuplot formats unless escaped.
  EXPECT_EQ(detail::tic_label("top 25% it's"), "top 25%% it''s");
}

TEST_F(StoreTest, TrainablePlotHasAPanelPerTask) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  {
    Store s(path("f.sqlite"));
    int i = 0;
    for (const char* m : {"full task=a", "mov task=a", "mov task=b", "pretrain"}) {
      for (int seed = 0; seed < 2; ++seed) {
        const std::string key = "k" + std::to_string(i++);
        s.ensure_run({key, "sw", m, "{}", seed, "", "", ""});
        const auto id = s.start_run(key, "host", 1, "cpu", "LibTorch", "v");
        s.add_metric(id, 10, "final", "test_accuracy", 0.5 + 0.1 * seed);
        s.add_metric(id, 10, "final", "trainable_percent", m[0] == 'f' ? 100.0 : 2.0);
        s.flush();
        s.finish_run(id, "completed", "");
      }
    }
  }
  plot_trainable(path("f.sqlite"), "", path("plots"));
  std::ifstream dat(path("plots/trainable.dat"));
  std::string all((std::istreambuf_iterator<char>(dat)), {});
  // Two panels (task=a: full and mov; task=b: mov), mean 0.55 and std 0.0707; no pretrain.
  EXPECT_NE(all.find("# task=a\n\"full\"\t100\t0.55\t0.0707"), std::string::npos) << all;
  EXPECT_NE(all.find("# task=b\n\"mov\"\t2\t0.55"), std::string::npos) << all;
  EXPECT_EQ(all.find("pretrain"), std::string::npos) << all;
  // A sweep where every run trains everything has nothing to plot.
  {
    Store s(path("g.sqlite"));
    add_run(s, "x", "dense", 0, 0.5, 10);
    s.ensure_run({"y", "sw", "switch", "{}", 0, "", "", ""});
    const auto id = s.start_run("y", "host", 1, "cpu", "LibTorch", "v");
    s.add_metric(id, 10, "final", "test_accuracy", 0.6);
    s.add_metric(id, 10, "final", "trainable_percent", 100.0);
    s.finish_run(id, "completed", "");
  }
  expect_error([&] { plot_trainable(path("g.sqlite"), "sw", path("plots")); },
               "no fine-tuning runs (every run trains all its parameters) in sweep 'sw'");
}

}  // namespace
}  // namespace moe::results
