#pragma once
// Expert bank "ffn": E independent feed-forward experts held as stacked weights.
//
//   E_e(x) = act(x W1[e] + b1[e]) W2[e] + b2[e]
//   W1: [E, d, h] (or [E, d, 2h] for swiglu: silu(a) * b), W2: [E, h, d]
// Dispatch (core/grouped_ffn.h): the kept (token, slot) rows are gathered in expert order,
// each expert runs one contiguous matmul on its block, writing into one preallocated output
// (a fused autograd function: no per-expert weight slices in the graph, no cat/split), and
// the rows are weighted and summed back per token. A padded batched-matmul variant was
// measured slower on CPU (E=64/k=8: 0.84x, E=8/k=2: 0.60x of the loop) and dropped.
#include "core/experts.h"
#include "core/grouped_ffn.h"

namespace moe {

struct FFNExpertsOptions {
  FFNExpertsOptions(int64_t d_model, int64_t num_experts, int64_t hidden)
      : d_model_(d_model), num_experts_(num_experts), hidden_(hidden) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(Activation, activation) = Activation::kGelu;
  /// How the expert matmuls run (core/grouped_ffn.h); not a config key: for benchmarks.
  TORCH_ARG(ExpertMatmuls, matmuls) = ExpertMatmuls::kAuto;
};

class FFNExpertsImpl : public ExpertBankImpl {
 public:
  explicit FFNExpertsImpl(FFNExpertsOptions options);
  BankOutput forward(const torch::Tensor& hidden, const Routing& routing,
                     const DispatchPlan& plan) override;
  int64_t params_per_expert() const override;
  int64_t flops_per_expert_token() const override;
  int64_t expert_hidden() const override { return options_.hidden(); }
  Activation expert_activation() const override { return options_.activation(); }
  void upcycle(const torch::Tensor& up_w, const torch::Tensor& up_b, const torch::Tensor& down_w,
               const torch::Tensor& down_b, double noise_std) override;

  static std::shared_ptr<ExpertBankImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static BankShape shape(const PluginSpec& spec, const BankShapeContext& ctx);
  /// Each expert's hidden width: the option, or 4 d_model.
  static int64_t hidden_of(const PluginSpec& spec, int64_t d_model);
  static void refine(nlohmann::json& block, int64_t d_model, int64_t m);

  torch::Tensor w1, b1, w2, b2;

 private:
  FFNExpertsOptions options_;
};
TORCH_MODULE(FFNExperts);

}  // namespace moe
