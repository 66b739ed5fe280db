#include "plugins/routers/adaptive.h"

#include <torch/torch.h>

namespace moe {

AdaptiveRouterImpl::AdaptiveRouterImpl(AdaptiveRouterOptions options) : options_(options) {
  const OptionCheck check("router", "adaptive");
  check.expect(options_.num_experts() >= 2, "moe.num_experts", ">= 2 (top-1 or top-2)",
               static_cast<double>(options_.num_experts()));
  check.expect(options_.threshold() >= 0, "threshold", ">= 0", options_.threshold());
  check.one_of("gap", options_.gap(), {"pair", "raw"});
  check.one_of("combine", options_.combine(), {"mixed", "raw", "renorm"});
  gate = register_module("gate", make_router_gate(options_.d_model(), options_.num_experts()));
}

Routing AdaptiveRouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'adaptive': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  auto logits = router_logits(gate, hidden);
  auto probs = torch::softmax(logits, -1);
  auto sorted = torch::sort(probs.detach(), /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  auto top2 = std::get<1>(sorted).narrow(1, 0, 2);  // [T, 2]
  auto p = probs.gather(1, top2);                   // differentiable [T, 2]
  auto p1 = p.select(1, 0), p2 = p.select(1, 1);
  auto pair_sum = p1 + p2;
  torch::Tensor two;  // [T] bool: the token uses both experts
  {
    torch::NoGradGuard no_grad;
    auto gap = options_.gap() == "pair" ? (p1 - p2) / pair_sum : p1 - p2;
    two =
        options_.force_top1() ? torch::zeros_like(gap, torch::kBool) : gap.le(options_.threshold());
  }
  auto two_f = two.to(probs.dtype());
  torch::Tensor w1, w2;
  const auto& combine = options_.combine();
  if (combine == "raw") {
    w1 = p1;
    w2 = p2 * two_f;
  } else {
    auto g1 = p1 / pair_sum, g2 = p2 / pair_sum;
    auto single = combine == "mixed" ? p1 : torch::ones_like(p1);
    w1 = torch::where(two, g1, single);
    w2 = g2 * two_f;
  }
  Routing routing;
  routing.weights = torch::stack({w1, w2}, 1);
  routing.indices = torch::stack({top2.select(1, 0), top2.select(1, 1).masked_fill(~two, -1)}, 1);
  routing.probs = probs;
  // Balance over the one-expert tokens only.
  auto one = (~two).to(probs.dtype());
  auto f1 = torch::zeros_like(probs).scatter_(1, top2.narrow(1, 0, 1), one.unsqueeze(1));
  const auto n = static_cast<double>(options_.num_experts());
  auto f = f1.sum(0) / one.sum().clamp_min(1.0);
  routing.aux_losses["balance"] = n * (f * probs.mean(0)).sum();
  return routing;
}

void AdaptiveRouterImpl::set_inference_option(const std::string& key, double value) {
  if (key == "threshold") {
    OptionCheck("router", "adaptive").expect(value >= 0, "threshold", ">= 0", value);
    options_.threshold(value);
  } else if (key == "force_top1") {
    options_.force_top1(value != 0);
  } else {
    RouterImpl::set_inference_option(key, value);
  }
}

std::shared_ptr<RouterImpl> AdaptiveRouterImpl::create(const PluginSpec& spec,
                                                       const LayerContext& ctx) {
  const double threshold = spec.get<double>("threshold", 0.1);
  const auto gap = spec.get<std::string>("gap", "pair");
  const auto combine = spec.get<std::string>("combine", "mixed");
  return std::make_shared<AdaptiveRouterImpl>(AdaptiveRouterOptions(ctx.d_model, ctx.num_experts)
                                                  .threshold(threshold)
                                                  .gap(gap)
                                                  .combine(combine)
                                                  .force_top1(spec.get<bool>("force_top1", false)));
}

std::vector<AuxLossDoc> AdaptiveRouterImpl::aux_losses() {
  return {
      {"balance", 1e-2, "the Switch balance loss N sum_i f_i P_i over the batch"},
  };
}

std::vector<ParamDoc> AdaptiveRouterImpl::param_docs() {
  return with_ranges(
      {{"threshold", "0.1", "T: a token uses its top-2 experts when their gap <= T"},
       {"gap", "pair", "pair: (p1-p2)/(p1+p2); raw: p1-p2 on the softmax"},
       {"combine", "mixed",
        "mixed: GShard gates for pairs, p1 for singles; raw: p1, p2; renorm: over the set"},
       {"force_top1", "false", "every token uses one expert (the paper's inference ambiguity)"}},
      {{"threshold", Range::reals(0, 1)}});
}

MOE_REGISTER_ROUTER("adaptive", AdaptiveRouterImpl,
                    "adaptive gating: top-1, or top-2 when the top-2 probability gap <= threshold");

}  // namespace moe
