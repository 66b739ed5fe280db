#pragma once
// The fixture of the results tests that write a database: a temporary directory and runs
// with final metrics.
#include <gtest/gtest.h>

#include <string>

#include "results/store.h"
#include "tests/test_util.h"

namespace moe::results {

class StoreTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return tmp_.file(name); }

  /// A completed run with final metrics.
  static void add_run(Store& s, const std::string& key, const std::string& method, int64_t seed,
                      double acc, double active, RunStatus status = RunStatus::kCompleted) {
    s.ensure_run({key, "sw", method, "{}", seed, "", "", ""});
    const auto id = s.start_run(key, "host", 1, "cpu", "LibTorch", "v");
    s.add_metric(id, 10, "final", "test_accuracy", acc);
    s.add_metric(id, 10, "final", "active_params", active);
    s.add_metric(id, 10, "final", "nonembed_active_params", active / 2);
    s.add_layer_stat(id, 10, "test", 0, "mean_experts", 1.5);
    s.finish_run(id, status, status == RunStatus::kFailed ? "boom" : "");
  }

  moe::testing::TempDir tmp_;
};

}  // namespace moe::results
