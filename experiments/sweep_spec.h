#pragma once
// Sweep files (TOML) and the planner that expands them into trials.
//
//   name = "quick"                     # required; runs are grouped under it
//   description = "..."
//   base_config = "../configs/x.toml"  # optional config file the base starts from
//                                      # (relative to the sweep file)
//   task = "brown_pos"                 # optional shorthand for base.task.name
//   seeds = [0, 1]                     # required, non-empty
//   [base]       any config keys (dotted or nested), applied over base_config
//   [presets.NAME]   named bundles of config keys (e.g. dense, switch, gshard)
//   [grid]       axes: "method" lists preset names; "granularity" = [1, 2, 4] splits each
//                expert into m narrower ones at equal active compute (num_experts x m,
//                experts.hidden / m, router k x m, shared_experts x m); any other key is
//                a dotted config key with a list of values; the trials are their
//                cartesian product
//   [zip]        axes that vary together (equal lengths), crossed with the grid
//   [[exclude]]  tables of axis = value; a trial matching every entry of one is dropped
//   keep_models = true                 # save each trained model for re-evaluation
//   [evaluate]   option = "threshold", values = [0.1, 0.2]: re-evaluate trained models
//                with a router inference option set (moe sweep eval; run does it too)
//   [pretrain]   config keys over [base] (and `seed`, default the first of seeds) for one
//                pretraining trial (method "pretrain", model always kept) run before all
//                others; every other trial starts from it: train.init_from =
//                "run:<its run key>", resolved to its saved model by the worker; a
//                trial with train.upcycle_from = "pretrain" is upcycled from it instead
//                (train.upcycle_from = "run:<key>", and no init_from)
//
// Every trial resolves to one canonical JSON config (keys sorted) that includes its seed;
// its run key is a hash of that text, so it is stable under key order in the file and
// differs when any value differs.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace moe {

struct Trial {
  std::string run_key;  ///< 16 hex digits
  std::string method;   ///< label: preset name plus non-method axis values
  /// The label's parts: the method axis value (the preset; "" without one), the other grid
  /// and zip axes ("task.name=mod_sum ..."), the [tune] axes ("train.lr=0.003").
  std::string preset, context, tune;
  int64_t seed = 0;
  nlohmann::json config;   ///< canonical resolved config (seed included)
  bool pretrain = false;   ///< the [pretrain] trial (every shard includes it)
  std::string depends_on;  ///< run key that must complete first (the pretraining trial)
};

struct SweepPlan {
  std::string name, description, path, spec_text;
  std::vector<Trial> trials;
  /// keep_models = true: every worker saves its trained model (results/models/<key>.pt
  /// next to the database) so it can be re-evaluated later.
  bool keep_models = false;
  /// [evaluate] option = "threshold", values = [...]: after training, every completed run
  /// whose routers accept that inference option is re-evaluated on test at each value
  /// (split "reeval", the option and value in their columns). Implies keep_models.
  std::string eval_option;
  std::vector<double> eval_values;
  /// [tune] metric (a validation metric; "" = the sweep has no tune axes). Each (method,
  /// context) takes the tune value whose mean of this metric over seeds is best
  /// (results::choose_tuned); `moe compare` compares the chosen ones.
  std::string tune_metric;
};

/// Reads, validates and expands a sweep file. Errors name the file, the key (with its
/// line where toml++ knows it) and the valid choices. Everything is checked before a
/// trial runs: value types and ranges of the config sections, nan / inf anywhere, the
/// trial count (from the axes' lengths, before expanding; above max_trials is refused),
/// and every distinct model is built once on the CPU without data so that plugin
/// parameters are checked (check_trial_builds).
constexpr int64_t kDefaultMaxTrials = 100000;
/// Each trial's training memory estimate (estimate_training) must fit max_memory_bytes
/// (0 = this machine's memory) before any model is built; files a config names
/// (train.init_from, train.upcycle_from) must exist.
SweepPlan load_sweep(const std::string& path, int64_t max_trials = kDefaultMaxTrials,
                     double max_memory_bytes = 0);

/// FNV-1a 64-bit of text as 16 hex digits (stable across platforms and builds).
std::string stable_hash(const std::string& text);

/// The run key of a config (dumped canonically).
std::string run_key_of(const nlohmann::json& config);

}  // namespace moe
