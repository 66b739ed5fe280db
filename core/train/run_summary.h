#pragma once
// RunSummary: a trained run's final numbers, typed (Trainer::run returns it; moe train
// prints it), and the one place that names them as the store's 'final' metrics.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/train/evaluator.h"

namespace moe {

/// What the training loop measured, beside the final evaluations.
struct TrainingTotals {
  double train_seconds = 0;
  double train_tokens = 0;
  /// Training FLOPs per token (3 x forward at the test's experts per token), for MFU.
  double train_flops_per_token = 0;
  double peak_flops_per_s = 0;  ///< the device's peak in the run's precision; 0 = unknown
  std::optional<double> checkpoint_seconds;     ///< with a checkpoint (sweeps)
  std::optional<double> cuda_max_allocated_mb;  ///< CUDA runs
  bool target_set = false;                      ///< train.target_loss > 0
  int64_t steps_to_target = -1;                 ///< -1: never reached
  double seconds_to_target = 0;
};

/// Model sizes, counted once training ends.
struct ModelSizes {
  int64_t total = 0, trainable = 0, embedding = 0;
};

struct RunSummary {
  double test_accuracy = 0, test_loss = 0, valid_accuracy = 0, valid_loss = 0;
  std::optional<double> test_perplexity, valid_perplexity;  ///< LM tasks
  int64_t total_params = 0, trainable_params = 0, nonembed_total_params = 0;
  double trainable_percent = 0;
  double active_params = 0, nonembed_active_params = 0;
  FlopsBreakdown flops;  ///< forward FLOPs per token by part (test split)
  double flops_per_token = 0;
  double train_tokens_per_s = 0, eval_tokens_per_s = 0, train_seconds = 0;
  double model_flops_per_s = 0, peak_flops_per_s = 0, mfu = 0;
  std::optional<double> cuda_max_allocated_mb, checkpoint_seconds, peak_rss_mb;
  std::optional<double> mean_experts;                        ///< MoE models: mean over layers
  std::optional<double> difficulty_spearman;                 ///< tasks with per-token difficulty
  std::optional<double> steps_to_target, seconds_to_target;  ///< NaN: never reached
  /// The routers' and banks' statistics combined over layers by their Reduce (trace.h).
  std::map<std::string, double> plugin_stats;
};

/// The summary of a run from its final evaluations and what training measured.
RunSummary summarize(const EvalResult& valid, const EvalResult& test, bool lm_head,
                     const ModelSizes& params, const TrainingTotals& totals);

/// The 'final' split's metrics: every field by its stored name ("test_accuracy",
/// "flops_per_token/attention", ...; results/README.md), absent optionals left out.
std::map<std::string, double> final_metrics(const RunSummary& s);

}  // namespace moe
