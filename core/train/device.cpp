#include "core/train/device.h"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <malloc.h>

#include <stdexcept>
#include <thread>

namespace moe {

torch::Device select_device(const std::string& spec) {
  const bool cuda = torch::cuda::is_available();
  if (spec == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!cuda) {
      throw std::invalid_argument(
          "device '" + spec + "': CUDA is not available (" + libtorch_version() +
          (torch::cuda::device_count() == 0 ? ", no GPU visible" : "") +
          "); use --device cpu or --device auto");
    }
    const auto index = spec == "cuda" ? 0 : std::stoi(spec.substr(5));
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      throw std::invalid_argument("device '" + spec + "': expected a GPU index in [0, " +
                                  std::to_string(torch::cuda::device_count()) + ")");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("device '" + spec + "': expected one of [auto, cpu, cuda, cuda:N]");
}

int64_t configure_threads(int64_t threads) {
  const int64_t n = threads > 0 ? threads
                                : std::max<int64_t>(1, std::thread::hardware_concurrency());
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

std::string libtorch_version() { return std::string("LibTorch ") + TORCH_VERSION; }

}  // namespace moe
