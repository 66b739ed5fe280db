#pragma once
// Device and thread selection.
#include <torch/types.h>

#include <functional>
#include <string>

#include "core/model_kinds.h"

namespace moe {

/// "auto" -> CUDA when available, else CPU; "cpu"; "cuda" or "cuda:N" -> that GPU, or a
/// ConfigError saying CUDA is absent. Anything else lists the valid choices.
torch::Device select_device(const std::string& spec);

/// Sets LibTorch's intra-op threads: threads > 0 as given, 0 = all cores. Returns the count.
int64_t configure_threads(int64_t threads);

/// Keeps freed large blocks in the process instead of returning them to the OS (glibc:
/// mmap threshold 1 GiB, trim threshold 4 GiB). Training frees and reallocates the same
/// large activation buffers every step; unmapping them costs a page fault per 4 KiB on
/// the next step. Measured: MoE layer E=64/k=8 forward+backward +40%, dense FFN +8%.
/// Returns false where the C library refused (the program runs as before).
bool configure_allocator();

/// A failed CPU allocation in LibTorch (an "enforce": "you tried to allocate N bytes")
/// throws c10::Error, which moe-lab reports (a plan's error naming file and trial, a trial
/// recorded as failed: out of memory), and does not abort: c10 aborts instead when its
/// flag caffe2_use_fatal_for_enforce reads true, which the moe binary was seen to do (torch
/// 2.15, SIGABRT in ThrowEnforceNotMet's LOG(FATAL)) until it set the flag itself.
void configure_enforce_throws();

/// The device's peak dense FLOP/s for MFU in the run's precision, and
/// where it came from. override_tflops > 0 wins ("--peak-tflops"). CUDA: a table by the
/// GPU's name (nvidia-smi): H100 / H200 SXM bf16 989, fp32 67 (non-tensor-core) TFLOP/s;
/// A100 bf16 312, fp32 19.5; an unknown GPU gives 0 (no MFU; pass --peak-tflops). CPU: a
/// matmul probe (8 x 512^3 in the run's dtype, this process's threads) per call.
struct PeakFlops {
  double flops_per_s = 0;
  std::string source;  ///< "override", "table: <gpu name>", "probe", "unknown: <gpu name>"
};
PeakFlops peak_flops(const torch::Device& device, Precision precision, double override_tflops);

/// The largest CUDA memory allocated by this process so far, MiB; < 0 when unknown (CPU
/// builds, or a build without c10_cuda).
double cuda_max_allocated_mb(const torch::Device& device);

/// Runs fn with CUDA's sync debug mode set to warn and returns how many times it made the
/// host wait for the device (.item(), .cpu(), a blocking copy, nonzero(), ...); -1 where
/// this build cannot count them (no c10_cuda: CPU builds), after running fn all the same.
int64_t count_cuda_syncs(const std::function<void()>& fn);

/// "LibTorch 2.15.0", for run metadata.
std::string libtorch_version();

/// What this binary was built against and can use, for `moe --version`: the LibTorch
/// version, whether the build links LibTorch's CUDA libraries, and the GPUs visible now.
std::string build_description();

}  // namespace moe
