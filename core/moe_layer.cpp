#include "core/moe_layer.h"

#include <torch/torch.h>

namespace moe {

std::vector<double> LayerStats::load_fraction() const {
  std::vector<double> out(load.size(), 0.0);
  double total = 0;
  for (double v : load) total += v;
  for (size_t i = 0; i < load.size() && total > 0; ++i) out[i] = load[i] / total;
  return out;
}

std::map<std::string, double> LayerStats::bank_stats() const {
  std::map<std::string, double> out;
  for (const auto& kv : bank_stats_sum) out[kv.first] = forwards ? kv.second / forwards : 0.0;
  return out;
}

MoELayerImpl::MoELayerImpl(Router router_in, ExpertBank experts_in, MoELayerOptions options)
    : options_(options) {
  TORCH_CHECK(options_.num_experts() > 0, "moe layer: expected num_experts > 0, got ",
              options_.num_experts());
  TORCH_CHECK(options_.capacity_factor() >= 0, "moe layer: expected capacity_factor >= 0, got ",
              options_.capacity_factor());
  router = register_module("router", std::move(router_in));
  experts = register_module("experts", std::move(experts_in));
}

torch::Tensor MoELayerImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  auto hidden = x.reshape({-1, shape.back()});
  Routing routing = router->forward(hidden);
  const int64_t tokens = hidden.size(0);
  TORCH_CHECK(routing.indices.dim() == 2 && routing.indices.size(0) == tokens,
              "router '", router->plugin_name(), "': expected indices [", tokens,
              ", slots], got ", routing.indices.sizes());
  const int64_t capacity = expert_capacity(options_.capacity_factor(), routing.indices.size(1),
                                           tokens, options_.num_experts());
  DispatchPlan plan = plan_dispatch(routing, options_.num_experts(), capacity);
  auto y = experts->forward(hidden, routing, plan);
  aux_losses_ = std::move(routing.aux_losses);
  last_token_experts_ = routing.indices.detach().ge(0).sum(1);
  last_mean_experts_ =
      torch::tensor(static_cast<double>(plan.selected) / std::max<int64_t>(tokens, 1));
  if (collect_) accumulate(routing, plan);
  return y.reshape(shape);
}

void MoELayerImpl::accumulate(const Routing& routing, const DispatchPlan& plan) {
  torch::NoGradGuard no_grad;
  const int64_t num_experts = options_.num_experts();
  const int64_t slots = routing.indices.size(1);
  if (stats_.load.empty()) stats_.load.assign(num_experts, 0.0);
  if (static_cast<int64_t>(stats_.histogram.size()) < slots + 1) {
    stats_.histogram.resize(slots + 1, 0.0);
  }
  auto used = routing.indices.ge(0).sum(1);
  auto hist = torch::bincount(used, {}, slots + 1).to(torch::kCPU);
  for (int64_t i = 0; i <= slots; ++i) stats_.histogram[i] += hist[i].item<int64_t>();
  auto probs = routing.probs.detach().to(torch::kDouble);
  stats_.entropy_sum +=
      -(probs * torch::log(probs.clamp_min(1e-12))).sum().to(torch::kCPU).item<double>();
  for (const auto& kv : experts->last_stats()) stats_.bank_stats_sum[kv.first] += kv.second;
  for (const auto& kv : routing.extras) {  // router statistics, "stat.<name>" scalars
    if (kv.first.rfind("stat.", 0) == 0 && kv.second.numel() == 1) {
      stats_.bank_stats_sum[kv.first.substr(5)] += kv.second.item<double>();
    }
  }
  ++stats_.forwards;
  stats_.tokens += routing.indices.size(0);
  stats_.selected_slots += plan.selected;
  stats_.dropped_slots += plan.dropped;
  // Load counts what the router chose (before capacity), so imbalance stays visible.
  auto flat = routing.indices.reshape({-1});
  auto chosen = flat.index_select(0, flat.ge(0).nonzero().squeeze(1));
  auto load = torch::bincount(chosen, {}, num_experts).to(torch::kCPU);
  for (int64_t e = 0; e < num_experts; ++e) stats_.load[e] += load[e].item<int64_t>();
}

}  // namespace moe
