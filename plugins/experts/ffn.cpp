#include "plugins/experts/ffn.h"

#include "core/config_error.h"
#include "core/grouped_ffn.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace moe {

FFNExpertsImpl::FFNExpertsImpl(FFNExpertsOptions options) : options_(std::move(options)) {
  const int64_t e = options_.num_experts(), d = options_.d_model(), h = options_.hidden();
  const OptionCheck check("experts", "ffn");
  check.expect(h > 0, "hidden", "> 0", static_cast<double>(h));
  check.expect(e > 0 && d > 0, "num_experts", "> 0 with d_model > 0", static_cast<double>(e));
  const int64_t up = up_width(options_.activation(), h);
  // nn.Linear's default init (uniform +-1/sqrt(fan_in)), per expert.
  w1 = register_parameter(
      "w1", torch::empty({e, d, up}).uniform_(-1.0 / std::sqrt(d), 1.0 / std::sqrt(d)));
  b1 = register_parameter("b1", torch::zeros({e, up}));
  w2 = register_parameter(
      "w2", torch::empty({e, h, d}).uniform_(-1.0 / std::sqrt(h), 1.0 / std::sqrt(h)));
  b2 = register_parameter("b2", torch::zeros({e, d}));
}

BankOutput FFNExpertsImpl::forward(const torch::Tensor& hidden, const Routing& /*routing*/,
                                   const DispatchPlan& plan) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "expert bank 'ffn': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  if (plan.token_index.numel() == 0) return {torch::zeros_like(hidden), {}};
  auto xs = gather_rows(hidden, plan);
  auto ys = grouped_ffn(xs, w1, b1, w2, b2, plan.counts, options_.activation(), options_.matmuls());
  return {combine_rows(ys, plan.weight, plan, hidden.size(0)), {}};
}

int64_t FFNExpertsImpl::params_per_expert() const {
  return (w1.numel() + b1.numel() + w2.numel() + b2.numel()) / options_.num_experts();
}

int64_t FFNExpertsImpl::flops_per_expert_token() const {
  return 2 * (w1.size(1) * w1.size(2) + w2.size(1) * w2.size(2));
}

void FFNExpertsImpl::upcycle(const torch::Tensor& up_w, const torch::Tensor& up_b,
                             const torch::Tensor& down_w, const torch::Tensor& down_b,
                             double noise_std) {
  // nn.Linear stores [out, in]; the bank stores [E, in, out].
  auto fits = [&](const torch::Tensor& dense, const torch::Tensor& bank) {
    return dense.defined() && dense.sizes() == bank.sizes().slice(1);
  };
  if (!fits(up_w.t(), w1) || !fits(up_b, b1) || !fits(down_w.t(), w2) || !fits(down_b, b2)) {
    throw ConfigError::text(
        "", "train.upcycle_from",
        "train.upcycle_from: the dense FFN (up " + c10::str(up_w.sizes()) + ", down " +
            c10::str(down_w.sizes()) + ") does not fit expert bank 'ffn' (per expert w1 " +
            c10::str(w1.sizes().slice(1)) + ", w2 " + c10::str(w2.sizes().slice(1)) +
            "): use the dense model's model.ffn_hidden as moe.experts.hidden and the same "
            "activation");
  }
  torch::NoGradGuard no_grad;
  auto set = [&](torch::Tensor& target, const torch::Tensor& source, bool noisy) {
    target.copy_(source.to(target.options()).unsqueeze(0).expand_as(target));
    if (noisy && noise_std > 0) target.add_(torch::randn_like(target) * noise_std);
  };
  set(w1, up_w.t(), true);
  set(b1, up_b, false);
  set(w2, down_w.t(), true);
  set(b2, down_b, false);
}

std::shared_ptr<ExpertBankImpl> FFNExpertsImpl::create(const PluginSpec& spec,
                                                       const LayerContext& ctx) {
  auto options =
      FFNExpertsOptions(ctx.d_model, ctx.num_experts, hidden_of(spec, ctx.d_model))
          .activation(parse_activation(spec.choice("activation", "gelu", activation_names())));
  return std::make_shared<FFNExpertsImpl>(options);
}

int64_t FFNExpertsImpl::hidden_of(const PluginSpec& spec, int64_t d_model) {
  return spec.get<int64_t>("hidden", 4 * d_model);
}

BankShape FFNExpertsImpl::shape(const PluginSpec& spec, const BankShapeContext& ctx) {
  BankShape s;
  const auto hidden = hidden_of(spec, ctx.d_model);
  s.per_expert = static_cast<double>(hidden);
  s.units = static_cast<double>(ctx.num_experts) * s.per_expert;
  s.inputs = {"moe.experts hidden = " + std::to_string(hidden)};
  return s;
}

void FFNExpertsImpl::refine(nlohmann::json& block, int64_t d_model, int64_t m) {
  const auto hidden = hidden_of(PluginSpec::from_block("experts", block), d_model);
  if (hidden % m != 0) {
    throw ConfigError::value("", "moe.experts.hidden",
                             "a multiple of granularity " + std::to_string(m),
                             std::to_string(hidden));
  }
  block["hidden"] = hidden / m;
}

std::vector<ParamDoc> FFNExpertsImpl::param_docs() {
  return with_ranges({{"hidden", "4 * d_model", "hidden width of each expert"},
                      {"activation", "gelu", "gelu | relu | swiglu"}},
                     {{"hidden", Range::ints(1, kMaxSize)}});
}

MOE_DEFAULT_PLUGIN(::moe::expert_registry(), "ffn");  // what [moe] gets without experts
MOE_REGISTER_EXPERTS("ffn", FFNExpertsImpl,
                     "independent FFN experts, stacked weights, sort-by-expert dispatch");

}  // namespace moe
