// HyperMoE costs at realistic shapes (T=4096, d=256, N=8, k=2, r=64, 128-wide embeddings,
// methods.md §4 sizes):
//   BM_AdapterPerSet / BM_AdapterPerToken: generating and applying the HyperExpert once per
//     distinct selected set (the plugin) vs once per token (the test reference), forward +
//     backward; counter generated_MB = the generated adapter weights held per step.
//   BM_HostMoE / BM_HyperMoE: the whole layer, top-2 FFN experts (h=1024) without and with
//     the HyperExpert, forward + backward tokens/s.
// Ratios (same process) are printed at the end.
//   build/hyper_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <iomanip>
#include <iostream>

#include "core/moe_layer.h"
#include "plugins/experts/hyper.h"
#include "plugins/routers/top_k.h"
#include "tests/bench/bench_util.h"
#include "tests/plugins/hyper_reference.h"

namespace {

constexpr int64_t kT = 4096, kD = 256, kE = 8, kR = 64;
const nlohmann::json kHyper = {{"bottleneck", kR},
                               {"embed_dim", 128},
                               {"hidden", 128},
                               {"hyper_hidden", 128},
                               {"inner", {{"name", "ffn"}, {"hidden", 1024}}}};

moe::ExpertBank make_bank(bool hyper) {
  torch::manual_seed(0);
  const moe::LayerContext ctx{kD, kE, 0, 4};
  return hyper ? moe::make_expert_bank(moe::PluginSpec("experts", "hyper", kHyper), ctx)
               : moe::make_expert_bank(moe::PluginSpec("experts", "ffn", {{"hidden", 1024}}), ctx);
}

moe::Router make_router() {
  return moe::Router(
      std::shared_ptr<moe::RouterImpl>(moe::TopKRouter(moe::TopKRouterOptions(kD, kE).k(2)).ptr()));
}

void adapter_bench(benchmark::State& state, bool per_token) {
  auto bank = std::dynamic_pointer_cast<moe::HyperExpertsImpl>(make_bank(true).ptr());
  auto router = make_router();
  auto x = torch::randn({kT, kD}, torch::requires_grad());
  auto mask = bank->selection_mask(router->forward(x.detach()));
  auto grad = torch::randn({kT, kD});
  moe::Stats stats;
  bank->adapter(x.detach(), mask, &stats);  // records the number of distinct sets
  const double sets = stats.at("distinct_sets").value.item<double>();
  auto step = [&] {
    auto y =
        per_token ? moe::testing::hyper_adapter_per_token(*bank, x, mask) : bank->adapter(x, mask);
    y.backward(grad);
  };
  step();
  for (auto _ : state) {
    moe::drop_grads(bank->parameters());
    step();
  }
  const double rows = per_token ? kT : sets;
  state.counters["generated_MB"] = rows * (2 * kD * kR + kD + kR) * 4 / 1e6;
  state.counters["sets"] = sets;
  state.SetItemsProcessed(state.iterations() * kT);
}
void BM_AdapterPerSet(benchmark::State& state) { adapter_bench(state, false); }
void BM_AdapterPerToken(benchmark::State& state) { adapter_bench(state, true); }

void layer_bench(benchmark::State& state, bool hyper) {
  moe::MoELayer layer(make_router(), make_bank(hyper), moe::MoELayerOptions(kE));
  moe::bench::run_fwd_bwd(state, layer, kT, kD);
}
void BM_HostMoE(benchmark::State& state) { layer_bench(state, false); }
void BM_HyperMoE(benchmark::State& state) { layer_bench(state, true); }

BENCHMARK(BM_AdapterPerSet)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AdapterPerToken)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HostMoE)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HyperMoE)->Unit(benchmark::kMillisecond);

class RatioReporter : public moe::bench::MedianReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto ratio = [&](const char* a, const char* b) { return speedup(b, a); };  // a's time / b's
    std::cout << std::fixed << std::setprecision(2) << "\nT=" << kT << " d=" << kD << " N=" << kE
              << " k=2 r=" << kR << ", " << torch::get_num_threads() << " threads\n"
              << "per-token / per-set adapter time:            "
              << ratio("BM_AdapterPerToken", "BM_AdapterPerSet") << "x\n"
              << "HyperMoE / host MoE layer time (fwd+bwd):    "
              << ratio("BM_HyperMoE", "BM_HostMoE") << "x\n";
  }
};

}  // namespace

int main(int argc, char** argv) { return moe::bench::run_main<RatioReporter>(argc, argv); }
