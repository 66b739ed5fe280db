#pragma once
// Per-token HyperMoE adapter generation: the reference the per-set implementation is
// checked (tests) and timed (benchmark) against. Never used by the library.
#include <torch/types.h>

#include "plugins/experts/hyper.h"

namespace moe::testing {

/// One adapter per token from its own selection mask, applied with batched matmuls.
inline torch::Tensor hyper_adapter_per_token(HyperExpertsImpl& bank, const torch::Tensor& x,
                                             const torch::Tensor& selected) {
  auto a = bank.generate(selected);  // [T, d, r] ... per token
  auto h = torch::relu(torch::bmm(x.unsqueeze(1), a.w_down).squeeze(1) + a.b_down);
  return torch::bmm(h.unsqueeze(1), a.w_up).squeeze(1) + a.b_up;
}

}  // namespace moe::testing
