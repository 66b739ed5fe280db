#include "core/losses.h"

#include <torch/torch.h>

namespace moe {

torch::Tensor load_balance_loss(const torch::Tensor& probs, const torch::Tensor& assigned) {
  TORCH_CHECK(probs.dim() == 2 && assigned.sizes() == probs.sizes(),
              "load_balance_loss: expected probs and assigned [T, N], got ", probs.sizes(), " and ",
              assigned.sizes());
  const auto n = static_cast<double>(probs.size(1));
  // f carries no gradient (it comes from an argmax/selection); P carries it.
  auto f = assigned.detach().to(probs.dtype()).mean(0);
  auto p = probs.mean(0);
  return n * (f * p).sum();
}

torch::Tensor sequence_balance_loss(const torch::Tensor& probs, const torch::Tensor& assigned,
                                    const torch::Tensor& seq, int64_t num_seqs) {
  TORCH_CHECK(probs.dim() == 2 && assigned.sizes() == probs.sizes() && seq.dim() == 1 &&
                  seq.size(0) == probs.size(0),
              "sequence_balance_loss: expected probs, assigned [T, N] and seq [T], got ",
              probs.sizes(), ", ", assigned.sizes(), " and ", seq.sizes());
  const int64_t n = probs.size(1);
  auto count = torch::zeros({num_seqs}, probs.options())
                   .index_add_(0, seq, torch::ones_like(seq, probs.options()));
  auto f = torch::zeros({num_seqs, n}, probs.options())
               .index_add_(0, seq, assigned.detach().to(probs.dtype()));
  auto p = torch::zeros({num_seqs, n}, probs.options()).index_add(0, seq, probs);
  auto present = count.gt(0);
  auto denom = count.clamp_min(1).unsqueeze(1);
  auto per_seq = static_cast<double>(n) * ((f / denom) * (p / denom)).sum(1);  // [num_seqs]
  return (per_seq * present.to(probs.dtype())).sum() / present.sum().clamp_min(1).to(probs.dtype());
}

torch::Tensor z_loss(const torch::Tensor& logits) {
  return torch::logsumexp(logits, -1).pow(2).mean();
}

torch::Tensor entropy_loss(const torch::Tensor& probs) {
  return -(probs * torch::log(probs.clamp_min(1e-12))).sum(-1).mean();
}

}  // namespace moe
