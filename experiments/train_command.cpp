#include <torch/torch.h>
#include <boost/program_options.hpp>

#include <fstream>
#include <iomanip>
#include <iostream>

#include "core/train/device.h"
#include "core/train/trainer.h"
#include "experiments/commands.h"
#include "experiments/config_file.h"

namespace po = boost::program_options;

namespace moe {
namespace {

/// Writes every metric event as one JSON line.
class JsonlSink : public MetricSink {
 public:
  explicit JsonlSink(const std::string& path) : out_(path) {
    if (!out_) throw std::invalid_argument("--metrics '" + path + "': cannot write the file");
  }
  void metric(int64_t step, const MetricSplit& split, const std::string& name, double value,
              const SeriesAt& at) override {
    write({{"step", step}, {"split", split.name}, {"name", name}, {"value", value}}, at);
  }
  void layer_stat(int64_t step, const MetricSplit& split, int64_t layer, const std::string& name,
                  double value, const SeriesAt& at) override {
    write(
        {{"step", step}, {"split", split.name}, {"layer", layer}, {"name", name}, {"value", value}},
        at);
  }

 private:
  /// One line; an indexed series' item or level as its own field (the store's columns).
  void write(nlohmann::json line, const SeriesAt& at) {
    if (at.item) line["item"] = *at.item;
    if (!at.level.empty()) line["level"] = at.level;
    out_ << line << "\n";
  }

  std::ofstream out_;
};

std::string pct(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << 100 * v << "%";
  return s.str();
}

void print_summary(const Trainer& trainer, const TrainResult& r, std::ostream& out) {
  const auto& info = trainer.task().info();
  const auto& s = r.summary;
  out << "\n== summary: task " << info.name << ", "
      << (trainer.config().model.moe_every > 0
              ? trainer.config().moe.router.dump() + " x " + trainer.config().moe.experts.dump() +
                    ", " + std::to_string(trainer.config().moe.num_experts) + " experts"
              : std::string("dense FFN"))
      << ", device " << trainer.device().str() << "\n";
  out << std::left << std::setw(26) << "test accuracy" << pct(s.test_accuracy) << "\n";
  for (size_t i = 0; i < info.difficulty_levels.size(); ++i) {
    out << "  " << std::setw(24) << info.difficulty_levels[i] << pct(r.test.level_accuracy[i])
        << "  (n=" << r.test.level_count[i] << ")\n";
  }
  out << std::setw(26) << "valid accuracy" << pct(s.valid_accuracy) << "\n";
  out << std::setw(26) << "test loss" << s.test_loss << "\n";
  if (s.test_perplexity) out << std::setw(26) << "test perplexity" << *s.test_perplexity << "\n";
  for (const auto& kv : info.notes) {
    out << kv.first << "  " << std::setprecision(4) << kv.second << "\n";
  }
  out << std::setw(26) << "total params" << s.total_params << "\n";
  out << std::setw(26) << "trainable params" << s.trainable_params << "\n";
  out << std::setw(26) << "active params/token" << static_cast<int64_t>(s.active_params) << "\n";
  out << std::setw(26) << "  non-embedding total" << s.nonembed_total_params << "\n";
  out << std::setw(26) << "  non-embedding active" << static_cast<int64_t>(s.nonembed_active_params)
      << "\n";
  const auto whole = [](double v) { return static_cast<int64_t>(v); };
  out << std::setw(26) << "FLOPs/token (forward)" << whole(s.flops_per_token) << "  (attention "
      << whole(s.flops.attention) << ", FFN/experts " << whole(s.flops.ffn) << ", router "
      << whole(s.flops.router) << ", adapters " << whole(s.flops.adapters) << ", head "
      << whole(s.flops.head) << ")\n";
  out << std::setw(26) << "train tokens/s" << whole(s.train_tokens_per_s) << "\n";
  out << std::setw(26) << "eval tokens/s" << whole(s.eval_tokens_per_s) << "\n";
  out << std::setw(26) << "model FLOP/s (train)" << s.model_flops_per_s << "  (3 x forward)\n";
  if (s.peak_flops_per_s > 0) {
    out << std::setw(26) << "MFU" << 100.0 * s.mfu << "%  of " << s.peak_flops_per_s
        << " FLOP/s peak\n";
  } else {
    out << std::setw(26) << "MFU"
        << "unknown (no peak for this GPU: pass --peak-tflops)\n";
  }
  out << std::setw(26) << "train time" << s.train_seconds << " s\n";
  const auto k = r.test.mean_experts();
  if (!k.empty()) {
    out << std::setw(26) << "experts/token per layer";
    for (double v : k) out << std::setprecision(3) << v << " ";
    out << "\n";
  }
}

}  // namespace

int train_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe train: train one configuration and evaluate it on the valid and test splits\n\n"
      "Usage: moe train --config FILE.toml [--set key=value ...] [options]\n\nOptions");
  std::string config_path, device, metrics_path, summary_path;
  std::vector<std::string> sets;
  int64_t threads = -1;
  double peak_tflops = -1;
  desc.add_options()("help,h", "show this help")(
      "config,c", po::value(&config_path), "experiment config (TOML); see experiments/configs/")(
      "set,s", po::value(&sets)->composing(),
      "override a config key, e.g. --set train.steps=200 --set moe.router.k=1 (repeatable)")(
      "device,d", po::value(&device), "auto | cpu | cuda | cuda:N (overrides the config's device)")(
      "threads,t", po::value(&threads), "CPU threads (0 = all cores; overrides the config)")(
      "peak-tflops", po::value(&peak_tflops),
      "the device's peak TFLOP/s for MFU (overrides train.peak_tflops; default: a table of "
      "GPUs by name, or a matmul probe on CPU)")(
      "metrics", po::value(&metrics_path), "write every metric event to this JSON-lines file")(
      "summary", po::value(&summary_path), "write the final summary to this JSON file")(
      "quiet,q", "no live progress line");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc
              << "\nThe final summary prints test accuracy overall and per difficulty "
                 "level, total, trainable and active parameters, FLOPs and tokens/s.\n";
    return 0;
  }
  if (config_path.empty())
    throw std::invalid_argument("moe train: --config FILE is required (see --help)");
  auto json = load_config(config_path, sets);
  if (!device.empty()) json["device"] = device;
  if (threads >= 0) json["threads"] = threads;
  if (peak_tflops >= 0) json["train"]["peak_tflops"] = peak_tflops;
  auto config = ExperimentConfig::from_json(json, config_path);
  for (const auto* from : {&config.train.init_from, &config.train.upcycle_from}) {
    if (from->rfind("run:", 0) == 0 || *from == "pretrain") {  // the sweep runner's conventions
      throw std::invalid_argument(config_path + ": train." +
                                  (from == &config.train.init_from ? "init_from" : "upcycle_from") +
                                  " '" + *from +
                                  "' names a sweep's pretraining run; only moe sweep run "
                                  "resolves it (give a model file here)");
    }
  }
  std::unique_ptr<JsonlSink> sink;
  if (!metrics_path.empty()) sink = std::make_unique<JsonlSink>(metrics_path);
  Trainer trainer(config, sink.get(), vm.count("quiet") ? nullptr : &std::cerr);
  std::cerr << "moe train: " << config_path << " on " << trainer.device().str() << ", "
            << torch::get_num_threads() << " threads, " << libtorch_version() << ", "
            << trainer.model()->total_params() << " params\n";
  auto result = trainer.run();
  print_summary(trainer, result, std::cout);
  if (!summary_path.empty()) {
    std::ofstream out(summary_path);
    out << nlohmann::json(final_metrics(result.summary)).dump(2) << "\n";
  }
  return 0;
}

}  // namespace moe
