#pragma once
// Expert bank "hyper": HyperMoE (Zhao et al., ACL 2024), methods.md §4. Wraps any expert
// bank (`inner`, default ffn) and adds a HyperExpert whose weights a hypernetwork makes
// from the experts a token did NOT select.
//
//   y_moe = inner(x, routing)                                  (the host top-k MoE)
//   e_hat = sum_{j not selected} Emb_l[j]                      Emb_l: [N, embed_dim]
//   m     = W_m2 relu(W_m1 e_hat + c1) + c2                    per-layer MLP, embed->hidden->hidden
//   (W_down [d, r], b_down [r], W_up [r, d], b_up [d]) = H([m ; LayerEmb(l)])
//   y     = y_moe + relu(x W_down + b_down) W_up + b_up
// H (HyperNetwork below) is ONE module shared by all MoE layers of a model (through
// LayerContext::shared): Linear(hidden + layer_embed -> hyper_hidden), ReLU, four linear
// heads. Heads are initialised tiny, uniform +-1e-3 * sqrt(3 / (hyper_hidden * fan_in))
// with fan_in = d for W_down/b_down and r for W_up/b_up, head biases 0, so the adapter
// starts near zero and the layer starts as its host MoE.
// e_hat depends only on the token's selected SET, so adapters are generated once per
// distinct set in the batch (at most C(N, k)) and applied to each set's tokens as one
// grouped matmul (core/grouped_ffn.h); per-token generation exists only in the tests.
// Active parameters per token: the inner bank's per-expert parameters (the host MoE) plus
// the generated adapter, 2 d r + d + r; the embeddings, MLP and hypernetwork make weights
// and are not counted per token. Their FLOPs per token (per-set cost / tokens) are logged
// separately as bank statistic "hyper_flops_per_token"; the adapter's are in
// extra_flops_per_token(). For k = 1, route with top_k k = 1 (Switch gate p_i, the
// default), so the router still learns from the task loss.
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "core/experts.h"

namespace moe {

struct HyperOptions {
  int64_t d_model = 0, num_experts = 0, num_layers = 1;
  int64_t embed_dim = 32, hidden = 32, hyper_hidden = 32, bottleneck = 16, layer_embed = 10;
  /// Std of the expert embeddings' N(0, std) initialisation: 1.0 as the reference's
  /// nn.Embedding (0.02 made the selection-dependent input ~0.03 against ~1 from the layer
  /// embedding, so the generated adapters barely depended on the selection).
  double embed_init_std = 1.0;
  /// Throws (OptionCheck "experts 'hyper'") on a size <= 0, embed_init_std <= 0 or more
  /// than 62 experts.
  void validate() const;

  /// The sizes a [moe.experts] name = "hyper" block gives (its defaults scale with
  /// d_model): what create() builds and the plan's memory estimate counts.
  static HyperOptions read(const PluginSpec& spec, int64_t d_model, int64_t num_experts,
                           int64_t num_layers);
  /// Parameters of the model's one hypernetwork (its heads emit d x r matrices).
  double network_params() const;
  /// Parameters of one MoE layer's expert embeddings and selection MLP.
  double layer_params() const;
};

/// The shared hypernetwork: [m ; LayerEmb(l)] -> adapter weights.
class HyperNetworkImpl : public torch::nn::Module {
 public:
  explicit HyperNetworkImpl(const HyperOptions& o);
  struct Adapter {
    torch::Tensor w_down, b_down, w_up, b_up;  ///< [U, d, r], [U, r], [U, r, d], [U, d]
  };
  /// m: [U, hidden] -> one adapter per row, for MoE layer `layer`.
  Adapter forward(const torch::Tensor& m, int64_t layer);
  /// Forward FLOPs of generating one adapter.
  double flops_per_set() const;

  torch::nn::Embedding layer_emb{nullptr};
  torch::nn::Linear trunk{nullptr}, w_down{nullptr}, b_down{nullptr}, w_up{nullptr}, b_up{nullptr};
  const HyperOptions& options() const { return o_; }

 private:
  HyperOptions o_;
};
TORCH_MODULE(HyperNetwork);

class HyperExpertsImpl : public ExpertBankImpl {
 public:
  HyperExpertsImpl(ExpertBank inner, const HyperOptions& o, int64_t layer,
                   HyperNetwork shared_hyper);
  /// Statistics: "distinct_sets" (sets generated for this batch), "adapter_flops_per_token"
  /// and "hyper_flops_per_token" (the generator's FLOPs spread over the batch's tokens).
  BankOutput forward(const torch::Tensor& hidden, const Routing& routing,
                     const DispatchPlan& plan) override;
  int64_t params_per_expert() const override { return inner->params_per_expert(); }
  int64_t flops_per_expert_token() const override { return inner->flops_per_expert_token(); }
  int64_t expert_hidden() const override { return inner->expert_hidden(); }
  Activation expert_activation() const override { return inner->expert_activation(); }
  void upcycle(const torch::Tensor& up_w, const torch::Tensor& up_b, const torch::Tensor& down_w,
               const torch::Tensor& down_b, double noise_std) override {
    inner->upcycle(up_w, up_b, down_w, down_b, noise_std);
  }
  double extra_active_params() const override;
  double extra_flops_per_token() const override;

  /// selected: [U, N] 0/1 masks -> e_hat = sum of the unselected experts' embeddings, [U, embed].
  torch::Tensor selection_embedding(const torch::Tensor& selected);
  /// selected: [U, N] 0/1 float masks of selected experts -> one adapter per row.
  HyperNetworkImpl::Adapter generate(const torch::Tensor& selected);
  /// The [T, N] 0/1 selection mask of a routing (slots with index -1 ignored).
  torch::Tensor selection_mask(const Routing& routing) const;
  /// The adapter term alone, generated once per distinct set: [T, d]. Adds the generation
  /// statistics to `stats` when given.
  torch::Tensor adapter(const torch::Tensor& hidden, const torch::Tensor& selected,
                        Stats* stats = nullptr);

  static std::shared_ptr<ExpertBankImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();
  static BankShape shape(const PluginSpec& spec, const BankShapeContext& ctx);
  /// The host bank's block: the option, or {name = "ffn"}.
  static nlohmann::json inner_of(const PluginSpec& spec);
  static void refine(nlohmann::json& block, int64_t d_model, int64_t m);

  ExpertBank inner{nullptr};
  torch::Tensor expert_emb;  ///< [N, embed_dim]
  torch::nn::Linear mlp1{nullptr}, mlp2{nullptr};
  HyperNetwork hyper{nullptr};  ///< shared; registered here only when built alone

 private:
  HyperOptions o_;
  int64_t layer_;
};
TORCH_MODULE(HyperExperts);

}  // namespace moe
