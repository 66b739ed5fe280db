// MoE layer forward+backward throughput against a dense FFN doing the same active FLOPs
// (hidden width k * h), at realistic shapes. Reports tokens/s and, after all runs, each MoE
// configuration's ratio to its dense baseline measured in the same process.
//
//   build/moe_bench                      # all shapes, one run each
//   build/moe_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//                                        # ratios from the medians (use this for reports)
//   build/moe_bench --benchmark_filter=E:8
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>

#include <torch/cuda.h>

#include <cstdlib>
#include <string>

#include "core/compat.h"
#include "core/moe_layer.h"
#include "core/transformer.h"
#include "plugins/experts/ffn.h"
#include "plugins/routers/top_k.h"
#include "tests/bench/bench_util.h"

namespace {

constexpr int64_t kT = 4096, kD = 256;

// args: hidden
void BM_DenseFFN(benchmark::State& state) {
  torch::manual_seed(0);
  moe::DenseFFN ffn(kD, state.range(0), moe::Activation::kGelu);
  moe::bench::run_fwd_bwd(state, ffn, kT, kD);
}

// args: E, k, h
void BM_MoE(benchmark::State& state) {
  torch::manual_seed(0);
  const int64_t e = state.range(0), k = state.range(1), h = state.range(2);
  moe::MoELayer layer(moe::Router(std::shared_ptr<moe::RouterImpl>(
                          moe::TopKRouter(moe::TopKRouterOptions(kD, e).k(k)).ptr())),
                      moe::ExpertBank(std::shared_ptr<moe::ExpertBankImpl>(
                          moe::FFNExperts(moe::FFNExpertsOptions(kD, e, h)).ptr())),
                      moe::MoELayerOptions(e));
  moe::bench::run_fwd_bwd(state, layer, kT, kD);
}

BENCHMARK(BM_DenseFFN)->ArgName("hidden")->Arg(2048)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MoE)
    ->ArgNames({"E", "k", "h"})
    ->Args({8, 2, 1024})
    ->Args({64, 8, 128})
    ->Unit(benchmark::kMillisecond);

// Dynamic routers (top_p, adaptive): experts per token depends on the routing, so the dense
// baseline is built with hidden = round(measured k * h) and both are timed in the same
// loop; counters: k, moe and dense tokens/s, and their ratio. The gate is scaled (std 0.5)
// so routing is as peaked as a trained router's rather than uniform.
// args: router (0 = top_p threshold 0.4, 1 = adaptive threshold 0.1), h; E = 8.
void BM_DynamicVsDense(benchmark::State& state) {
  torch::manual_seed(0);
  const int64_t e = 8, h = state.range(1);
  const nlohmann::json router = state.range(0) == 0
                                    ? nlohmann::json{{"name", "top_p"}, {"threshold", 0.4}}
                                    : nlohmann::json{{"name", "adaptive"}, {"threshold", 0.1}};
  const moe::LayerContext ctx{kD, e, 0, 1};
  moe::MoELayer layer(
      moe::make_router(moe::PluginSpec::from_block("router", router), ctx),
      moe::make_expert_bank(moe::PluginSpec("experts", "ffn", {{"hidden", h}}), ctx),
      moe::MoELayerOptions(e));
  {
    torch::NoGradGuard g;
    for (auto& p : layer->router->parameters()) p.normal_(0.0, 0.5);
  }
  auto x = torch::randn({kT, kD}, torch::requires_grad());
  auto grad = torch::randn({kT, kD});
  auto first = layer->forward(x);
  first.y.backward(grad);
  const double k = first.trace.mean_experts();
  moe::DenseFFN dense(kD, static_cast<int64_t>(std::lround(k * h)), moe::Activation::kGelu);
  dense->forward(x).backward(grad);
  double moe_s = 0, dense_s = 0;
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    auto t0 = clock::now();
    layer->zero_grad();
    layer->forward(x).y.backward(grad);
    auto t1 = clock::now();
    dense->zero_grad();
    dense->forward(x).backward(grad);
    auto t2 = clock::now();
    moe_s += std::chrono::duration<double>(t1 - t0).count();
    dense_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations()) * kT;
  state.counters["k"] = k;
  state.counters["moe_tok_s"] = n / moe_s;
  state.counters["dense_tok_s"] = n / dense_s;
  state.counters["ratio"] = dense_s / moe_s;
}
BENCHMARK(BM_DynamicVsDense)
    ->ArgNames({"router", "h"})
    ->Args({0, 1024})
    ->Args({1, 1024})
    ->Unit(benchmark::kMillisecond);

// The GPU check's case (experiments/gpu/device_check.sh): MoE top-k vs the dense FFN of
// equal active FLOPs (hidden k * h), timed in the same loop on MOE_BENCH_DEVICE (cpu |
// cuda, default cpu) in MOE_BENCH_DTYPE (fp32 | bf16: the forward under autocast, as
// train.precision does), at MOE_BENCH_SIZES = full (T 16384, d 1024) or toy (T 256, d 64).
// args: shape (0: E=8 k=2 h=4096, 1: E=64 k=8 h=512; toy: h / 16). Counters: tokens/s of
// each, their ratio, and the MoE's achieved TFLOP/s (3 x forward expert FLOPs).
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

void BM_Device(benchmark::State& state) {
  const auto device = torch::Device(env_or("MOE_BENCH_DEVICE", "cpu"));
  const bool bf16 = env_or("MOE_BENCH_DTYPE", "fp32") == "bf16";
  const bool full = env_or("MOE_BENCH_SIZES", "toy") == "full";
  const int64_t t = full ? 16384 : 256, d = full ? 1024 : 64;
  const int64_t e = state.range(0) == 0 ? 8 : 64, k = state.range(0) == 0 ? 2 : 8;
  const int64_t h = (state.range(0) == 0 ? 4096 : 512) / (full ? 1 : 16);
  torch::manual_seed(0);
  moe::MoELayer layer(moe::Router(std::shared_ptr<moe::RouterImpl>(
                          moe::TopKRouter(moe::TopKRouterOptions(d, e).k(k)).ptr())),
                      moe::ExpertBank(std::shared_ptr<moe::ExpertBankImpl>(
                          moe::FFNExperts(moe::FFNExpertsOptions(d, e, h)).ptr())),
                      moe::MoELayerOptions(e));
  moe::DenseFFN dense(d, k * h, moe::Activation::kGelu);
  layer->to(device);
  dense->to(device);
  auto x = torch::randn({t, d}, torch::TensorOptions(device).requires_grad(true));
  auto grad = torch::randn({t, d}, torch::TensorOptions(device));
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto moe_pass = [&] {
    moe::compat::AutocastGuard ac(device.type(), bf16);
    layer->zero_grad();
    layer->forward(x).y.backward(grad);
  };
  auto dense_pass = [&] {
    moe::compat::AutocastGuard ac(device.type(), bf16);
    dense->zero_grad();
    dense->forward(x).backward(grad);
  };
  for (int i = 0; i < 2; ++i) moe_pass(), dense_pass();
  sync();
  double moe_s = 0, dense_s = 0;
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    auto t0 = clock::now();
    moe_pass();
    sync();
    auto t1 = clock::now();
    dense_pass();
    sync();
    auto t2 = clock::now();
    moe_s += std::chrono::duration<double>(t1 - t0).count();
    dense_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations()) * t;
  state.counters["moe_tok_s"] = n / moe_s;
  state.counters["dense_tok_s"] = n / dense_s;
  state.counters["ratio"] = dense_s / moe_s;
  state.counters["moe_TFLOPs"] = 3.0 * 4.0 * d * k * h * n / moe_s / 1e12;
  state.counters["dense_TFLOPs"] = 3.0 * 4.0 * d * k * h * n / dense_s / 1e12;
}
BENCHMARK(BM_Device)->ArgName("shape")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

/// Console output plus a ratio table: MoE tokens/s over the dense FFN with hidden = k * h.
class RatioReporter : public moe::bench::MedianReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    struct Case {
      const char* moe;
      const char* dense;
      double target;
    };
    const Case cases[] = {{"BM_MoE/E:8/k:2/h:1024", "BM_DenseFFN/hidden:2048", 0.9},
                          {"BM_MoE/E:64/k:8/h:128", "BM_DenseFFN/hidden:1024", 0.6}};
    std::cout << "\nforward+backward tokens/s, T=" << kT << " d=" << kD << ", "
              << torch::get_num_threads() << " threads\n";
    for (const auto& c : cases) {
      if (rate(c.moe) <= 0 || rate(c.dense) <= 0) continue;
      const double ratio = rate(c.moe) / rate(c.dense);
      std::cout << std::left << std::setw(34) << c.moe << std::fixed << std::setprecision(0)
                << rate(c.moe) << " tok/s vs " << std::setw(24) << c.dense << rate(c.dense)
                << " tok/s: ratio " << std::setprecision(3) << ratio << " (target >= " << c.target
                << ") " << (ratio >= c.target ? "ok" : "BELOW TARGET") << "\n";
    }
  }
};

}  // namespace

int main(int argc, char** argv) { return moe::bench::run_main<RatioReporter>(argc, argv); }
