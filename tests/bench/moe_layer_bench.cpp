// MoE layer forward+backward throughput against a dense FFN doing the same active FLOPs
// (hidden width k * h), at realistic shapes, the two timed alternately in the same loop.
// Reports each one's tokens/s and their ratio, then each case against its target.
//
//   build/moe_bench                      # all shapes, one run each
//   build/moe_bench --benchmark_min_time=3 --benchmark_repetitions=5
//                   --benchmark_report_aggregates_only=true
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
#include "core/grouped_ffn.h"
#include "core/moe_layer.h"
#include "core/transformer.h"
#include "plugins/experts/ffn.h"
#include "plugins/routers/top_k.h"
#include "tests/bench/bench_util.h"

namespace {

constexpr int64_t kT = 4096, kD = 256;

// Times the MoE layer's and the dense FFN's forward + backward on x alternately, on x's
// device (waiting for a GPU to finish each pass), the forward under bf16 autocast when asked,
// after two warm-up passes of each; sets the pair's counters and returns the seconds.
moe::bench::PairSeconds moe_against_dense(benchmark::State& state, moe::MoELayer& layer,
                                          moe::DenseFFN& dense, const torch::Tensor& x,
                                          const torch::Tensor& grad, bool bf16 = false) {
  const auto device = x.device();
  auto pass = [&](auto& module, auto&& forward) {
    {
      moe::compat::AutocastGuard ac(device.type(), bf16);
      moe::drop_grads(module->parameters());
      forward().backward(grad);
    }
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto moe_pass = [&] { pass(layer, [&] { return layer->forward(x).y; }); };
  auto dense_pass = [&] { pass(dense, [&] { return dense->forward(x); }); };
  for (int i = 0; i < 2; ++i) moe_pass(), dense_pass();
  const auto secs = moe::bench::time_alternating(state, moe_pass, dense_pass);
  moe::bench::set_pair_counters(state, secs, x.size(0));
  return secs;
}

// A top-k MoE layer (E experts of width h) against the dense FFN of the same active FLOPs
// (hidden k * h), timed alternately in the same loop. Counters: each one's tokens/s and
// their ratio (dense time / MoE time).
// args: E, k, h
void BM_MoE(benchmark::State& state) {
  torch::manual_seed(0);
  const int64_t e = state.range(0), k = state.range(1), h = state.range(2);
  moe::MoELayer layer(moe::Router(std::shared_ptr<moe::RouterImpl>(
                          moe::TopKRouter(moe::TopKRouterOptions(kD, e).k(k)).ptr())),
                      moe::ExpertBank(std::shared_ptr<moe::ExpertBankImpl>(
                          moe::FFNExperts(moe::FFNExpertsOptions(kD, e, h)).ptr())),
                      moe::MoELayerOptions(e));
  moe::DenseFFN dense(kD, k * h, moe::Activation::kGelu);
  auto x = torch::randn({kT, kD}, torch::requires_grad());
  auto grad = torch::randn({kT, kD});
  moe_against_dense(state, layer, dense, x, grad);
}

BENCHMARK(BM_MoE)
    ->ArgNames({"E", "k", "h"})
    ->Args({8, 2, 1024})
    ->Args({64, 8, 128})
    ->Unit(benchmark::kMillisecond);

// The expert bank's matmuls alone (grouped_ffn on rows already sorted by expert, T k / E rows
// each: no router, no gather, no combine) against the same dense FFN, timed alternately:
// with BM_MoE at the same args it splits the layer's gap to dense into the expert matmuls'
// share and the routing + gather/combine share. args: E, k, h.
void BM_ExpertMatmulsAlone(benchmark::State& state) {
  torch::manual_seed(0);
  const int64_t e = state.range(0), k = state.range(1), h = state.range(2);
  moe::FFNExperts bank(moe::FFNExpertsOptions(kD, e, h));
  const std::vector<int64_t> counts(e, kT * k / e);
  auto xs = torch::randn({kT * k, kD}, torch::requires_grad());
  auto grad_ys = torch::randn({kT * k, kD});
  moe::DenseFFN dense(kD, k * h, moe::Activation::kGelu);
  auto x = torch::randn({kT, kD}, torch::requires_grad());
  auto grad = torch::randn({kT, kD});
  auto experts_pass = [&] {
    moe::drop_grads(bank->parameters());
    moe::grouped_ffn(xs, bank->w1, bank->b1, bank->w2, bank->b2, counts, moe::Activation::kGelu)
        .backward(grad_ys);
  };
  auto dense_pass = [&] {
    moe::drop_grads(dense->parameters());
    dense->forward(x).backward(grad);
  };
  for (int i = 0; i < 2; ++i) experts_pass(), dense_pass();
  moe::bench::set_pair_counters(state,
                                moe::bench::time_alternating(state, experts_pass, dense_pass), kT);
}
BENCHMARK(BM_ExpertMatmulsAlone)
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
  moe_against_dense(state, layer, dense, x, grad);
  state.counters["k"] = k;
}
BENCHMARK(BM_DynamicVsDense)
    ->ArgNames({"router", "h"})
    ->Args({0, 1024})
    ->Args({1, 1024})
    ->Unit(benchmark::kMillisecond);

// The top_p layer at the shape of the Dynamic_MoE repository's SwitchMLP (the method's
// reference code): 8 SwiGLU experts of width 1024, threshold 0.4, an untrained router (its
// default initialisation, as the reference's), forward + backward of the layer output alone.
// Counters: tok/s and k (experts per token). tests/bench/dynamic_moe_compare.sh times it
// alternately with that repository's Python layer.
void BM_TopPDynamicMoEShape(benchmark::State& state) {
  torch::manual_seed(0);
  const moe::LayerContext ctx{kD, 8, 0, 1};
  moe::MoELayer layer(
      moe::make_router(moe::PluginSpec("router", "top_p", {{"threshold", 0.4}}), ctx),
      moe::make_expert_bank(
          moe::PluginSpec("experts", "ffn", {{"hidden", 1024}, {"activation", "swiglu"}}), ctx),
      moe::MoELayerOptions(8));
  {
    // The reference's router is a torch.nn.Linear at its default initialisation,
    // U(-1/sqrt(d), 1/sqrt(d)), which routes to fewer experts per token than our N(0, 0.02):
    // the same here, so both do the same arithmetic (counter k).
    torch::NoGradGuard no_grad;
    for (auto& p : layer->router->parameters())
      p.uniform_(-1.0 / std::sqrt(kD), 1.0 / std::sqrt(kD));
  }
  moe::bench::run_fwd_bwd(state, layer, kT, kD);
  torch::NoGradGuard no_grad;
  state.counters["k"] = layer->forward(torch::randn({kT, kD})).trace.mean_experts();
}
BENCHMARK(BM_TopPDynamicMoEShape)->Unit(benchmark::kMillisecond);

// The GPU check's case (experiments/gpu/device_check.sh): MoE top-k vs the dense FFN of
// equal active FLOPs (hidden k * h), timed in the same loop on MOE_BENCH_DEVICE (cpu |
// cuda, default cpu) in MOE_BENCH_DTYPE (fp32 | bf16: the forward under autocast, as
// train.precision does), at MOE_BENCH_SIZES = full (T 16384, d 1024) or toy (T 256, d 64).
// args: shape (0: E=8 k=2 h=4096, 1: E=64 k=8 h=512; toy: h / 16), matmuls (0: auto, the
// grouped kernel where it applies; 1: one matmul per expert). Counters: tokens/s of each,
// their ratio, the MoE's achieved TFLOP/s (3 x forward expert FLOPs), grouped_kernel.
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
  const auto matmuls =
      state.range(1) == 0 ? moe::ExpertMatmuls::kAuto : moe::ExpertMatmuls::kPerExpert;
  torch::manual_seed(0);
  moe::FFNExperts bank(moe::FFNExpertsOptions(d, e, h).matmuls(matmuls));
  moe::MoELayer layer(moe::Router(std::shared_ptr<moe::RouterImpl>(
                          moe::TopKRouter(moe::TopKRouterOptions(d, e).k(k)).ptr())),
                      moe::ExpertBank(std::shared_ptr<moe::ExpertBankImpl>(bank.ptr())),
                      moe::MoELayerOptions(e));
  moe::DenseFFN dense(d, k * h, moe::Activation::kGelu);
  layer->to(device);
  dense->to(device);
  auto x = torch::randn({t, d}, torch::TensorOptions(device).requires_grad(true));
  auto grad = torch::randn({t, d}, torch::TensorOptions(device));
  const auto secs = moe_against_dense(state, layer, dense, x, grad, bf16);
  const double n = static_cast<double>(state.iterations()) * t;
  state.counters["moe_TFLOPs"] = 3.0 * 4.0 * d * k * h * n / secs.a / 1e12;
  state.counters["dense_TFLOPs"] = 3.0 * 4.0 * d * k * h * n / secs.b / 1e12;
  // 1 when the expert matmuls ran as at::_grouped_mm (auto, LibTorch 2.9+, CUDA, bf16).
  state.counters["grouped_kernel"] =
      matmuls == moe::ExpertMatmuls::kAuto &&
      moe::grouped_kernel_applies(x.to(bf16 ? torch::kBFloat16 : torch::kFloat), bank->w1,
                                  bank->w2);
}
BENCHMARK(BM_Device)
    ->ArgNames({"shape", "matmuls"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

/// Console output plus the MoE-vs-dense ratios against their targets (medians under
/// --benchmark_repetitions).
class RatioReporter : public moe::bench::MedianReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    const std::pair<const char*, double> cases[] = {{"BM_MoE/E:8/k:2/h:1024", 0.9},
                                                    {"BM_MoE/E:64/k:8/h:128", 0.6}};
    bool header = false;
    for (const auto& [name, target] : cases) {
      const double ratio = counter(name, "ratio");
      if (ratio <= 0) continue;
      if (!header) {
        std::cout << "\nforward+backward, T=" << kT << " d=" << kD << ", "
                  << torch::get_num_threads()
                  << " threads; MoE and the dense FFN of equal active FLOPs timed alternately\n";
        header = true;
      }
      std::cout << std::left << std::setw(24) << name << std::fixed << std::setprecision(0)
                << counter(name, "moe_tok_s") << " tok/s vs dense " << counter(name, "dense_tok_s")
                << " tok/s: ratio " << std::setprecision(3) << ratio << " (target >= " << target
                << ") " << (ratio >= target ? "ok" : "BELOW TARGET") << "\n";
    }
  }
};

}  // namespace

int main(int argc, char** argv) { return moe::bench::run_main<RatioReporter>(argc, argv); }
