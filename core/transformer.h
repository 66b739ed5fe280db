#pragma once
// A small pre-LN transformer whose FFN slots are dense or MoE.
//
// tokens [B, S] int64 -> embeddings (+ summed feature embeddings, + learned positions)
// -> L blocks of  x + Attn(LN(x));  x + FFN(LN(x))  -> final LN -> head:
//   "lm"  [B, S, vocab]   tied to the token embedding (causal attention)
//   "tag" [B, S, classes] per-token tagging
//   "cls" [B, classes]    mean over non-padded positions, then a linear layer
// Every projection (attention q/k/v/o, FFN up/down) is a public member; the [peft]
// adapter plugin (core/adapters.h) sits at the sites its registry entry names.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <optional>

#include <nlohmann/json.hpp>

#include "core/activation.h"
#include "core/adapters.h"
#include "core/model_kinds.h"
#include "core/moe_layer.h"
#include "core/shared_modules.h"

namespace moe {

/// model.attention_bias: none, or ALiBi (TransformerOptions::attention_bias).
enum class AttentionBias { kNone, kAlibi };
/// The names, in enum order: [none, alibi].
const std::vector<std::string>& attention_bias_names();

/// [loss] balance_count: which selections the top-k balance losses count: kAll = every one
/// of the k choices, f normalised by T k (Megatron-Core, Flaxformer, DeepSeek-V3), kFirst =
/// each token's first choice only (GShard's paper).
enum class BalanceCount { kAll, kFirst };
/// The names, in enum order: [all, first].
const std::vector<std::string>& balance_count_names();

struct MoEConfig {
  int64_t num_experts = 8;
  double capacity_factor = 0.0;
  double eval_capacity_factor = -1.0;              ///< < 0: the training one
  DropPolicy drop_policy = DropPolicy::kPriority;  ///< priority (GShard) | position
  /// Always-on experts of the bank's width beside the routed ones (DeepSeekMoE):
  /// y = shared(x) + sum of the routed experts; held as one FFN of width n * hidden.
  int64_t shared_experts = 0;
  /// {"name": ..., params...}; default: the registry's default router (MOE_DEFAULT_PLUGIN)
  nlohmann::json router = {{"name", router_registry().default_name()}};
  /// Which selections the top-k balance losses count (set from [loss] balance_count).
  BalanceCount balance_count = BalanceCount::kAll;
  nlohmann::json experts = {{"name", expert_registry().default_name()}};
};

struct TransformerOptions {
  TORCH_ARG(int64_t, vocab_size) = 0;
  TORCH_ARG(int64_t, feature_vocab) = 0;  ///< extra summed input features; 0 = none
  TORCH_ARG(int64_t, d_model) = 128;
  TORCH_ARG(int64_t, layers) = 4;
  TORCH_ARG(int64_t, heads) = 4;
  TORCH_ARG(int64_t, max_len) = 128;
  TORCH_ARG(bool, causal) = true;
  TORCH_ARG(Head, head) = Head::kLm;
  TORCH_ARG(int64_t, num_classes) = 0;   ///< for tag and cls heads
  TORCH_ARG(int64_t, ffn_hidden) = 512;  ///< dense FFN width
  TORCH_ARG(Activation, activation) = Activation::kGelu;
  TORCH_ARG(int64_t, moe_every) = 0;  ///< MoE in layers l with (l+1) % moe_every == 0; 0 = dense
  TORCH_ARG(double, dropout) = 0.0;
  /// kNone, or kAlibi: add -slope_h * |i - j| to the attention scores (Press et al.,
  /// 2022; symmetric for bidirectional attention), a locality prior on top of the learned
  /// positions. Head h's slope is 2^(-8 (h + 1) / heads).
  TORCH_ARG(AttentionBias, attention_bias) = AttentionBias::kNone;
  TORCH_ARG(MoEConfig, moe) = {};
  /// Adapters at the projection sites (core/adapters.h); method "" = none.
  TORCH_ARG(PeftOptions, peft) = {};
  /// "fp32", or "bf16": forward under autocast to bfloat16 on the parameters' device (CPU
  /// or CUDA); parameters stay fp32, router logits, softmax and aux losses stay fp32,
  /// logits are returned in fp32.
  TORCH_ARG(Precision, precision) = Precision::kFp32;
};

/// Scaled dot-product attention over heads: q, k, v [B, H, S, dh] -> [B, H, S, dh], with
/// causal masking, ALiBi's additive bias (-slope_h |i - j|, slope_h = 2^(-8 (h + 1) / H))
/// and padded keys (pad_mask [B, S], true = padding) never attended to. use_sdpa: through
/// at::scaled_dot_product_attention where the LibTorch version has it (2.1+: flash /
/// memory-efficient kernels on GPU), else the explicit softmax(q k^T / sqrt(dh) + bias) v.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     bool causal, bool alibi, const torch::Tensor& pad_mask, bool use_sdpa);
/// Whether attend's SDPA path exists in this build (MOE_HAVE_SDPA, core/compat.h).
extern const bool kUseSdpa;

/// Multi-head self-attention with explicit q/k/v/o projections.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t d_model, int64_t heads, bool causal, bool alibi = false,
                const PeftOptions& peft = {});
  /// x: [B, S, d]; pad_mask: optional [B, S] bool, true = padding (never attended to).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& pad_mask = {});
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  /// Null unless the peft adapter sits there (its registry entry's sites).
  AdapterPtr q_adapter, k_adapter, v_adapter, o_adapter;
  double adapter_flops_per_token() const;

 private:
  int64_t heads_;
  bool causal_;
  bool alibi_;
};
TORCH_MODULE(Attention);

/// Dense FFN baseline: act(x up + b) down + b.
class DenseFFNImpl : public torch::nn::Module {
 public:
  DenseFFNImpl(int64_t d_model, int64_t hidden, Activation activation = Activation::kGelu,
               const PeftOptions& peft = {});
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear up{nullptr}, down{nullptr};
  /// Sites up, mid (the intermediate activation) and down, when the adapter sits there.
  AdapterPtr up_adapter, mid_adapter, down_adapter;
  double adapter_flops_per_token() const;

 private:
  Activation activation_;
};
TORCH_MODULE(DenseFFN);

struct BlockOutput {
  torch::Tensor x;
  std::optional<LayerTrace> trace;  ///< set when the block's FFN is an MoE layer
};

/// One pre-LN block; exactly one of ffn / moe is non-null; shared (the MoE layer's
/// always-on experts) only beside moe.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const TransformerOptions& options, int64_t layer_index,
            SharedModulesImpl* shared = nullptr);
  /// tokens: the MoE layer's selection of pad_mask, when the caller made it already.
  BlockOutput forward(const torch::Tensor& x, const torch::Tensor& pad_mask = {},
                      const TokenSelection& tokens = {});
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  Attention attn{nullptr};
  DenseFFN ffn{nullptr};
  MoELayer moe{nullptr};
  DenseFFN shared{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(Block);

/// Forward FLOPs per token (2 per multiply-add) by part; total() = flops_per_token().
struct FlopsBreakdown {
  double attention = 0;  ///< q/k/v/o projections, scores and the weighted sum
  double ffn = 0;        ///< dense FFNs, or the selected experts (and the banks' extras)
  double router = 0;     ///< the routers' gate projections
  double adapters = 0;   ///< PEFT adapters at every site
  double head = 0;       ///< output projection (tied or not)
  double total() const { return attention + ffn + router + adapters + head; }
};

/// What one model forward returns.
struct ModelOutput {
  torch::Tensor logits;  ///< see the file header
  /// Unscaled auxiliary losses, each summed over the MoE layers (Switch, Megatron-Core:
  /// every layer's loss at the full coefficient); the trainer divides by the number of
  /// MoE layers when [loss] layer_reduce = "mean".
  std::map<std::string, torch::Tensor> aux_losses;
  std::vector<LayerTrace> traces;  ///< one per MoE layer, in order
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(TransformerOptions options);

  /// tokens: [B, S] int64 in [0, vocab); features: optional [B, S, F] int64 in
  /// [0, feature_vocab); pad_mask: optional [B, S] bool.
  ModelOutput forward(const torch::Tensor& tokens, const torch::Tensor& features = {},
                      const torch::Tensor& pad_mask = {});

  /// The MoE layers, in order (their modules, for parameter and FLOP counts).
  std::vector<MoELayer> moe_layers() const;

  int64_t total_params() const;
  int64_t trainable_params() const;
  /// Non-expert parameters + sum over MoE layers of mean_experts[l] * params_per_expert
  /// + the banks' extra_active_params; shared generator parameters are excluded.
  double active_params(const std::vector<double>& mean_experts) const;
  /// Embedding tables (token, position, feature): what the non-embedding counts leave out
  /// (Kaplan et al. 2020). The tied LM head is the token table, so it is left out too; an
  /// untied tag/cls head counts.
  int64_t embedding_params() const;
  /// Forward FLOPs per token (2 per multiply-add) with mean_experts[l] experts per token,
  /// adapters included.
  double flops_per_token(const std::vector<double>& mean_experts, int64_t seq_len) const;
  FlopsBreakdown flops_breakdown(const std::vector<double>& mean_experts, int64_t seq_len) const;

  const TransformerOptions& options() const { return options_; }

  torch::nn::Embedding tok_emb{nullptr}, feat_emb{nullptr}, pos_emb{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Linear head{nullptr};  ///< null for the tied LM head
  SharedModules shared{nullptr};    ///< modules shared by the MoE layers, if any

 private:
  std::vector<Block> block_list_;
  TransformerOptions options_;
};
TORCH_MODULE(Transformer);

}  // namespace moe
