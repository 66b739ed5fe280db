#pragma once
// Nominal parameter counts of a trial's model, built on the CPU without training: what
// matched baselines are matched on (`moe sweep plan --params`).
#include <nlohmann/json.hpp>

namespace moe {

struct ParamCounts {
  double total = 0, nonembed_total = 0;
  /// Non-embedding active parameters per token at the router's nominal expert count
  /// (top_k: k; dense: every parameter); NaN when the router has no fixed count (top_p,
  /// adaptive, inf_moe: measured at evaluation instead).
  double nonembed_active = 0;
};

/// Builds the model of a resolved trial config (its task is created, so data-backed tasks
/// need their data) and counts its parameters.
ParamCounts nominal_param_counts(const nlohmann::json& config);

}  // namespace moe
