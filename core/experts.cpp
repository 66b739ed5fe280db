#include "core/experts.h"

#include <torch/torch.h>

namespace moe {

ExpertRegistry& expert_registry() {
  static auto* registry = new ExpertRegistry("expert bank");
  return *registry;
}

ExpertBank make_expert_bank(const PluginSpec& spec, const LayerContext& ctx) {
  auto impl = expert_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  impl->set_plugin_name(spec.name());
  return ExpertBank(impl);
}

torch::Tensor apply_activation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "relu") return torch::relu(x);
  if (name == "swiglu") {
    auto halves = x.chunk(2, -1);
    return torch::silu(halves[0]) * halves[1];
  }
  TORCH_CHECK(false, "activation: expected one of [gelu, relu, swiglu], got '", name, "'");
}

void check_activation(const PluginSpec& spec, const std::string& name) {
  if (name != "gelu" && name != "relu" && name != "swiglu") {
    spec.fail("parameter 'activation' expected one of [gelu, relu, swiglu], got '" + name + "'");
  }
}

}  // namespace moe
