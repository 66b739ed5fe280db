#pragma once
// Parameter-efficient adapters at the transformer's projection sites (methods.md §5), as
// plugins: each adapter registers in adapter_registry() (plugins/adapters/) with its
// parameters and the sites it sits at.
// Config section  peft = { method = "<adapter name>", <its parameters> }  (method "" = none)
// Sites: q, k, v, o (attention projections), up, mid (the dense FFN's intermediate
// activation), down. MoE layers get no FFN adapter. Parameters are named
// "<site>_adapter.*" (e.g. blocks.0.attn.k_adapter.vectors): train.trainable =
// ["*_adapter.*", "head.*"] trains only them and the task head.
// An adapter maps (the projection's input x [..., d_in], its output h [..., d_out]) to
// the adapted output, starts as the identity (the pretrained model's output), and counts
// its forward FLOPs per token.
#include <torch/nn/module.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/plugin_spec.h"
#include "core/registry.h"

namespace moe {

/// The [peft] section: the adapter's name and its parameters (read by the adapter).
struct PeftOptions {
  std::string method;  ///< "" = no adapters; else an adapter_registry() name
  nlohmann::json params = nlohmann::json::object();
  bool enabled() const { return !method.empty(); }
};

class AdapterImpl : public torch::nn::Module {
 public:
  /// in: the projection's input [..., d_in]; out: its output [..., d_out] -> adapted out.
  virtual torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& out) = 0;
  virtual double flops_per_token() const = 0;
};
using AdapterPtr = std::shared_ptr<AdapterImpl>;

/// Created with the site's projection shape d_in -> d_out (scaling sites: d_in = d_out)
/// and its attention heads (k and v: the model's heads, their width d_out / heads; 1
/// elsewhere).
using AdapterRegistry = Registry<AdapterImpl, const PluginSpec&, int64_t, int64_t, int64_t>;
AdapterRegistry& adapter_registry();

/// The sites an adapter sits at (its registry entry's tags: "q", "k", "v", "o", "up",
/// "mid", "down"). False when peft is disabled.
bool adapter_at(const PeftOptions& peft, const std::string& site);

/// Creates the adapter for one site and rejects any parameter it did not read. Errors:
/// "adapter '<name>': parameter '<p>' expected ..., got ...".
AdapterPtr make_adapter(const PeftOptions& peft, int64_t d_in, int64_t d_out, int64_t heads = 1);

/// Checks the section (a known adapter, valid parameters) by building one small adapter.
void check_peft(const PeftOptions& peft);

/// Mixture weights over E experts for router input x [..., n] with router [n, E]: softmax
/// in float32 (double when x is double), then, for 0 < top_k < E, the top_k largest kept
/// and the rest zeroed, without renormalising. [..., E].
torch::Tensor adapter_mixture(const torch::Tensor& x, const torch::Tensor& router, int64_t top_k);
/// The same from logits [..., E]: softmax over the last dimension, then exactly top_k
/// kept per row (ties broken by index), no renormalisation.
torch::Tensor mixture_from_logits(const torch::Tensor& logits, int64_t top_k);
/// The mixture adapters' (mov, molora) shared option check: experts >= 1 and
/// 0 <= top_k <= experts.
void check_mixture(const OptionCheck& check, int64_t experts, int64_t top_k);

}  // namespace moe

/// MOE_REGISTER_ADAPTER("ia3", IA3Adapter, "help", {"k", "v", "mid"}): the class supplies
/// `static std::shared_ptr<AdapterImpl> create(const PluginSpec&, int64_t d_in, int64_t
/// d_out, int64_t heads)` and `static std::vector<ParamDoc> param_docs()`.
#define MOE_REGISTER_ADAPTER(NAME, CLASS, HELP, ...)                                      \
  static ::moe::Registrar<::moe::AdapterRegistry> MOE_CONCAT(moe_adapter_reg_, __LINE__)( \
      ::moe::adapter_registry(), {NAME, HELP, CLASS::param_docs(), &CLASS::create, __VA_ARGS__})
