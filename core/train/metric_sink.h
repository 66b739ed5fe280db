#pragma once
// MetricSink: where training and evaluation metrics go (the results layer stores them;
// core never touches SQLite), and write_eval, which sends one evaluation to a sink.
#include <cstdint>
#include <string>

#include "core/data/task.h"
#include "core/train/evaluator.h"

namespace moe {

/// Receives metric events. split: "train", "valid", "test", "final", "test@<option>=<value>".
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void metric(int64_t step, const std::string& split, const std::string& name,
                      double value) = 0;
  /// Per-MoE-layer statistic (layer = 0-based index among MoE layers).
  virtual void layer_stat(int64_t step, const std::string& split, int64_t layer,
                          const std::string& name, double value) = 0;
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
void write_eval(MetricSink& sink, int64_t step, const std::string& split, const EvalResult& r,
                const TaskInfo& info);

}  // namespace moe
