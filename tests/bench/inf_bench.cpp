// ∞-MoE layer costs at realistic shapes (T=4096, d=256, D=8d=2048, r=25%), forward +
// backward, all in one process so the ratios printed at the end compare like with like:
//   BM_InfGather/G:g/K:k   router inf_moe + bank inf_ffn (G blocks of 2048/G units), only
//                          the union of the K samples' kept blocks computed (the plugin)
//   BM_InfMaskedDense/G:g  the same layer, compute = dense (all 2048 units, masked)
//   BM_Top2of4             top-2 MoE of 4 FFN experts of width 2d = 512 (same total and
//                          nominal active parameters as ∞-MoE with K = 2)
//   BM_DenseFFN/hidden:h   a dense FFN; 1024 = the nominal active width K * r * D
// Counter union_units: mean kept hidden units per token (the union of the K samples) at
// initialisation (untrained router, sigma = 1).
//   build/inf_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <iomanip>
#include <iostream>

#include "core/moe_layer.h"
#include "core/transformer.h"
#include "plugins/experts/inf_ffn.h"
#include "tests/bench/bench_util.h"

namespace {

constexpr int64_t kT = 4096, kD = 256;

moe::MoELayer inf_layer(int64_t blocks, int64_t samples, const std::string& compute) {
  torch::manual_seed(0);
  const moe::LayerContext ctx{kD, blocks, 0, 1};
  auto router = moe::make_router(
      moe::PluginSpec::from_block("router", {{"name", "inf_moe"}, {"K", samples}}), ctx);
  auto bank = moe::make_expert_bank(
      moe::PluginSpec::from_block("experts", {{"name", "inf_ffn"}, {"compute", compute}}), ctx);
  return moe::MoELayer(router, bank, moe::MoELayerOptions(blocks));
}

void inf_bench(benchmark::State& state, const std::string& compute, int64_t samples) {
  auto layer = inf_layer(state.range(0), samples, compute);
  moe::LayerStats stats;
  stats.add(layer->forward(torch::randn({kT, kD})).trace);
  state.counters["union_units"] = stats.statistics().at("union_units");
  moe::bench::run_fwd_bwd(state, layer, kT, kD);
}

void BM_InfGather(benchmark::State& state) { inf_bench(state, "gather", state.range(1)); }
void BM_InfMaskedDense(benchmark::State& state) { inf_bench(state, "dense", 2); }

void BM_Top2of4(benchmark::State& state) {
  torch::manual_seed(0);
  const moe::LayerContext ctx{kD, 4, 0, 1};
  moe::MoELayer layer(
      moe::make_router(moe::PluginSpec::from_block("router", {{"name", "top_k"}, {"k", 2}}), ctx),
      moe::make_expert_bank(
          moe::PluginSpec::from_block("experts", {{"name", "ffn"}, {"hidden", 2 * kD}}), ctx),
      moe::MoELayerOptions(4));
  moe::bench::run_fwd_bwd(state, layer, kT, kD);
}

void BM_DenseFFN(benchmark::State& state) {
  torch::manual_seed(0);
  moe::DenseFFN ffn(kD, state.range(0), moe::Activation::kGelu);
  moe::bench::run_fwd_bwd(state, ffn, kT, kD);
}

BENCHMARK(BM_DenseFFN)->ArgName("hidden")->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Top2of4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_InfMaskedDense)->ArgName("G")->Arg(32)->Arg(2048)->Unit(benchmark::kMillisecond);
// Granularity (issue 16 item 7): G = 128, 256, 512 blocks and per-unit masks (G = D = 2048).
BENCHMARK(BM_InfGather)
    ->ArgNames({"G", "K"})
    ->Args({32, 1})
    ->Args({32, 2})
    ->Args({32, 4})
    ->Args({32, 8})
    ->Args({128, 2})
    ->Args({256, 2})
    ->Args({512, 2})
    ->Args({2048, 2})
    ->Unit(benchmark::kMillisecond);

class RatioReporter : public moe::bench::MedianReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto speed = [&](const std::string& a, const std::string& b) { return speedup(a, b); };
    const std::string g = "BM_InfGather/G:32/K:2";
    std::cout << std::fixed << std::setprecision(2) << "\nT=" << kT << " d=" << kD
              << " D=2048 r=0.25, " << torch::get_num_threads() << " threads; tokens/s ratios\n"
              << "inf gather (G 32, K 2) / masked dense:   " << speed(g, "BM_InfMaskedDense/G:32")
              << "x\n"
              << "inf gather (G 32, K 2) / top-2 of 4:     " << speed(g, "BM_Top2of4") << "x\n"
              << "inf gather (G 32, K 2) / dense FFN 1024: " << speed(g, "BM_DenseFFN/hidden:1024")
              << "x\n"
              << "inf gather G 128, 256, 512, 2048 / G 32: " << speed("BM_InfGather/G:128/K:2", g)
              << "x, " << speed("BM_InfGather/G:256/K:2", g) << "x, "
              << speed("BM_InfGather/G:512/K:2", g) << "x, " << speed("BM_InfGather/G:2048/K:2", g)
              << "x\n"
              << "per-unit (G 2048): gather / masked dense: "
              << speed("BM_InfGather/G:2048/K:2", "BM_InfMaskedDense/G:2048") << "x\n"
              << "inf gather K 1, 4, 8 / K 2 (G 32):       " << speed("BM_InfGather/G:32/K:1", g)
              << "x, " << speed("BM_InfGather/G:32/K:4", g) << "x, "
              << speed("BM_InfGather/G:32/K:8", g) << "x\n";
  }
};

}  // namespace

int main(int argc, char** argv) { return moe::bench::run_main<RatioReporter>(argc, argv); }
