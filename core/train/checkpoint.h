#pragma once
// Checkpoints: model parameters and buffers, optimizer state, the step, and the CPU (and,
// when used, CUDA) RNG state, so that resuming gives the same result as not stopping.
// Data order needs no state: batches are a pure function of (seed, step).
#include <torch/optim/optimizer.h>

#include <string>

#include "core/transformer.h"

namespace moe {

void save_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                     int64_t step);

/// Loads into an already-built model and optimizer of the same configuration; returns the
/// step. Throws naming the file when it is missing or does not match.
int64_t load_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt);

/// The model's parameters and buffers alone (for re-evaluation; no optimizer or RNG),
/// and the name of its dense FFNs' activation under kModelActivationKey.
void save_model(const std::string& path, Transformer& model);
/// The archive key of the activation name save_model writes ("gelu", "relu", "swiglu").
inline constexpr const char* kModelActivationKey = "meta.ffn_activation";
/// Loads into a model built from the same config; throws naming the file otherwise.
void load_model(const std::string& path, Transformer& model);

}  // namespace moe
