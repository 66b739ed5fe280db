#pragma once
// Checkpoints: model parameters and buffers (router state such as the aux-loss-free bias
// and ReMoE's coefficient are buffers), optimizer state, the step, the CPU RNG state and,
// for a CUDA model, its device's RNG state, plus whatever the caller adds under its own
// keys (the trainer: its clocks, sampler and open log window), so that resuming gives the
// same result as not stopping. Written to PATH.tmp, then renamed over PATH.
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <functional>
#include <string>

#include "core/transformer.h"

namespace moe {

/// extra: writes the caller's state into the archive (keys must not start with "model",
/// "optimizer", "step" or "rng").
void save_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                     int64_t step,
                     const std::function<void(torch::serialize::OutputArchive&)>& extra = {});

/// Loads into an already-built model and optimizer of the same configuration; returns the
/// step. extra reads the caller's state back. Throws naming the file when it is missing,
/// unreadable or does not match.
int64_t load_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                        const std::function<void(torch::serialize::InputArchive&)>& extra = {});

/// The model's parameters and buffers alone (for re-evaluation; no optimizer or RNG),
/// and the name of its dense FFNs' activation under kModelActivationKey.
void save_model(const std::string& path, Transformer& model);
/// The archive key of the activation name save_model writes ("gelu", "relu", "swiglu").
inline constexpr const char* kModelActivationKey = "meta.ffn_activation";
/// Loads into a model built from the same config; throws naming the file otherwise.
void load_model(const std::string& path, Transformer& model);

}  // namespace moe
