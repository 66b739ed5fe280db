#pragma once
// Curriculum learning for adaptive gating (methods.md §2), usable with any router.
//
// During an epoch every training sample gets a complexity vector C = [r_1 .. r_L]:
// r_l = the fraction of its (non-padding) tokens that used two or more experts in MoE
// layer l. The next epoch is ordered by descending cosine similarity to the anchor, the
// sample with the fewest two-expert tokens (smallest L1 norm of C):
//   sim_i = (C_i . a) / (|C_i| |a| + eps)
// When the anchor is all zero (cosine undefined), samples are ordered by ascending L1
// norm instead. Ties keep the order of `base` (the trainer passes a shuffled order, so
// equal samples are not always visited in id order).
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace moe {

/// complexity: [N, L] float (CPU); base: a permutation of [0, N) that ties keep.
/// Returns the sample ids in visiting order.
std::vector<int64_t> curriculum_order(const torch::Tensor& complexity, double eps,
                                      const std::vector<int64_t>& base);

/// Per-sample fraction of multi-expert tokens in one layer. experts_per_token: [B * S]
/// (experts each token used), pad_mask: [B, S] bool (true = padding) or undefined.
/// Returns [B] float.
torch::Tensor multi_expert_fraction(const torch::Tensor& experts_per_token, int64_t batch,
                                    const torch::Tensor& pad_mask);

}  // namespace moe
