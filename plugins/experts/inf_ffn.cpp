#include "plugins/experts/inf_ffn.h"

#include <torch/torch.h>

#include <cmath>

#include "core/grouped_ffn.h"

namespace moe {
namespace {

const std::vector<std::string> kComputes = {"gather", "dense"};
const std::vector<std::string> kActivations = {"gelu", "relu"};  // blocks need elementwise ones

}  // namespace

InfFFNExpertsImpl::InfFFNExpertsImpl(InfFFNExpertsOptions options) : options_(std::move(options)) {
  const int64_t d = options_.d_model(), g = options_.num_experts();
  const int64_t width = options_.D_mult() * d;
  const OptionCheck check("experts", "inf_ffn");
  check.expect(options_.D_mult() > 0, "D", "> 0 (a multiple of d_model)",
               static_cast<double>(options_.D_mult()));
  check.expect(d > 0 && g > 0, "num_experts", "> 0 with d_model > 0", static_cast<double>(g));
  check.expect(width % g == 0, "D",
               "D * d_model divisible by moe.num_experts (" + std::to_string(g) +
                   ", the number of maskable blocks)",
               static_cast<double>(options_.D_mult()));
  check.one_of("activation", activation_name(options_.activation()), kActivations);
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
  OptionCheck("experts", "inf_ffn").one_of("compute", mode, kComputes);
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

BankOutput InfFFNExpertsImpl::forward(const torch::Tensor& hidden, const Routing& routing,
                                      const DispatchPlan& plan) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "expert bank 'inf_ffn': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  BankOutput out;
  // The union's units per token, from the dispatch's host count of selected slots (the
  // same number the indices give, with no device work in the step).
  if (hidden.size(0) > 0) {
    add_stat(out.stats, "union_units",
             static_cast<double>(plan.selected) / static_cast<double>(hidden.size(0)) *
                 static_cast<double>(block_),
             Reduce::kSum);
  }
  if (routing.nominal_experts > 0) {
    add_stat(out.stats, "nominal_units", routing.nominal_experts * double(block_), Reduce::kSum);
  }
  if (options_.compute() == "dense") {
    out.y = dense_forward(hidden, routing);
  } else if (plan.token_index.numel() == 0) {
    out.y = torch::zeros_like(hidden) + b2;
  } else {
    auto xs = gather_rows(hidden, plan);
    auto no_bias = torch::zeros({options_.num_experts(), options_.d_model()}, hidden.options());
    auto ys = grouped_ffn(xs, w1, b1, w2, no_bias, plan.counts, options_.activation());
    out.y = combine_rows(ys, plan.weight, plan, hidden.size(0)) + b2;
  }
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
               .D_mult(spec.get<int64_t>("D", InfFFNExpertsOptions(0, 0).D_mult()))
               .activation(parse_activation(spec.choice("activation", "gelu", kActivations)))
               .compute(spec.get<std::string>("compute", "gather"));
  return std::make_shared<InfFFNExpertsImpl>(o);
}

BankShape InfFFNExpertsImpl::shape(const PluginSpec& spec, const BankShapeContext& ctx) {
  BankShape s;
  const auto D = spec.get<int64_t>("D", InfFFNExpertsOptions(0, 0).D_mult());
  s.units = static_cast<double>(D * ctx.d_model);  // one large FFN, cut into blocks
  s.per_expert = s.units / static_cast<double>(ctx.num_experts);
  s.inputs = {"moe.experts D = " + std::to_string(D)};
  return s;
}

// More, narrower blocks of the same large FFN: num_experts alone changes (its D x d_model
// must stay divisible by it, which the bank checks).
void InfFFNExpertsImpl::refine(nlohmann::json& /*block*/, int64_t /*d_model*/, int64_t /*m*/) {}

std::vector<ParamDoc> InfFFNExpertsImpl::param_docs() {
  return with_ranges(
      {{"D", "8",
        "hidden width of the large FFN as a multiple of d_model; cut into "
        "moe.num_experts blocks"},
       {"activation", "gelu", "gelu | relu"},
       {"compute", "gather", "gather (only the kept blocks run) | dense (masked dense form)"}},
      {{"D", Range::ints(1, 4096, "D x d_model divisible by moe.num_experts")}});
}

MOE_REGISTER_EXPERTS("inf_ffn", InfFFNExpertsImpl,
                     "∞-MoE large FFN: blocks of hidden units weighted by the router's mask; "
                     "only kept blocks computed");

}  // namespace moe
