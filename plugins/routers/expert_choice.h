#pragma once
// Router "expert_choice": Expert Choice routing (Zhou et al., 2022).
//
//   logits = W_r x (W_r: [d, N], no bias, N(0, 0.02)), in float32; p = softmax over experts
//   each expert e takes the C tokens of the batch with the largest p[:, e],
//   C = min(T, ceil(capacity_factor * k * T / N)); a token gets zero, one or several
//   experts; its weight for expert e is p[t, e] (not renormalised).
// Every expert processes exactly C tokens, so there is no balance loss; the z-loss is
// returned. The choice looks across all tokens of the batch: on a causal task a token's
// experts depend on later tokens (a leak of the future), so the router refuses a causal
// model unless allow_noncausal = true.
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

struct ExpertChoiceRouterOptions {
  ExpertChoiceRouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, k) = 2;  ///< mean experts per token the capacity is sized for
  TORCH_ARG(double, capacity_factor) = 1.0;
  TORCH_ARG(bool, causal) = false;  ///< the model attends causally (LayerContext)
  TORCH_ARG(bool, allow_noncausal) = false;
};

/// C for T tokens: min(T, ceil(capacity_factor * k * T / N)), at least 1 when T > 0.
int64_t expert_choice_capacity(double capacity_factor, int64_t k, int64_t tokens,
                               int64_t num_experts);

class ExpertChoiceRouterImpl : public RouterImpl {
 public:
  explicit ExpertChoiceRouterImpl(ExpertChoiceRouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static std::vector<AuxLossDoc> aux_losses();
  /// Its k.
  static std::optional<int64_t> nominal_experts(const PluginSpec& spec);
  static constexpr bool kMaySkipTokens = true;

  torch::nn::Linear gate{nullptr};

 private:
  ExpertChoiceRouterOptions options_;
};
TORCH_MODULE(ExpertChoiceRouter);

}  // namespace moe
