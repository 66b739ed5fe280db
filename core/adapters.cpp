#include "core/adapters.h"

#include <torch/torch.h>

#include <stdexcept>

namespace moe {

void check_peft(const PeftOptions& o) {
  if (!o.method.empty() && !o.scales() && !o.deltas()) {
    throw std::invalid_argument("parameter 'method' = '" + o.method +
                                "'; valid: ia3 | mov | lora | molora (or leave it out)");
  }
  if (o.experts < 1 || o.rank < 1 || o.alpha <= 0) {
    throw std::invalid_argument("expected experts >= 1, rank >= 1 and alpha > 0");
  }
  if (o.top_k < 0 || o.top_k > o.experts) {
    throw std::invalid_argument("parameter 'top_k' expected 0 (soft merge) .. experts (" +
                                std::to_string(o.experts) + "), got " + std::to_string(o.top_k));
  }
}

AdapterImpl::AdapterImpl(const PeftOptions& options, int64_t d_in, int64_t d_out)
    : options_(options), d_in_(d_in), d_out_(d_out) {
  try {
    check_peft(options_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("peft: ") + e.what());
  }
  const bool mixture = options_.method == "mov" || options_.method == "molora";
  const int64_t e = mixture ? options_.experts : 1;
  if (mixture) {
    const int64_t input = options_.method == "mov" ? d_out : d_in;
    router = register_parameter("router", torch::randn({input, e}) * 0.02);
  }
  if (options_.scales()) {
    TORCH_CHECK(d_in == d_out, "adapter: a scaling site needs d_in == d_out");
    vectors = register_parameter("vectors", torch::ones({e, d_out}));
  } else {
    a = register_parameter("a", torch::randn({e, d_in, options_.rank}) * 0.02);
    b = register_parameter("b", torch::zeros({e, options_.rank, d_out}));
  }
}

torch::Tensor AdapterImpl::mixture(const torch::Tensor& x) const {
  auto logits = torch::matmul(x, router.to(x.dtype()));
  auto p = torch::softmax(
      logits.scalar_type() == torch::kDouble ? logits : logits.to(torch::kFloat), -1);
  if (options_.top_k > 0 && options_.top_k < p.size(-1)) {
    auto kth = std::get<0>(p.topk(options_.top_k, -1)).narrow(-1, options_.top_k - 1, 1);
    p = p * p.ge(kth).to(p.dtype());  // no renormalisation
  }
  return p;
}

torch::Tensor AdapterImpl::forward(const torch::Tensor& in, const torch::Tensor& out) {
  if (options_.method == "ia3") return out * vectors[0];
  if (options_.method == "mov") return out * torch::matmul(mixture(out), vectors).to(out.dtype());
  const double scale = options_.alpha / static_cast<double>(options_.rank);
  const int64_t e = a.size(0), r = options_.rank;
  // sum_e p_e (x A_e) B_e as two matmuls: x [N, d_in] @ [d_in, E r], scaled per expert,
  // @ [E r, d_out].
  auto xa = torch::matmul(in, a.permute({1, 0, 2}).reshape({d_in_, e * r}));
  if (options_.method == "molora") {
    auto p = mixture(in).to(in.dtype());
    auto shape = xa.sizes().vec();
    shape.back() = e;
    shape.push_back(r);
    xa = (xa.view(shape) * p.unsqueeze(-1)).flatten(-2);
  }
  return out + scale * torch::matmul(xa, b.reshape({e * r, d_out_}));
}

double AdapterImpl::flops_per_token() const {
  const double e = options_.method == "mov" || options_.method == "molora" ? options_.experts : 1;
  const double router_flops = router.defined() ? 2.0 * static_cast<double>(router.numel()) : 0.0;
  if (options_.scales()) return router_flops + 2.0 * e * d_out_ + d_out_;
  return router_flops + 2.0 * e * options_.rank * (d_in_ + d_out_) + d_out_;
}

}  // namespace moe
