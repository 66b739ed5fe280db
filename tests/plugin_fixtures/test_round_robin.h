#pragma once
// Test-only router "test_round_robin" (compiled into the test binaries only): token t uses
// experts t mod N, ..., (t + k - 1) mod N, each weighted by its softmax probability under
// W_r x. It exists to show that a router is one .h/.cpp pair and one registration line:
// tests/experiments/plugin_fixture_test.cpp runs it through `moe plugins`, the contract
// tests, a sweep with the granularity axis and `moe sweep plan --params`.
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

class TestRoundRobinRouterImpl : public RouterImpl {
 public:
  TestRoundRobinRouterImpl(int64_t d_model, int64_t num_experts, int64_t k);
  Routing forward(const torch::Tensor& hidden) override;

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  /// Its k (default 1): the granularity axis scales it.
  static std::optional<int64_t> nominal_experts(const PluginSpec& spec);

  torch::nn::Linear gate{nullptr};

 private:
  int64_t num_experts_, k_;
};

}  // namespace moe
