#pragma once
// Nominal parameter counts of a trial's model, built on the CPU without training: what
// matched baselines are matched on (`moe sweep plan --params`).
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace moe {

struct ExperimentConfig;

struct ParamCounts {
  double total = 0, nonembed_total = 0;
  /// Non-embedding active parameters per token at the router's nominal expert count
  /// (top_k: k; expert_choice: k on average; remoe: its target k; dense: every parameter);
  /// NaN when the router has no fixed count (top_p,
  /// adaptive, inf_moe: measured at evaluation instead).
  double nonembed_active = 0;
};

/// What training a trial costs, from its config's numbers alone (nothing is allocated, no
/// data read): the plan refuses trials that cannot fit before building any model.
///   params: embeddings (when the task names its vocabulary: vocab_size / lm_vocab_size;
///     else 0), per layer attention 4 d^2 + 4 d and either the dense FFN (2 or, for swiglu,
///     3 x d x ffn_hidden) or the MoE layer (the bank's hidden units x 2-3 d, the shared
///     experts, the router's d x E);
///   memory_bytes: params x 16 B (fp32 weights, gradients, AdamW's two moments) plus the
///     activations autograd keeps, fp32: per token and layer 8 d + 2 heads seq_len
///     (attention scores and probabilities) + the FFN's hidden (2 x ffn_hidden, or k x
///     (2 x expert hidden + 2 d) + 2 E for a MoE layer), plus 2 x vocab logits per token;
///   flops_per_token: 2 x the active parameters per token (k experts) + 4 x seq_len x d per
///     layer for attention (forward).
/// A lower bound by construction (what autograd must keep, no allocator slack, no
/// transient backward buffers, no LibTorch baseline of ~0.5 GB), so a refused trial cannot
/// fit. Measured 2026-12-03 (Brown LM, d 512, 4 layers, batch 32 x 128, vocab 10k): peak
/// RSS 2.32 GB for the dense model against 1.4 GB estimated, 6.46 GB for 16 experts of
/// 1024 top-2 against 2.4 GB.
struct TrainingEstimate {
  double params = 0, memory_bytes = 0, activation_bytes = 0, flops_per_token = 0;
  /// The configuration values the estimate is built from, "key = value", for messages.
  std::vector<std::string> inputs;
};
TrainingEstimate estimate_training(const ExperimentConfig& config);

/// The memory the plan allows a trial: the machine's physical memory, or its cgroup's
/// limit when that is lower.
double machine_memory_bytes();
/// "23.5 GB", "64.0 TB".
std::string format_bytes(double bytes);

/// Builds the model of a resolved trial config (its task is created, so data-backed tasks
/// need their data) and counts its parameters.
ParamCounts nominal_param_counts(const nlohmann::json& config);

/// Plan-time check of a resolved trial config without its data: the task's parameters
/// (check_task_options: names and values), then the model built on the CPU (only up to
/// its first MoE layer, with a small stand-in vocabulary) so that every router, expert
/// bank and adapter validates its parameters. Throws std::invalid_argument with the
/// plugin's message.
void check_trial_builds(const nlohmann::json& config);

}  // namespace moe
