#pragma once
// Router "remoe": ReLU routing (ReMoE, Wang et al., arXiv 2412.14711).
//
//   logits = W_r x (W_r: [d, N], no bias, N(0, 0.02)), in float32
//   w = ReLU(logits): expert e is used iff w_e > 0, with weight w_e (no top-k, no
//   renormalisation); a token may use 0..N experts.
// Sparsity is steered by an L1 penalty with an adaptive coefficient lambda (a buffer, saved
// in checkpoints): aux loss "l1" = lambda * mean_t sum_e c_e w_te, where c_e = 1, or with
// balanced = true (the paper's load-balanced form) c_e = f_e = N / (k T) * #{t: w_te > 0}
// (detached; 1 at perfect balance). After each optimizer step, with the step's sparsity
// S = 1 - selected / (T N) and the target 1 - k / N: lambda *= alpha if S < target, else
// lambda /= alpha (also at S = target, as the reference does). l1_scope = "model" (the
// reference's default): S is the mean of every MoE layer's sparsity, so all layers hold
// the same lambda (one copy per layer, updated identically) and may use different
// numbers of experts; l1_scope = "layer": each layer steers its own lambda from its own
// sparsity. The trainer multiplies "l1" by loss.l1 (default 1).
// probs (diagnostics: entropy, saturation) are softmax(logits).
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

struct ReMoERouterOptions {
  ReMoERouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, k) = 2;  ///< target active experts: sparsity target 1 - k / N
  TORCH_ARG(double, alpha) = 1.2;
  TORCH_ARG(double, l1_init) = 1e-8;  ///< lambda at step 0
  TORCH_ARG(bool, balanced) = true;
  TORCH_ARG(std::string, l1_scope) = "model";  ///< model | layer
};

class ReMoERouterImpl : public RouterImpl {
 public:
  explicit ReMoERouterImpl(ReMoERouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;
  /// lambda *= alpha if the step's sparsity (model-wide mean, or this layer's) is below
  /// the target, else lambda /= alpha.
  void after_step(const std::vector<LayerTrace>& traces, size_t layer) override;

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static std::vector<AuxLossDoc> aux_losses();
  /// Its k.
  static std::optional<int64_t> nominal_experts(const PluginSpec& spec);
  static constexpr bool kMaySkipTokens = true;

  torch::nn::Linear gate{nullptr};
  torch::Tensor l1_coef;  ///< lambda, a float64 scalar buffer
  const ReMoERouterOptions& options() const { return options_; }

 private:
  ReMoERouterOptions options_;
};
TORCH_MODULE(ReMoERouter);

}  // namespace moe
