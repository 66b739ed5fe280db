#pragma once
// Auxiliary router losses, returned unscaled (the trainer applies coefficients).
#include <torch/types.h>

namespace moe {

/// Switch load-balancing loss, methods.md §0: N * sum_i f_i * P_i.
/// probs: [T, N]; assigned: [T, N] each token's share of f per expert (top_k: 1/k on
/// each of its k choices, or 1 on the first choice only; top-p: 1 on every selected expert).
/// f_i = sum_t assigned[t,i] / T; P_i = mean_t probs[t,i]. Equals 1 at perfect balance
/// when every row of assigned sums to 1.
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
