#pragma once
// Trainer: AdamW, linear warmup then cosine decay, gradient clipping, periodic evaluation
// and checkpoints, deterministic under a seed. Metric events go to a MetricSink (the
// results layer stores them; core never touches SQLite).
#include <torch/optim/adamw.h>

#include <chrono>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/data/task.h"
#include "core/train/config.h"
#include "core/train/device.h"
#include "core/train/evaluator.h"
#include "core/train/metric_sink.h"
#include "core/train/optimizer.h"
#include "core/train/run_summary.h"
#include "core/train/sampler.h"
#include "core/transformer.h"

namespace moe {

/// Thrown by the trainer when its metric sink asked it to stop (MetricSink::stop_requested),
/// after the checkpoint was written (when train.checkpoint is set).
struct TrainingStopped : std::runtime_error {
  explicit TrainingStopped(int64_t at_step)
      : std::runtime_error("training stopped at step " + std::to_string(at_step)), step(at_step) {}
  int64_t step;
};

struct TrainResult {
  EvalResult valid, test;
  RunSummary summary;  ///< the final numbers, typed (final_metrics() names them)
};

class Trainer {
 public:
  /// progress: where the live progress line goes (nullptr = silent).
  Trainer(ExperimentConfig config, MetricSink* sink = nullptr, std::ostream* progress = nullptr);

  /// Trains to config.train.steps (resuming from the checkpoint when train.resume is set
  /// and the file exists), then evaluates on valid and test. Throws on a non-finite loss.
  TrainResult run();

  /// Trains until `step` steps are done (no final evaluation).
  void train_until(int64_t step);
  /// A checkpoint of everything a continuation needs (checkpoint.h, plus the trainer's
  /// clocks and token count, time-to-target, the sampler, the open log window and the last
  /// probe routing), so that load + train_until gives bit-equal results on the same device
  /// and thread count (the checkpoint records the CPU threads it was trained with:
  /// checkpoint_threads()).
  void save(const std::string& path);
  void load(const std::string& path);
  /// The CPU thread count the loaded checkpoint was trained with (0: none loaded, or a
  /// checkpoint from before it was recorded).
  int64_t checkpoint_threads() const { return checkpoint_threads_; }
  /// Flushes the sink, then saves to train.checkpoint (timed: time-based saves keep their
  /// cost under 1% of training).
  void checkpoint();

  Transformer& model() { return model_; }
  const torch::optim::AdamW& optimizer() const { return *optimizer_; }
  Task& task() { return *task_; }
  const Task& task() const { return *task_; }
  int64_t step() const { return step_; }
  const torch::Device& device() const { return device_; }
  const ExperimentConfig& config() const { return config_; }
  /// Model FLOPs per second achieved / the device's peak (MFU) at tokens_per_s training
  /// tokens with mean_experts experts per token per MoE layer; 0 when the peak is unknown.
  double mfu(double tokens_per_s, const std::vector<double>& mean_experts);

 private:
  /// What one optimizer step measured. The loss and gradient norm stay on the device as
  /// tensors: on CUDA the host reads them only at the window's sync points (no per-step
  /// synchronisation); on the CPU every step is a sync point.
  struct StepOutcome {
    double lr = 0;
    int64_t tokens = 0;
    torch::Tensor loss, grad_norm;             ///< detached scalars on the device
    std::map<std::string, torch::Tensor> aux;  ///< unscaled, detached, on the device
    std::vector<double> mean_experts;          ///< per MoE layer
  };
  /// Sums over the steps since the last log line: loss and gradient norm on the device (in
  /// double), read into the host fields by read().
  struct Window {
    torch::Tensor loss_sum, grad_norm_sum, last_grad_norm;
    double loss = 0, grad_norm = 0, seconds = 0;  ///< host sums as of the last read()
    int64_t steps = 0, tokens = 0;
    std::vector<double> experts;
    void add(const StepOutcome& s);
    /// One device-to-host copy of the sums; returns the last step's gradient norm.
    double read();
    void save(torch::serialize::OutputArchive& archive) const;
    void load(torch::serialize::InputArchive& archive, const torch::Device& device);
  };
  /// One step: batch, forward, loss with the aux losses, backward, clip, AdamW.
  StepOutcome step_once();
  /// Whether a checkpoint is due after step `done` (steps or training minutes).
  bool checkpoint_due(int64_t done) const;
  /// Writes the window's train metrics at step `done` (the last step's lr and aux losses).
  void log_window(int64_t done, const StepOutcome& last, const Window& w);
  /// The periodic validation evaluation at step `done`.
  void evaluate_during(int64_t done);
  /// Sets r's routing fluctuation against the previous validation evaluation.
  void track_fluctuation(EvalResult& r);
  double lr_at(int64_t step) const;
  void log_eval(const std::string& split, const EvalResult& r);
  void print_progress(double loss, double tokens_per_s, bool force);

  ExperimentConfig config_;
  MetricSink* sink_;
  std::ostream* progress_;
  torch::Device device_;
  std::shared_ptr<Task> task_;
  Transformer model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t step_ = 0;
  Window window_;  ///< the steps since the last log line (kept in checkpoints)
  double train_seconds_ = 0;
  double saved_at_seconds_ = 0;     ///< train_seconds_ at the last checkpoint
  int64_t saved_step_ = -1;         ///< the step of the last checkpoint written or loaded
  int64_t checkpoint_threads_ = 0;  ///< the CPU threads the loaded checkpoint trained with
  double save_cost_ = 0;            ///< seconds the last checkpoint took
  double checkpoint_seconds_ = 0;   ///< all checkpoints' seconds (outside train_seconds_)
  double last_grad_norm_ = 0;
  std::vector<double> last_mean_experts_;  ///< per MoE layer, from the last step
  int64_t train_tokens_ = 0;
  /// The device's peak FLOP/s (MFU's denominator), looked up or probed on first use.
  const PeakFlops& peak();
  std::optional<PeakFlops> peak_;
  /// Model FLOPs per training token: 3 x the forward's (backward ~ 2 x forward).
  double train_flops_per_token(const std::vector<double>& mean_experts) const;
  std::unique_ptr<BatchSampler> sampler_;
  // Time to target (train.target_loss).
  int64_t steps_to_target_ = -1;
  double seconds_to_target_ = -1;
  /// The probe routing of the last validation evaluation (routing fluctuation).
  EvalResult previous_probe_;
  /// When the progress line was last drawn (each trainer its own).
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
};

/// Builds the model a config and task describe.
Transformer build_model(const ExperimentConfig& config, const TaskInfo& info);

}  // namespace moe
