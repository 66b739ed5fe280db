#pragma once
// Router interface: maps hidden states to a sparse (or soft) assignment over experts.
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <optional>
#include <string>

#include "core/plugin_spec.h"
#include "core/registry.h"
#include "core/trace.h"

namespace moe {

/// What a router hands to an expert bank. slots = k for top-k, the batch maximum for
/// dynamic routers (top-p, adaptive).
struct Routing {
  torch::Tensor weights;  ///< [tokens, slots] float, 0 in unused slots
  torch::Tensor indices;  ///< [tokens, slots] int64, -1 marks an unused slot
  torch::Tensor probs;    ///< [tokens, experts] float32 (or the model dtype if wider)
  /// Unscaled auxiliary losses (scalars), e.g. "balance", "z", "entropy"; the trainer
  /// applies the coefficients from the config.
  std::map<std::string, torch::Tensor> aux_losses;
  /// [tokens, experts]: each token's share of the balance loss's f per expert (top_k: 1/k
  /// on each of its k unbiased choices, or 1 on the first with loss.balance_count =
  /// "first"; top-p: 1 on every selected expert); the layer computes the sequence-level
  /// balance loss ("balance_seq") from it and probs. Undefined = no balance loss.
  torch::Tensor balance_assigned;
  /// Method-specific tensors for banks that need more than an index (∞-MoE's samples).
  std::map<std::string, torch::Tensor> extras;
  /// Experts per token counted once per sample, for routers that sample several masks and
  /// route to their union (∞-MoE: K x n); 0 for the others.
  double nominal_experts = 0;
  /// The router's own statistics; the layer's trace carries them (LayerTrace::stats).
  Stats stats;
};

/// Shapes every router and expert bank of one MoE layer agree on.
class SharedModulesImpl;

struct LayerContext {
  int64_t d_model = 0;
  int64_t num_experts = 0;
  int64_t layer_index = 0;  ///< 0-based position among all transformer layers
  int64_t num_layers = 0;
  /// Whether the model's attention is causal (a router that looks across tokens, such as
  /// expert choice, would leak the future there).
  bool causal = false;
  /// Modules shared by all MoE layers of the model (core/shared_modules.h); nullptr when
  /// the plugin is built alone.
  SharedModulesImpl* shared = nullptr;
  /// [loss] balance_count: true = the balance losses count all k choices of a token
  /// ("all"), false = only its first ("first").
  bool balance_all_choices = true;
};

/// An auxiliary loss a router adds to Routing::aux_losses: its name, which is its [loss]
/// key, the coefficient that key defaults to, and what it is (moe plugins prints it).
struct AuxLossDoc {
  std::string name;
  double coefficient = 0;
  std::string help;
};

class RouterImpl : public torch::nn::Module {
 public:
  /// Registry facts, read from the options alone (a router class hides these with its
  /// own; MOE_REGISTER_ROUTER records them). nominal_experts: the experts per token its
  /// options set (top_k's k exactly, expert_choice's on average, remoe's sparsity target),
  /// used by the nominal active-parameter count, the memory estimate and the granularity
  /// axis; none (the default) = its count is only measured.
  static std::optional<int64_t> nominal_experts(const PluginSpec& /*spec*/) { return std::nullopt; }
  /// The granularity axis: rewrites the router block for m times as many, m times narrower
  /// experts at the same active compute, given its nominal count. Default: k = nominal x m.
  static void refine(nlohmann::json& block, int64_t nominal, int64_t m) {
    block["k"] = nominal * m;
  }
  /// Whether a token may get no expert at all (expert choice, ReLU routing).
  static constexpr bool kMaySkipTokens = false;
  /// Every auxiliary loss forward() may return (by name), with its default coefficient.
  /// Default: none.
  static std::vector<AuxLossDoc> aux_losses() { return {}; }

  /// hidden: [tokens, d_model]; must not modify it.
  virtual Routing forward(const torch::Tensor& hidden) = 0;

  /// Changes an evaluation-time knob (top-p's threshold, ∞-MoE's K) on a trained model.
  /// The default knows none and throws naming the key.
  virtual void set_inference_option(const std::string& key, double value);
  /// Names of the knobs set_inference_option accepts.
  virtual std::vector<std::string> inference_options() const { return {}; }

  /// Called by the trainer after each optimizer step with the traces of that step's
  /// forward, one per MoE layer, and this router's position among them (aux-loss-free
  /// balancing updates its bias from traces[layer].load; ReMoE's model-wide L1
  /// coefficient reads every layer's sparsity). Default: nothing.
  virtual void after_step(const std::vector<LayerTrace>& traces, size_t layer) {}

  /// Forward FLOPs per token of routing (2 per multiply-add). The default counts the
  /// router's "gate" projection, W_r [d, N]: 2 d N; routers with more work (∞-MoE's
  /// mu/sigma maps and per-sample scores) count their own.
  virtual double flops_per_token() const;

  const std::string& plugin_name() const { return plugin_name_; }
  void set_plugin_name(std::string name) { plugin_name_ = std::move(name); }

 private:
  std::string plugin_name_;
};
TORCH_MODULE(Router);

/// The router projection of methods.md: W_r [d, N], no bias, initialised N(0, 0.02).
torch::nn::Linear make_router_gate(int64_t d_model, int64_t num_experts);
/// gate(hidden) in float32 (or double when the model is double), with autocast off:
/// logits [T, N].
torch::Tensor router_logits(torch::nn::Linear& gate, const torch::Tensor& hidden);

/// A routing from a [T, N] 0/1 mask of chosen (token, expert) pairs and [T, N] weights
/// (only masked entries are used): {weights [T, slots], indices [T, slots]} with each row's
/// chosen experts first (ascending expert index), unused slots -1 / 0, slots = the largest
/// row count (at least 1). Weights keep their gradient. For routers whose experts per
/// token vary (expert choice, ReLU routing).
std::pair<torch::Tensor, torch::Tensor> routing_from_mask(const torch::Tensor& mask,
                                                          const torch::Tensor& weights);

/// A router's registry facts (RouterImpl's nominal_experts, refine, kMaySkipTokens and
/// aux_losses, as its class hides them).
struct RouterFacts {
  std::optional<int64_t> (*nominal_experts)(const PluginSpec&) = nullptr;
  void (*refine)(nlohmann::json& block, int64_t nominal, int64_t m) = nullptr;
  bool may_skip_tokens = false;
  std::vector<AuxLossDoc> (*aux_losses)() = nullptr;
};
template <>
struct RegistryFacts<RouterImpl> {
  using type = RouterFacts;
};

using RouterRegistry = Registry<RouterImpl, const PluginSpec&, const LayerContext&>;
RouterRegistry& router_registry();

/// The nominal experts per token of a [moe.router] block (its router's registry fact; an
/// unknown router lists the known ones); none for a router whose count is only measured.
std::optional<int64_t> nominal_experts(const nlohmann::json& router_block);
/// The registered routers that state a nominal count, sorted.
std::vector<std::string> routers_with_nominal_experts();

/// Every [loss] coefficient: the MoE layer's own (balance_seq) and each registered
/// router's auxiliary losses, by name, each with its default and the routers that add it
/// ("...; routers: top_k, top_p"), sorted by name. Routers that share a name share its default (a
/// router registering another default is a std::logic_error).
const std::vector<AuxLossDoc>& loss_terms();
/// loss_terms() of the routers in registry.
std::vector<AuxLossDoc> loss_terms_of(const RouterRegistry& registry);

/// Creates the router named by spec and rejects any parameter it did not read.
Router make_router(const PluginSpec& spec, const LayerContext& ctx);

}  // namespace moe

/// MOE_REGISTER_ROUTER("top_k", TopKRouterImpl, "help"): the class supplies
/// `static std::shared_ptr<RouterImpl> create(const PluginSpec&, const LayerContext&)`
/// and `static std::vector<ParamDoc> param_docs()`, and may hide RouterImpl's
/// nominal_experts, refine, kMaySkipTokens and aux_losses with its registry facts.
#define MOE_REGISTER_ROUTER(NAME, CLASS, HELP)                                               \
  static ::moe::Registrar<::moe::RouterRegistry> MOE_CONCAT(moe_router_reg_, __LINE__)(      \
      ::moe::router_registry(), {NAME,                                                       \
                                 HELP,                                                       \
                                 CLASS::param_docs(),                                        \
                                 &CLASS::create,                                             \
                                 {},                                                         \
                                 ::moe::RouterFacts{&CLASS::nominal_experts, &CLASS::refine, \
                                                    CLASS::kMaySkipTokens, &CLASS::aux_losses}})
