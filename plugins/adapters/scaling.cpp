#include "plugins/adapters/scaling.h"

#include <torch/torch.h>

namespace moe {
namespace {

void need_scaling_site(const PluginSpec& spec, int64_t d_in, int64_t d_out) {
  if (d_in != d_out) {
    spec.fail("a scaling adapter needs a site with d_in == d_out, got " + std::to_string(d_in) +
              " -> " + std::to_string(d_out));
  }
}

}  // namespace

IA3Adapter::IA3Adapter(int64_t n) { vectors = register_parameter("vectors", torch::ones({1, n})); }

torch::Tensor IA3Adapter::forward(const torch::Tensor&, const torch::Tensor& out) {
  return out * vectors[0].to(out.dtype());
}

// As the mixtures count it with one expert: 2n for the merge, n for the product.
double IA3Adapter::flops_per_token() const { return 3.0 * static_cast<double>(vectors.size(1)); }

std::shared_ptr<AdapterImpl> IA3Adapter::create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                                int64_t /*heads*/) {
  need_scaling_site(spec, d_in, d_out);
  return std::make_shared<IA3Adapter>(d_out);
}

std::vector<ParamDoc> IA3Adapter::param_docs() { return {}; }

MoVAdapter::MoVAdapter(int64_t n, int64_t experts, int64_t top_k, int64_t heads)
    : top_k_(top_k), heads_(heads) {
  const OptionCheck check("adapter", "mov");
  check_mixture(check, experts, top_k);
  check.expect(heads >= 1 && n % heads == 0, "heads", "a divisor of the site width",
               static_cast<double>(heads));
  if (heads_ == 1) {
    router = register_parameter("router", torch::randn({n, experts}) * 0.02);
    vectors = register_parameter("vectors", torch::ones({experts, n}));
  } else {
    router = register_parameter("router", torch::randn({n, heads * experts}) * 0.02);
    vectors = register_parameter("vectors", torch::ones({heads, experts, n / heads}));
  }
}

torch::Tensor MoVAdapter::mixture(const torch::Tensor& h) const {
  if (heads_ == 1) return adapter_mixture(h, router, top_k_);
  auto logits = torch::matmul(h, router.to(h.dtype()));
  auto shape = logits.sizes().vec();
  shape.back() = heads_;
  shape.push_back(-1);
  return mixture_from_logits(logits.view(shape), top_k_);  // [..., H, E]
}

torch::Tensor MoVAdapter::forward(const torch::Tensor&, const torch::Tensor& out) {
  auto p = mixture(out);
  if (heads_ == 1) return out * torch::matmul(p, vectors.to(p.dtype())).to(out.dtype());
  // Head h's scale: sum_e p[..., h, e] L[h, e, :].
  auto scale = (p.unsqueeze(-1) * vectors.to(p.dtype())).sum(-2);  // [..., H, n / H]
  return out * scale.flatten(-2).to(out.dtype());
}

double MoVAdapter::flops_per_token() const {
  const double n = static_cast<double>(router.size(0));
  return 2.0 * static_cast<double>(router.numel()) + 2.0 * static_cast<double>(vectors.numel()) + n;
}

std::shared_ptr<AdapterImpl> MoVAdapter::create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                                int64_t heads) {
  need_scaling_site(spec, d_in, d_out);
  const auto experts = spec.get<int64_t>("experts", 10);
  const auto top_k = spec.get<int64_t>("top_k", 0);
  const auto route = spec.choice("route", "head", {"head", "token"});
  return std::make_shared<MoVAdapter>(d_out, experts, top_k, route == "head" ? heads : 1);
}

std::vector<ParamDoc> MoVAdapter::param_docs() {
  return with_ranges(
      {{"experts", "10", "scaling vectors mixed per token (per head at k and v)"},
       {"top_k", "0",
        "0 = soft merge over all; k = keep exactly the k largest weights (no renormalising)"},
       {"route", "head",
        "head: at keys and values one mixture per attention head (the reference's "
        "MoVAttention); token: one mixture over the whole d-vector. Scale vectors (init 1) "
        "get no weight decay"}},
      {{"experts", Range::ints(1, 4096)}, {"top_k", Range::ints(0, 4096, "<= experts")}});
}

MOE_REGISTER_ADAPTER("ia3", IA3Adapter,
                     "(IA)^3: one learned scaling vector per site (keys, values, FFN activation); "
                     "no weight decay on it",
                     {"k", "v", "mid"});
MOE_REGISTER_ADAPTER(
    "mov", MoVAdapter,
    "MoV: a per-token softmax mixture of (IA)^3 vectors (keys, values, FFN activation)",
    {"k", "v", "mid"});

}  // namespace moe
