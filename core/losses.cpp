#include "core/losses.h"

#include <torch/torch.h>

namespace moe {

torch::Tensor load_balance_loss(const torch::Tensor& probs, const torch::Tensor& assigned) {
  TORCH_CHECK(probs.dim() == 2 && assigned.sizes() == probs.sizes(),
              "load_balance_loss: expected probs and assigned [T, N], got ", probs.sizes(),
              " and ", assigned.sizes());
  const auto n = static_cast<double>(probs.size(1));
  // f carries no gradient (it comes from an argmax/selection); P carries it.
  auto f = assigned.detach().to(probs.dtype()).mean(0);
  auto p = probs.mean(0);
  return n * (f * p).sum();
}

torch::Tensor z_loss(const torch::Tensor& logits) {
  return torch::logsumexp(logits, -1).pow(2).mean();
}

torch::Tensor entropy_loss(const torch::Tensor& probs) {
  return -(probs * torch::log(probs.clamp_min(1e-12))).sum(-1).mean();
}

}  // namespace moe
