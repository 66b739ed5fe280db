#include "plugins/routers/top_k.h"

#include <torch/torch.h>

#include "core/losses.h"

namespace moe {

TopKRouterImpl::TopKRouterImpl(TopKRouterOptions options) : options_(options) {
  const OptionCheck check("router", "top_k");
  check.expect(options_.k() >= 1 && options_.k() <= options_.num_experts(), "k",
               "1..num_experts (" + std::to_string(options_.num_experts()) + ")",
               static_cast<double>(options_.k()));
  check.expect(options_.noise_std() >= 0, "noise_std", ">= 0", options_.noise_std());
  check.expect(options_.noise() != "jitter" || options_.noise_std() < 1, "noise_std",
               "< 1 with noise = jitter (the factor U(1 - eps, 1 + eps) stays positive)",
               options_.noise_std());
  check.one_of("noise", options_.noise(), {"jitter", "logit"});
  check.one_of("score", options_.score(), {"softmax", "sigmoid"});
  check.expect(options_.bias_update_rate() >= 0, "bias_update_rate", ">= 0 (0 = off)",
               options_.bias_update_rate());
  gate = register_module("gate", make_router_gate(options_.d_model(), options_.num_experts()));
  if (options_.bias_update_rate() > 0) {
    expert_bias = register_buffer("expert_bias", torch::zeros({options_.num_experts()}));
  }
}

Routing TopKRouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'top_k': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  const bool noisy = is_training() && options_.noise_std() > 0;
  const bool jitter = noisy && options_.noise() == "jitter";
  const double eps = options_.noise_std();
  auto logits = router_logits(
      gate, jitter ? hidden * torch::empty_like(hidden).uniform_(1 - eps, 1 + eps) : hidden);
  if (noisy && !jitter) logits = logits + torch::randn_like(logits) * eps;
  torch::Tensor probs, scores;
  if (options_.score() == "sigmoid") {
    scores = torch::sigmoid(logits);
    probs = scores / scores.sum(-1, /*keepdim=*/true);
  } else {
    scores = probs = torch::softmax(logits, -1);
  }
  torch::Tensor weights, indices;
  if (expert_bias.defined()) {  // the bias chooses; the gates stay the scores
    indices =
        std::get<1>((scores.detach() + expert_bias.to(scores.dtype())).topk(options_.k(), -1));
    weights = scores.gather(1, indices);
  } else {
    auto top = scores.topk(options_.k(), -1);
    weights = std::get<0>(top);
    indices = std::get<1>(top);
  }
  if (options_.normalize().value_or(options_.k() > 1)) {  // k = 1: a unit gate
    weights = weights / weights.sum(-1, /*keepdim=*/true);
  }
  Routing routing;
  routing.weights = weights;
  routing.indices = indices;
  routing.probs = probs;
  // The balance losses count the unbiased choices (top-k of the scores without the
  // aux-loss-free bias, as DeepSeek-V3 and Megatron-Core do): all k of them with f
  // normalised by T k, or only the first.
  const auto unbiased = expert_bias.defined() ? std::get<1>(scores.detach().topk(options_.k(), -1))
                                              : indices.detach();
  const int64_t counted = options_.balance_all_choices() ? options_.k() : 1;
  routing.balance_assigned =
      torch::zeros_like(probs, probs.options().requires_grad(false))
          .scatter_(1, unbiased.narrow(1, 0, counted), 1.0 / static_cast<double>(counted));
  routing.aux_losses["balance"] = load_balance_loss(probs, routing.balance_assigned);
  // On the logits that route (jittered or noisy while training), as Switch and
  // Megatron-Core compute it.
  if (options_.z_loss()) routing.aux_losses["z"] = z_loss(logits);
  return routing;
}

void TopKRouterImpl::after_step(const std::vector<LayerTrace>& traces, size_t layer) {
  if (!expert_bias.defined() || layer >= traces.size() || traces[layer].load.empty()) return;
  torch::NoGradGuard no_grad;
  auto load = torch::tensor(traces[layer].load, torch::kDouble);
  auto step = torch::sign(load.mean() - load) * options_.bias_update_rate();
  expert_bias.add_(step.to(expert_bias.device(), expert_bias.scalar_type()));
  if (options_.center_bias()) expert_bias.sub_(expert_bias.mean());
}

std::shared_ptr<RouterImpl> TopKRouterImpl::create(const PluginSpec& spec,
                                                   const LayerContext& ctx) {
  const auto k = *nominal_experts(spec);
  const auto score = spec.choice("score", "softmax", {"softmax", "sigmoid"});
  auto options = TopKRouterOptions(ctx.d_model, ctx.num_experts)
                     .k(k)
                     .noise_std(spec.get<double>("noise_std", 0.0))
                     .noise(spec.choice("noise", "jitter", {"jitter", "logit"}))
                     .score(score)
                     .z_loss(spec.get<bool>("z_loss", score == "softmax"))
                     .balance_all_choices(ctx.balance_all_choices)
                     .normalize(spec.get<bool>("normalize", k > 1))
                     .bias_update_rate(spec.get<double>("bias_update_rate", 0.0))
                     .center_bias(spec.get<bool>("center_bias", false));
  return std::make_shared<TopKRouterImpl>(options);
}

std::optional<int64_t> TopKRouterImpl::nominal_experts(const PluginSpec& spec) {
  return spec.get<int64_t>("k", TopKRouterOptions(0, 0).k());
}

void TopKRouterImpl::refine(nlohmann::json& block, int64_t nominal, int64_t m) {
  RouterImpl::refine(block, nominal, m);
  if (m > 1 && !block.contains("normalize")) block["normalize"] = nominal > 1;
}

std::vector<AuxLossDoc> TopKRouterImpl::aux_losses() {
  return {
      {"balance", 1e-2, "the Switch balance loss N sum_i f_i P_i over the batch"},
      {"z", 1e-3, "the router z-loss, mean (logsumexp of the logits)^2"},
  };
}

std::vector<ParamDoc> TopKRouterImpl::param_docs() {
  return with_ranges(
      {{"k", "2", "experts per token (1 = Switch, 2 = GShard)"},
       {"score", "softmax",
        "softmax | sigmoid (s = sigmoid(logits); gates renormalised over the chosen k; "
        "DeepSeek-V3)"},
       {"noise_std", "0", "train-time routing noise: jitter's eps, or logit noise's std"},
       {"noise", "jitter",
        "jitter: router input x U(1 - eps, 1 + eps) (Switch) | logit: + N(0, std^2) on the "
        "logits; the z-loss uses the logits that route (noisy ones while training)"},
       {"z_loss", "score = softmax",
        "produce the router z-loss (coefficient loss.z); off by default for sigmoid "
        "scores, which DeepSeek-V3 trains without one"},
       {"normalize", "k >= 2",
        "renormalise the k gates to sum to 1 (with k = 1: a unit gate, which gives the "
        "router no gradient)"},
       {"bias_update_rate", "0",
        "aux-loss-free balancing (DeepSeek-V3): a per-expert bias chooses the experts, "
        "b_i += rate * sign(mean load - load_i) after each step; 0 = off (try 1e-3 with "
        "loss.balance = 0)"},
       {"center_bias", "false", "re-centre that bias to mean 0 after each update"}},
      {{"k", Range::ints(1, kMaxSize, "<= moe.num_experts")},
       {"noise_std", Range::reals(0, 100, false, false, "< 1 with noise = jitter")},
       {"bias_update_rate", Range::reals(0, 1)}});
}

MOE_DEFAULT_PLUGIN(::moe::router_registry(), "top_k");  // what [moe] gets without a router
MOE_REGISTER_ROUTER("top_k", TopKRouterImpl,
                    "Switch (k=1, gate p_i) / GShard (k>=2, renormalised gates) top-k routing");

}  // namespace moe
