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

std::shared_ptr<AdapterImpl> IA3Adapter::create(const PluginSpec& spec, int64_t d_in,
                                                int64_t d_out) {
  need_scaling_site(spec, d_in, d_out);
  return std::make_shared<IA3Adapter>(d_out);
}

std::vector<ParamDoc> IA3Adapter::param_docs() { return {}; }

MoVAdapter::MoVAdapter(int64_t n, int64_t experts, int64_t top_k) : top_k_(top_k) {
  check_mixture(OptionCheck("adapter", "mov"), experts, top_k);
  router = register_parameter("router", torch::randn({n, experts}) * 0.02);
  vectors = register_parameter("vectors", torch::ones({experts, n}));
}

torch::Tensor MoVAdapter::mixture(const torch::Tensor& h) const {
  return adapter_mixture(h, router, top_k_);
}

torch::Tensor MoVAdapter::forward(const torch::Tensor&, const torch::Tensor& out) {
  auto p = mixture(out);
  return out * torch::matmul(p, vectors.to(p.dtype())).to(out.dtype());
}

double MoVAdapter::flops_per_token() const {
  const double e = static_cast<double>(vectors.size(0)), n = static_cast<double>(vectors.size(1));
  return 2.0 * static_cast<double>(router.numel()) + 2.0 * e * n + n;
}

std::shared_ptr<AdapterImpl> MoVAdapter::create(const PluginSpec& spec, int64_t d_in,
                                                int64_t d_out) {
  need_scaling_site(spec, d_in, d_out);
  const auto experts = spec.get<int64_t>("experts", 10);
  const auto top_k = spec.get<int64_t>("top_k", 0);
  return std::make_shared<MoVAdapter>(d_out, experts, top_k);
}

std::vector<ParamDoc> MoVAdapter::param_docs() {
  return {
      {"experts", "10", "scaling vectors mixed per token"},
      {"top_k", "0", "0 = soft merge over all; k = keep the k largest weights (no renormalising)"}};
}

MOE_REGISTER_ADAPTER("ia3", IA3Adapter,
                     "(IA)^3: one learned scaling vector per site (keys, values, FFN activation)",
                     {"k", "v", "mid"});
MOE_REGISTER_ADAPTER(
    "mov", MoVAdapter,
    "MoV: a per-token softmax mixture of (IA)^3 vectors (keys, values, FFN activation)",
    {"k", "v", "mid"});

}  // namespace moe
