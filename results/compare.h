#pragma once
// moe compare: per-method statistics over seeds and paired comparisons against a baseline
// (no LibTorch). Pairs are runs of the two methods with the same seed: the same data
// order and initialisation stream, so the paired difference removes the seed's share of
// the variance.
#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "results/report.h"
#include "results/stats.h"

namespace moe::results {

/// A [tune] sweep's choice for one (context, method): the tune value (e.g.
/// "train.lr=0.003") whose completed runs have the best mean of `metric` over seeds.
struct TunedChoice {
  std::string context, preset, tune, metric;
  double score = NAN;      ///< that mean
  int64_t n = 0;           ///< completed runs it was averaged over
  int64_t candidates = 0;  ///< tune values that were compared
};

struct CompareRow {
  std::string method;   ///< the method axis value (the run label when there is none)
  std::string context;  ///< the sweep's other grid axes ("task.name=mod_sum"), "" if none
  TunedChoice tuned;    ///< tuned sweeps: the value these runs were chosen at
  MeanCI value;         ///< the metric over this method's completed runs
  std::vector<int64_t> seeds;
  bool baseline = false;
  size_t pairs = 0;   ///< seeds shared with the baseline
  PairedTest test;    ///< method - baseline over the shared seeds
  double p_holm = 0;  ///< Holm-adjusted over the non-baseline methods
  double nonembed_active_params = 0, flops_per_token = 0;  ///< means (context)
  std::string verdict;  ///< better / worse (adjusted p < 0.05, direction-aware) / n.s.
};

struct Comparison {
  std::string sweep, metric, baseline;
  std::string tune_metric;  ///< "" unless the sweep has [tune] axes
  bool higher_is_better = true;
  /// By context; in each, baseline first, then methods by name. Holm adjusts within a
  /// context.
  std::vector<CompareRow> rows;
  /// Contexts left out because the baseline has no completed run there, each as
  /// "context: [its methods]" (a [pretrain] trial: "(no context): [pretrain]").
  std::vector<std::string> skipped;
  /// With a layer metric: methods without any row of it (a dense model has no MoE layer).
  std::vector<std::string> without_layer_metric;
};

/// "higher" or "lower": loss, perplexity, seconds and steps are lower-is-better, and so
/// are the imbalance statistics (load_*, dead_experts, dropped_fraction).
bool metric_higher_is_better(const std::string& metric);

class Db;

/// [tune] sweeps: per (context, method), the tune value with the most completed runs and,
/// among those, the best mean of the sweep's tune metric (a value that diverged on some
/// seeds is not chosen on the survivors). Empty for a sweep without [tune].
std::vector<TunedChoice> choose_tuned(Db& db, const std::string& sweep);
/// choose_tuned, written to the selections table (replacing the sweep's earlier rows).
std::vector<TunedChoice> record_selections(Db& db, const std::string& sweep);

/// A per-layer routing statistic (table layer_stats) as the compared value: each run's
/// value at its last evaluation of `split` (current attempt), at MoE layer `layer`
/// (0-based), or reduced over its layers (`reduce`: mean | max) when layer < 0.
struct LayerMetric {
  std::string name;  ///< load_cv, load_max_over_mean, dead_experts, mean_experts, ...
  std::string split = "test";
  int64_t layer = -1;
  std::string reduce = "mean";
  /// "layer NAME (split, layer L)" / "layer NAME (split, mean over layers)".
  std::string label() const;
};

/// Reads the final metric `metric` of every completed run of the sweep (current attempts
/// only), or with `layer` the per-layer statistic it names (metric is then ignored). sweep "" = the
/// database's only sweep; baseline "" = the first method whose name starts with "dense", else the
/// first method; compared within each context (the sweep's other grid axes), over each method's
/// chosen tune value; contexts without the baseline are left out (Comparison::skipped). direction:
/// auto | higher | lower. Throws with the valid choices for an unknown sweep, baseline (in no
/// context) or metric.
Comparison compare_methods(const std::string& db_path, const std::string& sweep,
                           const std::string& baseline, const std::string& metric,
                           const std::string& direction = "auto",
                           const LayerMetric* layer = nullptr);

void print_comparison(const Comparison& c, QueryFormat format, std::ostream& out);

}  // namespace moe::results
