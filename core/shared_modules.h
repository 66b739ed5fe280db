#pragma once
// SharedModules: modules one model shares between its MoE layers (HyperMoE's hypernetwork).
// The transformer owns one container and hands a pointer to every layer's plugins through
// LayerContext::shared; a plugin asks for a module by name and the first caller creates it.
// The transformer registers the container (as "shared") only when something was created,
// so models without shared modules keep their parameter names and checkpoints.
// A plugin built without a container (ctx.shared == nullptr, e.g. a bank alone in a test)
// creates and registers its own copy instead.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace moe {

class SharedModulesImpl : public torch::nn::Module {
 public:
  /// The module registered under `name`, made by `make` on first use.
  std::shared_ptr<torch::nn::Module> get_or_create(
      const std::string& name, const std::function<std::shared_ptr<torch::nn::Module>()>& make) {
    auto it = modules_.find(name);
    if (it != modules_.end()) return it->second;
    auto m = register_module(name, make());
    modules_[name] = m;
    return m;
  }
  bool empty() const { return modules_.empty(); }

 private:
  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules_;
};
TORCH_MODULE(SharedModules);

}  // namespace moe
