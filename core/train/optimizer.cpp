#include "core/train/optimizer.h"

#include <torch/torch.h>

namespace moe {

std::unique_ptr<torch::optim::AdamW> make_optimizer(
    const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
    const TrainOptions& train) {
  std::vector<torch::Tensor> decayed, not_decayed;
  for (const auto& p : named_parameters) {
    if (!p.value().requires_grad()) continue;
    const auto& name = p.key();
    const bool adapter = name.find("_adapter.") != std::string::npos;
    const bool vector = name.size() >= 8 && name.compare(name.size() - 8, 8, ".vectors") == 0;
    (adapter && (vector || p.value().dim() <= 1) ? not_decayed : decayed).push_back(p.value());
  }
  const auto options =
      torch::optim::AdamWOptions(train.lr).betas({0.9, 0.98}).weight_decay(train.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decayed.empty() || not_decayed.empty()) {
    groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(options));
  }
  if (!not_decayed.empty()) {
    auto no_decay = options;
    no_decay.weight_decay(0.0);
    groups.emplace_back(not_decayed, std::make_unique<torch::optim::AdamWOptions>(no_decay));
  }
  return std::make_unique<torch::optim::AdamW>(std::move(groups), options);
}

void drop_grads(const std::vector<torch::Tensor>& parameters) {
  for (auto p : parameters) p.mutable_grad() = torch::Tensor();
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm(2));
  }
  if (norms.empty()) return torch::zeros({});
  auto total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  if (max_norm > 0) {
    auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : grads) g.mul_(coef);
  }
  return total;
}

}  // namespace moe
