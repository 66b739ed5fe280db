#pragma once
// Evaluation of a model on one split: task metrics overall and per difficulty level, and
// the routing statistics of every MoE layer, from which active parameters are measured.
#include <torch/types.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/data/task.h"
#include "core/moe_layer.h"
#include "core/transformer.h"

namespace moe {

struct EvalResult {
  double loss = 0;  ///< mean cross-entropy per target
  double accuracy = 0;
  double perplexity = 0;  ///< exp(loss); meaningful for "lm" tasks
  int64_t targets = 0;
  int64_t tokens = 0;
  double seconds = 0;
  double tokens_per_s = 0;
  std::vector<double> level_accuracy;  ///< per difficulty level (NaN when a level is empty)
  std::vector<int64_t> level_count;
  std::vector<LayerStats> layers;  ///< one per MoE layer
  /// Routing by difficulty, for tasks whose difficulty is given per token (else empty /
  /// NaN). Counted over the tokens that have a target and a difficulty level.
  std::vector<std::vector<double>> level_experts;  ///< [MoE layer][level] mean experts/token
  std::vector<double> level_experts_all;           ///< [level] mean over MoE layers
  std::vector<double> layer_difficulty_spearman;   ///< per layer: Spearman(level, experts)
  /// Spearman(level, experts summed over all MoE layers), ties ranked by their mean rank.
  double difficulty_spearman = std::numeric_limits<double>::quiet_NaN();
  double active_params = 0;           ///< measured from the routing on this split
  double nonembed_active_params = 0;  ///< active_params less the embedding tables
  double flops_per_token = 0;
  FlopsBreakdown flops;  ///< flops_per_token by part

  /// Top-1 expert (router argmax) of every routed token of the split's first batch, per
  /// MoE layer, on the CPU: a fixed probe set, the same at every evaluation of a run.
  std::vector<torch::Tensor> probe_top1;
  /// Routing fluctuation (StableMoE) per MoE layer: the share of the probe tokens whose
  /// top-1 expert changed since the previous evaluation (set by the trainer; empty for
  /// the first evaluation).
  std::vector<double> fluctuation;

  /// Mean experts per token of each MoE layer.
  std::vector<double> mean_experts() const;
  /// Their mean over the MoE layers; none for a dense model.
  std::optional<double> mean_experts_over_layers() const;
};

/// Per layer, the share of probe tokens whose top-1 expert differs between two
/// evaluations of the same split (empty when either has no probe).
std::vector<double> routing_fluctuation(const EvalResult& before, const EvalResult& now);

/// Runs the model (eval mode, no grad) over the split; restores train mode afterwards if
/// the model was training.
EvalResult evaluate(Transformer& model, Task& task, Split split, int64_t batch_size,
                    int64_t max_batches, const torch::Device& device);

/// Spearman rank correlation from a contingency table: table[x][y] = number of
/// observations with the x-th smallest value of X and the y-th smallest value of Y.
/// Tied observations get their mean rank; NaN when either variable is constant.
double spearman_from_table(const std::vector<std::vector<double>>& table);

/// Task loss: mean cross-entropy over targets != -100. logits [..., C], targets [...].
torch::Tensor task_loss(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace moe
