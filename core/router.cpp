#include "core/router.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <map>
#include <stdexcept>

#include "core/compat.h"
#include "core/config_error.h"

namespace moe {

void RouterImpl::set_inference_option(const std::string& key, double /*value*/) {
  throw ConfigError::unknown("router '" + plugin_name_ + "'", "inference option", key,
                             inference_options());
}

torch::nn::Linear make_router_gate(int64_t d_model, int64_t num_experts) {
  torch::nn::Linear gate(torch::nn::LinearOptions(d_model, num_experts).bias(false));
  torch::NoGradGuard no_grad;
  gate->weight.normal_(0.0, 0.02);
  return gate;
}

torch::Tensor router_logits(torch::nn::Linear& gate, const torch::Tensor& hidden) {
  // In fp32 (double for a double model) even under bf16 autocast: routing decisions and
  // the aux losses are not made in reduced precision (methods.md).
  compat::NoAutocast fp32;
  const auto dtype = gate->weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  return gate(hidden.to(dtype)).to(dtype);
}

std::pair<torch::Tensor, torch::Tensor> routing_from_mask(const torch::Tensor& mask,
                                                          const torch::Tensor& weights) {
  TORCH_CHECK(mask.dim() == 2 && weights.sizes() == mask.sizes(),
              "routing_from_mask: expected mask and weights [T, N], got ", mask.sizes(), " and ",
              weights.sizes());
  const auto chosen = mask.to(torch::kBool);
  // A stable descending sort of the 0/1 mask puts each row's chosen experts first, in
  // ascending expert order.
  auto order = std::get<1>(torch::sort(chosen.to(torch::kInt), /*stable=*/true, /*dim=*/1,
                                       /*descending=*/true));
  const int64_t widest = mask.size(0) > 0 ? chosen.sum(1).max().item<int64_t>() : 0;
  const int64_t slots = std::max<int64_t>(1, widest);
  order = order.narrow(1, 0, slots);
  auto keep = chosen.gather(1, order);
  auto out_weights = weights.gather(1, order) * keep.to(weights.dtype());
  return {out_weights, order.masked_fill(keep.logical_not(), -1)};
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

std::optional<int64_t> nominal_experts(const nlohmann::json& router_block) {
  const auto spec = PluginSpec::from_block("router", router_block);
  return router_registry().entry(spec.name()).facts.nominal_experts(spec);
}

std::vector<std::string> routers_with_nominal_experts() {
  std::vector<std::string> out;
  for (const auto& n : router_registry().names()) {
    if (router_registry().entry(n).facts.nominal_experts(PluginSpec("router", n, {}))) {
      out.push_back(n);
    }
  }
  return out;
}

const std::vector<AuxLossDoc>& loss_terms() {
  static const std::vector<AuxLossDoc> terms = loss_terms_of(router_registry());
  return terms;
}

std::vector<AuxLossDoc> loss_terms_of(const RouterRegistry& registry) {
  // By name (so sorted); the MoE layer's own first: the balance loss per sequence, of the
  // routers that set Routing::balance_assigned.
  std::map<std::string, AuxLossDoc> terms = {
      {"balance_seq",
       {"balance_seq", 0.0,
        "the balance loss per sequence, averaged (DeepSeek-V3's sequence-wise loss)"}}};
  std::map<std::string, std::vector<std::string>> from;  // loss name -> routers adding it
  for (const auto& name : registry.names()) {
    const auto& facts = registry.entry(name).facts;
    for (const auto& loss : facts.aux_losses ? facts.aux_losses() : std::vector<AuxLossDoc>{}) {
      const auto [it, added] = terms.emplace(loss.name, loss);
      if (!added && it->second.coefficient != loss.coefficient) {
        throw std::logic_error("router '" + name + "': aux loss '" + loss.name +
                               "' registered with default " + format_number(loss.coefficient) +
                               ", another router with " + format_number(it->second.coefficient));
      }
      from[loss.name].push_back(name);
    }
  }
  std::vector<AuxLossDoc> out;
  for (auto& [name, term] : terms) {
    if (from.count(name)) term.help += "; routers: " + join(from[name]);
    out.push_back(term);
  }
  return out;
}

Router make_router(const PluginSpec& spec, const LayerContext& ctx) {
  check_ranges(spec, router_registry().entry(spec.name()).params);
  auto impl = router_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  impl->set_plugin_name(spec.name());
  return Router(impl);
}

}  // namespace moe
