#include "plugins/routers/remoe.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace moe {

ReMoERouterImpl::ReMoERouterImpl(ReMoERouterOptions options) : options_(options) {
  const OptionCheck check("router", "remoe");
  check.expect(options_.k() >= 1 && options_.k() <= options_.num_experts(), "k",
               "1..num_experts (" + std::to_string(options_.num_experts()) + ")",
               static_cast<double>(options_.k()));
  check.expect(options_.alpha() > 1, "alpha", "> 1", options_.alpha());
  check.expect(options_.l1_init() > 0, "l1_init", "> 0", options_.l1_init());
  gate = register_module("gate", make_router_gate(options_.d_model(), options_.num_experts()));
  l1_coef = register_buffer("l1_coef", torch::tensor(options_.l1_init(), torch::kDouble));
}

Routing ReMoERouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'remoe': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  const auto logits = router_logits(gate, hidden);
  const auto w = torch::relu(logits);
  const auto active = w.detach().gt(0);
  auto selection = routing_from_mask(active, w);
  Routing routing;
  routing.weights = selection.first;
  routing.indices = selection.second;
  routing.probs = torch::softmax(logits.detach(), -1);
  const int64_t tokens = hidden.size(0);
  torch::Tensor per_expert = w.sum(0);  // [N]
  if (options_.balanced() && tokens > 0) {
    const double scale =
        static_cast<double>(options_.num_experts()) / static_cast<double>(options_.k() * tokens);
    per_expert = per_expert * (active.sum(0).to(w.dtype()) * scale);
  }
  routing.aux_losses["l1"] =
      l1_coef.to(w.dtype()) * per_expert.sum() / static_cast<double>(std::max<int64_t>(1, tokens));
  return routing;
}

namespace {
/// 1 - selected / (T N) of one layer's step; NaN when it routed no token.
double sparsity_of(const LayerTrace& t, int64_t num_experts) {
  if (t.tokens == 0) return std::numeric_limits<double>::quiet_NaN();
  return 1.0 - static_cast<double>(t.selected) /
                   (static_cast<double>(t.tokens) * static_cast<double>(num_experts));
}
}  // namespace

void ReMoERouterImpl::after_step(const std::vector<LayerTrace>& traces, size_t layer) {
  if (layer >= traces.size()) return;
  double sparsity = 0;
  if (options_.l1_scope() == "layer") {
    sparsity = sparsity_of(traces[layer], options_.num_experts());
  } else {  // the mean over the MoE layers that routed tokens
    int64_t n = 0;
    for (const auto& t : traces) {
      const double s = sparsity_of(t, options_.num_experts());
      if (!std::isnan(s)) sparsity += s, ++n;
    }
    sparsity = n ? sparsity / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
  }
  if (std::isnan(sparsity)) return;
  const double target =
      1.0 - static_cast<double>(options_.k()) / static_cast<double>(options_.num_experts());
  torch::NoGradGuard no_grad;
  if (sparsity < target) {
    l1_coef.mul_(options_.alpha());
  } else {
    l1_coef.div_(options_.alpha());
  }
}

std::shared_ptr<RouterImpl> ReMoERouterImpl::create(const PluginSpec& spec,
                                                    const LayerContext& ctx) {
  return std::make_shared<ReMoERouterImpl>(
      ReMoERouterOptions(ctx.d_model, ctx.num_experts)
          .k(*nominal_experts(spec))
          .alpha(spec.get<double>("alpha", 1.2))
          .l1_init(spec.get<double>("l1_init", 1e-8))
          .balanced(spec.get<bool>("balanced", true))
          .l1_scope(spec.choice("l1_scope", "model", {"model", "layer"})));
}

std::optional<int64_t> ReMoERouterImpl::nominal_experts(const PluginSpec& spec) {
  return spec.get<int64_t>("k", ReMoERouterOptions(0, 0).k());
}

std::vector<AuxLossDoc> ReMoERouterImpl::aux_losses() {
  return {
      {"l1", 1.0,
       "multiplies the L1 penalty on the ReLU gates (its lambda adapts to the sparsity target)"},
  };
}

std::vector<ParamDoc> ReMoERouterImpl::param_docs() {
  return with_ranges(
      {{"k", "2",
        "target active experts per token: the L1 coefficient steers the sparsity "
        "toward 1 - k / num_experts"},
       {"alpha", "1.2", "after each step the L1 coefficient is multiplied or divided by it"},
       {"l1_init", "1e-8", "the L1 coefficient at step 0"},
       {"balanced", "true",
        "weight each expert's L1 by its load f_e = E / (k T) * tokens using it (ReMoE's "
        "load-balanced penalty); false = plain L1"},
       {"l1_scope", "model",
        "model: one L1 coefficient steered by the sparsity averaged over all MoE layers "
        "(the reference; layers may differ in experts per token) | layer: each layer "
        "steers its own"}},
      {{"k", Range::ints(1, kMaxSize, "<= moe.num_experts")},
       {"alpha", Range::reals(1, 100, true)},
       {"l1_init", Range::reals(0, 1e3, true)}});
}

MOE_REGISTER_ROUTER("remoe", ReMoERouterImpl,
                    "ReMoE ReLU routing: w = ReLU(W_r x), experts with w > 0, adaptive L1 "
                    "steering sparsity to 1 - k/E; experts per token vary");

}  // namespace moe
