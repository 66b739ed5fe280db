#include "plugins/adapters/lora.h"

#include <torch/torch.h>

namespace moe {

LoRAAdapter::LoRAAdapter(int64_t d_in, int64_t d_out, int64_t rank, double alpha, int64_t experts,
                         bool mixture, int64_t top_k)
    : d_in_(d_in), d_out_(d_out), rank_(rank), top_k_(top_k), alpha_(alpha) {
  const OptionCheck check("adapter", mixture ? "molora" : "lora");
  check.expect(rank >= 1, "rank", ">= 1", static_cast<double>(rank));
  check.expect(alpha > 0, "alpha", "> 0", alpha);
  if (mixture) check_mixture(check, experts, top_k);
  if (mixture) router = register_parameter("router", torch::randn({d_in, experts}) * 0.02);
  a = register_parameter("a", torch::randn({experts, d_in, rank}) * 0.02);
  b = register_parameter("b", torch::zeros({experts, rank, d_out}));
}

torch::Tensor LoRAAdapter::mixture(const torch::Tensor& x) const {
  return adapter_mixture(x, router, top_k_);
}

torch::Tensor LoRAAdapter::forward(const torch::Tensor& in, const torch::Tensor& out) {
  const double scale = alpha_ / static_cast<double>(rank_);
  const int64_t e = a.size(0), r = rank_;
  // sum_e p_e (x A_e) B_e as two matmuls: x [N, d_in] @ [d_in, E r], scaled per expert,
  // @ [E r, d_out].
  auto xa = torch::matmul(in, a.permute({1, 0, 2}).reshape({d_in_, e * r}));
  if (router.defined()) {
    auto p = mixture(in).to(in.dtype());
    auto shape = xa.sizes().vec();
    shape.back() = e;
    shape.push_back(r);
    xa = (xa.view(shape) * p.unsqueeze(-1)).flatten(-2);
  }
  return out + scale * torch::matmul(xa, b.reshape({e * r, d_out_}));
}

double LoRAAdapter::flops_per_token() const {
  const double e = static_cast<double>(a.size(0));
  const double router_flops = router.defined() ? 2.0 * static_cast<double>(router.numel()) : 0.0;
  return router_flops + 2.0 * e * static_cast<double>(rank_) * static_cast<double>(d_in_ + d_out_) +
         static_cast<double>(d_out_);
}

std::shared_ptr<AdapterImpl> LoRAAdapter::make(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                               bool mixture) {
  const auto rank = spec.get<int64_t>("rank", 4);
  const auto alpha = spec.get<double>("alpha", 16);
  const auto experts = mixture ? spec.get<int64_t>("experts", 10) : 1;
  const auto top_k = mixture ? spec.get<int64_t>("top_k", 0) : 0;
  return std::make_shared<LoRAAdapter>(d_in, d_out, rank, alpha, experts, mixture, top_k);
}

std::vector<ParamDoc> LoRA::param_docs() {
  return with_ranges(
      {{"rank", "4", "r: rank of the delta"}, {"alpha", "16", "the delta is scaled by alpha / r"}},
      {{"rank", Range::ints(1, 65536)}, {"alpha", Range::reals(0, 1e6, true)}});
}

std::vector<ParamDoc> MoLoRA::param_docs() {
  return with_ranges(
      {{"experts", "10", "LoRA deltas mixed per token"},
       {"rank", "4", "r: rank of each delta"},
       {"alpha", "16", "the deltas are scaled by alpha / r"},
       {"top_k", "0",
        "0 = soft merge over all; k = keep the k largest weights (no renormalising)"}},
      {{"experts", Range::ints(1, 4096)},
       {"rank", Range::ints(1, 65536)},
       {"alpha", Range::reals(0, 1e6, true)},
       {"top_k", Range::ints(0, 4096, "<= experts")}});
}

MOE_REGISTER_ADAPTER("lora", LoRA, "LoRA: a low-rank delta at q, k, v, o and both FFN projections",
                     {"q", "k", "v", "o", "up", "down"});
MOE_REGISTER_ADAPTER("molora", MoLoRA,
                     "MoLoRA: a per-token softmax mixture of LoRA deltas (q, k, v, o, up, down)",
                     {"q", "k", "v", "o", "up", "down"});

}  // namespace moe
