#include "core/transformer.h"

#include <torch/torch.h>

#include "core/compat.h"
#include "core/config_error.h"

#include <cmath>
#include <stdexcept>

namespace moe {

const std::vector<std::string>& attention_bias_names() {
  static const std::vector<std::string> names = {"none", "alibi"};
  return names;
}

const std::vector<std::string>& balance_count_names() {
  static const std::vector<std::string> names = {"all", "first"};
  return names;
}

#if MOE_HAVE_SDPA
const bool kUseSdpa = true;
#else
const bool kUseSdpa = false;
#endif

namespace {

torch::Tensor adapt(const AdapterPtr& adapter, const torch::Tensor& in, const torch::Tensor& out) {
  return adapter ? adapter->forward(in, out) : out;
}

double flops_of(std::initializer_list<const AdapterPtr*> adapters) {
  double f = 0;
  for (const auto* a : adapters) f += *a ? (*a)->flops_per_token() : 0.0;
  return f;
}

/// The adapter at `site` (registered as "<site>_adapter"), or null when peft puts none there.
AdapterPtr site_adapter(torch::nn::Module& m, const PeftOptions& peft, const std::string& site,
                        int64_t d_in, int64_t d_out, int64_t heads = 1) {
  if (!adapter_at(peft, site)) return nullptr;
  return m.register_module(site + "_adapter", make_adapter(peft, d_in, d_out, heads));
}

}  // namespace

AttentionImpl::AttentionImpl(int64_t d_model, int64_t heads, bool causal, bool alibi,
                             const PeftOptions& peft)
    : heads_(heads), causal_(causal), alibi_(alibi) {
  if (heads <= 0 || d_model % heads != 0) {
    throw ConfigError::value("model", "heads",
                             "to divide d_model (" + std::to_string(d_model) + ")",
                             std::to_string(heads));
  }
  q = register_module("q", torch::nn::Linear(d_model, d_model));
  k = register_module("k", torch::nn::Linear(d_model, d_model));
  v = register_module("v", torch::nn::Linear(d_model, d_model));
  o = register_module("o", torch::nn::Linear(d_model, d_model));
  q_adapter = site_adapter(*this, peft, "q", d_model, d_model);
  k_adapter = site_adapter(*this, peft, "k", d_model, d_model, heads);  // per-head routing
  v_adapter = site_adapter(*this, peft, "v", d_model, d_model, heads);
  o_adapter = site_adapter(*this, peft, "o", d_model, d_model);
}

double AttentionImpl::adapter_flops_per_token() const {
  return flops_of({&q_adapter, &k_adapter, &v_adapter, &o_adapter});
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& pad_mask) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), dh = d / heads_;
  auto split = [&](const torch::Tensor& t) { return t.view({b, s, heads_, dh}).transpose(1, 2); };
  auto qh = split(adapt(q_adapter, x, q(x)));
  auto kh = split(adapt(k_adapter, x, k(x)));
  auto vh = split(adapt(v_adapter, x, v(x)));
  auto mixed =
      attend(qh, kh, vh, causal_, alibi_, pad_mask, kUseSdpa).transpose(1, 2).reshape({b, s, d});
  return adapt(o_adapter, mixed, o(mixed));
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     bool causal, bool alibi, const torch::Tensor& pad_mask, bool use_sdpa) {
  const int64_t b = q.size(0), heads = q.size(1), s = q.size(2), dh = q.size(3);
  const auto neg_inf = -std::numeric_limits<float>::infinity();
  // The additive bias: ALiBi's -slope_h |i - j|, -inf at masked keys (and, when there is a
  // bias anyway, above the diagonal).
  torch::Tensor bias;
  auto fopts =
      q.options().dtype(q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  if (alibi) {
    auto pos = torch::arange(s, fopts);
    auto dist = (pos.unsqueeze(0) - pos.unsqueeze(1)).abs();  // [s, s]
    auto slopes = torch::pow(2.0, -8.0 * (torch::arange(heads, fopts) + 1) / heads);
    bias = -(slopes.view({1, heads, 1, 1}) * dist.view({1, 1, s, s}));
  }
  if (pad_mask.defined()) {
    auto pad = torch::zeros({b, 1, 1, s}, fopts).masked_fill(pad_mask.view({b, 1, 1, s}), neg_inf);
    bias = bias.defined() ? bias + pad : pad;
  }
  if (causal && bias.defined()) {
    bias = bias.masked_fill(torch::ones({s, s}, fopts.dtype(torch::kBool)).triu(1), neg_inf);
  }
#if MOE_HAVE_SDPA
  if (use_sdpa) {
    // Flash / memory-efficient kernels when there is no bias (causal as a flag).
    // An absent mask is nullopt: 2.x reads the dtype of an engaged optional's tensor.
    const auto mask = bias.defined() ? std::optional<torch::Tensor>(bias.to(q.dtype()))
                                     : std::optional<torch::Tensor>();
    return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal && !bias.defined());
  }
#else
  (void)use_sdpa;
#endif
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));
  if (bias.defined()) {
    scores = scores + bias.to(scores.dtype());
  } else if (causal) {
    scores =
        scores.masked_fill(torch::ones({s, s}, q.options().dtype(torch::kBool)).triu(1), neg_inf);
  }
  return torch::matmul(torch::softmax(scores, -1).to(v.dtype()), v);
}

DenseFFNImpl::DenseFFNImpl(int64_t d_model, int64_t hidden, Activation activation,
                           const PeftOptions& peft)
    : activation_(activation) {
  const int64_t width = up_width(activation_, hidden);
  up = register_module("up", torch::nn::Linear(d_model, width));
  down = register_module("down", torch::nn::Linear(hidden, d_model));
  up_adapter = site_adapter(*this, peft, "up", d_model, width);
  mid_adapter = site_adapter(*this, peft, "mid", hidden, hidden);
  down_adapter = site_adapter(*this, peft, "down", hidden, d_model);
}

torch::Tensor DenseFFNImpl::forward(const torch::Tensor& x) {
  auto h = apply_activation(activation_, adapt(up_adapter, x, up(x)));
  h = adapt(mid_adapter, h, h);
  return adapt(down_adapter, h, down(h));
}

double DenseFFNImpl::adapter_flops_per_token() const {
  return flops_of({&up_adapter, &mid_adapter, &down_adapter});
}

BlockImpl::BlockImpl(const TransformerOptions& opt, int64_t layer_index,
                     SharedModulesImpl* shared) {
  ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.d_model()})));
  ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.d_model()})));
  attn =
      register_module("attn", Attention(opt.d_model(), opt.heads(), opt.causal(),
                                        opt.attention_bias() == AttentionBias::kAlibi, opt.peft()));
  drop = register_module("drop", torch::nn::Dropout(opt.dropout()));
  const bool is_moe = opt.moe_every() > 0 && (layer_index + 1) % opt.moe_every() == 0;
  if (is_moe) {
    LayerContext ctx{opt.d_model(),
                     opt.moe().num_experts,
                     layer_index,
                     opt.layers(),
                     opt.causal(),
                     shared,
                     opt.moe().balance_count == BalanceCount::kAll};
    auto router = make_router(PluginSpec::from_block("router", opt.moe().router), ctx);
    auto bank = make_expert_bank(PluginSpec::from_block("experts", opt.moe().experts), ctx);
    moe = register_module("moe", MoELayer(router, bank,
                                          MoELayerOptions(opt.moe().num_experts)
                                              .capacity_factor(opt.moe().capacity_factor)
                                              .eval_capacity_factor(opt.moe().eval_capacity_factor)
                                              .drop_policy(opt.moe().drop_policy)));
    if (opt.moe().shared_experts > 0) {
      const int64_t width = bank->expert_hidden();
      if (width <= 0) {
        throw ConfigError::text("", "moe.shared_experts",
                                "moe.shared_experts: expert bank '" + bank->plugin_name() +
                                    "' has no FFN width to copy (the 'ffn' bank has)");
      }
      this->shared = register_module(
          "shared",
          DenseFFN(opt.d_model(), opt.moe().shared_experts * width, bank->expert_activation()));
    }
  } else {
    ffn = register_module("ffn",
                          DenseFFN(opt.d_model(), opt.ffn_hidden(), opt.activation(), opt.peft()));
  }
}

BlockOutput BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& pad_mask,
                               const TokenSelection& tokens) {
  auto h = x + drop(attn(ln1(x), pad_mask));
  auto f = ln2(h);
  BlockOutput out;
  if (moe) {
    auto m = tokens.from_mask ? moe->forward(f, tokens) : moe->forward(f, pad_mask);
    out.x = h + drop(shared ? m.y + shared(f) : m.y);
    out.trace = std::move(m.trace);
  } else {
    out.x = h + drop(ffn(f));
  }
  return out;
}

TransformerImpl::TransformerImpl(TransformerOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  if (o.vocab_size() <= 0) {
    throw ConfigError::value("model", "vocab_size", "> 0", std::to_string(o.vocab_size()));
  }
  if (o.head() != Head::kLm && o.num_classes() <= 0) {
    throw ConfigError::value("model: head '" + head_name(o.head()) + "'", "num_classes", "> 0",
                             std::to_string(o.num_classes()));
  }
  tok_emb = register_module("tok_emb", torch::nn::Embedding(o.vocab_size(), o.d_model()));
  pos_emb = register_module("pos_emb", torch::nn::Embedding(o.max_len(), o.d_model()));
  if (o.feature_vocab() > 0) {
    feat_emb = register_module("feat_emb", torch::nn::Embedding(o.feature_vocab(), o.d_model()));
  }
  {
    torch::NoGradGuard no_grad;
    tok_emb->weight.normal_(0.0, 0.02);
    pos_emb->weight.normal_(0.0, 0.02);
    if (feat_emb) feat_emb->weight.normal_(0.0, 0.02);
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  auto shared = SharedModules();
  for (int64_t l = 0; l < o.layers(); ++l) {
    block_list_.push_back(Block(o, l, shared.get()));
    blocks->push_back(block_list_.back());
  }
  if (!shared->empty()) this->shared = register_module("shared", shared);
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model()})));
  if (o.head() != Head::kLm) {
    head = register_module("head", torch::nn::Linear(o.d_model(), o.num_classes()));
  }
}

ModelOutput TransformerImpl::forward(const torch::Tensor& tokens, const torch::Tensor& features,
                                     const torch::Tensor& pad_mask) {
  TORCH_CHECK(tokens.dim() == 2, "model: expected tokens [batch, seq], got ", tokens.sizes());
  const int64_t s = tokens.size(1);
  TORCH_CHECK(s <= options_.max_len(), "model: sequence length ", s, " exceeds max_len ",
              options_.max_len());
  compat::AutocastGuard autocast(tok_emb->weight.device().type(),
                                 options_.precision() == Precision::kBf16, torch::kBFloat16);
  auto x = tok_emb(tokens) + pos_emb(torch::arange(s, tokens.options()));
  if (feat_emb && features.defined()) x = x + feat_emb(features).sum(2);
  ModelOutput out;
  // Which tokens the MoE layers route: one host sync per batch, not one per MoE layer.
  const auto routed = options_.moe_every() > 0 ? TokenSelection::of(pad_mask) : TokenSelection{};
  for (auto& block : block_list_) {
    auto b = block->forward(x, pad_mask, routed);
    x = b.x;
    if (b.trace) out.traces.push_back(std::move(*b.trace));
  }
  for (const auto& trace : out.traces) {
    for (const auto& kv : trace.aux_losses) {
      auto it = out.aux_losses.find(kv.first);
      out.aux_losses[kv.first] = it == out.aux_losses.end() ? kv.second : it->second + kv.second;
    }
  }
  x = ln_f(x);
  if (options_.head() == Head::kLm) {
    out.logits = torch::matmul(x, tok_emb->weight.t());
  } else if (options_.head() == Head::kTag) {
    out.logits = head(x);
  } else if (pad_mask.defined()) {
    auto keep = pad_mask.logical_not().unsqueeze(-1).to(x.dtype());
    out.logits = head((x * keep).sum(1) / keep.sum(1).clamp_min(1.0));
  } else {
    out.logits = head(x.mean(1));
  }
  // The loss is taken outside the model: in the parameters' dtype, not autocast's.
  out.logits = out.logits.to(tok_emb->weight.scalar_type());
  return out;
}

std::vector<MoELayer> TransformerImpl::moe_layers() const {
  std::vector<MoELayer> out;
  for (const auto& block : block_list_) {
    if (block->moe) out.push_back(block->moe);
  }
  return out;
}

int64_t TransformerImpl::total_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

int64_t TransformerImpl::trainable_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.requires_grad() ? p.numel() : 0;
  return n;
}

double TransformerImpl::active_params(const std::vector<double>& mean_experts) const {
  double n = static_cast<double>(total_params());
  // Shared generators (HyperMoE's hypernetwork) make weights once per distinct routing
  // set; their parameters are not applied per token. The banks report what is.
  if (shared) {
    for (const auto& p : shared->parameters()) n -= static_cast<double>(p.numel());
  }
  const auto layers = moe_layers();
  for (size_t l = 0; l < layers.size(); ++l) {
    int64_t bank = 0;
    for (const auto& p : layers[l]->experts->parameters()) bank += p.numel();
    const double k = l < mean_experts.size() ? mean_experts[l] : 0.0;
    n += -static_cast<double>(bank) + k * layers[l]->experts->params_per_expert() +
         layers[l]->experts->extra_active_params();
  }
  return n;
}

int64_t TransformerImpl::embedding_params() const {
  int64_t n = tok_emb->weight.numel() + pos_emb->weight.numel();
  if (feat_emb) n += feat_emb->weight.numel();
  return n;
}

double TransformerImpl::flops_per_token(const std::vector<double>& mean_experts,
                                        int64_t seq_len) const {
  return flops_breakdown(mean_experts, seq_len).total();
}

FlopsBreakdown TransformerImpl::flops_breakdown(const std::vector<double>& mean_experts,
                                                int64_t seq_len) const {
  const double d = static_cast<double>(options_.d_model());
  FlopsBreakdown f;
  size_t moe_index = 0;
  for (const auto& block : block_list_) {
    f.attention += 2 * 4 * d * d + 2 * 2 * seq_len * d;  // projections; scores and weighted sum
    f.adapters += block->attn->adapter_flops_per_token();
    if (block->ffn) f.adapters += block->ffn->adapter_flops_per_token();
    if (block->moe) {
      const double k = moe_index < mean_experts.size() ? mean_experts[moe_index] : 0.0;
      f.router += block->moe->router->flops_per_token();
      f.ffn += k * block->moe->experts->flops_per_expert_token() +
               block->moe->experts->extra_flops_per_token();
      if (block->shared) {
        f.ffn += 2 * static_cast<double>(block->shared->up->weight.numel() +
                                         block->shared->down->weight.numel());
      }
      ++moe_index;
    } else {
      f.ffn += 2 * static_cast<double>(block->ffn->up->weight.numel() +
                                       block->ffn->down->weight.numel());
    }
  }
  const double classes =
      options_.head() == Head::kLm ? options_.vocab_size() : options_.num_classes();
  f.head = 2 * d * classes;
  return f;
}

}  // namespace moe
