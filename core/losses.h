#pragma once
// Auxiliary router losses, returned unscaled (the trainer applies coefficients).
#include <torch/types.h>

namespace moe {

/// Switch load-balancing loss, methods.md §0: N * sum_i f_i * P_i.
/// probs: [T, N]; assigned: [T, N] 0/1 (float) marking the experts that count for f
/// (the top-1 choice for Switch/GShard, the whole selected set for top-p).
/// f_i = sum_t assigned[t,i] / T; P_i = mean_t probs[t,i]. Equals 1 at perfect balance
/// with one expert per token.
torch::Tensor load_balance_loss(const torch::Tensor& probs, const torch::Tensor& assigned);

/// Sequence-level balance loss (DeepSeek-V2/V3's sequence-wise auxiliary loss): the
/// Switch loss N * sum_i f_i P_i computed over the tokens of each sequence, averaged over
/// the sequences. seq: [T] int64 sequence id of each token in [0, num_seqs); sequences
/// without tokens are skipped.
torch::Tensor sequence_balance_loss(const torch::Tensor& probs, const torch::Tensor& assigned,
                                    const torch::Tensor& seq, int64_t num_seqs);

/// Router z-loss: mean_t logsumexp(logits_t)^2. logits: [T, N].
torch::Tensor z_loss(const torch::Tensor& logits);

/// Mean router entropy: mean_t -sum_i p_ti log p_ti. probs: [T, N].
torch::Tensor entropy_loss(const torch::Tensor& probs);

}  // namespace moe
