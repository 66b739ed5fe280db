#include "plugins/experts/inf_ffn.h"

#include <torch/torch.h>

#include <cmath>

#include "core/grouped_ffn.h"

namespace moe {

InfFFNExpertsImpl::InfFFNExpertsImpl(InfFFNExpertsOptions options) : options_(std::move(options)) {
  const int64_t d = options_.d_model(), g = options_.num_experts();
  const int64_t width = options_.D_mult() * d;
  TORCH_CHECK(d > 0 && g > 0 && options_.D_mult() > 0,
              "expert bank 'inf_ffn': expected positive sizes, got d=", d, " blocks=", g,
              " D=", options_.D_mult());
  TORCH_CHECK(width % g == 0, "expert bank 'inf_ffn': D * d_model (", width,
              ") must be divisible by moe.num_experts (the number of maskable blocks, ", g, ")");
  TORCH_CHECK(options_.activation() == "gelu" || options_.activation() == "relu",
              "expert bank 'inf_ffn': activation '", options_.activation(),
              "' not supported; valid: gelu | relu");
  set_compute(options_.compute());
  block_ = width / g;
  const double a1 = 1.0 / std::sqrt(static_cast<double>(d));
  const double a2 = 1.0 / std::sqrt(static_cast<double>(width));
  w1 = register_parameter("w1", torch::empty({g, d, block_}).uniform_(-a1, a1));
  b1 = register_parameter("b1", torch::empty({g, block_}).uniform_(-a1, a1));
  w2 = register_parameter("w2", torch::empty({g, block_, d}).uniform_(-a2, a2));
  b2 = register_parameter("b2", torch::empty({d}).uniform_(-a2, a2));
}

void InfFFNExpertsImpl::set_compute(const std::string& mode) {
  TORCH_CHECK(mode == "gather" || mode == "dense", "expert bank 'inf_ffn': compute '", mode,
              "' unknown; valid: gather | dense");
  options_.compute(mode);
}

torch::Tensor InfFFNExpertsImpl::dense_forward(const torch::Tensor& hidden,
                                               const Routing& routing) {
  const int64_t g = options_.num_experts(), d = options_.d_model();
  auto valid = routing.indices.ge(0);
  auto a = torch::zeros({hidden.size(0), g}, routing.weights.options())
               .scatter_add(1, routing.indices.clamp_min(0),
                            routing.weights * valid.to(routing.weights.dtype()));
  auto w1_full = w1.permute({1, 0, 2}).reshape({d, g * block_});
  auto h = apply_activation(options_.activation(), torch::addmm(b1.reshape({-1}), hidden, w1_full));
  h = h * a.to(h.dtype()).repeat_interleave(block_, 1);
  return torch::addmm(b2, h, w2.reshape({g * block_, d}));
}

torch::Tensor InfFFNExpertsImpl::forward(const torch::Tensor& hidden, const Routing& routing,
                                         const DispatchPlan& plan) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "expert bank 'inf_ffn': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  // Kept for last_stats(), which only evaluations call: no work here in training.
  last_indices_ = routing.indices.detach();
  auto it = routing.extras.find("stat.nominal_experts");
  last_nominal_ = it == routing.extras.end() ? torch::Tensor() : it->second;
  if (options_.compute() == "dense") return dense_forward(hidden, routing);
  if (plan.token_index.numel() == 0) return torch::zeros_like(hidden) + b2;
  auto xs = gather_rows(hidden, plan);
  auto no_bias = torch::zeros({options_.num_experts(), options_.d_model()}, hidden.options());
  auto ys = grouped_ffn(xs, w1, b1, w2, no_bias, plan.counts, options_.activation());
  return combine_rows(ys, plan.weight, plan, hidden.size(0)) + b2;
}

std::map<std::string, double> InfFFNExpertsImpl::last_stats() const {
  std::map<std::string, double> out;
  if (last_indices_.defined()) {
    out["union_units"] =
        last_indices_.ge(0).sum(1).to(torch::kDouble).mean().item<double>() * double(block_);
  }
  if (last_nominal_.defined()) out["nominal_units"] = last_nominal_.item<double>() * double(block_);
  return out;
}

int64_t InfFFNExpertsImpl::params_per_expert() const {
  return block_ * (2 * options_.d_model() + 1);
}

int64_t InfFFNExpertsImpl::flops_per_expert_token() const {
  return 4 * options_.d_model() * block_;
}

std::shared_ptr<ExpertBankImpl> InfFFNExpertsImpl::create(const PluginSpec& spec,
                                                          const LayerContext& ctx) {
  auto o = InfFFNExpertsOptions(ctx.d_model, ctx.num_experts)
               .D_mult(spec.get<int64_t>("D", 8))
               .activation(spec.get<std::string>("activation", "gelu"))
               .compute(spec.get<std::string>("compute", "gather"));
  if (o.D_mult() <= 0) spec.fail("parameter 'D' expected > 0 (a multiple of d_model)");
  if ((o.D_mult() * ctx.d_model) % ctx.num_experts != 0) {
    spec.fail("parameter 'D' * d_model = " + std::to_string(o.D_mult() * ctx.d_model) +
              " must be divisible by moe.num_experts (" + std::to_string(ctx.num_experts) +
              ", the number of maskable blocks)");
  }
  if (o.activation() != "gelu" && o.activation() != "relu") {
    spec.fail("parameter 'activation' = '" + o.activation() + "'; valid: gelu | relu");
  }
  if (o.compute() != "gather" && o.compute() != "dense") {
    spec.fail("parameter 'compute' = '" + o.compute() + "'; valid: gather | dense");
  }
  return std::make_shared<InfFFNExpertsImpl>(o);
}

std::vector<ParamDoc> InfFFNExpertsImpl::param_docs() {
  return {{"D", "8",
           "hidden width of the large FFN as a multiple of d_model; cut into "
           "moe.num_experts blocks"},
          {"activation", "gelu", "gelu | relu"},
          {"compute", "gather", "gather (only the kept blocks run) | dense (masked dense form)"}};
}

MOE_REGISTER_EXPERTS("inf_ffn", InfFFNExpertsImpl,
                     "∞-MoE large FFN: blocks of hidden units weighted by the router's mask; "
                     "only kept blocks computed");

}  // namespace moe
