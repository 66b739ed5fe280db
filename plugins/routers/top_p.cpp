#include "plugins/routers/top_p.h"

#include <torch/torch.h>

#include "core/losses.h"

namespace moe {

std::pair<torch::Tensor, torch::Tensor> top_p_select(const torch::Tensor& probs, double threshold,
                                                     int64_t max_experts) {
  TORCH_CHECK(probs.dim() == 2, "top_p_select: expected probs [T, N], got ", probs.sizes());
  const int64_t tokens = probs.size(0);
  // Stable descending sort: among equal probabilities the lower expert index comes first.
  auto sorted = torch::sort(probs.detach(), /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  auto sorted_p = std::get<0>(sorted);
  auto order = std::get<1>(sorted);
  // The reference rule: keep j iff the probability mass before it (an exclusive cumulative
  // sum, the inclusive one shifted right) is <= threshold. Not cumsum - sorted: rounding
  // makes that differ when a cumulative sum lands on the threshold exactly.
  const auto cum = sorted_p.cumsum(-1);
  const int64_t n = probs.size(1);
  auto before = torch::cat({torch::zeros({tokens, 1}, cum.options()), cum.narrow(1, 0, n - 1)}, 1);
  auto keep = before.le(threshold);
  if (max_experts > 0 && max_experts < probs.size(1)) {
    keep.narrow(1, max_experts, probs.size(1) - max_experts).fill_(false);
  }
  // Kept entries form a prefix of each row, so the widest row sets the slot count.
  const int64_t slots = tokens > 0 ? std::max<int64_t>(1, keep.sum(1).max().item<int64_t>()) : 1;
  keep = keep.narrow(1, 0, slots);
  auto indices = order.narrow(1, 0, slots).masked_fill(keep.logical_not(), -1);
  // Weights carry the router's gradient: gather from the differentiable probs.
  auto weights = probs.gather(1, order.narrow(1, 0, slots)) * keep.to(probs.dtype());
  return {weights, indices};
}

TopPRouterImpl::TopPRouterImpl(TopPRouterOptions options) : options_(options) {
  const OptionCheck check("router", "top_p");
  check.expect(options_.threshold() >= 0 && options_.threshold() <= 1, "threshold", "in [0, 1]",
               options_.threshold());
  check.expect(options_.max_experts() >= 0 && options_.max_experts() <= options_.num_experts(),
               "max_experts",
               "0..moe.num_experts (" + std::to_string(options_.num_experts()) + "; 0 = no cap)",
               static_cast<double>(options_.max_experts()));
  gate = register_module("gate", make_router_gate(options_.d_model(), options_.num_experts()));
}

Routing TopPRouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'top_p': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  auto logits = router_logits(gate, hidden);
  auto probs = torch::softmax(logits, -1);
  auto selection = top_p_select(probs, options_.threshold(), options_.max_experts());
  Routing routing;
  routing.weights = selection.first;
  routing.indices = selection.second;
  routing.probs = probs;
  // f_i: tokens whose selected set contains expert i.
  auto assigned = torch::zeros_like(probs);
  auto idx = routing.indices.clamp_min(0);
  assigned.scatter_add_(1, idx, routing.indices.ge(0).to(probs.dtype()));
  routing.balance_assigned = assigned;
  routing.aux_losses["balance"] = load_balance_loss(probs, assigned);
  routing.aux_losses["entropy"] = entropy_loss(probs);
  return routing;
}

void TopPRouterImpl::set_inference_option(const std::string& key, double value) {
  if (key != "threshold") return RouterImpl::set_inference_option(key, value);
  OptionCheck("router", "top_p").expect(value >= 0 && value <= 1, "threshold", "in [0, 1]", value);
  options_.threshold(value);
}

std::shared_ptr<RouterImpl> TopPRouterImpl::create(const PluginSpec& spec,
                                                   const LayerContext& ctx) {
  const double threshold = spec.get<double>("threshold", 0.4);
  const int64_t max_experts = spec.get<int64_t>("max_experts", 0);
  return std::make_shared<TopPRouterImpl>(TopPRouterOptions(ctx.d_model, ctx.num_experts)
                                              .threshold(threshold)
                                              .max_experts(max_experts));
}

std::vector<AuxLossDoc> TopPRouterImpl::aux_losses() {
  return {
      {"balance", 1e-2, "the Switch balance loss N sum_i f_i P_i over the batch"},
      {"entropy", 1e-4, "the routing entropy loss (mean entropy of the router probabilities)"},
  };
}

std::vector<ParamDoc> TopPRouterImpl::param_docs() {
  return with_ranges(
      {{"threshold", "0.4",
        "keep experts until the cumulative probability first exceeds it (crossing one kept)"},
       {"max_experts", "0", "cap on experts per token; 0 = none"}},
      {{"threshold", Range::reals(0, 1)},
       {"max_experts", Range::ints(0, kMaxSize, "<= moe.num_experts")}});
}

MOE_REGISTER_ROUTER("top_p", TopPRouterImpl,
                    "Dynamic MoE: keep experts until cumulative probability exceeds threshold; "
                    "raw-probability weights");

}  // namespace moe
