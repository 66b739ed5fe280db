#pragma once
// Router "inf_moe": ∞-MoE continuous experts (Takashiro et al.), methods.md §3. Pair it
// with the expert bank "inf_ffn" (one large FFN of width D cut into num_experts blocks).
//
//   mu = W_mu x + b_mu, log_sigma = clamp(W_s x + b_s, log_sigma_min, log_sigma_max)
//       (two linear maps d -> d_z; W_s ~ N(0, 0.02), b_s = log(sigma_init))
//   z_k = mu + sigma * eps_k, eps_k ~ N(0, I), k = 1..K     (z = mu when deterministic)
//   scores s_k [G] over the G = num_experts blocks of hidden units:
//       score = "linear" (default): s = A z, A [G, d_z] ~ N(0, 1/d_z)
//       score = "positions": s_g = -||z - c_g||^2, c [G, d_z] ~ N(0, 1)
//   mask m_k keeps the top n = max(1, round(r * G)) blocks of s_k (ties: lower index)
//   soft weight on kept blocks, weight = "sigmoid" (default): sigmoid(s);
//       "softmax": n * softmax over the kept scores (mean 1); "straight_through": 1 in
//       the forward pass, sigmoid's gradient backward; "hard": 1, no gradient to the
//       router (warns: mu, sigma and the scores then never learn)
//   a = (1/K) sum_k m_k * w_k  [T, G]: the averaged mask. Since the FFN is linear in the
//   mask after the activation, one pass with `a` equals the mean of the K sample passes.
//   Routing: indices = the union of the K masks (slots = widest union in the batch, -1
//   unused), weights = a on them, probs = a / sum(a). No aux losses.
// Sampling uses the router's own generator (seeded from the global RNG at construction):
// fresh noise every training forward; in eval mode the generator restarts from that seed
// at each forward, so an evaluation is reproducible. eps is drawn on the CPU.
// extras: "z" [K, T, d_z], "mu", "sigma" [T, d_z]; nominal_experts = K * n; statistics
// "sigma_mean" (mean sigma, also reported when deterministic; averaged over layers) and
// "nominal_experts" (K * n, summed over layers).
// Inference options: "K" (>= 1; 0 = deterministic z = mu) and "deterministic" (0/1).
#include <ATen/core/Generator.h>
#include <torch/nn/modules/linear.h>

#include "core/router.h"

namespace moe {

struct InfMoERouterOptions {
  InfMoERouterOptions(int64_t d_model, int64_t num_experts)
      : d_model_(d_model), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_experts);  ///< G: maskable blocks of the large FFN
  TORCH_ARG(int64_t, d_z) = 16;
  TORCH_ARG(double, r) = 0.25;  ///< fraction of blocks each sample keeps
  TORCH_ARG(int64_t, K) = 2;
  TORCH_ARG(std::string, score) = "linear";    ///< linear | positions
  TORCH_ARG(std::string, weight) = "sigmoid";  ///< sigmoid | softmax | straight_through | hard
  TORCH_ARG(bool, deterministic) = false;
  TORCH_ARG(double, sigma_init) = 1.0;
  TORCH_ARG(double, log_sigma_min) = -5.0;
  TORCH_ARG(double, log_sigma_max) = 2.0;
};

class InfMoERouterImpl : public RouterImpl {
 public:
  explicit InfMoERouterImpl(InfMoERouterOptions options);
  Routing forward(const torch::Tensor& hidden) override;
  void set_inference_option(const std::string& key, double value) override;
  std::vector<std::string> inference_options() const override { return {"K", "deterministic"}; }

  /// Scores of samples z [K, T, d_z] -> [K, T, G].
  torch::Tensor scores(const torch::Tensor& z) const;
  /// Routing for given samples z [K, T, d_z] (the mask, soft weights and union).
  Routing route_samples(const torch::Tensor& z) const;
  /// Blocks each sample keeps.
  int64_t kept_blocks() const;

  static std::shared_ptr<RouterImpl> create(const PluginSpec& spec, const LayerContext& ctx);
  static std::vector<ParamDoc> param_docs();

  /// The mu and log-sigma maps (2 * 2 d d_z) plus, per sample (K; one when
  /// deterministic), the scores of the G blocks: linear 2 d_z G; positions 3 d_z G + d_z
  /// (z.c, ||c||^2, ||z||^2). The top-r selection's comparisons are not counted.
  double flops_per_token() const override;

  torch::nn::Linear mu{nullptr}, log_sigma{nullptr};
  torch::Tensor score_map;  ///< A [G, d_z] (linear) or the positions c [G, d_z]
  const InfMoERouterOptions& options() const { return options_; }

 private:
  /// eps ~ N(0, 1) [K, tokens, d_z] in float32 on `device` (see forward).
  torch::Tensor noise(int64_t tokens, const torch::Device& device);
  InfMoERouterOptions options_;
  uint64_t seed_ = 0;
  at::Generator generator_;
};
TORCH_MODULE(InfMoERouter);

}  // namespace moe
