#pragma once
// Parameter-efficient adapters at the transformer's projection sites (methods.md §5).
// Config section  peft = { method = "ia3" | "mov" | "lora" | "molora", experts = 10,
//                          rank = 4, alpha = 16, top_k = 0 }   (method "" = none)
// Sites: ia3 / mov rescale the keys, the values (all heads: one d-vector) and the dense
// FFN's intermediate activation; lora / molora add a delta to q, k, v, o and both dense
// FFN projections. MoE layers get no FFN adapter. Parameters are named
// "<site>_adapter.*" (e.g. blocks.0.attn.k_adapter.vectors): train.trainable =
// ["*_adapter.*", "head.*"] trains only them and the task head.
//   ia3     y = h * l                                    l [1, n] = ones
//   mov     p = softmax(h W_r) in float32 (router input: the tensor being rescaled)
//           y = h * (p L)                                W_r [n, E] ~ N(0, 0.02), L [E, n] = ones
//   lora    y = W x + (alpha / r) (x A) B                A [1, d_in, r] ~ N(0, 0.02), B = 0
//   molora  p = softmax(x W_r) (router input: the projection's input x)
//           y = W x + (alpha / r) sum_e p_e (x A_e) B_e  A [E, d_in, r], B [E, r, d_out] = 0
// Merging is soft (all experts, p as weights) by default; top_k > 0 keeps the k largest
// p and zeros the rest without renormalising. No aux losses. Every expert is active for
// every token: flops_per_token() counts the adapter's forward FLOPs.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <string>

namespace moe {

struct PeftOptions {
  std::string method;  ///< "" (none) | ia3 | mov | lora | molora
  int64_t experts = 10;
  int64_t rank = 4;
  double alpha = 16;
  int64_t top_k = 0;  ///< 0 = soft merge over all experts
  bool scales() const { return method == "ia3" || method == "mov"; }
  bool deltas() const { return method == "lora" || method == "molora"; }
};

class AdapterImpl : public torch::nn::Module {
 public:
  /// A site whose projection maps d_in -> d_out (for scaling sites d_in = d_out = n).
  AdapterImpl(const PeftOptions& options, int64_t d_in, int64_t d_out);
  /// in: the projection's input [..., d_in]; out: its output [..., d_out] -> adapted out.
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& out);
  /// Mixture weights for router input x [..., n]: softmax, then top-k when set; [..., E].
  torch::Tensor mixture(const torch::Tensor& x) const;
  double flops_per_token() const;

  torch::Tensor router;   ///< [input, E]; undefined for ia3 / lora
  torch::Tensor vectors;  ///< ia3 / mov: [E, n]
  torch::Tensor a, b;     ///< lora / molora: [E, d_in, r], [E, r, d_out]

 private:
  PeftOptions options_;
  int64_t d_in_, d_out_;
};
TORCH_MODULE(Adapter);

/// Throws std::invalid_argument naming the key and the valid choices (no prefix).
void check_peft(const PeftOptions& options);

}  // namespace moe
