#pragma once
// MetricSink: where training and evaluation metrics go (the results layer stores them;
// core never touches SQLite), and write_eval, which sends one evaluation to a sink.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "core/data/task.h"
#include "core/train/evaluator.h"

namespace moe {

/// The split a metric belongs to: "train", "valid", "test", "final", or "reeval" (the test
/// split evaluated again with an inference option set: `option` = `option_value`).
struct MetricSplit {
  MetricSplit(const char* split) : name(split) {}  // NOLINT: a split is named by its string
  MetricSplit(std::string split) : name(std::move(split)) {}  // NOLINT
  static MetricSplit reeval(std::string option, double value) {
    MetricSplit s("reeval");
    s.option = std::move(option);
    s.option_value = value;
    return s;
  }
  std::string name;
  std::string option;  ///< "reeval" only
  double option_value = 0;
};

/// Where a value sits in an indexed series, beyond its name: `item`, the expert of "load"
/// or the experts-used count of "experts_hist"; `level`, the difficulty level of
/// "level_accuracy" and "level_mean_experts". Names never carry them.
struct SeriesAt {
  std::optional<int64_t> item;
  std::string level;
};

/// Receives metric events.
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void metric(int64_t step, const MetricSplit& split, const std::string& name, double value,
                      const SeriesAt& at = {}) = 0;
  /// Per-MoE-layer statistic (layer = 0-based index among MoE layers).
  virtual void layer_stat(int64_t step, const MetricSplit& split, int64_t layer,
                          const std::string& name, double value, const SeriesAt& at = {}) = 0;
  /// Called before every training step; may throw to abandon the run (e.g. it was taken
  /// over by another process): nothing more is written, no checkpoint is saved.
  virtual void poll() {}
  /// Asked before every training step: true stops training there after a checkpoint (when
  /// train.checkpoint is set); the trainer then throws TrainingStopped (e.g. on SIGTERM).
  virtual bool stop_requested() { return false; }
  /// Makes every event received so far durable (called before each checkpoint, so the
  /// rows up to a checkpoint's step are stored when it is).
  virtual void flush() {}
};

/// Sends an evaluation's metrics and per-layer statistics to the sink under `split`.
void write_eval(MetricSink& sink, int64_t step, const MetricSplit& split, const EvalResult& r,
                const TaskInfo& info);

}  // namespace moe
