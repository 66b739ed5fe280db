#include "core/train/device.h"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <malloc.h>

#ifdef MOE_WITH_C10_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "core/compat.h"
#endif

#include <chrono>
#include <cstdio>

#include <stdexcept>
#include <thread>

#include "core/config_error.h"

namespace moe {

torch::Device select_device(const std::string& spec) {
  const bool cuda = torch::cuda::is_available();
  if (spec == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!cuda) {
      throw ConfigError::text("device '" + spec + "'", "device",
                              "CUDA is not available (" + libtorch_version() +
                                  (torch::cuda::device_count() == 0 ? ", no GPU visible" : "") +
                                  "); use --device cpu or --device auto");
    }
    const std::string digits = spec == "cuda" ? "0" : spec.substr(5);
    const bool numeric = !digits.empty() && digits.size() <= 4 &&
                         digits.find_first_not_of("0123456789") == std::string::npos;
    const int index = numeric ? std::stoi(digits) : -1;
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      throw ConfigError::value(
          "device '" + spec + "'", "",
          "a GPU index in [0, " + std::to_string(torch::cuda::device_count()) + ")", "");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw ConfigError::value("device '" + spec + "'", "", "one of [auto, cpu, cuda, cuda:N]", "");
}

int64_t configure_threads(int64_t threads) {
  const int64_t n =
      threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(n));
  return n;
}

bool configure_allocator() {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#else
  return false;
#endif
}

void configure_enforce_throws() { FLAGS_caffe2_use_fatal_for_enforce = false; }

namespace {

/// The GPU's name from nvidia-smi ("" when it cannot be read).
std::string gpu_name(int index) {
  const std::string cmd = "nvidia-smi --query-gpu=name --format=csv,noheader -i " +
                          std::to_string(index) + " 2>/dev/null";
  std::string name;
  if (FILE* pipe = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), pipe)) name += buf;
    pclose(pipe);
  }
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return name;
}

}  // namespace

PeakFlops peak_flops(const torch::Device& device, Precision precision, double override_tflops) {
  if (override_tflops > 0) return {override_tflops * 1e12, "override"};
  const bool bf16 = precision == Precision::kBf16;
  if (device.is_cuda()) {
    const auto name = gpu_name(device.has_index() ? device.index() : 0);
    struct Row {
      const char* key;
      double bf16_tflops, fp32_tflops;
    };
    // Dense peaks, no sparsity; fp32 without TF32 (moe-lab does not enable TF32).
    static const Row table[] = {{"H200", 989, 67}, {"H100", 989, 67}, {"A100", 312, 19.5}};
    for (const auto& row : table) {
      if (name.find(row.key) != std::string::npos) {
        return {(bf16 ? row.bf16_tflops : row.fp32_tflops) * 1e12, "table: " + name};
      }
    }
    return {0, "unknown: " + (name.empty() ? std::string("GPU") : name)};
  }
  // CPU: time a square matmul in the run's dtype with this process's threads.
  torch::NoGradGuard no_grad;
  const int64_t n = 512;
  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  auto c = torch::mm(a, b);  // warm-up
  const int reps = 8;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) c = torch::mm(a, b);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {2.0 * n * n * n * reps / std::max(seconds, 1e-9), "probe"};
}

double cuda_max_allocated_mb(const torch::Device& device) {
#ifdef MOE_WITH_C10_CUDA
  if (device.is_cuda()) {
    const auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    // Entry 0 is StatType::AGGREGATE (all pools), whose namespace moved between 2.x releases
    // (c10::cuda::CUDACachingAllocator, then c10::CachingAllocator).
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#else
  (void)device;
#endif
  return -1;
}

int64_t count_cuda_syncs(const std::function<void()>& fn) {
#ifdef MOE_WITH_C10_CUDA
  if (!torch::cuda::is_available()) {  // a CUDA build on a machine without a GPU
    fn();
    return -1;
  }
  // The sync debug mode warns "called a synchronizing CUDA operation" at each sync point.
  auto& state = c10::cuda::warning_state();
  const auto before = state.get_sync_debug_mode();
  compat::WarningCounter counter("synchroniz");
  state.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
  try {
    fn();
  } catch (...) {
    state.set_sync_debug_mode(before);
    throw;
  }
  state.set_sync_debug_mode(before);
  return counter.count();
#else
  fn();
  return -1;
#endif
}

std::string libtorch_version() { return std::string("LibTorch ") + TORCH_VERSION; }

std::string build_description() {
#ifdef MOE_WITH_C10_CUDA
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  return libtorch_version() + ", CUDA build (" +
         (gpus > 0 ? std::to_string(gpus) + " GPU" + (gpus > 1 ? "s" : "") + " visible"
                   : std::string("no GPU visible: runs on the CPU")) +
         ")";
#else
  return libtorch_version() + ", CPU build";
#endif
}

}  // namespace moe
