#include "experiments/param_counts.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/data/task.h"
#include "core/train/config.h"
#include "core/train/trainer.h"

namespace moe {

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
  const auto& router = config.moe.router;
  // Routers whose experts per token are set by k (expert_choice: on average; remoe: its
  // sparsity target); the others' are measured only.
  const std::string name = router.value("name", "");
  if (name != "top_k" && name != "expert_choice" && name != "remoe") {
    c.nonembed_active = std::nan("");
    return c;
  }
  const double k = router.value("k", 2);  // their default
  c.nonembed_active = model->active_params(std::vector<double>(layers.size(), k)) - embed;
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
