#pragma once
// The FFN activations, one enum parsed in one place (parse_activation).
#include <torch/types.h>

#include <string>
#include <vector>

namespace moe {

enum class Activation { kGelu, kRelu, kSwiglu };

/// The names, in enum order: [gelu, relu, swiglu].
const std::vector<std::string>& activation_names();
/// Parses a name; throws ConfigError "activation: expected one of [gelu, relu,
/// swiglu], got '<name>'". Option readers check the name first (PluginSpec::choice), so
/// their message names the file's key.
Activation parse_activation(const std::string& name);
const std::string& activation_name(Activation a);
/// Width of the up projection: swiglu's holds a gate and a value half.
inline int64_t up_width(Activation a, int64_t hidden) {
  return a == Activation::kSwiglu ? 2 * hidden : hidden;
}
/// act(x); swiglu splits the last dimension into halves: silu(a) * b.
torch::Tensor apply_activation(Activation a, const torch::Tensor& x);
/// out = act(x) written into out (no temporary); not differentiable: for autograd
/// functions with their own backward.
void apply_activation_into(Activation a, const torch::Tensor& x, torch::Tensor& out);

}  // namespace moe
