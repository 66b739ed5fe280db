#pragma once
// The one place where LibTorch versions differ for moe-lab: the 2.x releases PyTorch wheels
// carry (2.1 and newer; cmake/torch.cmake refuses older ones). Everything version-dependent
// is guarded here on TORCH_VERSION_MAJOR / MINOR; the rest of the tree calls these helpers.
#include <ATen/autocast_mode.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/types.h>
#include <torch/version.h>

#include <c10/util/Exception.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#define MOE_TORCH_AT_LEAST(MAJOR, MINOR) \
  (TORCH_VERSION_MAJOR > (MAJOR) ||      \
   (TORCH_VERSION_MAJOR == (MAJOR) && TORCH_VERSION_MINOR >= (MINOR)))

/// at::scaled_dot_product_attention with a `scale` argument (2.1+, so every supported
/// version): flash / memory-efficient kernels on GPU.
#define MOE_HAVE_SDPA MOE_TORCH_AT_LEAST(2, 1)

/// at::_grouped_mm (2.9+): the matmuls of all experts' row blocks in one call, a fused kernel
/// for bf16 on sm90+ GPUs (other dtypes and GPUs: PyTorch's per-group loop).
#define MOE_HAVE_GROUPED_MM MOE_TORCH_AT_LEAST(2, 9)

namespace moe::compat {

/// Whether autocast is on for tensors of this device type, and its dtype.
inline bool autocast_enabled(c10::DeviceType device) {
#if MOE_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType device) {
#if MOE_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

/// Autocast to `dtype` for one device type while in scope (a no-op when !enabled);
/// restores the previous state and clears the cast cache on exit.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled, c10::ScalarType dtype = torch::kBFloat16)
      : device_(device), enabled_(enabled) {
    if (!enabled_) return;
    was_enabled_ = autocast_enabled(device_);
    was_dtype_ = autocast_dtype(device_);
    set(true, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set(was_enabled_, was_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  void set(bool on, c10::ScalarType dtype) {
#if MOE_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(device_, on);
    at::autocast::set_autocast_dtype(device_, dtype);
#else
    if (device_ == c10::DeviceType::CUDA) {
      at::autocast::set_enabled(on);
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      at::autocast::set_cpu_enabled(on);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
#endif
  }
  c10::DeviceType device_;
  bool enabled_;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = torch::kBFloat16;
};

/// Autocast off while in scope (router logits, softmax and aux losses stay in fp32).
class NoAutocast {
 public:
  NoAutocast() : guard_(c10::autocast_dispatch_keyset) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

/// The dtype autocast would run a matmul on `t` in, or nullopt when it is off for t's device.
inline std::optional<c10::ScalarType> autocast_matmul_dtype(const torch::Tensor& t) {
  const auto device = t.device().type();
  if (!autocast_enabled(device) || !t.is_floating_point()) return std::nullopt;
  return autocast_dtype(device);
}

/// Counts this thread's c10 warnings (TORCH_WARN) whose message contains `needle` while in
/// scope, instead of printing them; the previous handler is restored on exit.
class WarningCounter : public c10::WarningHandler {
 public:
  explicit WarningCounter(std::string needle) : needle_(std::move(needle)), previous_(get()) {
    set(this);
  }
  ~WarningCounter() override { set(previous_); }
  WarningCounter(const WarningCounter&) = delete;
  WarningCounter& operator=(const WarningCounter&) = delete;
  void process(const c10::Warning& warning) override { note(warning.msg()); }
  int64_t count() const { return count_; }

 private:
  void note(const std::string& msg) {
    if (msg.find(needle_) != std::string::npos) ++count_;
  }
  static c10::WarningHandler* get() { return c10::WarningUtils::get_warning_handler(); }
  static void set(c10::WarningHandler* h) { c10::WarningUtils::set_warning_handler(h); }
  std::string needle_;
  c10::WarningHandler* previous_;
  int64_t count_ = 0;
};

}  // namespace moe::compat
