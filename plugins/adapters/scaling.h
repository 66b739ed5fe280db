#pragma once
// Scaling adapters (methods.md §5): rescale the keys, the values (all heads: one
// d-vector) and the dense FFN's intermediate activation.
//   ia3  y = h * l                       l [1, n] = ones
//   mov  p = softmax(h W_r) in float32 (router input: the tensor being rescaled)
//        y = h * (p L)                   W_r [n, E] ~ N(0, 0.02), L [E, n] = ones
//   mov at keys and values with route = "head" (default; the reference's MoVAttention):
//        one mixture per head: p[h] = softmax((h W_r)[h]) with W_r [n, H E], and head h's
//        slice of y = h[h] * (p[h] L[h]) with L [H, E, n / H] = ones
// mov merges softly (all experts, p as weights) unless top_k > 0 (exactly the k largest p
// kept, the rest zeroed, no renormalisation). The scale vectors (init 1) are not weight
// decayed (the trainer leaves adapter scale and bias vectors out of weight decay).
#include "core/adapters.h"

namespace moe {

class IA3Adapter : public AdapterImpl {
 public:
  explicit IA3Adapter(int64_t n);
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& out) override;
  double flops_per_token() const override;
  static std::shared_ptr<AdapterImpl> create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                             int64_t heads);
  static std::vector<ParamDoc> param_docs();

  torch::Tensor vectors;  ///< [1, n]
};

class MoVAdapter : public AdapterImpl {
 public:
  /// heads > 1: one mixture per head (route = "head").
  MoVAdapter(int64_t n, int64_t experts, int64_t top_k, int64_t heads = 1);
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& out) override;
  double flops_per_token() const override;
  /// Mixture weights for router input h [..., n]: [..., E], or [..., H, E] per head.
  torch::Tensor mixture(const torch::Tensor& h) const;
  static std::shared_ptr<AdapterImpl> create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                             int64_t heads);
  static std::vector<ParamDoc> param_docs();

  torch::Tensor router;   ///< [n, E], or [n, H E] per head
  torch::Tensor vectors;  ///< [E, n], or [H, E, n / H] per head

 private:
  int64_t top_k_, heads_;
};

}  // namespace moe
