#pragma once
// Router "top_k": Switch (k = 1) and GShard (k >= 2) routing, methods.md §0.
//
//   logits = W_r x (W_r: [d, N], no bias, N(0, 0.02)), in float32
//   score = "softmax" (default): s = p = softmax(logits)
//   score = "sigmoid" (DeepSeek-V3, torchtitan): s = sigmoid(logits), p = s / sum_i s_i
//   k = 1: i = argmax s, weight = s_i (not renormalised: the router keeps a gradient)
//   k >= 2: the k largest s, weights renormalised over them, g_j = s_j / sum s
// Train-time noise (noise_std > 0, only while training), noise = "jitter" (default,
// Switch): the router input is multiplied elementwise by U(1 - noise_std, 1 + noise_std);
// noise = "logit": N(0, noise_std^2) is added to the logits.
// Aux losses (unscaled): "balance" = N * sum_i f_i P_i with P = mean p and f_i the share
// of the T k choices that went to expert i (loss.balance_count = "all": Switch for k = 1,
// Megatron-Core / Flaxformer / DeepSeek-V3 for k >= 2; "first": the share of first
// choices, GShard's paper); with the aux-loss-free bias on, f counts the unbiased top-k of
// s, not the biased choice. "z" = mean logsumexp(logits)^2 on the logits that route (with
// the train-time noise, as Switch and Megatron-Core); produced by default only for softmax
// scores (z_loss = true/false overrides; DeepSeek-V3's sigmoid router has none).
// Aux-loss-free balancing (DeepSeek-V3, arXiv 2408.15664; bias_update_rate u > 0): a
// per-expert bias b (a buffer: not a parameter, not in the optimizer, saved in
// checkpoints) is added to s only to choose the experts (top-k of s + b); gates use s.
// After each optimizer step b_i += u * sign(mean load - load_i) over that step's batch
// (load = slots chosen), then b -= mean(b) when center_bias. Use it with loss.balance = 0.
#include <torch/nn/modules/linear.h>

#include <optional>

#include "core/router.h"

namespace moe {

struct TopKRouterOptions {
  TopKRouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, k) = 2;
  TORCH_ARG(double, noise_std) = 0.0;
  TORCH_ARG(std::string, noise) = "jitter";   ///< jitter | logit
  TORCH_ARG(std::string, score) = "softmax";  ///< softmax | sigmoid
  TORCH_ARG(double, bias_update_rate) = 0.0;  ///< u; 0 = no aux-loss-free bias
  TORCH_ARG(bool, center_bias) = false;
  TORCH_ARG(bool, z_loss) = true;  ///< produce aux loss "z"
  /// The balance losses count all k choices (f normalised by T k) or only the first.
  TORCH_ARG(bool, balance_all_choices) = true;
  /// Renormalise the k gates to sum to 1 (GShard; with k = 1 a unit gate). Unset: k >= 2.
  TORCH_ARG(std::optional<bool>, normalize) = std::nullopt;
};

class TopKRouterImpl : public RouterImpl {
 public:
  explicit TopKRouterImpl(TopKRouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;
  void after_step(const std::vector<LayerTrace>& traces, size_t layer) override;

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static std::vector<AuxLossDoc> aux_losses();
  /// Its k.
  static std::optional<int64_t> nominal_experts(const PluginSpec& spec);
  /// k x m, keeping the base's gate normalisation (renormalised by default only for k >= 2,
  /// so a k = 1 base does not switch to renormalised gates at m >= 2).
  static void refine(nlohmann::json& block, int64_t nominal, int64_t m);

  torch::nn::Linear gate{nullptr};
  torch::Tensor expert_bias;  ///< [N] float32 buffer (aux-loss-free balancing)
  const TopKRouterOptions& options() const { return options_; }

 private:
  TopKRouterOptions options_;
};
TORCH_MODULE(TopKRouter);

}  // namespace moe
