#pragma once
// Expert bank interface: N experts held as stacked tensors [E, ...], applied to the
// tokens a router sent them and combined with the router's weights.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <string>

#include "core/activation.h"
#include "core/dispatch.h"
#include "core/plugin_spec.h"
#include "core/registry.h"
#include "core/router.h"

namespace moe {

/// What an expert bank returns: its output and its own statistics of this forward
/// (e.g. "distinct_sets", "union_units"), which the layer's trace carries.
struct BankOutput {
  torch::Tensor y;
  Stats stats;
};

class ExpertBankImpl : public torch::nn::Module {
 public:
  /// hidden: [tokens, d_model]; routing from the layer's router; plan: routing already
  /// sorted by expert (and capacity-limited) by plan_dispatch. Returns y with
  /// y[t] = sum over kept slots s of weight[t,s] * E_{index[t,s]}(hidden[t]), [tokens, d_model]
  /// (rows with no kept slot are 0), and the bank's statistics.
  virtual BankOutput forward(const torch::Tensor& hidden, const Routing& routing,
                             const DispatchPlan& plan) = 0;

  /// Parameters of one expert (what one selected slot activates per token).
  virtual int64_t params_per_expert() const = 0;
  /// Forward FLOPs of one expert on one token (2 per multiply-add).
  virtual int64_t flops_per_expert_token() const = 0;
  /// Parameters every token uses besides its routed experts (HyperMoE's generated adapter).
  virtual double extra_active_params() const { return 0; }
  /// Forward FLOPs per token besides the routed experts (HyperMoE's adapter).
  virtual double extra_flops_per_token() const { return 0; }
  /// Hidden width and activation of one expert, for banks whose experts are FFNs (what a
  /// shared expert copies); 0 = the bank has no such width and takes no shared experts.
  virtual int64_t expert_hidden() const { return 0; }
  virtual Activation expert_activation() const { return Activation::kGelu; }
  /// Sparse upcycling (Komatsuzaki et al. 2023): sets every expert to the dense FFN
  /// act(x up_w^T + up_b) down_w^T + down_b (nn.Linear layouts), plus N(0, noise_std^2)
  /// on the weights. The default throws: the bank cannot be upcycled.
  virtual void upcycle(const torch::Tensor& up_w, const torch::Tensor& up_b,
                       const torch::Tensor& down_w, const torch::Tensor& down_b, double noise_std);

  const std::string& plugin_name() const { return plugin_name_; }
  void set_plugin_name(std::string name) { plugin_name_ = std::move(name); }

 private:
  std::string plugin_name_;
};
TORCH_MODULE(ExpertBank);

/// A bank's sizes read from its options alone, nothing allocated: what the plan's memory
/// estimate (experiments/param_counts) counts per MoE layer.
struct BankShape {
  double per_expert = 0;            ///< FFN hidden units of one expert (one selected slot)
  double units = 0;                 ///< FFN hidden units of all experts of one layer
  double layer_params = 0;          ///< parameters per MoE layer besides those FFN units
  double model_params = 0;          ///< parameters once per model (a shared hypernetwork)
  double activation_bytes = 0;      ///< activations per MoE layer besides the experts'
  std::vector<std::string> inputs;  ///< the options it came from ("moe.experts hidden = 64")
};
/// What a bank's shape depends on besides its options.
struct BankShapeContext {
  int64_t d_model = 0, num_experts = 0, num_layers = 0;
  int64_t experts_per_token = 2;  ///< the router's nominal count (or 2 where only measured)
  double tokens = 0;              ///< per training batch
};

/// A bank's registry facts, functions of its options alone (MOE_REGISTER_EXPERTS takes
/// them from the class's static shape and refine).
struct BankFacts {
  BankShape (*shape)(const PluginSpec&, const BankShapeContext&) = nullptr;
  /// The granularity axis: rewrites the [moe.experts] block for m times as many experts of
  /// 1/m the width (throws ConfigError naming the option that cannot be split).
  void (*refine)(nlohmann::json& block, int64_t d_model, int64_t m) = nullptr;
};
template <>
struct RegistryFacts<ExpertBankImpl> {
  using type = BankFacts;
};

using ExpertRegistry = Registry<ExpertBankImpl, const PluginSpec&, const LayerContext&>;
ExpertRegistry& expert_registry();

/// The shape of the bank a [moe.experts] block names (its registry fact).
BankShape bank_shape(const nlohmann::json& block, const BankShapeContext& ctx);
/// The granularity axis's rewrite of a [moe.experts] block (its registry fact).
void refine_bank(nlohmann::json& block, int64_t d_model, int64_t m);

/// Creates the bank named by spec and rejects any parameter it did not read.
ExpertBank make_expert_bank(const PluginSpec& spec, const LayerContext& ctx);

}  // namespace moe

/// MOE_REGISTER_EXPERTS("ffn", FFNExpertsImpl, "help"): the class supplies `create`,
/// `param_docs` and the BankFacts functions `shape` and `refine` as statics.
#define MOE_REGISTER_EXPERTS(NAME, CLASS, HELP)                                         \
  static ::moe::Registrar<::moe::ExpertRegistry> MOE_CONCAT(moe_expert_reg_, __LINE__)( \
      ::moe::expert_registry(), {NAME,                                                  \
                                 HELP,                                                  \
                                 CLASS::param_docs(),                                   \
                                 &CLASS::create,                                        \
                                 {},                                                    \
                                 ::moe::BankFacts{&CLASS::shape, &CLASS::refine}})
