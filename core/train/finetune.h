#pragma once
// Fine-tuning from a pretrained model (methods.md §5 workflow):
//   train.init_from = "path/model.pt"  copy every parameter and buffer of a model saved by
//       save_model (keep_models, a pretraining trial) whose name and shape match; the rest
//       (a new task's head, adapters) keeps its fresh initialisation.
//   train.trainable = ["head.*", "*_adapter.*"]  only parameters whose dotted name matches
//       one of these globs (fnmatch: * ? [..]) train; every other one is frozen
//       (requires_grad = false, left out of the optimizer, so it has no optimizer state).
//       Empty (the default) = everything trains.
//   train.upcycle_from = "path/dense.pt"  sparse upcycling (Komatsuzaki et al. 2023): each
//       MoE layer's experts start as copies of the dense model's FFN at that layer.
#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace moe {

class TransformerImpl;

struct InitReport {
  int64_t loaded = 0;                 ///< tensors copied from the file
  std::vector<std::string> fresh;     ///< model tensors absent from the file
  std::vector<std::string> reshaped;  ///< present with another shape (kept fresh)
};

/// Throws naming the file when it is missing, unreadable or shares no tensor with model.
InitReport init_from_model(const std::string& path, torch::nn::Module& model);

/// Sparse upcycling (train.upcycle_from): every expert of each MoE layer l is set to the
/// dense FFN blocks.l.ffn of the saved dense model (ExpertBankImpl::upcycle, with
/// N(0, noise_std^2) on the expert weights); every other tensor is copied by name and shape
/// as init_from_model does. `loaded` counts both. Throws naming the file when it is
/// missing or unreadable, when a MoE layer has no dense FFN at its position in the file,
/// or when the bank cannot take it.
InitReport upcycle_from_model(const std::string& path, TransformerImpl& model, double noise_std);

/// Freezes what matches none of patterns; returns the trainable parameter count. Throws
/// naming `source` and the pattern when a pattern matches no parameter.
int64_t apply_trainable(torch::nn::Module& model, const std::vector<std::string>& patterns,
                        const std::string& source);

}  // namespace moe
