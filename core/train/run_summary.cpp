#include "core/train/run_summary.h"

#include <sys/resource.h>

#include <algorithm>
#include <limits>

namespace moe {

RunSummary summarize(const EvalResult& valid, const EvalResult& test, bool lm_head,
                     const ModelSizes& params, const TrainingTotals& totals) {
  RunSummary s;
  s.test_accuracy = test.accuracy;
  s.test_loss = test.loss;
  s.valid_accuracy = valid.accuracy;
  s.valid_loss = valid.loss;
  if (lm_head) {
    s.test_perplexity = test.perplexity;
    s.valid_perplexity = valid.perplexity;
  }
  s.total_params = params.total;
  s.trainable_params = params.trainable;
  s.trainable_percent = 100.0 * static_cast<double>(params.trainable) /
                        std::max(1.0, static_cast<double>(params.total));
  s.active_params = test.active_params;
  s.nonembed_active_params = test.nonembed_active_params;
  s.nonembed_total_params = params.total - params.embedding;
  s.flops_per_token = test.flops_per_token;
  s.flops = test.flops;
  s.train_tokens_per_s = totals.train_seconds > 0 ? totals.train_tokens / totals.train_seconds : 0;
  // MFU: model FLOPs (3 x forward per token, at the test's experts per token) per second
  // of training, against the device's peak in the run's precision.
  s.model_flops_per_s = totals.train_flops_per_token * s.train_tokens_per_s;
  s.peak_flops_per_s = totals.peak_flops_per_s;
  s.mfu = totals.peak_flops_per_s > 0 ? s.model_flops_per_s / totals.peak_flops_per_s : 0.0;
  s.cuda_max_allocated_mb = totals.cuda_max_allocated_mb;
  s.eval_tokens_per_s = test.tokens_per_s;
  s.train_seconds = totals.train_seconds;
  s.checkpoint_seconds = totals.checkpoint_seconds;
  {  // the process's peak resident memory so far (Linux reports KiB)
    struct rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
      s.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
    }
  }
  s.mean_experts = test.mean_experts_over_layers();
  s.plugin_stats = combine_layers(test.layers);
  if (!test.level_experts.empty()) {  // NaN when experts per token are constant
    s.difficulty_spearman = test.difficulty_spearman;
  }
  if (totals.target_set) {  // NaN when the target was never reached
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const bool reached = totals.steps_to_target >= 0;
    s.steps_to_target = reached ? static_cast<double>(totals.steps_to_target) : nan;
    s.seconds_to_target = reached ? totals.seconds_to_target : nan;
  }
  return s;
}

std::map<std::string, double> final_metrics(const RunSummary& s) {
  std::map<std::string, double> m;
  const auto put = [&](const std::string& name, const std::optional<double>& v) {
    if (v) m[name] = *v;
  };
  m["test_accuracy"] = s.test_accuracy;
  m["test_loss"] = s.test_loss;
  m["valid_accuracy"] = s.valid_accuracy;
  m["valid_loss"] = s.valid_loss;
  put("test_perplexity", s.test_perplexity);
  put("valid_perplexity", s.valid_perplexity);
  m["total_params"] = static_cast<double>(s.total_params);
  m["trainable_params"] = static_cast<double>(s.trainable_params);
  m["trainable_percent"] = s.trainable_percent;
  m["active_params"] = s.active_params;
  m["nonembed_active_params"] = s.nonembed_active_params;
  m["nonembed_total_params"] = static_cast<double>(s.nonembed_total_params);
  m["flops_per_token"] = s.flops_per_token;
  m["flops_per_token/attention"] = s.flops.attention;
  m["flops_per_token/ffn"] = s.flops.ffn;
  m["flops_per_token/router"] = s.flops.router;
  m["flops_per_token/adapters"] = s.flops.adapters;
  m["flops_per_token/head"] = s.flops.head;
  m["train_tokens_per_s"] = s.train_tokens_per_s;
  m["model_flops_per_s"] = s.model_flops_per_s;
  m["peak_flops_per_s"] = s.peak_flops_per_s;
  m["mfu"] = s.mfu;
  put("cuda_max_allocated_mb", s.cuda_max_allocated_mb);
  m["eval_tokens_per_s"] = s.eval_tokens_per_s;
  m["train_seconds"] = s.train_seconds;
  put("checkpoint_seconds", s.checkpoint_seconds);
  put("peak_rss_mb", s.peak_rss_mb);
  put("mean_experts", s.mean_experts);
  for (const auto& [name, v] : s.plugin_stats) m[name] = v;
  put("difficulty_spearman", s.difficulty_spearman);
  put("steps_to_target", s.steps_to_target);
  put("seconds_to_target", s.seconds_to_target);
  return m;
}

}  // namespace moe
