// moe plot (results/plots.cpp, plots_peft.cpp, plot_util.h) from fixture databases.
#include "results/plot_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "results/report.h"
#include "results/store.h"
#include "tests/results/store_fixture.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

using moe::testing::expect_error;

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
        s.finish_run(id, RunStatus::kCompleted, "");
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
    s.finish_run(id, RunStatus::kCompleted, "");
  }
  expect_error([&] { plot_trainable(path("g.sqlite"), "sw", path("plots")); },
               "no fine-tuning runs (every run trains all its parameters) in sweep 'sw'");
}

}  // namespace
}  // namespace moe::results
