#pragma once
// MoE layer: router + expert bank + sort-by-expert dispatch. forward returns the output
// and what it measured (LayerTrace); LayerStats sums traces over an evaluation.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "core/experts.h"
#include "core/router.h"
#include "core/trace.h"

namespace moe {

/// Routing statistics summed over the traces of an evaluation pass (host doubles).
struct LayerStats {
  int64_t tokens = 0;
  int64_t selected_slots = 0;     ///< (token, expert) pairs the router chose
  int64_t dropped_slots = 0;      ///< of those, dropped by the capacity limit
  double entropy_sum = 0;         ///< sum over tokens of -sum_i p_i log p_i
  double saturation_sum = 0;      ///< sum over tokens of max_i p_i
  std::vector<double> load;       ///< [E]: slots routed to each expert
  std::vector<double> histogram;  ///< [slots+1]: tokens by number of experts used
  struct Accumulated {
    double value = 0;  ///< sum (kSum, kMean) or maximum (kMax) over forwards
    Reduce reduce = Reduce::kMean;
  };
  std::map<std::string, Accumulated> stat_sums;  ///< the traces' Stats
  int64_t forwards = 0;                          ///< traces added

  /// Adds one forward's trace (reads its tensors: a host sync).
  void add(const LayerTrace& trace);

  double mean_experts() const { return tokens ? double(selected_slots) / tokens : 0.0; }
  double dropped_fraction() const {
    return selected_slots ? double(dropped_slots) / selected_slots : 0.0;
  }
  double entropy() const { return tokens ? entropy_sum / tokens : 0.0; }
  /// Router saturation: mean over tokens of the largest router probability.
  double saturation() const { return tokens ? saturation_sum / tokens : 0.0; }
  /// Experts no token chose over the evaluation.
  int64_t dead_experts() const;
  /// Load imbalance over experts (load = slots chosen): coefficient of variation
  /// (population std / mean), max / mean, and the share of the slots taken by the
  /// ceil(0.2 E) most-loaded experts.
  double load_cv() const;
  double load_max_over_mean() const;
  double load_top20_share() const;
  /// The q-quantile of experts per token (smallest n with at least q of the tokens using
  /// n experts or fewer), from the histogram; q in (0, 1].
  double experts_quantile(double q) const;
  /// Per-expert share of the selected slots, [E], sums to 1.
  std::vector<double> load_fraction() const;
  /// The router's and bank's statistics over the added forwards: kSum and kMean averaged
  /// per forward, kMax the maximum.
  std::map<std::string, double> statistics() const;
};

/// Combines per-layer statistics into the model's, each by its Reduce (trace.h).
std::map<std::string, double> combine_layers(const std::vector<LayerStats>& layers);

struct MoELayerOptions {
  MoELayerOptions(int64_t num_experts) : num_experts_(num_experts) {}  // NOLINT
  TORCH_ARG(int64_t, num_experts);
  /// ceil(CF * selected slots / E) slots per expert (selected = k T for top-k, the
  /// router's actual slots for dynamic routers); 0 = dropless (methods.md default).
  TORCH_ARG(double, capacity_factor) = 0.0;
  /// The capacity factor in eval mode; < 0 = the training one.
  TORCH_ARG(double, eval_capacity_factor) = -1.0;
  TORCH_ARG(DropPolicy, drop_policy) = DropPolicy::kPriority;
};

/// The tokens MoE layers route, from a batch's pad mask: computed once per batch (a host
/// sync) and shared by every MoE layer of the model.
struct TokenSelection {
  /// [kept] int64 flat positions of the non-padding tokens; undefined = every position.
  torch::Tensor keep_index;
  bool from_mask = false;  ///< made by of(pad_mask) (an empty selection is "not made")
  /// From an optional pad mask (true = padding); undefined or all-false keeps everything.
  static TokenSelection of(const torch::Tensor& pad_mask);
};

struct MoEOutput {
  torch::Tensor y;  ///< [..., d_model], the input's shape
  LayerTrace trace;
};

class MoELayerImpl : public torch::nn::Module {
 public:
  MoELayerImpl(Router router, ExpertBank experts, MoELayerOptions options);

  /// x: [..., d_model] -> y of the same shape, and the trace of this pass. pad_mask:
  /// optional, x's leading shape, true = padding: padded tokens are not routed (their y
  /// is 0; the residual carries them), so they count in no router loss and no statistic;
  /// trace.token_experts keeps every position (0 at padding).
  MoEOutput forward(const torch::Tensor& x, const torch::Tensor& pad_mask = {});
  /// The same with the selection already made (TokenSelection::of(pad_mask)).
  MoEOutput forward(const torch::Tensor& x, const TokenSelection& tokens);

  Router router{nullptr};
  ExpertBank experts{nullptr};
  const MoELayerOptions& options() const { return options_; }

 private:
  MoELayerOptions options_;
};
TORCH_MODULE(MoELayer);

}  // namespace moe
