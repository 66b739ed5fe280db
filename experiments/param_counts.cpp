#include "experiments/param_counts.h"

#include <torch/torch.h>

#include <cmath>

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
  if (router.value("name", "") != "top_k") {
    c.nonembed_active = std::nan("");
    return c;
  }
  const double k = router.value("k", 2);  // top_k's default
  c.nonembed_active = model->active_params(std::vector<double>(layers.size(), k)) - embed;
  return c;
}

}  // namespace moe
