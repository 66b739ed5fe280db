#include "plugins/experts/hyper.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/grouped_ffn.h"
#include "core/shared_modules.h"

namespace moe {
namespace {

torch::nn::Linear tiny_head(int64_t in, int64_t out, double fan_in_main) {
  auto head = torch::nn::Linear(in, out);
  torch::NoGradGuard no_grad;
  const double bound = 1e-3 * std::sqrt(3.0 / (static_cast<double>(in) * fan_in_main));
  head->weight.uniform_(-bound, bound);
  head->bias.zero_();
  return head;
}

}  // namespace

HyperNetworkImpl::HyperNetworkImpl(const HyperOptions& o) : o_(o) {
  o.validate();
  const int64_t d = o.d_model, r = o.bottleneck, h = o.hyper_hidden;
  layer_emb = register_module("layer_emb", torch::nn::Embedding(o.num_layers, o.layer_embed));
  trunk = register_module("trunk", torch::nn::Linear(o.hidden + o.layer_embed, h));
  w_down = register_module("w_down", tiny_head(h, d * r, d));
  b_down = register_module("b_down", tiny_head(h, r, d));
  w_up = register_module("w_up", tiny_head(h, r * d, r));
  b_up = register_module("b_up", tiny_head(h, d, r));
}

HyperNetworkImpl::Adapter HyperNetworkImpl::forward(const torch::Tensor& m, int64_t layer) {
  const int64_t u = m.size(0), d = o_.d_model, r = o_.bottleneck;
  auto l = layer_emb->weight[layer].unsqueeze(0).expand({u, o_.layer_embed});
  auto z = torch::relu(trunk(torch::cat({m, l}, 1)));
  return {w_down(z).view({u, d, r}), b_down(z), w_up(z).view({u, r, d}), b_up(z)};
}

double HyperNetworkImpl::flops_per_set() const {
  const double d = o_.d_model, r = o_.bottleneck, h = o_.hyper_hidden;
  return 2 * ((o_.hidden + o_.layer_embed) * h + h * (2 * d * r + d + r));
}

void HyperOptions::validate() const {
  const OptionCheck check("experts", "hyper");
  const std::pair<const char*, int64_t> sizes[] = {{"embed_dim", embed_dim},
                                                   {"hidden", hidden},
                                                   {"hyper_hidden", hyper_hidden},
                                                   {"bottleneck", bottleneck},
                                                   {"layer_embed", layer_embed}};
  for (const auto& [name, value] : sizes) {
    check.expect(value > 0, name, "> 0", static_cast<double>(value));
  }
  check.expect(embed_init_std > 0, "embed_init_std", "> 0", embed_init_std);
  check.expect(num_experts >= 1 && num_experts <= 62, "num_experts",
               "1..62 (selected sets are coded as 64-bit masks)", static_cast<double>(num_experts));
}

HyperExpertsImpl::HyperExpertsImpl(ExpertBank inner_in, const HyperOptions& o, int64_t layer,
                                   HyperNetwork shared_hyper)
    : o_(o), layer_(layer) {
  o.validate();
  TORCH_CHECK(layer >= 0 && layer < o.num_layers, "expert bank 'hyper': layer ", layer,
              " outside [0, ", o.num_layers, ")");
  inner = register_module("inner", std::move(inner_in));
  expert_emb = register_parameter("expert_emb",
                                  torch::randn({o.num_experts, o.embed_dim}) * o.embed_init_std);
  mlp1 = register_module("mlp1", torch::nn::Linear(o.embed_dim, o.hidden));
  mlp2 = register_module("mlp2", torch::nn::Linear(o.hidden, o.hidden));
  if (shared_hyper) {
    hyper = std::move(shared_hyper);  // owned (and registered) by the model
  } else {
    hyper = register_module("hyper", HyperNetwork(o));
  }
}

torch::Tensor HyperExpertsImpl::selection_mask(const Routing& routing) const {
  auto idx = routing.indices;
  auto mask = torch::zeros({idx.size(0), o_.num_experts}, torch::kFloat).to(idx.device());
  return mask.scatter_(1, idx.clamp_min(0), idx.ge(0).to(torch::kFloat));
}

torch::Tensor HyperExpertsImpl::selection_embedding(const torch::Tensor& selected) {
  return (1 - selected).to(expert_emb.dtype()).matmul(expert_emb);  // sum of the unselected
}

HyperNetworkImpl::Adapter HyperExpertsImpl::generate(const torch::Tensor& selected) {
  auto m = mlp2(torch::relu(mlp1(selection_embedding(selected))));
  return hyper->forward(m, layer_);
}

torch::Tensor HyperExpertsImpl::adapter(const torch::Tensor& hidden, const torch::Tensor& selected,
                                        Stats* stats) {
  // A set's code is its bitmask; tokens sharing a code share an adapter.
  auto bits = torch::pow(2, torch::arange(o_.num_experts, selected.options().dtype(torch::kLong)));
  auto code = (selected.to(torch::kLong) * bits).sum(1);
  auto uniq = torch::_unique2(code, /*sorted=*/true, /*return_inverse=*/true,
                              /*return_counts=*/true);
  auto sets = std::get<0>(uniq);
  auto inverse = std::get<1>(uniq);
  auto counts_t = std::get<2>(uniq).to(torch::kCPU);  // tokens per set, read once
  const int64_t u = sets.size(0);
  auto set_mask = sets.unsqueeze(1).bitwise_and(bits).ne(0).to(torch::kFloat);  // [U, N]
  auto a = generate(set_mask);
  // Tokens in set order, one contiguous block per set, one matmul per block.
  auto order = std::get<1>(torch::sort(inverse, /*stable=*/true, 0, false));
  std::vector<int64_t> counts(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + u);
  auto ys = grouped_ffn(hidden.index_select(0, order), a.w_down, a.b_down, a.w_up, a.b_up, counts,
                        Activation::kRelu);
  auto back =
      torch::empty_like(order).scatter_(0, order, torch::arange(order.size(0), order.options()));
  if (stats) {  // per-token counts: they add up over layers
    add_stat(*stats, "distinct_sets", static_cast<double>(u), Reduce::kSum);
    add_stat(*stats, "adapter_flops_per_token", extra_flops_per_token(), Reduce::kSum);
    add_stat(
        *stats, "hyper_flops_per_token",
        u *
            (hyper->flops_per_set() + 2.0 * (o_.num_experts * o_.embed_dim +
                                             o_.embed_dim * o_.hidden + o_.hidden * o_.hidden)) /
            std::max<int64_t>(1, hidden.size(0)),
        Reduce::kSum);
  }
  return ys.index_select(0, back);
}

BankOutput HyperExpertsImpl::forward(const torch::Tensor& hidden, const Routing& routing,
                                     const DispatchPlan& plan) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == o_.d_model,
              "expert bank 'hyper': expected hidden [tokens, ", o_.d_model, "], got ",
              hidden.sizes());
  auto out = inner->forward(hidden, routing, plan);
  if (hidden.size(0) == 0) return out;
  out.y = out.y + adapter(hidden, selection_mask(routing), &out.stats);
  return out;
}

double HyperExpertsImpl::extra_active_params() const {
  const double d = o_.d_model, r = o_.bottleneck;
  return 2 * d * r + d + r;
}

double HyperExpertsImpl::extra_flops_per_token() const {
  return 2.0 * 2 * o_.d_model * o_.bottleneck;
}

HyperOptions HyperOptions::read(const PluginSpec& spec, int64_t d_model, int64_t num_experts,
                                int64_t num_layers) {
  HyperOptions o;
  o.d_model = d_model;
  o.num_experts = num_experts;
  o.num_layers = std::max<int64_t>(1, num_layers);
  const int64_t small = std::min<int64_t>(128, std::max<int64_t>(8, d_model / 2));
  o.embed_dim = spec.get<int64_t>("embed_dim", small);
  o.embed_init_std = spec.get<double>("embed_init_std", o.embed_init_std);
  o.hidden = spec.get<int64_t>("hidden", small);
  o.hyper_hidden = spec.get<int64_t>("hyper_hidden", small);
  o.bottleneck =
      spec.get<int64_t>("bottleneck", std::min<int64_t>(64, std::max<int64_t>(4, d_model / 4)));
  o.layer_embed = spec.get<int64_t>("layer_embed", 10);
  return o;
}

double HyperOptions::network_params() const {
  const double d = static_cast<double>(d_model), r = static_cast<double>(bottleneck),
               h = static_cast<double>(hyper_hidden), l = static_cast<double>(layer_embed);
  // layer_emb, trunk, w_down, b_down, w_up, b_up (HyperNetworkImpl's modules)
  return static_cast<double>(num_layers) * l + (static_cast<double>(hidden) + l) * h + h +
         (h * d * r + d * r) + (h * r + r) + (h * r * d + r * d) + (h * d + d);
}

double HyperOptions::layer_params() const {
  const double e = static_cast<double>(embed_dim), m = static_cast<double>(hidden);
  return static_cast<double>(num_experts) * e + e * m + m + m * m + m;  // embeddings, mlp1, mlp2
}

std::shared_ptr<ExpertBankImpl> HyperExpertsImpl::create(const PluginSpec& spec,
                                                         const LayerContext& ctx) {
  const auto o = HyperOptions::read(spec, ctx.d_model, ctx.num_experts, ctx.num_layers);
  const auto inner_block = inner_of(spec);
  if (inner_block.value("name", "") == "hyper") {
    auto hosts = expert_registry().names();
    hosts.erase(std::remove(hosts.begin(), hosts.end(), "hyper"), hosts.end());
    spec.check().one_of("inner", "hyper", hosts);
  }
  auto inner = make_expert_bank(PluginSpec::from_block("experts.inner", inner_block), ctx);
  HyperNetwork shared{nullptr};
  if (ctx.shared) {
    shared = HyperNetwork(std::dynamic_pointer_cast<HyperNetworkImpl>(
        ctx.shared->get_or_create("hyper", [&] { return std::make_shared<HyperNetworkImpl>(o); })));
    const auto& s = shared->options();
    if (s.d_model != o.d_model || s.hidden != o.hidden || s.hyper_hidden != o.hyper_hidden ||
        s.bottleneck != o.bottleneck || s.layer_embed != o.layer_embed ||
        s.num_layers != o.num_layers) {
      spec.fail("every MoE layer of a model shares one hypernetwork: sizes must agree");
    }
  }
  return std::make_shared<HyperExpertsImpl>(inner, o, ctx.layer_index, shared);
}

nlohmann::json HyperExpertsImpl::inner_of(const PluginSpec& spec) {
  return spec.contains("inner") ? spec.block("inner") : nlohmann::json{{"name", "ffn"}};
}

// The host bank's shape, plus per MoE layer the expert embeddings and the selection MLP,
// plus the model's one hypernetwork (its heads emit d x r matrices: the large part) and the
// adapters it generates, one per distinct selection in a batch.
BankShape HyperExpertsImpl::shape(const PluginSpec& spec, const BankShapeContext& ctx) {
  auto s = bank_shape(inner_of(spec), ctx);
  const auto o = HyperOptions::read(spec, ctx.d_model, ctx.num_experts, ctx.num_layers);
  const double d = static_cast<double>(ctx.d_model), h = static_cast<double>(o.hyper_hidden),
               r = static_cast<double>(o.bottleneck), e = static_cast<double>(ctx.num_experts);
  s.layer_params += o.layer_params();
  s.model_params += o.network_params();
  // Distinct selections of k of the experts in a batch: at most the tokens, at most C(E, k).
  const double k = std::min(e, static_cast<double>(ctx.experts_per_token));
  const double sets = std::min(
      ctx.tokens, std::exp(std::lgamma(e + 1) - std::lgamma(k + 1) - std::lgamma(e - k + 1)));
  s.activation_bytes += sets * (2 * d * r + d + r + h) * 4;  // fp32
  s.inputs.push_back("moe.experts hyper_hidden = " + std::to_string(o.hyper_hidden) +
                     ", bottleneck = " + std::to_string(o.bottleneck));
  return s;
}

// The host experts are what gets finer; the hypernetwork's sizes stay.
void HyperExpertsImpl::refine(nlohmann::json& block, int64_t d_model, int64_t m) {
  auto inner = inner_of(PluginSpec::from_block("experts", block));
  refine_bank(inner, d_model, m);
  block["inner"] = inner;
}

std::vector<ParamDoc> HyperExpertsImpl::param_docs() {
  return with_ranges(
      {{"inner", "{name = \"ffn\"}", "the host expert bank (any but hyper)"},
       {"embed_dim", "clamp(d/2, 8, 128)", "expert embedding size"},
       {"embed_init_std", "1.0",
        "std of the expert embeddings' N(0, std) init (the reference's nn.Embedding)"},
       {"hidden", "clamp(d/2, 8, 128)", "selection-embedding MLP width"},
       {"hyper_hidden", "clamp(d/2, 8, 128)", "hypernetwork trunk width"},
       {"bottleneck", "clamp(d/4, 4, 64)", "r: the generated adapter's bottleneck"},
       {"layer_embed", "10", "layer embedding size"}},
      {{"embed_dim", Range::ints(1, 4096)},
       {"embed_init_std", Range::reals(0, 1e3, true)},
       {"hidden", Range::ints(1, 4096)},
       {"hyper_hidden", Range::ints(1, 4096)},
       {"bottleneck", Range::ints(1, 4096)},
       {"layer_embed", Range::ints(1, 4096)}});
}

MOE_REGISTER_EXPERTS("hyper", HyperExpertsImpl,
                     "HyperMoE: host experts + an adapter generated from the unselected experts");

}  // namespace moe
