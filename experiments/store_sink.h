#pragma once
// StoreSink: the one MetricSink that writes into the results store (sweep workers and
// moe sweep eval). It times itself, so the harness's own cost per run can be stored, and
// calls an optional check before every write and training step, which may throw to abandon
// the run (taken over by another process), and an optional stop request (a signal), which
// the trainer answers with a checkpoint.
#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "core/train/metric_sink.h"
#include "results/store.h"

namespace moe {

class StoreSink : public MetricSink {
 public:
  StoreSink(results::Store& store, int64_t run_id, std::function<void()> check = {},
            std::function<bool()> stop = {})
      : store_(store), run_id_(run_id), check_(std::move(check)), stop_(std::move(stop)) {}

  void metric(int64_t step, const MetricSplit& split, const std::string& name, double value,
              const SeriesAt& at) override {
    if (check_) check_();
    const auto t = std::chrono::steady_clock::now();
    store_.add_metric(run_id_, step, split.name, name, value, key(split, at));
    seconds_ += since(t);
  }
  void layer_stat(int64_t step, const MetricSplit& split, int64_t layer, const std::string& name,
                  double value, const SeriesAt& at) override {
    const auto t = std::chrono::steady_clock::now();
    store_.add_layer_stat(run_id_, step, split.name, layer, name, value, key(split, at));
    seconds_ += since(t);
  }
  void poll() override {
    if (check_) check_();
  }
  bool stop_requested() override { return stop_ && stop_(); }
  void flush() override {
    const auto t = std::chrono::steady_clock::now();
    store_.flush();
    seconds_ += since(t);
  }
  /// Seconds spent writing to the store.
  double seconds() const { return seconds_; }

 private:
  static results::MetricKey key(const MetricSplit& split, const SeriesAt& at) {
    return {at.item, at.level, split.option, split.option_value};
  }
  static double since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  results::Store& store_;
  int64_t run_id_;
  std::function<void()> check_;
  std::function<bool()> stop_;
  double seconds_ = 0;
};

}  // namespace moe
