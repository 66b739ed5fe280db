#pragma once
// MoE layer: router + expert bank + sort-by-expert dispatch + per-layer statistics.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "core/experts.h"
#include "core/router.h"

namespace moe {

/// Routing statistics accumulated over an evaluation pass (host doubles).
struct LayerStats {
  int64_t tokens = 0;
  int64_t selected_slots = 0;     ///< (token, expert) pairs the router chose
  int64_t dropped_slots = 0;      ///< of those, dropped by the capacity limit
  double entropy_sum = 0;         ///< sum over tokens of -sum_i p_i log p_i
  std::vector<double> load;       ///< [E]: slots routed to each expert
  std::vector<double> histogram;  ///< [slots+1]: tokens by number of experts used
  /// The bank's last_stats() and the router's "stat.*" extras, summed per forward.
  std::map<std::string, double> bank_stats_sum;
  int64_t forwards = 0;                          ///< forwards accumulated

  double mean_experts() const { return tokens ? double(selected_slots) / tokens : 0.0; }
  double dropped_fraction() const {
    return selected_slots ? double(dropped_slots) / selected_slots : 0.0;
  }
  double entropy() const { return tokens ? entropy_sum / tokens : 0.0; }
  /// Per-expert share of the selected slots, [E], sums to 1.
  std::vector<double> load_fraction() const;
  /// The bank's statistics averaged over the accumulated forwards.
  std::map<std::string, double> bank_stats() const;
};

struct MoELayerOptions {
  MoELayerOptions(int64_t num_experts) : num_experts_(num_experts) {}  // NOLINT
  TORCH_ARG(int64_t, num_experts);
  /// ceil(CF * k * T / E) slots per expert; 0 = dropless (methods.md default).
  TORCH_ARG(double, capacity_factor) = 0.0;
};

class MoELayerImpl : public torch::nn::Module {
 public:
  MoELayerImpl(Router router, ExpertBank experts, MoELayerOptions options);

  /// x: [..., d_model] -> [..., d_model]. Also stores the router's aux losses (see
  /// aux_losses()) and, while collecting, accumulates LayerStats.
  torch::Tensor forward(const torch::Tensor& x);

  /// Unscaled aux losses of the last forward.
  const std::map<std::string, torch::Tensor>& aux_losses() const { return aux_losses_; }
  /// Mean experts per token of the last forward (a detached scalar tensor).
  const torch::Tensor& last_mean_experts() const { return last_mean_experts_; }
  /// Experts each token of the last forward was routed to (before capacity drops),
  /// [tokens] int64, detached; tokens in the order of x's leading dimensions.
  const torch::Tensor& last_token_experts() const { return last_token_experts_; }

  void set_collect_stats(bool on) { collect_ = on; }
  void reset_stats() { stats_ = LayerStats{}; }
  const LayerStats& stats() const { return stats_; }

  Router router{nullptr};
  ExpertBank experts{nullptr};
  const MoELayerOptions& options() const { return options_; }

 private:
  void accumulate(const Routing& routing, const DispatchPlan& plan);

  MoELayerOptions options_;
  std::map<std::string, torch::Tensor> aux_losses_;
  torch::Tensor last_mean_experts_;
  torch::Tensor last_token_experts_;
  bool collect_ = false;
  LayerStats stats_;
};
TORCH_MODULE(MoELayer);

}  // namespace moe
