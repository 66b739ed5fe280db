#include "core/train/metric_sink.h"

namespace moe {

void write_eval(MetricSink& sink, int64_t step, const MetricSplit& split, const EvalResult& r,
                const TaskInfo& info) {
  sink.metric(step, split, "loss", r.loss);
  sink.metric(step, split, "accuracy", r.accuracy);
  if (info.head == Head::kLm) sink.metric(step, split, "perplexity", r.perplexity);
  sink.metric(step, split, "active_params", r.active_params);
  sink.metric(step, split, "nonembed_active_params", r.nonembed_active_params);
  sink.metric(step, split, "tokens_per_s", r.tokens_per_s);
  sink.metric(step, split, "flops_per_token", r.flops_per_token);
  if (const auto k = r.mean_experts_over_layers()) sink.metric(step, split, "mean_experts", *k);
  const auto& levels = info.difficulty_levels;
  for (size_t i = 0; i < levels.size(); ++i) {
    sink.metric(step, split, "level_accuracy", r.level_accuracy[i], {std::nullopt, levels[i]});
  }
  if (!r.level_experts_all.empty()) {
    sink.metric(step, split, "difficulty_spearman", r.difficulty_spearman);
    for (size_t i = 0; i < levels.size(); ++i) {
      sink.metric(step, split, "level_mean_experts", r.level_experts_all[i],
                  {std::nullopt, levels[i]});
    }
  }
  for (size_t l = 0; l < r.level_experts.size(); ++l) {
    const auto layer = static_cast<int64_t>(l);
    sink.layer_stat(step, split, layer, "difficulty_spearman", r.layer_difficulty_spearman[l]);
    for (size_t i = 0; i < levels.size(); ++i) {
      sink.layer_stat(step, split, layer, "level_mean_experts", r.level_experts[l][i],
                      {std::nullopt, levels[i]});
    }
  }
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const auto& st = r.layers[l];
    const auto layer = static_cast<int64_t>(l);
    sink.layer_stat(step, split, layer, "mean_experts", st.mean_experts());
    sink.layer_stat(step, split, layer, "entropy", st.entropy());
    sink.layer_stat(step, split, layer, "dropped_fraction", st.dropped_fraction());
    // Diagnostics (results/README.md has the formulas).
    sink.layer_stat(step, split, layer, "saturation", st.saturation());
    sink.layer_stat(step, split, layer, "dead_experts", static_cast<double>(st.dead_experts()));
    sink.layer_stat(step, split, layer, "load_cv", st.load_cv());
    sink.layer_stat(step, split, layer, "load_max_over_mean", st.load_max_over_mean());
    sink.layer_stat(step, split, layer, "load_top20_share", st.load_top20_share());
    for (const auto& [name, q] : {std::pair<const char*, double>{"experts_p50", 0.5},
                                  {"experts_p90", 0.9},
                                  {"experts_p99", 0.99}}) {
      sink.layer_stat(step, split, layer, name, st.experts_quantile(q));
    }
    if (l < r.fluctuation.size()) {
      sink.layer_stat(step, split, layer, "fluctuation", r.fluctuation[l]);
    }
    for (const auto& kv : st.statistics()) sink.layer_stat(step, split, layer, kv.first, kv.second);
    const auto load = st.load_fraction();
    for (size_t e = 0; e < load.size(); ++e) {
      sink.layer_stat(step, split, layer, "load", load[e], {static_cast<int64_t>(e), ""});
    }
    for (size_t k = 0; k < st.histogram.size(); ++k) {
      sink.layer_stat(step, split, layer, "experts_hist",
                      st.tokens ? st.histogram[k] / st.tokens : 0.0, {static_cast<int64_t>(k), ""});
    }
  }
}

}  // namespace moe
