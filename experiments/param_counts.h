#pragma once
// Nominal parameter counts of a trial's model, built on the CPU without training: what
// matched baselines are matched on (`moe sweep plan --params`).
#include <nlohmann/json.hpp>

namespace moe {

struct ParamCounts {
  double total = 0, nonembed_total = 0;
  /// Non-embedding active parameters per token at the router's nominal expert count
  /// (top_k: k; expert_choice: k on average; remoe: its target k; dense: every parameter);
  /// NaN when the router has no fixed count (top_p,
  /// adaptive, inf_moe: measured at evaluation instead).
  double nonembed_active = 0;
};

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
