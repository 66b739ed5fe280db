#include "core/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <tuple>

#include "core/train/device.h"
#include "plugins/routers/top_k.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;
using moe::testing::tiny_config;
using moe::testing::tiny_config_json;

struct RecordingSink : MetricSink {
  std::vector<std::pair<std::string, double>> metrics;
  int64_t layer_events = 0;
  /// "split/name", and "/level" for a per-level series.
  void metric(int64_t, const MetricSplit& split, const std::string& name, double v,
              const SeriesAt& at) override {
    metrics.emplace_back(split.name + "/" + name + (at.level.empty() ? "" : "/" + at.level), v);
  }
  void layer_stat(int64_t, const MetricSplit&, int64_t, const std::string&, double,
                  const SeriesAt&) override {
    ++layer_events;
  }
  std::vector<double> series(const std::string& key) const {
    std::vector<double> out;
    for (const auto& m : metrics) {
      if (m.first == key) out.push_back(m.second);
    }
    return out;
  }
};

std::vector<torch::Tensor> params_of(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(Trainer, TinyRunLossFallsAndReportsEverything) {
  RecordingSink sink;
  auto config = tiny_config();
  config.train.steps = 120;
  config.train.lr = 1e-2;
  Trainer trainer(config, &sink);
  auto result = trainer.run();
  auto loss = sink.series("train/loss");
  ASSERT_GE(loss.size(), 10u);
  EXPECT_LT(loss.back(), 0.8 * loss.front()) << "first " << loss.front() << " last " << loss.back();
  EXPECT_GT(sink.layer_events, 0);
  const auto final = final_metrics(result.summary);  // the stored 'final' rows
  for (const char* key :
       {"test_accuracy", "active_params", "total_params", "flops_per_token", "train_tokens_per_s",
        "eval_tokens_per_s", "mean_experts", "flops_per_token/attention", "trainable_percent"}) {
    EXPECT_TRUE(final.count(key)) << key;
  }
  EXPECT_FALSE(final.count("test_perplexity")) << "not an LM task";
  EXPECT_DOUBLE_EQ(final.at("flops_per_token/attention"), result.summary.flops.attention);
  EXPECT_DOUBLE_EQ(result.summary.mean_experts.value(), 2.0);  // top-2, dropless
  EXPECT_LT(result.summary.active_params, result.summary.total_params);
  EXPECT_EQ(result.test.level_accuracy.size(), 2u);
}

TEST(Trainer, SameSeedSameResult) {
  Trainer a(tiny_config()), b(tiny_config());
  a.train_until(10);
  b.train_until(10);
  auto pa = params_of(a), pb = params_of(b);
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
}

TEST(Trainer, ResumeFromCheckpointEqualsUninterruptedRun) {
  const auto path =
      (std::filesystem::temp_directory_path() / ("moe_ckpt_" + std::to_string(::getpid()) + ".pt"))
          .string();
  auto config = tiny_config();
  config.moe.router["noise_std"] = 0.5;  // exercises the RNG state too
  Trainer straight(config);
  straight.train_until(20);
  {
    Trainer first(config);
    first.train_until(10);
    first.save(path);
  }
  torch::manual_seed(999);  // a resumed process starts from a different RNG state
  Trainer resumed(config);
  resumed.load(path);
  EXPECT_EQ(resumed.step(), 10);
  resumed.train_until(20);
  auto a = params_of(straight), b = params_of(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "param " << i;
  std::filesystem::remove(path);
}

TEST(Trainer, AuxLossFreeBiasIsSavedAndResumedExactly) {
  const auto path =
      (std::filesystem::temp_directory_path() / ("moe_bias_" + std::to_string(::getpid()) + ".pt"))
          .string();
  auto config = tiny_config();
  config.moe.router = {{"name", "top_k"}, {"k", 1}, {"bias_update_rate", 0.01}};
  config.loss_coefs["balance"] = 0.0;
  Trainer straight(config);
  straight.train_until(12);
  {
    Trainer first(config);
    first.train_until(6);
    first.save(path);
  }
  Trainer resumed(config);
  resumed.load(path);
  resumed.train_until(12);
  auto bias = [](Trainer& t) {
    auto* router = t.model()->moe_layers()[0]->router->as<TopKRouterImpl>();
    return router->expert_bias.clone();
  };
  EXPECT_GT(bias(straight).abs().sum().item<double>(), 0) << "the bias moved";
  EXPECT_TRUE(torch::equal(bias(straight), bias(resumed)));
  auto a = params_of(straight), b = params_of(resumed);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "param " << i;
  std::filesystem::remove(path);
}

/// Every event as a row (step, split, layer, name) -> value, as the store keeps them; asks
/// the trainer to stop before step `stop_at` (the worker's SIGTERM), once.
struct RowSink : MetricSink {
  /// (step, split, layer, name, item, level)
  using Key = std::tuple<int64_t, std::string, int64_t, std::string, int64_t, std::string>;
  std::multimap<Key, double> rows;
  int64_t stop_at = -1, polls = 0, flushes = 0, first_step = 0;
  void metric(int64_t step, const MetricSplit& split, const std::string& name, double v,
              const SeriesAt& at) override {
    rows.emplace(Key{step, split.name, -1, name, at.item.value_or(-1), at.level}, v);
  }
  void layer_stat(int64_t step, const MetricSplit& split, int64_t layer, const std::string& name,
                  double v, const SeriesAt& at) override {
    rows.emplace(Key{step, split.name, layer, name, at.item.value_or(-1), at.level}, v);
  }
  void poll() override { ++polls; }
  bool stop_requested() override { return stop_at >= 0 && first_step + polls - 1 == stop_at; }
  void flush() override { ++flushes; }
  /// What Store::keep_rows_through keeps for a continuation from `step`.
  void keep_through(int64_t step) {
    for (auto it = rows.begin(); it != rows.end();) {
      it = std::get<0>(it->first) > step ? rows.erase(it) : std::next(it);
    }
  }
  /// The rows without wall-clock measurements (those differ between any two runs).
  std::multimap<Key, double> deterministic() const {
    std::multimap<Key, double> out;
    for (const auto& [k, v] : rows) {
      const auto& n = std::get<3>(k);
      const bool timing = n.find("seconds") != std::string::npos ||
                          n.find("per_s") != std::string::npos || n == "mfu" || n == "peak_rss_mb";
      if (!timing) out.emplace(k, v);
    }
    return out;
  }
};

void expect_same_rows(const RowSink& a, const RowSink& b, const std::string& what) {
  const auto ra = a.deterministic(), rb = b.deterministic();
  ASSERT_EQ(ra.size(), rb.size()) << what;
  for (auto ia = ra.begin(), ib = rb.begin(); ia != ra.end(); ++ia, ++ib) {
    ASSERT_EQ(ia->first, ib->first) << what;
    const auto& [step, split, layer, name, item, level] = ia->first;
    // Bit-equal (NaN, e.g. an undefined correlation, equals NaN).
    EXPECT_TRUE(ia->second == ib->second || (std::isnan(ia->second) && std::isnan(ib->second)))
        << what << ": " << split << "/" << name << " layer " << layer << " item " << item << " "
        << level << " at step " << step << ": " << ia->second << " vs " << ib->second;
  }
}

// SIGTERM (the sink's stop request) at any step, or a kill -9 after the last periodic
// checkpoint, then a continuation in a new Trainer: every stored row and the parameters
// equal an uninterrupted run's, bit for bit (same device and thread count). Covers the RNG
// (jitter, dropout), the aux-loss-free bias, ReMoE's coefficient, the curriculum's order
// and complexities, evaluations during training and time-to-target, the open log window.
TEST(Trainer, StoppedOrKilledAtAnyStepThenResumedEqualsAnUninterruptedRun) {
  const auto path = (std::filesystem::temp_directory_path() /
                     ("moe_resume_" + std::to_string(::getpid()) + ".pt"))
                        .string();
  std::vector<nlohmann::json> configs;
  auto a = tiny_config_json();
  a["moe"]["router"] = {{"name", "top_k"},
                        {"k", 2},
                        {"noise", "jitter"},
                        {"noise_std", 0.1},
                        {"bias_update_rate", 1e-2}};
  a["model"]["dropout"] = 0.1;
  a["train"]["eval_every"] = 10;
  a["train"]["target_loss"] = 1.4;
  a["train"]["sampling"] = "curriculum";
  a["task"]["train_sequences"] = 72;  // 4.5 batches: epochs start mid-window
  configs.push_back(a);
  auto b = tiny_config_json();
  b["moe"]["router"] = {{"name", "remoe"}};
  b["train"]["log_every"] = 7;
  b["train"]["eval_every"] = 15;
  configs.push_back(b);
  std::mt19937 rng(2026);
  for (size_t c = 0; c < configs.size(); ++c) {
    const auto config = ExperimentConfig::from_json(configs[c], "tiny");
    RowSink straight_rows;
    Trainer straight(config, &straight_rows);
    straight.run();
    for (const bool kill : {false, true}) {
      const int64_t at = std::uniform_int_distribution<int64_t>(1, config.train.steps - 1)(rng);
      const std::string what = "config " + std::to_string(c) + (kill ? ", kill -9" : ", SIGTERM") +
                               " at step " + std::to_string(at);
      auto cfg = config;
      cfg.train.checkpoint = path;
      cfg.train.checkpoint_every = kill ? 6 : 0;
      RowSink rows;
      int64_t from = 0;
      {
        Trainer first(cfg, &rows);
        if (kill) {
          first.train_until(at);  // then dies: the last periodic checkpoint is what is left
          from = at / 6 * 6;
          if (from == 0) continue;  // nothing saved yet: a restart from 0 (tested elsewhere)
        } else {
          rows.stop_at = at;
          EXPECT_THROW(first.run(), TrainingStopped) << what;
          EXPECT_EQ(first.step(), at) << what;
          from = at;
        }
      }
      EXPECT_GT(rows.flushes, 0) << what;
      rows.keep_through(from);
      rows.stop_at = -1;
      rows.polls = 0;
      rows.first_step = from;
      torch::manual_seed(999);  // a new process starts from another RNG state
      Trainer resumed(cfg, &rows);
      resumed.load(path);
      ASSERT_EQ(resumed.step(), from) << what;
      resumed.run();
      expect_same_rows(straight_rows, rows, what);
      auto pa = params_of(straight), pb = params_of(resumed);
      for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << what;
      std::filesystem::remove(path);
    }
  }
}

TEST(Trainer, AuxLossesAddUpOverMoELayersUnlessLayerReduceIsMean) {
  // Switch / Megatron-Core: every MoE layer's aux loss at the full coefficient.
  auto json = tiny_config_json();  // 2 MoE layers
  Trainer probe(ExperimentConfig::from_json(json, "tiny"));
  auto tokens = torch::randint(5, {4, 12}, torch::kLong);
  auto out = probe.model()->forward(tokens);
  ASSERT_EQ(out.traces.size(), 2u);
  for (const char* name : {"balance", "z", "balance_seq"}) {
    const double layers = out.traces[0].aux_losses.at(name).item<double>() +
                          out.traces[1].aux_losses.at(name).item<double>();
    EXPECT_NEAR(out.aux_losses.at(name).item<double>(), layers, 1e-6) << name;
  }
  // What the first step applies (and logs): the sum, or half of it with layer_reduce = mean.
  auto first_step_aux = [&](const nlohmann::json& j) {
    RecordingSink sink;
    auto config = ExperimentConfig::from_json(j, "tiny");
    config.train.steps = 1;
    config.train.log_every = 1;
    Trainer trainer(config, &sink);
    trainer.train_until(1);
    return sink.series("train/aux/balance").at(0);
  };
  const double sum = first_step_aux(json);
  json["loss"]["layer_reduce"] = "mean";
  EXPECT_NEAR(first_step_aux(json), sum / 2, 1e-6);
  json["loss"]["layer_reduce"] = "max";
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); },
               "x.toml: section 'loss': parameter 'layer_reduce' expected one of [sum, mean]");
  json["loss"] = {{"balance_count", "second"}};
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); }, "[all, first]");
  json["loss"] = {{"balance_seq", -1e-3}};
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); }, "balance_seq");
}

TEST(Trainer, NonFiniteLossStopsWithAClearError) {
  Trainer trainer(tiny_config());
  {
    torch::NoGradGuard g;
    trainer.model()->tok_emb->weight.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  expect_error([&] { trainer.train_until(3); }, "non-finite training loss (nan) at step 1");
}

TEST(Trainer, LoggedLossAndGradNormAverageTheSteps) {
  // Steps read back one at a time (the CPU) and a window read once give the same logs.
  auto json = tiny_config_json();
  json["train"]["steps"] = 6;
  json["train"]["log_every"] = 3;
  RecordingSink sink;
  Trainer trainer(ExperimentConfig::from_json(json, "tiny"), &sink);
  trainer.train_until(6);
  const auto loss = sink.series("train/loss"), grad = sink.series("train/grad_norm");
  ASSERT_EQ(loss.size(), 2u);
  ASSERT_EQ(grad.size(), 2u);
  for (double v : loss) EXPECT_TRUE(std::isfinite(v) && v > 0);
  for (double v : grad) EXPECT_TRUE(std::isfinite(v) && v > 0);
  // The same run again gives the same logged values (device sums are deterministic).
  RecordingSink again;
  Trainer twin(ExperimentConfig::from_json(json, "tiny"), &again);
  twin.train_until(6);
  EXPECT_EQ(again.series("train/loss"), loss);
  EXPECT_EQ(again.series("train/grad_norm"), grad);
}

TEST(Trainer, DenseModelTrains) {
  auto json = tiny_config_json();
  json["model"]["moe_every"] = 0;
  Trainer trainer(ExperimentConfig::from_json(json, "tiny"));
  auto result = trainer.run();
  EXPECT_TRUE(trainer.model()->moe_layers().empty());
  EXPECT_DOUBLE_EQ(result.summary.active_params, static_cast<double>(result.summary.total_params));
}

TEST(Trainer, DynamicRoutingRecordsDifficultyAndTimeToTarget) {
  auto json = tiny_config_json();
  json["moe"]["router"] = {{"name", "top_p"}, {"threshold", 0.4}};
  json["train"]["eval_every"] = 10;
  json["train"]["target_loss"] = 100.0;  // reached at the first evaluation
  json["train"]["sampling"] = "curriculum";
  json["task"]["train_sequences"] = 64;
  RecordingSink sink;
  Trainer trainer(ExperimentConfig::from_json(json, "tiny"), &sink);
  auto result = trainer.run();
  EXPECT_EQ(result.summary.steps_to_target.value(), 10);
  EXPECT_GT(result.summary.seconds_to_target.value(), 0);
  ASSERT_EQ(result.test.level_experts.size(), 2u);  // [MoE layer][level]
  ASSERT_EQ(result.test.level_experts[0].size(), 2u);
  EXPECT_TRUE(result.summary.difficulty_spearman.has_value());
  EXPECT_FALSE(sink.series("test/level_mean_experts/depth 2").empty());
  EXPECT_FALSE(sink.series("train/seconds").empty());
  // Per-level means average back to the layer's mean (both count the same tokens).
  const auto& lv = result.test.level_experts[0];
  const auto& n = result.test.level_count;
  EXPECT_NEAR((lv[0] * n[0] + lv[1] * n[1]) / (n[0] + n[1]), result.test.layers[0].mean_experts(),
              0.5);

  // The threshold of the trained model changes at evaluation; the parameters do not.
  auto before = params_of(trainer);
  for (auto& layer : trainer.model()->moe_layers()) {
    layer->router->set_inference_option("threshold", 0.95);
  }
  auto wide = evaluate(trainer.model(), trainer.task(), Split::kTest, 16, 0, torch::kCPU);
  EXPECT_GT(wide.mean_experts()[0], result.test.mean_experts()[0]);
  auto after = params_of(trainer);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));
}

TEST(Device, CudaAbsentIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present";
  expect_error([] { select_device("cuda"); }, "device 'cuda': CUDA is not available");
  EXPECT_EQ(select_device("auto").type(), torch::kCPU);
}

TEST(Device, UnknownDeviceListsChoices) {
  expect_error([] { select_device("gpu"); }, "expected one of [auto, cpu, cuda, cuda:N]");
}

TEST(Device, TrainOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  auto config = tiny_config();
  config.device = "cuda";
  config.train.steps = 20;
  Trainer trainer(config);
  auto result = trainer.run();
  EXPECT_TRUE(std::isfinite(result.summary.test_loss));
}

TEST(Device, SyncCountIsUnknownWithoutCudaButRuns) {
  bool ran = false;
  const auto n = count_cuda_syncs([&] { ran = true; });
  EXPECT_TRUE(ran);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(n, -1);
  }
}

TEST(Device, TrainingStepsDoNotWaitForTheGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  const int64_t steps = 8;
  for (int64_t moe_every : {0, 1}) {
    auto json = tiny_config_json();
    json["device"] = "cuda";
    json["model"]["moe_every"] = moe_every;
    json["train"]["steps"] = 2 * steps;
    json["train"]["log_every"] = 2 * steps;
    json["train"]["eval_every"] = 0;
    Trainer trainer(ExperimentConfig::from_json(json, "tiny"));
    trainer.train_until(2);  // warm-up: allocator, cuBLAS handles
    const auto syncs = count_cuda_syncs([&] { trainer.train_until(2 + steps - 1); });
    ASSERT_GE(syncs, 0) << "this CUDA build cannot count syncs (no c10_cuda)";
    const auto layers = static_cast<int64_t>(trainer.model()->moe_layers().size());
    // Dense: only the read at the end of train_until. MoE: one read per layer per step for
    // the dispatch's expert counts (the per-expert matmuls need them on the host).
    EXPECT_LE(syncs, 1 + layers * (steps - 1)) << "moe_every " << moe_every;
    std::cout << "[ syncs    ] moe_every " << moe_every << ": " << syncs << " host syncs in "
              << steps - 1 << " steps (" << layers << " MoE layers)\n";
  }
}

TEST(Config, UnknownKeysAndBadValuesAreNamed) {
  auto json = tiny_config_json();
  json["train"]["stepz"] = 3;
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); },
               "x.toml: section 'train': unknown parameter 'stepz'; known: [batch_size");
  json = tiny_config_json();
  json["model"]["activation"] = "tanh";
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); },
               "expected one of [gelu, relu, swiglu], got 'tanh'");
  json = tiny_config_json();
  json["modle"] = nlohmann::json::object();
  expect_error([&] { ExperimentConfig::from_json(json, "x.toml"); }, "unknown parameter 'modle'");
}

}  // namespace
}  // namespace moe
