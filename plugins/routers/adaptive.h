#pragma once
// Router "adaptive": adaptive gating (Li et al., EMNLP 2023), methods.md §2.
//
//   logits = W_r x (W_r: [d, N], no bias, N(0, 0.02)), p = softmax(logits) in float32
//   p1 >= p2: the two largest probabilities (experts e1, e2; ties: lower index first)
//   gap = (p1 - p2) / (p1 + p2)       gap = "pair" (default: renormalised over the pair)
//   gap = p1 - p2                     gap = "raw"
//   gap <= threshold: the token uses e1 and e2; otherwise e1 only (slot 2 = -1, weight 0)
//   weights, combine = "mixed" (default): two-expert tokens p1/(p1+p2), p2/(p1+p2) (GShard),
//           one-expert tokens p1 (Switch, so the router keeps a gradient);
//           combine = "raw": p1 and p2 unnormalised for both kinds;
//           combine = "renorm": renormalised over the selected set (a lone expert gets 1.0,
//           so one-expert tokens give the router no gradient).
// Aux loss (unscaled): "balance" = N * sum_e f1_e P_e, f1_e = share of the one-expert
// tokens whose expert is e (0 when there are none), P_e = mean p_e over all tokens. No z-loss.
// Inference options: "threshold" (T), "force_top1" (nonzero: every token uses one expert).
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

struct AdaptiveRouterOptions {
  AdaptiveRouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(double, threshold) = 0.1;
  TORCH_ARG(std::string, gap) = "pair";       ///< pair | raw
  TORCH_ARG(std::string, combine) = "mixed";  ///< mixed | raw | renorm
  TORCH_ARG(bool, force_top1) = false;
};

class AdaptiveRouterImpl : public RouterImpl {
 public:
  explicit AdaptiveRouterImpl(AdaptiveRouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;
  void set_inference_option(const std::string& key, double value) override;
  std::vector<std::string> inference_options() const override {
    return {"threshold", "force_top1"};
  }

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static std::vector<AuxLossDoc> aux_losses();

  torch::nn::Linear gate{nullptr};
  const AdaptiveRouterOptions& options() const { return options_; }

 private:
  AdaptiveRouterOptions options_;
};
TORCH_MODULE(AdaptiveRouter);

}  // namespace moe
