// moe compare (results/compare.h): runs paired by seed within each context, Holm-adjusted,
// on databases written for each case.
#include "results/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "results/store.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

class CompareTest : public ::testing::Test {
 protected:
  void add(Store& s, const std::string& method, int64_t seed, double acc, double loss) {
    const std::string key = method + std::to_string(seed);
    s.ensure_run({key, "sw", method, "{}", seed, "", "", ""});
    const auto id = s.start_run(key, "h", 1, "cpu", "t", "v");
    s.add_metric(id, 10, "final", "test_accuracy", acc);
    s.add_metric(id, 10, "final", "test_loss", loss);
    s.add_metric(id, 10, "final", "nonembed_active_params", 100);
    s.finish_run(id, RunStatus::kCompleted, "");
  }
  moe::testing::TempDir tmp_;
};

TEST_F(CompareTest, PairsBySeedAdjustsAndKnowsDirection) {
  const auto db = tmp_.file("c.sqlite");
  {
    Store s(db);
    // The sleep data again: dense = group 2 (accuracy), moe = group 1, seeds 0..9.
    const std::vector<double> g1 = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
    const std::vector<double> g2 = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
    for (int64_t i = 0; i < 10; ++i) {
      add(s, "dense", i, g2[i], -g2[i]);
      add(s, "moe", i, g1[i], -g1[i]);
    }
    add(s, "extra", 0, 1.0, 0.0);   // one seed: too few pairs
    add(s, "extra", 99, 1.0, 0.0);  // a seed the baseline lacks is not paired
  }
  auto c = compare_methods(db, "", "", "test_accuracy");
  EXPECT_EQ(c.baseline, "dense");
  ASSERT_EQ(c.rows.size(), 3u);
  EXPECT_EQ(c.rows[0].method, "dense");
  const auto& moe = c.rows[2];
  EXPECT_EQ(moe.method, "moe");
  EXPECT_EQ(moe.pairs, 10u);
  EXPECT_NEAR(moe.test.p, 0.002833, 1e-6);
  EXPECT_NEAR(moe.p_holm, 0.002833, 1e-6) << "the other comparison has no p";
  EXPECT_EQ(moe.verdict, "worse");
  EXPECT_EQ(c.rows[1].pairs, 1u);
  EXPECT_EQ(c.rows[1].verdict, "too few pairs");
  // Loss is lower-is-better: moe's loss is higher (by 1.58), so it is "worse" there too;
  // declaring accuracy lower-is-better turns the same difference into "better".
  auto l = compare_methods(db, "sw", "dense", "test_loss");
  EXPECT_FALSE(l.higher_is_better);
  EXPECT_NEAR(l.rows[2].test.diff.mean, 1.58, 1e-12);
  EXPECT_EQ(l.rows[2].verdict, "worse");
  EXPECT_EQ(compare_methods(db, "sw", "dense", "test_accuracy", "lower").rows[2].verdict, "better");
  std::ostringstream csv;
  print_comparison(c, QueryFormat::kCsv, csv);
  EXPECT_NE(csv.str().find("moe,10,0.75,"), std::string::npos) << csv.str();
  moe::testing::expect_error([&] { compare_methods(db, "", "nope", "test_accuracy"); },
                             "--baseline 'nope': no completed runs of that method in sweep 'sw'; "
                             "known: [dense, extra, moe]");
  moe::testing::expect_error([&] { compare_methods(db, "", "", "accuracy"); },
                             "--metric 'accuracy': no completed run of sweep 'sw' has it; known: "
                             "[nonembed_active_params, test_accuracy, test_loss]");
  moe::testing::expect_error([&] { compare_methods(db, "x", "", "test_accuracy"); },
                             "--sweep 'x': no completed runs");
}

TEST_F(CompareTest, LayerMetricPairsAPerLayerStatisticBySeed) {
  const auto db = tmp_.file("l.sqlite");
  const std::vector<double> g1 = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
  const std::vector<double> g2 = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
  {
    Store s(db);
    for (int64_t i = 0; i < 10; ++i) {
      for (const auto& [method, v] : {std::pair{"dense", g2[i]}, std::pair{"moe", g1[i]}}) {
        const std::string key = std::string(method) + std::to_string(i);
        s.ensure_run({key, "sw", method, "{}", i, "", "", ""});
        const auto id = s.start_run(key, "h", 1, "cpu", "t", "v");
        s.add_metric(id, 10, "final", "test_accuracy", 0.5);
        // The last test evaluation counts: layer 0 = the sleep data, layer 1 = 3 x it;
        // an earlier evaluation and the valid split are ignored.
        s.add_layer_stat(id, 5, "test", 0, "load_cv", 100.0);
        s.add_layer_stat(id, 10, "test", 0, "load_cv", v);
        s.add_layer_stat(id, 10, "test", 1, "load_cv", 3 * v);
        s.add_layer_stat(id, 10, "valid", 0, "load_cv", -100.0);
        s.finish_run(id, RunStatus::kCompleted, "");
      }
    }
  }
  {  // a dense run has no MoE layer: left out of a layer comparison, and named
    Store s(db);
    s.ensure_run({"d0", "sw", "plain", "{}", 0, "", "", ""});
    const auto id = s.start_run("d0", "h", 1, "cpu", "t", "v");
    s.add_metric(id, 10, "final", "test_accuracy", 0.5);
    s.add_layer_stat(id, 10, "test", 0, "experts_hist", 1.0, {0, "", "", 0});
    s.add_layer_stat(id, 10, "test", 0, "experts_hist", 1.0, {1, "", "", 0});
    s.finish_run(id, RunStatus::kCompleted, "");
  }
  LayerMetric first{"load_cv", "test", 0, "mean"};
  auto c = compare_methods(db, "", "dense", "", "auto", &first);
  EXPECT_FALSE(c.higher_is_better) << "load imbalance is lower-is-better";
  EXPECT_EQ(c.metric, "layer load_cv (test, layer 0)");
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.without_layer_metric, std::vector<std::string>{"plain"});
  EXPECT_NEAR(c.rows[1].test.diff.mean, -1.58, 1e-12);
  EXPECT_NEAR(c.rows[1].test.p, 0.002833, 1e-6);
  EXPECT_EQ(c.rows[1].verdict, "better");
  // Mean over layers = 2 x layer 0: the difference doubles, the p-value stays.
  LayerMetric mean{"load_cv", "test", -1, "mean"};
  auto m = compare_methods(db, "", "dense", "", "auto", &mean);
  EXPECT_NEAR(m.rows[1].test.diff.mean, -3.16, 1e-12);
  EXPECT_NEAR(m.rows[1].test.p, 0.002833, 1e-6);
  // Max over layers: 3 x the value where it is positive, the value itself otherwise.
  LayerMetric max{"load_cv", "test", -1, "max"};
  auto x = compare_methods(db, "", "dense", "", "auto", &max);
  EXPECT_NEAR(x.rows[0].value.mean,
              (3 * (1.9 + 0.8 + 1.1 + 0.1 + 4.4 + 5.5 + 1.6 + 4.6 + 3.4) - 0.1) / 10, 1e-12);
  LayerMetric unknown{"load", "test", -1, "mean"};
  moe::testing::expect_error([&] { compare_methods(db, "", "dense", "", "auto", &unknown); },
                             "--layer-metric 'load': no completed run of sweep 'sw' has it in "
                             "split 'test'; known: [load_cv]");
  LayerMetric absent{"load_cv", "test", 2, "mean"};
  moe::testing::expect_error([&] { compare_methods(db, "", "dense", "", "auto", &absent); },
                             "--layer 2: sweep 'sw' has 'load_cv' at MoE layers [0, 1]");
  moe::testing::expect_error([&] { compare_methods(db, "", "plain", "", "auto", &first); },
                             "--baseline 'plain' has no 'load_cv' rows in split 'test'");
  LayerMetric bad{"load_cv", "test", -1, "median"};
  moe::testing::expect_error([&] { compare_methods(db, "", "dense", "", "auto", &bad); },
                             "--layer-reduce: expected one of [mean, max]");
}

// A [tune] sweep with two contexts. Context task=a: dense is best at lr=2 on validation;
// moe is best at lr=2 too, but lr=2 completed on only 2 of 3 seeds (one run failed), so
// lr=1 (3 seeds) is chosen. Paired test of moe@lr=1 - dense@lr=2 on seeds 0..2: test
// accuracies (2, 3, 5) - (1, 2, 3) = (1, 1, 2): mean 4/3, sd = sqrt(1/3), t = 4 on 2 df;
// for 2 df the t CDF is closed-form, p = 1 - t / sqrt(2 + t^2) = 1 - 4/sqrt(18) =
// 0.0571909584. Context task=b is its own family (its own baseline row, Holm over 1).
TEST_F(CompareTest, TunedSweepsCompareChosenValuesWithinEachContext) {
  const auto db = tmp_.file("t.sqlite");
  {
    Store s(db);
    s.upsert_sweep("tw", "name = 'tw'", "valid_accuracy");
    auto run = [&](const std::string& preset, const std::string& ctx, const std::string& tune,
                   int64_t seed, double test, double valid, bool ok = true) {
      const std::string key = preset + ctx + tune + std::to_string(seed);
      s.ensure_run({key, "tw", preset + " " + ctx + " " + tune, "{}", seed, preset, ctx, tune});
      const auto id = s.start_run(key, "h", 1, "cpu", "t", "v");
      s.add_metric(id, 10, "final", "test_accuracy", test);
      s.add_metric(id, 10, "final", "valid_accuracy", valid);
      s.finish_run(id, ok ? RunStatus::kCompleted : RunStatus::kFailed, ok ? "" : "diverged");
    };
    const std::vector<double> dense = {1, 2, 3}, moe = {2, 3, 5};
    for (int64_t i = 0; i < 3; ++i) {
      run("dense", "task=a", "lr=1", i, 0, 0.5);
      run("dense", "task=a", "lr=2", i, dense[i], 0.6);
      run("moe", "task=a", "lr=1", i, moe[i], 0.7);
      run("moe", "task=a", "lr=2", i, 0, 0.9, i != 1);
      run("dense", "task=b", "lr=1", i, 1, 0.1);
      run("moe", "task=b", "lr=1", i, 1 + 0.1 * i, 0.1);
    }
    const auto chosen = record_selections(s.db(), "tw");
    ASSERT_EQ(chosen.size(), 4u);
  }
  auto c = compare_methods(db, "", "dense", "test_accuracy");
  EXPECT_EQ(c.tune_metric, "valid_accuracy");
  ASSERT_EQ(c.rows.size(), 4u);
  EXPECT_EQ(c.rows[0].context, "task=a");
  EXPECT_TRUE(c.rows[0].baseline);
  EXPECT_EQ(c.rows[0].tuned.tune, "lr=2");
  EXPECT_NEAR(c.rows[0].tuned.score, 0.6, 1e-12);
  const auto& m = c.rows[1];
  EXPECT_EQ(m.method, "moe");
  EXPECT_EQ(m.tuned.tune, "lr=1") << "lr=2 lost a seed";
  EXPECT_EQ(m.tuned.n, 3);
  EXPECT_EQ(m.tuned.candidates, 2);
  EXPECT_EQ(m.pairs, 3u);
  EXPECT_NEAR(m.test.diff.mean, 4.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.test.p, 0.0571909584, 1e-9);
  EXPECT_NEAR(m.p_holm, 0.0571909584, 1e-9) << "Holm within task=a: one comparison";
  EXPECT_EQ(c.rows[2].context, "task=b");
  EXPECT_TRUE(c.rows[2].baseline);
  EXPECT_EQ(c.rows[3].method, "moe");
  EXPECT_EQ(c.rows[3].pairs, 3u);
  // The choices are in the database for plain sqlite3 users.
  Db d(db, true);
  auto q = d.prepare(
      "SELECT count(*), sum(tune = 'lr=1') FROM selected WHERE context = 'task=a' AND preset = "
      "'moe'");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.get_int(0), 3);
  EXPECT_EQ(q.get_int(1), 3);
  moe::testing::expect_error([&] { compare_methods(db, "", "nope", "test_accuracy"); },
                             "--baseline 'nope': no completed runs of that method in sweep 'tw'; "
                             "known: [dense, moe]");
}

// A sweep with a [pretrain] trial (no context, its own method) and a context where the
// baseline did not run: both are left out and named; the contexts with it are compared.
TEST_F(CompareTest, ContextsWithoutTheBaselineAreLeftOutAndNamed) {
  const auto db = tmp_.file("p.sqlite");
  {
    Store s(db);
    auto run = [&](const std::string& preset, const std::string& ctx, int64_t seed, double acc) {
      const std::string key = preset + ctx + std::to_string(seed);
      s.ensure_run({key, "pw", ctx.empty() ? preset : preset + " " + ctx, "{}", seed,
                    ctx.empty() ? "" : preset, ctx, ""});
      const auto id = s.start_run(key, "h", 1, "cpu", "t", "v");
      s.add_metric(id, 10, "final", "test_accuracy", acc);
      s.finish_run(id, RunStatus::kCompleted, "");
    };
    run("pretrain", "", 0, 0.2);
    for (int64_t i = 0; i < 3; ++i) {
      run("ia3", "task=a", i, 0.5 + 0.01 * i);
      run("mov", "task=a", i, 0.6 + 0.02 * i);
      run("mov", "task=b", i, 0.7);
    }
  }
  auto c = compare_methods(db, "", "ia3", "test_accuracy");
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.rows[0].context, "task=a");
  EXPECT_TRUE(c.rows[0].baseline);
  EXPECT_EQ(c.rows[1].method, "mov");
  EXPECT_EQ(c.rows[1].pairs, 3u);
  EXPECT_NEAR(c.rows[1].test.diff.mean, 0.11, 1e-12);
  EXPECT_EQ(c.skipped, (std::vector<std::string>{"(no context): [pretrain]", "task=b: [mov]"}));
  std::ostringstream table;
  print_comparison(c, QueryFormat::kTable, table);
  EXPECT_NE(table.str().find("not compared (no 'ia3' runs there): [(no context): [pretrain], "
                             "task=b: [mov]]"),
            std::string::npos)
      << table.str();
  moe::testing::expect_error([&] { compare_methods(db, "", "lora", "test_accuracy"); },
                             "--baseline 'lora': no completed runs of that method in sweep 'pw'; "
                             "known: [ia3, mov, pretrain]");
}

}  // namespace
}  // namespace moe::results
