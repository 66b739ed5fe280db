// The `tokens` task's cost: opening a 100M-token llm.c file (options read, files mapped,
// the difficulty ranks counted) and drawing training batches, against a training step of
// lm_tokens.toml's Switch model (seq 64, batch 32) in the same run, which reads its batches
// from the same file: batch time / step time is the share of a step spent feeding it.
//   build/tokens_bench [--benchmark_filter=...]
// The file goes to $TMPDIR/moe_tokens_bench (200 MB, written once, kept for later runs).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/data/task.h"
#include "core/data/token_file.h"
#include "core/train/trainer.h"

namespace moe {
namespace {

constexpr int64_t kTokens = 100'000'000;
constexpr int64_t kVocab = 1024;  ///< lm_tokens.toml's BPE vocabulary

std::string bench_dir() {
  const char* tmp = std::getenv("TMPDIR");
  return (std::filesystem::path(tmp ? tmp : "/tmp") / "moe_tokens_bench").string();
}

/// llm.c layout, uint16, Zipf-like ids (a few frequent, many rare), written in chunks.
void write_file(const std::string& path, int64_t n) {
  if (std::filesystem::exists(path) &&
      std::filesystem::file_size(path) == static_cast<uintmax_t>(kLlmcHeaderBytes + 2 * n)) {
    return;
  }
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::vector<int32_t> header(256, 0);
  header[0] = kLlmcMagic;
  header[1] = 1;
  header[2] = static_cast<int32_t>(n);
  std::ofstream out(path + ".tmp", std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), kLlmcHeaderBytes);
  std::mt19937_64 rng(1);
  std::vector<uint16_t> chunk(1 << 20);
  for (int64_t done = 0; done < n; done += static_cast<int64_t>(chunk.size())) {
    const int64_t m = std::min<int64_t>(static_cast<int64_t>(chunk.size()), n - done);
    for (int64_t i = 0; i < m; ++i) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      chunk[i] = static_cast<uint16_t>(std::min<double>(kVocab - 1, std::exp(u * 6.93) - 1));
    }
    out.write(reinterpret_cast<const char*>(chunk.data()), 2 * m);
  }
  out.close();
  std::filesystem::rename(path + ".tmp", path);
}

nlohmann::json task_json(int64_t seq_len) {
  const auto dir = bench_dir();
  write_file(dir + "/train.bin", kTokens);
  write_file(dir + "/valid.bin", 1'000'000);
  return {{"name", "tokens"},
          {"train", dir + "/train.bin"},
          {"valid", dir + "/valid.bin"},
          {"vocab_size", kVocab},
          {"seq_len", seq_len}};
}

void BM_TokensStart100M(benchmark::State& state) {
  const auto spec = PluginSpec::from_block("task", task_json(1024));
  for (auto _ : state) {
    auto task = make_task(spec, TaskContext{"data"});
    benchmark::DoNotOptimize(task->train_batch(0, 0, 16).tokens.data_ptr());
  }
}
BENCHMARK(BM_TokensStart100M)->Unit(benchmark::kMillisecond)->Iterations(5);

/// The plan-time check: every token of the 100M-token file against vocab_size.
void BM_TokensCheckIds100M(benchmark::State& state) {
  const auto spec = task_json(1024);
  const auto file = TokenFile::open(spec["train"].get<std::string>());
  for (auto _ : state) file.check_ids(kVocab);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(kTokens),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TokensCheckIds100M)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_TokensTrainBatch(benchmark::State& state) {
  const int64_t batch = state.range(0), seq = state.range(1);
  auto task = make_task(PluginSpec::from_block("task", task_json(seq)), TaskContext{"data"});
  int64_t step = 0;
  for (auto _ : state) benchmark::DoNotOptimize(task->train_batch(0, step++, batch).tokens);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(batch * seq),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TokensTrainBatch)->Args({32, 64})->Args({16, 1024})->Unit(benchmark::kMicrosecond);

/// One optimizer step of lm_tokens.toml's Switch model (d 64, 2 layers, 8 experts top-1,
/// vocab 1024), batches from the same 100M-token file.
void BM_TrainStepSwitch(benchmark::State& state) {
  auto config = nlohmann::json::parse(R"({
    "seed": 0, "device": "cpu", "threads": 0,
    "model": {"d_model": 64, "layers": 2, "heads": 4, "moe_every": 1, "dropout": 0.0,
              "attention_bias": "alibi"},
    "moe": {"num_experts": 8, "capacity_factor": 0.0, "router": {"name": "top_k", "k": 1},
            "experts": {"name": "ffn", "hidden": 128}},
    "train": {"steps": 1000000, "batch_size": 32, "lr": 3e-3, "warmup": 10, "log_every": 50,
              "eval_every": 0}
  })");
  config["task"] = task_json(64);
  Trainer trainer(ExperimentConfig::from_json(config, "tokens_bench"));
  int64_t step = 0;
  trainer.train_until(++step);  // warm-up
  for (auto _ : state) trainer.train_until(++step);
}
BENCHMARK(BM_TrainStepSwitch)->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
