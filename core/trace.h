#pragma once
// What one MoE layer measured in one forward pass. MoELayer::forward returns it with its
// output and Transformer::forward returns one per MoE layer, so the trainer, evaluator and
// curriculum sampler read what a pass measured from the pass itself, never from layer
// state afterwards. Tensors stay on the model's device until someone reads them (no host
// sync in the training step); counts the dispatch already holds on the host are host ints.
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace moe {

/// How a statistic combines. Over the forwards of one evaluation: kSum and kMean are
/// averaged per forward, kMax takes the maximum. Over the MoE layers of a model (the run's
/// summary): kSum adds them up (per-token counts such as hidden units or FLOPs), kMean
/// averages them (a level such as sigma), kMax takes the maximum.
enum class Reduce { kSum, kMean, kMax };

/// A scalar statistic (a 0-dim tensor, detached, on any device) and how it combines.
struct Stat {
  torch::Tensor value;
  Reduce reduce = Reduce::kMean;
};
using Stats = std::map<std::string, Stat>;

/// Adds a statistic; `value` is detached. A double becomes a CPU scalar (no device work).
void add_stat(Stats& stats, const std::string& name, const torch::Tensor& value, Reduce reduce);
void add_stat(Stats& stats, const std::string& name, double value, Reduce reduce);

struct LayerTrace {
  /// Unscaled auxiliary losses (scalars with their graph); the trainer applies the
  /// coefficients of [loss].
  std::map<std::string, torch::Tensor> aux_losses;
  /// [positions] int64: experts each token was routed to (before capacity drops), in the
  /// order of the input's leading dimensions; 0 at padded positions, which are not routed.
  /// Detached, on the model's device.
  torch::Tensor token_experts;
  /// [tokens, experts] detached router probabilities (entropy is computed when read).
  torch::Tensor router_probs;
  int64_t tokens = 0;         ///< tokens routed (padding excluded)
  int64_t slots = 0;          ///< columns of the routing (k, or the batch maximum)
  int64_t selected = 0;       ///< (token, expert) slots the router chose
  int64_t dropped = 0;        ///< of those, dropped by the capacity limit
  std::vector<int64_t> load;  ///< [E]: slots the router chose per expert (before capacity)
  Stats stats;                ///< the router's and the expert bank's own statistics

  double mean_experts() const { return tokens ? double(selected) / double(tokens) : 0.0; }
};

}  // namespace moe
