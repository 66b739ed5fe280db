#include "plugins/routers/expert_choice.h"

#include <torch/torch.h>

#include <cmath>

#include "core/dispatch.h"
#include "core/losses.h"

namespace moe {

int64_t expert_choice_capacity(double capacity_factor, int64_t k, int64_t tokens,
                               int64_t num_experts) {
  if (tokens <= 0) return 0;
  // The layer's capacity rule (core/dispatch.h), kept within [1, T].
  return std::min<int64_t>(
      tokens, std::max<int64_t>(1, expert_capacity(capacity_factor, k, tokens, num_experts)));
}

ExpertChoiceRouterImpl::ExpertChoiceRouterImpl(ExpertChoiceRouterOptions options)
    : options_(options) {
  const OptionCheck check("router", "expert_choice");
  check.expect(options_.k() >= 1 && options_.k() <= options_.num_experts(), "k",
               "1..num_experts (" + std::to_string(options_.num_experts()) + ")",
               static_cast<double>(options_.k()));
  // At num_experts / k every expert already takes every token of the batch.
  check.expect(options_.capacity_factor() > 0 &&
                   options_.capacity_factor() <= static_cast<double>(options_.num_experts()) /
                                                     static_cast<double>(options_.k()),
               "capacity_factor",
               "in (0, num_experts / k] (num_experts / k: every expert takes every token)",
               options_.capacity_factor());
  if (options_.causal() && !options_.allow_noncausal()) {
    check.fail(
        "each expert picks its top-C tokens across the whole batch, so on a causal task a "
        "token's routing depends on later tokens (it leaks the future, and generation could "
        "not reproduce it); use a bidirectional task (brown_pos, wordnet_sst), or set "
        "allow_noncausal = true to run it anyway with the leak");
  }
  gate = register_module("gate", make_router_gate(options_.d_model(), options_.num_experts()));
}

Routing ExpertChoiceRouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'expert_choice': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  const auto logits = router_logits(gate, hidden);
  const auto probs = torch::softmax(logits, -1);
  const int64_t tokens = hidden.size(0);
  const int64_t c = expert_choice_capacity(options_.capacity_factor(), options_.k(), tokens,
                                           options_.num_experts());
  auto mask = torch::zeros_like(probs, probs.options().dtype(torch::kBool));
  if (c > 0) {
    auto chosen = std::get<1>(probs.detach().t().topk(c, -1));  // [N, C] token indices
    auto experts =
        torch::arange(options_.num_experts(), chosen.options()).unsqueeze(1).expand_as(chosen);
    mask.index_put_({chosen.reshape({-1}), experts.reshape({-1})}, true);
  }
  auto selection = routing_from_mask(mask, probs);
  Routing routing;
  routing.weights = selection.first;
  routing.indices = selection.second;
  routing.probs = probs;
  routing.aux_losses["z"] = z_loss(logits);
  return routing;
}

std::shared_ptr<RouterImpl> ExpertChoiceRouterImpl::create(const PluginSpec& spec,
                                                           const LayerContext& ctx) {
  return std::make_shared<ExpertChoiceRouterImpl>(
      ExpertChoiceRouterOptions(ctx.d_model, ctx.num_experts)
          .k(*nominal_experts(spec))
          .capacity_factor(spec.get<double>("capacity_factor", 1.0))
          .allow_noncausal(spec.get<bool>("allow_noncausal", false))
          .causal(ctx.causal));
}

std::optional<int64_t> ExpertChoiceRouterImpl::nominal_experts(const PluginSpec& spec) {
  return spec.get<int64_t>("k", ExpertChoiceRouterOptions(0, 0).k());
}

std::vector<AuxLossDoc> ExpertChoiceRouterImpl::aux_losses() {
  return {
      {"z", 1e-3, "the router z-loss, mean (logsumexp of the logits)^2"},
  };
}

std::vector<ParamDoc> ExpertChoiceRouterImpl::param_docs() {
  return with_ranges(
      {{"k", "2", "mean experts per token the capacity is sized for"},
       {"capacity_factor", "1",
        "each expert takes C = ceil(capacity_factor * k * T / E) tokens of the batch"},
       {"allow_noncausal", "false",
        "run on a causal task although the choice sees later tokens (a leak of the future)"}},
      {{"k", Range::ints(1, kMaxSize, "<= moe.num_experts")},
       {"capacity_factor", Range::reals(0, kMaxSize, true, false, "<= moe.num_experts / k")}});
}

MOE_REGISTER_ROUTER("expert_choice", ExpertChoiceRouterImpl,
                    "Expert Choice (Zhou et al. 2022): each expert takes its top-C tokens by "
                    "softmax score; tokens get 0..E experts; refuses causal tasks unless "
                    "allow_noncausal");

}  // namespace moe
