#pragma once
// Router "top_p": Dynamic MoE top-p routing ("Harder tasks need more experts"),
// methods.md §1.
//
//   logits = W_r x (W_r: [d, N], no bias, N(0, 0.02)), p = softmax(logits) in float32
//   sort p descending (ties: lower expert index first); keep expert j of that order while
//   the mass before it, sum_{i<j} sorted_i (a shifted cumsum), is <= threshold, i.e. until
//   the cumulative probability first exceeds the threshold, the crossing expert included. A token
//   whose top-1 probability is above the threshold uses one expert; a flat distribution uses many.
//   weights = the raw p of the kept experts (no renormalisation).
//   slots = the largest number of experts any token of the batch keeps (capped by
//   max_experts when > 0); unused slots hold index -1 and weight 0.
// Aux losses (unscaled): "entropy" = mean_t -sum_i p_ti log p_ti (the dynamic loss) and
// "balance" = N * sum_i f_i P_i with f_i = share of tokens whose selected set contains i.
// Inference option "threshold" changes the threshold of a trained model.
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

struct TopPRouterOptions {
  TopPRouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(double, threshold) = 0.4;
  /// Cap on experts per token (the most probable ones); 0 = no cap.
  TORCH_ARG(int64_t, max_experts) = 0;
};

/// The selection rule alone. probs: [T, N] -> (weights [T, slots], indices [T, slots]),
/// unused slots -1 / 0. Exposed for tests and for routers that reuse it.
std::pair<torch::Tensor, torch::Tensor> top_p_select(const torch::Tensor& probs, double threshold,
                                                     int64_t max_experts);

class TopPRouterImpl : public RouterImpl {
 public:
  explicit TopPRouterImpl(TopPRouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;
  void set_inference_option(const std::string& key, double value) override;
  std::vector<std::string> inference_options() const override { return {"threshold"}; }

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static std::vector<AuxLossDoc> aux_losses();

  torch::nn::Linear gate{nullptr};
  const TopPRouterOptions& options() const { return options_; }

 private:
  TopPRouterOptions options_;
};
TORCH_MODULE(TopPRouter);

}  // namespace moe
