#pragma once
// Delta adapters (methods.md §5): add a low-rank delta to q, k, v, o and both dense FFN
// projections.
//   lora    y = W x + (alpha / r) (x A) B                 A [1, d_in, r] ~ N(0, 0.02), B = 0
//   molora  p = softmax(x W_r) (router input: the projection's input x)
//           y = W x + (alpha / r) sum_e p_e (x A_e) B_e    A [E, d_in, r], B [E, r, d_out] = 0
// molora merges softly unless top_k > 0 (the k largest p kept, no renormalisation).
#include "core/adapters.h"

namespace moe {

class LoRAAdapter : public AdapterImpl {
 public:
  /// experts = 1 and no router: LoRA; experts > 1 with a router: MoLoRA.
  LoRAAdapter(int64_t d_in, int64_t d_out, int64_t rank, double alpha, int64_t experts,
              bool mixture, int64_t top_k);
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& out) override;
  double flops_per_token() const override;
  /// MoLoRA's mixture weights for input x [..., d_in]: [..., E].
  torch::Tensor mixture(const torch::Tensor& x) const;

  torch::Tensor router;  ///< molora: [d_in, E]; undefined for lora
  torch::Tensor a, b;    ///< [E, d_in, r], [E, r, d_out]

 protected:
  static std::shared_ptr<AdapterImpl> make(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                           bool mixture);

 private:
  int64_t d_in_, d_out_, rank_, top_k_;
  double alpha_;
};

struct LoRA : LoRAAdapter {
  static std::shared_ptr<AdapterImpl> create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                             int64_t /*heads*/) {
    return make(spec, d_in, d_out, false);
  }
  static std::vector<ParamDoc> param_docs();
};

struct MoLoRA : LoRAAdapter {
  static std::shared_ptr<AdapterImpl> create(const PluginSpec& spec, int64_t d_in, int64_t d_out,
                                             int64_t /*heads*/) {
    return make(spec, d_in, d_out, true);
  }
  static std::vector<ParamDoc> param_docs();
};

}  // namespace moe
