#pragma once
// Expert bank "inf_ffn": the ∞-MoE large FFN (methods.md §3), routed by "inf_moe".
//
//   one FFN of hidden width D = D_mult * d_model, cut into G = num_experts contiguous
//   blocks of b = D / G hidden units (G = D gives the per-unit mask of methods.md):
//   W1 [G, d, b], b1 [G, b], W2 [G, b, d], b2 [d] (nn.Linear init of the D-wide FFN)
//   y[t] = sum over blocks g of a[t,g] * (act(x W1[g] + b1[g]) W2[g]) + b2
//        = W2^T (a_t (x) act(W1^T x + b1)) + b2       (a repeated over each block's units)
// a = the router's weights on its indices (∞-MoE: the averaged mask of K samples, on the
// union of their kept blocks), so K samples cost one pass over the union.
// compute = "gather" (default): only the union's blocks run: the (token, block) rows are
//   gathered in block order and each block is one matmul (core/grouped_ffn.h);
// compute = "dense": the masked dense form, the whole D-wide FFN for every token times
//   the expanded mask (the reference and the benchmark's baseline; ignores capacity).
// Per expert (block): params b (2d + 1), FLOPs 4 d b; b2 counts as an extra active param.
// Statistics (per-token counts, summed over layers): "union_units" (mean kept hidden units
// per token, the union) and "nominal_units" (Routing::nominal_experts * b: K * n * b when
// the router is inf_moe).
#include "core/experts.h"

namespace moe {

struct InfFFNExpertsOptions {
  InfFFNExpertsOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, D_mult) = 8;
  TORCH_ARG(Activation, activation) = Activation::kGelu;  ///< gelu | relu
  TORCH_ARG(std::string, compute) = "gather";             ///< gather | dense
};

class InfFFNExpertsImpl : public ExpertBankImpl {
 public:
  explicit InfFFNExpertsImpl(InfFFNExpertsOptions options);
  BankOutput forward(const torch::Tensor& hidden, const Routing& routing,
                     const DispatchPlan& plan) override;
  int64_t params_per_expert() const override;
  int64_t flops_per_expert_token() const override;
  double extra_active_params() const override { return static_cast<double>(b2.numel()); }

  int64_t block() const { return block_; }
  void set_compute(const std::string& mode);

  static std::shared_ptr<ExpertBankImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static BankShape shape(const PluginSpec& spec, const BankShapeContext& ctx);
  static void refine(nlohmann::json& block, int64_t d_model, int64_t m);

  torch::Tensor w1, b1, w2, b2;

 private:
  torch::Tensor dense_forward(const torch::Tensor& hidden, const Routing& routing);

  InfFFNExpertsOptions options_;
  int64_t block_ = 0;
};
TORCH_MODULE(InfFFNExperts);

}  // namespace moe
