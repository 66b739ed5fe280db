#include "tests/plugin_fixtures/test_round_robin.h"

#include <torch/torch.h>

namespace moe {

TestRoundRobinRouterImpl::TestRoundRobinRouterImpl(int64_t d_model, int64_t num_experts, int64_t k)
    : num_experts_(num_experts), k_(k) {
  OptionCheck("router", "test_round_robin")
      .expect(k >= 1 && k <= num_experts, "k", "1..num_experts", static_cast<double>(k));
  gate = register_module("gate", make_router_gate(d_model, num_experts));
}

Routing TestRoundRobinRouterImpl::forward(const torch::Tensor& hidden) {
  const int64_t t = hidden.size(0);
  Routing r;
  r.probs = torch::softmax(router_logits(gate, hidden), -1);
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(hidden.device());
  r.indices = (torch::arange(t, opts).unsqueeze(1) + torch::arange(k_, opts).unsqueeze(0))
                  .remainder(num_experts_);
  r.weights = r.probs.gather(1, r.indices);
  return r;
}

std::shared_ptr<RouterImpl> TestRoundRobinRouterImpl::create(const PluginSpec& spec,
                                                             const LayerContext& ctx) {
  return std::make_shared<TestRoundRobinRouterImpl>(ctx.d_model, ctx.num_experts,
                                                    *nominal_experts(spec));
}

std::optional<int64_t> TestRoundRobinRouterImpl::nominal_experts(const PluginSpec& spec) {
  return spec.get<int64_t>("k", 1);
}

std::vector<ParamDoc> TestRoundRobinRouterImpl::param_docs() {
  return {{"k", "1", "experts per token, taken in turn",
           Range::ints(1, kMaxSize, "<= moe.num_experts")}};
}

MOE_REGISTER_ROUTER("test_round_robin", TestRoundRobinRouterImpl,
                    "test only: token t uses experts t mod N .. (t + k - 1) mod N");

}  // namespace moe
