#include "core/router.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

namespace moe {

void RouterImpl::set_inference_option(const std::string& key, double /*value*/) {
  std::string list = "[";
  for (const auto& k : inference_options()) list += (list.size() > 1 ? ", " : "") + k;
  TORCH_CHECK(false, "router '", plugin_name_, "': no inference option '", key, "'; known: ", list,
              "]");
}

torch::nn::Linear make_router_gate(int64_t d_model, int64_t num_experts) {
  torch::nn::Linear gate(torch::nn::LinearOptions(d_model, num_experts).bias(false));
  torch::NoGradGuard no_grad;
  gate->weight.normal_(0.0, 0.02);
  return gate;
}

torch::Tensor router_logits(torch::nn::Linear& gate, const torch::Tensor& hidden) {
  auto logits = gate(hidden);
  return logits.scalar_type() == torch::kDouble ? logits : logits.to(torch::kFloat);
}

RouterRegistry& router_registry() {
  static auto* registry = new RouterRegistry("router");
  return *registry;
}

double RouterImpl::flops_per_token() const {
  double flops = 0;
  for (const auto& p : named_parameters()) {
    if (p.key() == "gate.weight") flops += 2.0 * static_cast<double>(p.value().numel());
  }
  return flops;
}

Router make_router(const PluginSpec& spec, const LayerContext& ctx) {
  auto impl = router_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  impl->set_plugin_name(spec.name());
  return Router(impl);
}

}  // namespace moe
