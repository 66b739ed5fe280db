#include "experiments/param_counts.h"

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/data/task.h"
#include "core/experts.h"
#include "core/router.h"
#include "core/train/config.h"
#include "core/train/trainer.h"

namespace moe {

namespace {

/// A numeric option of a plugin block, or `fallback` when absent or not a number.
double number(const nlohmann::json& block, const char* key, double fallback) {
  const auto it = block.find(key);
  return it != block.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

TrainingEstimate estimate_training(const ExperimentConfig& c) {
  const double d = static_cast<double>(c.model.d_model);
  const double layers = static_cast<double>(c.model.layers);
  const double ffn = static_cast<double>(c.model.ffn_hidden);
  const double mult = c.model.activation == Activation::kSwiglu ? 3 : 2;
  const double heads = static_cast<double>(c.model.heads);
  const double seq = number(c.task, "seq_len", 128);
  const double vocab =
      std::max(number(c.task, "vocab_size", 0), number(c.task, "lm_vocab_size", 0));
  const double batch = static_cast<double>(c.train.batch_size);
  TrainingEstimate e;
  e.inputs = {"model.d_model = " + std::to_string(c.model.d_model),
              "model.layers = " + std::to_string(c.model.layers),
              "model.ffn_hidden = " + std::to_string(c.model.ffn_hidden),
              "task.seq_len = " + std::to_string(static_cast<int64_t>(seq)),
              "train.batch_size = " + std::to_string(c.train.batch_size)};
  const double moe_layers =
      c.model.moe_every > 0 ? std::floor(layers / static_cast<double>(c.model.moe_every)) : 0;
  // The bank's sizes (its registry fact); experts per token: the router's nominal count,
  // or 2 for a router whose count is only measured.
  const double experts = static_cast<double>(c.moe.num_experts);
  BankShape bank;
  double k = 0;
  if (moe_layers > 0) {
    BankShapeContext ctx;
    ctx.d_model = c.model.d_model;
    ctx.num_experts = c.moe.num_experts;
    ctx.num_layers = c.model.layers;
    ctx.experts_per_token = nominal_experts(c.moe.router).value_or(2);
    ctx.tokens = batch * seq;
    bank = bank_shape(c.moe.experts, ctx);
    k = std::min(experts, static_cast<double>(ctx.experts_per_token));
    e.inputs.push_back("moe.num_experts = " + std::to_string(c.moe.num_experts));
    e.inputs.insert(e.inputs.end(), bank.inputs.begin(), bank.inputs.end());
  }
  const double per_expert = bank.per_expert, units = bank.units;
  const double shared = static_cast<double>(c.moe.shared_experts) * per_expert;
  if (vocab > 0)
    e.inputs.push_back("task vocabulary = " + std::to_string(static_cast<int64_t>(vocab)));
  const double attention = 4 * d * d + 4 * d;
  const double dense_layer = attention + mult * d * ffn;
  const double moe_layer = attention + mult * d * (units + shared) + d * experts;
  e.params = 2 * vocab * d + seq * d + (layers - moe_layers) * dense_layer +
             moe_layers * (moe_layer + bank.layer_params) + bank.model_params;
  const double act_attention = 8 * d + 2 * heads * seq;
  const double act_dense = act_attention + 2 * ffn + d;
  const double act_moe = act_attention + k * (2 * per_expert + 2 * d) + 2 * shared + 2 * experts;
  const double per_token =
      (layers - moe_layers) * act_dense + moe_layers * act_moe + 2 * std::max(vocab, 16.0);
  e.activation_bytes = 4 * batch * seq * per_token + moe_layers * bank.activation_bytes;
  e.memory_bytes = 16 * e.params + e.activation_bytes;
  const double active =
      (layers - moe_layers) * dense_layer +
      moe_layers * (attention + mult * d * (k * per_expert + shared) + d * experts) + vocab * d;
  e.flops_per_token = 2 * active + 4 * seq * d * layers;
  return e;
}

double machine_memory_bytes() {
  double bytes = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  for (const char* f :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(f);
    double limit = 0;
    if (in >> limit && limit > 0 && limit < bytes) bytes = limit;  // "max" reads as nothing
  }
  return bytes;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1000 && u < 6) bytes /= 1000, ++u;  // a huge value stays in EB
  std::ostringstream o;
  o << std::fixed << std::setprecision(u == 0 ? 0 : 1) << bytes << " " << units[u];
  return o.str();
}

ParamCounts nominal_param_counts(const nlohmann::json& json) {
  const auto config = ExperimentConfig::from_json(json, "trial");
  auto task = make_task(PluginSpec::from_block("task", config.task), TaskContext{config.data_dir});
  torch::NoGradGuard no_grad;
  auto model = build_model(config, task->info());
  ParamCounts c;
  const double embed = static_cast<double>(model->embedding_params());
  c.total = static_cast<double>(model->total_params());
  c.nonembed_total = c.total - embed;
  const auto layers = model->moe_layers();
  if (layers.empty()) {
    c.nonembed_active = c.nonembed_total;
    return c;
  }
  // The router's nominal experts per token (top_k's k; expert_choice's on average; remoe's
  // sparsity target); routers whose count is only measured have none.
  const auto k = nominal_experts(config.moe.router);
  if (!k) {
    c.nonembed_active = std::nan("");
    return c;
  }
  c.nonembed_active =
      model->active_params(std::vector<double>(layers.size(), static_cast<double>(*k))) - embed;
  return c;
}

void check_trial_builds(const nlohmann::json& json) {
  const auto config = ExperimentConfig::from_json(json, "trial");
  const std::string task_name = config.task.value("name", "");
  check_task_options(PluginSpec::from_block("task", config.task));  // no data is read
  // The data is not read: a stand-in vocabulary and head; one MoE layer (and the dense
  // layers before it) is enough for every plugin to check its parameters.
  TaskInfo info;
  info.name = task_name;
  info.vocab_size = 16;
  info.num_classes = 4;
  info.causal = task_is_causal(task_name);
  const auto seq = config.task.find("seq_len");
  info.seq_len = seq != config.task.end() && seq->is_number_integer() ? seq->get<int64_t>() : 16;
  auto small = config;
  small.model.layers =
      std::min<int64_t>(small.model.layers, std::max<int64_t>(1, small.model.moe_every));
  torch::NoGradGuard no_grad;
  build_model(small, info);
}

}  // namespace moe
