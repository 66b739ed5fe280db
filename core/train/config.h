#pragma once
// ExperimentConfig: one trial's fully resolved configuration, parsed strictly from JSON
// (the TOML file and --set overrides are turned into JSON by experiments/config_file).
//
//   seed, device ("auto" | "cpu" | "cuda" | "cuda:N"), threads (0 = all cores), data_dir
//   [task]  name + task parameters          (see `moe plugins`)
//   [model] d_model, layers, heads, ffn_hidden, activation, moe_every, dropout, attention_bias
//   [moe]   num_experts, shared_experts, capacity_factor, eval_capacity_factor, drop_policy,
//           router = {name, ...}, experts = {name, ...}
//   [train] steps, batch_size, lr, min_lr_ratio, warmup, weight_decay, clip, eval_every,
//           eval_batches, eval_batch_size, log_every, checkpoint, checkpoint_every,
//           checkpoint_minutes, resume, sampling (iid | epochs | curriculum), curriculum_eps,
//           target_loss, init_from, upcycle_from, upcycle_noise, trainable (core/train/finetune.h),
//           precision (fp32 | bf16), peak_tflops (MFU's denominator; 0 = auto)
//   [loss]  coefficients of the aux losses, one key per loss name: balance_seq (the MoE
//           layer's balance loss per sequence, default 0) and every loss a registered router
//           declares (RouterImpl::aux_losses, with its default: `moe plugins`);
//           layer_reduce ("sum": each MoE layer's loss at the full coefficient, Switch /
//           Megatron-Core; "mean": divided by the number of MoE layers) and balance_count
//           ("all": the balance losses count all k choices, normalised by T k; "first":
//           only each token's first choice, GShard's paper)
//   [peft]  method = an adapter plugin (ia3 | mov | lora | molora: `moe plugins`), plus its
//           parameters (core/adapters.h, plugins/adapters/)
// Every unknown key is an error naming the section, the key and the known keys.
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "core/data/task.h"
#include "core/registry.h"
#include "core/transformer.h"

namespace moe {

/// Each [loss] coefficient's default, by loss name: loss_terms() of core/router.h.
std::map<std::string, double> default_loss_coefs();

/// Where training batches come from (train.sampling): "iid" (fresh random samples every
/// step), "epochs" (the task's fixed training pool, reshuffled every epoch) or "curriculum"
/// (the pool; first epoch shuffled, each later one ordered by routing complexity,
/// methods.md §2; see core/train/curriculum.h).
enum class Sampling { kIid, kEpochs, kCurriculum };

/// The names, in enum order: [iid, epochs, curriculum].
const std::vector<std::string>& sampling_names();
const std::string& sampling_name(Sampling s);

/// The keys of one config section ("" = the top level) with their defaults, help and
/// ranges: every numeric key states a finite range, which from_json checks after the
/// section's own checks (so a plan refuses 1e308 or NaN naming the key before anything is
/// allocated), and `moe plugins` lists. [task] and [peft] document only the key naming the
/// plugin: the plugin documents the rest.
struct ConfigSectionDoc {
  std::string section;
  std::vector<ParamDoc> keys;
};
const std::vector<ConfigSectionDoc>& config_docs();

/// [loss] layer_reduce: the MoE layers' aux losses summed at the full coefficient
/// (Switch, Megatron-Core) or divided by the number of MoE layers.
enum class LayerReduce { kSum, kMean };
/// The names, in enum order: [sum, mean].
const std::vector<std::string>& layer_reduce_names();

struct TrainOptions {
  int64_t steps = 1000;
  int64_t batch_size = 32;
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  ///< cosine decays to lr * min_lr_ratio
  int64_t warmup = 100;
  double weight_decay = 0.01;
  double clip = 1.0;         ///< max global gradient norm; 0 = off
  int64_t eval_every = 0;    ///< 0 = only at the end
  int64_t eval_batches = 0;  ///< cap on eval batches per split during training; 0 = all
  int64_t eval_batch_size = 64;
  int64_t log_every = 50;
  /// Path of the training checkpoint (everything a continuation needs: model, optimizer,
  /// LR position, RNG states, sampler, router buffers, the open log window); empty = none.
  /// Written at the end of training, every checkpoint_every steps, every
  /// checkpoint_minutes of training time, and when the metric sink stops the run (a signal).
  std::string checkpoint;
  int64_t checkpoint_every = 0;  ///< steps; 0 = off
  /// Minutes of training between checkpoints; 0 = off. Time-based saves are spaced at least
  /// 100 x the last save's duration apart, so they never cost more than 1% of training.
  double checkpoint_minutes = 0;
  bool resume = false;  ///< start from `checkpoint` if it exists
  Sampling sampling = Sampling::kIid;
  double curriculum_eps = 1e-8;  ///< added to the cosine similarity's denominator
  /// Valid loss to reach; the first evaluation at or below it records steps_to_target
  /// and seconds_to_target (training seconds). 0 = off.
  double target_loss = 0;
  /// A model saved by save_model to start from (matching names and shapes are copied,
  /// the rest stays freshly initialised); empty = train from scratch.
  std::string init_from;
  /// Sparse upcycling: a saved dense model whose FFN in layer l initialises every expert
  /// of the MoE layer l (core/train/finetune.h); everything else is copied by name as
  /// init_from does. upcycle_noise: std of N(0, s^2) added to each expert's weights.
  std::string upcycle_from;
  double upcycle_noise = 0.0;
  /// Globs over parameter names (fnmatch); only matching parameters train, the rest are
  /// frozen. Empty = everything trains.
  std::vector<std::string> trainable;
  /// fp32 | bf16: the forward pass under autocast to bfloat16 (CPU and CUDA); fp32
  /// master weights and optimizer state; router logits, softmax and aux losses in fp32.
  Precision precision = Precision::kFp32;
  /// The device's peak FLOP/s for MFU, in TFLOP/s; 0 = from the device table (CUDA) or a
  /// matmul probe (CPU).
  double peak_tflops = 0;
};

struct ModelSection {
  int64_t d_model = 128, layers = 4, heads = 4, ffn_hidden = 512, moe_every = 1;
  Activation activation = Activation::kGelu;
  AttentionBias attention_bias = AttentionBias::kNone;
  double dropout = 0.0;
};

struct ExperimentConfig {
  uint64_t seed = 0;
  std::string device = "auto";
  int64_t threads = 0;
  std::string data_dir = "data";
  nlohmann::json task = {{"name", task_registry().default_name()}};  ///< the default task
  ModelSection model;
  MoEConfig moe;
  PeftOptions peft;
  TrainOptions train;
  /// [loss]: every loss name's coefficient, defaults from the routers' registry facts.
  std::map<std::string, double> loss_coefs = default_loss_coefs();
  /// [loss] layer_reduce: "sum" | "mean" over the MoE layers (ModelOutput::aux_losses).
  LayerReduce loss_layer_reduce = LayerReduce::kSum;
  nlohmann::json resolved;  ///< the input JSON the config was parsed from

  /// source names where j came from (a file, "run <key>"; empty when the caller adds it)
  /// in error messages. Throws ConfigError.
  static ExperimentConfig from_json(const nlohmann::json& j, const std::string& source);

 private:
  static ExperimentConfig read(const nlohmann::json& j);
};

}  // namespace moe
