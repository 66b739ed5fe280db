#pragma once
// Shared by the Google Benchmark binaries (tests/bench): the timed forward + backward loop
// and a console reporter that remembers every case (its median aggregate under
// --benchmark_repetitions) so a subclass can print ratios measured in the same process.
#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/moe_layer.h"
#include "core/train/device.h"
#include "core/train/trainer.h"

namespace moe::bench {

/// The output tensor of a forward: a dense module's tensor, or an MoE layer's y.
inline const torch::Tensor& output_of(const torch::Tensor& y) { return y; }
inline const torch::Tensor& output_of(const moe::MoEOutput& out) { return out.y; }

/// Times layer->forward(x).backward(grad) on x [tokens, d] after two warm-up passes;
/// items = tokens per iteration.
template <class Layer>
void run_fwd_bwd(benchmark::State& state, Layer& layer, int64_t tokens, int64_t d) {
  torch::manual_seed(0);
  auto x = torch::randn({tokens, d}, torch::requires_grad());
  auto grad = torch::randn({tokens, d});
  for (int i = 0; i < 2; ++i) output_of(layer->forward(x)).backward(grad);
  for (auto _ : state) {
    moe::drop_grads(layer->parameters());
    x.mutable_grad() = torch::Tensor();
    output_of(layer->forward(x)).backward(grad);
  }
  state.SetItemsProcessed(state.iterations() * tokens);
}

/// Seconds spent in each of two passes timed in the same loop.
struct PairSeconds {
  double a = 0, b = 0;
};

/// Runs a() and b() once per benchmark iteration, alternating which goes first, and sums
/// each one's time: drifts in the machine's speed (a shared VM's neighbours) hit both
/// alike, so their ratio is steadier than that of two benchmarks run one after the other.
/// Each pass must finish its work before returning (synchronise an asynchronous device).
template <class A, class B>
PairSeconds time_alternating(benchmark::State& state, A&& a, B&& b) {
  using clock = std::chrono::steady_clock;
  auto timed = [](auto& pass) {
    const auto t0 = clock::now();
    pass();
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  PairSeconds s;
  bool a_first = true;
  for (auto _ : state) {
    if (a_first) {
      s.a += timed(a);
      s.b += timed(b);
    } else {
      s.b += timed(b);
      s.a += timed(a);
    }
    a_first = !a_first;
  }
  return s;
}

/// The counters of an MoE-vs-dense pair: each one's tokens/s and dense time / MoE time.
inline void set_pair_counters(benchmark::State& state, const PairSeconds& s, int64_t tokens) {
  const double n = static_cast<double>(state.iterations()) * tokens;
  state.counters["moe_tok_s"] = n / s.a;
  state.counters["dense_tok_s"] = n / s.b;
  state.counters["ratio"] = s.b / s.a;
}

class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      std::string name = r.benchmark_name();
      if (r.run_type == Run::RT_Aggregate) {
        const auto cut = name.rfind("_median");
        if (cut == std::string::npos || cut + 7 != name.size()) continue;
        name.resize(cut);
        median_.insert(name);
      } else if (median_.count(name)) {
        continue;
      }
      time_[name] = r.GetAdjustedRealTime();
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rate_[name] = it->second.value;
      for (const auto& kv : r.counters) counter_[name][kv.first] = kv.second.value;
    }
  }

 protected:
  bool has(const std::string& name) const { return time_.count(name) > 0; }
  /// Time per iteration in the case's time unit; 0 when the case did not run.
  double time(const std::string& name) const { return has(name) ? time_.at(name) : 0.0; }
  /// Items (tokens) per second; 0 when absent.
  double rate(const std::string& name) const { return rate_.count(name) ? rate_.at(name) : 0.0; }
  /// A user counter of a case (its median under repetitions); 0 when absent.
  double counter(const std::string& name, const std::string& key) const {
    auto it = counter_.find(name);
    if (it == counter_.end()) return 0.0;
    auto c = it->second.find(key);
    return c == it->second.end() ? 0.0 : c->second;
  }
  /// How many times faster a runs than b (b's time over a's; both in the same unit).
  double speedup(const std::string& a, const std::string& b) const {
    return has(a) && has(b) ? time(b) / time(a) : 0.0;
  }

 private:
  std::map<std::string, double> time_, rate_;
  std::map<std::string, std::map<std::string, double>> counter_;
  std::set<std::string> median_;
};

/// main() of a benchmark binary: all cores and the allocator policy the moe binary uses
/// (no page faults on reused buffers), then every benchmark through Reporter.
template <class Reporter>
int run_main(int argc, char** argv) {
  moe::configure_threads(0);
  moe::configure_allocator();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace moe::bench
