#pragma once
// Device and thread selection.
#include <torch/types.h>

#include <string>

namespace moe {

/// "auto" -> CUDA when available, else CPU; "cpu"; "cuda" or "cuda:N" -> that GPU, or a
/// std::invalid_argument saying CUDA is absent. Anything else lists the valid choices.
torch::Device select_device(const std::string& spec);

/// Sets LibTorch's intra-op threads: threads > 0 as given, 0 = all cores. Returns the count.
int64_t configure_threads(int64_t threads);

/// "LibTorch 1.13.1", for run metadata.
std::string libtorch_version();

}  // namespace moe
