#include "core/experts.h"

#include <torch/torch.h>

#include <stdexcept>

#include "core/config_error.h"

namespace moe {

ExpertRegistry& expert_registry() {
  static auto* registry = new ExpertRegistry("expert bank");
  return *registry;
}

ExpertBank make_expert_bank(const PluginSpec& spec, const LayerContext& ctx) {
  check_ranges(spec, expert_registry().entry(spec.name()).params);
  auto impl = expert_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  impl->set_plugin_name(spec.name());
  return ExpertBank(impl);
}

BankShape bank_shape(const nlohmann::json& block, const BankShapeContext& ctx) {
  const auto spec = PluginSpec::from_block("experts", block);
  return expert_registry().entry(spec.name()).facts.shape(spec, ctx);
}

void refine_bank(nlohmann::json& block, int64_t d_model, int64_t m) {
  const auto spec = PluginSpec::from_block("experts", block);
  expert_registry().entry(spec.name()).facts.refine(block, d_model, m);
}

void ExpertBankImpl::upcycle(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                             const torch::Tensor&, double) {
  throw ConfigError::text("", "train.upcycle_from",
                          "train.upcycle_from: expert bank '" + plugin_name() +
                              "' cannot be upcycled from a dense FFN (the 'ffn' bank can)");
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"gelu", "relu", "swiglu"};
  return names;
}

Activation parse_activation(const std::string& name) {
  const auto& names = activation_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<Activation>(i);
  }
  throw ConfigError::value("activation", "", "one of " + list_of(names), "'" + name + "'");
}

const std::string& activation_name(Activation a) {
  return activation_names().at(static_cast<size_t>(a));
}

torch::Tensor apply_activation(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::kGelu:
      return torch::gelu(x);
    case Activation::kRelu:
      return torch::relu(x);
    case Activation::kSwiglu: {
      auto halves = x.chunk(2, -1);
      return torch::silu(halves[0]) * halves[1];
    }
  }
  throw std::logic_error("apply_activation: unknown activation");
}

void apply_activation_into(Activation a, const torch::Tensor& x, torch::Tensor& out) {
  switch (a) {
    case Activation::kGelu:
      at::gelu_out(out, x);
      return;
    case Activation::kRelu:
      at::clamp_min_out(out, x, 0);  // what relu is
      return;
    case Activation::kSwiglu: {
      auto halves = x.chunk(2, -1);
      at::silu_out(out, halves[0]);  // in place, no temporary
      out.mul_(halves[1]);
      return;
    }
  }
  throw std::logic_error("apply_activation_into: unknown activation");
}

}  // namespace moe
