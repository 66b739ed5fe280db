#pragma once
// moe compare: per-method statistics over seeds and paired comparisons against a baseline
// (no LibTorch). Pairs are runs of the two methods with the same seed: the same data
// order and initialisation stream, so the paired difference removes the seed's share of
// the variance.
#include <iosfwd>
#include <string>
#include <vector>

#include "results/report.h"
#include "results/stats.h"

namespace moe::results {

struct CompareRow {
  std::string method;
  MeanCI value;  ///< the metric over this method's completed runs
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
  bool higher_is_better = true;
  std::vector<CompareRow> rows;  ///< baseline first, then methods by name
};

/// "higher" or "lower": loss, perplexity, seconds and steps are lower-is-better.
bool metric_higher_is_better(const std::string& metric);

/// Reads the final metric `metric` of every completed run of the sweep (current attempts
/// only). sweep "" = the database's only sweep; baseline "" = the first method whose name
/// starts with "dense", else the first method. direction: auto | higher | lower. Throws
/// with the valid choices for an unknown sweep, baseline or metric.
Comparison compare_methods(const std::string& db_path, const std::string& sweep,
                           const std::string& baseline, const std::string& metric,
                           const std::string& direction = "auto");

void print_comparison(const Comparison& c, QueryFormat format, std::ostream& out);

}  // namespace moe::results
