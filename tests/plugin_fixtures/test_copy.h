#pragma once
// Test-only task "test_copy" (compiled into the test binaries only): random tokens in
// [0, vocab); the target at t >= 1 is the token at t - 1. Causal. It exists to show that a
// task is one .h/.cpp pair and one registration line (tests/experiments/
// plugin_fixture_test.cpp).
#include "plugins/tasks/synthetic.h"

namespace moe {

class TestCopyTask : public SequenceTask {
 public:
  struct Options {
    Common common;
    int64_t vocab = 8;
  };
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  explicit TestCopyTask(const Options& o);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

 protected:
  Sequence generate(std::mt19937_64& rng) const override;

 private:
  int64_t vocab_;
};

}  // namespace moe
