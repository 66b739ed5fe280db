#pragma once
// Re-evaluation of trained sweep models with a router inference option set (top-p's
// threshold, adaptive gating's threshold or force_top1, ∞-MoE's sample count), without
// retraining. Models come from results/models/<run_key>.pt next to the database (written
// by the workers of a sweep with keep_models = true or an [evaluate] table).
// Results go to the run's metrics and layer_stats under split 'reeval', with the option
// and its value in their own columns (view reevals).
#include <iosfwd>
#include <string>
#include <vector>

#include "experiments/sweep_spec.h"

namespace moe {

/// Where a sweep worker saves the trained model of a run.
std::string model_path(const std::string& db, const std::string& run_key);

/// Re-evaluates every completed trial whose routers accept `option` at each value not
/// stored yet. Returns the number of evaluations written; reports to `log`.
int64_t evaluate_trials(const std::vector<Trial>& trials, const std::string& db,
                        const std::string& option, const std::vector<double>& values,
                        std::ostream& log);

}  // namespace moe
