#include "plugins/routers/inf_moe.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace moe {
namespace {

const std::vector<std::string> kScores = {"linear", "positions"};
const std::vector<std::string> kWeights = {"sigmoid", "softmax", "straight_through", "hard"};

}  // namespace

InfMoERouterImpl::InfMoERouterImpl(InfMoERouterOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  const OptionCheck check("router", "inf_moe");
  check.expect(o.d_z() > 0, "d_z", "> 0", static_cast<double>(o.d_z()));
  check.expect(o.r() > 0 && o.r() <= 1, "r", "in (0, 1]", o.r());
  check.expect(o.K() >= 1, "K", ">= 1", static_cast<double>(o.K()));
  check.one_of("score", o.score(), kScores);
  check.one_of("weight", o.weight(), kWeights);
  check.expect(o.sigma_init() > 0, "sigma_init", "> 0", o.sigma_init());
  check.expect(o.log_sigma_min() <= o.log_sigma_max(), "log_sigma_min",
               "<= log_sigma_max (" + format_number(o.log_sigma_max()) + ")", o.log_sigma_min());
  if (o.weight() == "hard") {
    TORCH_WARN(
        "router 'inf_moe': weight = hard passes no gradient to the router; mu, sigma "
        "and the scores keep their initial values");
  }
  mu = register_module("mu", torch::nn::Linear(o.d_model(), o.d_z()));
  log_sigma = register_module("log_sigma", torch::nn::Linear(o.d_model(), o.d_z()));
  torch::NoGradGuard no_grad;
  log_sigma->weight.normal_(0.0, 0.02);
  log_sigma->bias.fill_(std::log(o.sigma_init()));
  auto map = torch::randn({o.num_experts(), o.d_z()});
  if (o.score() == "linear") map.div_(std::sqrt(static_cast<double>(o.d_z())));
  score_map = register_parameter("score_map", map);
  seed_ = static_cast<uint64_t>(
      torch::randint(std::numeric_limits<int32_t>::max(), {1}, torch::kLong).item<int64_t>());
  generator_ = at::detail::createCPUGenerator(seed_);
}

int64_t InfMoERouterImpl::kept_blocks() const {
  const auto n = std::llround(options_.r() * static_cast<double>(options_.num_experts()));
  return std::max<int64_t>(1, std::min<int64_t>(n, options_.num_experts()));
}

torch::Tensor InfMoERouterImpl::scores(const torch::Tensor& z) const {
  if (options_.score() == "linear") return torch::matmul(z, score_map.t());
  // -||z - c||^2 = 2 z.c - |z|^2 - |c|^2
  return 2 * torch::matmul(z, score_map.t()) - z.pow(2).sum(-1, true) - score_map.pow(2).sum(-1);
}

Routing InfMoERouterImpl::route_samples(const torch::Tensor& z) const {
  TORCH_CHECK(z.dim() == 3 && z.size(2) == options_.d_z(),
              "router 'inf_moe': expected z [K, tokens, ", options_.d_z(), "], got ", z.sizes());
  const int64_t n = kept_blocks(), samples = z.size(0), blocks = options_.num_experts();
  auto s = scores(z);  // [K, T, G]
  // Stable descending sort: among equal scores the lower block index is kept.
  auto order = std::get<1>(torch::sort(s.detach(), /*stable=*/true, -1, /*descending=*/true));
  auto kept = order.narrow(-1, 0, n);
  auto mask = torch::zeros_like(s).scatter_(-1, kept, 1.0);
  torch::Tensor w;
  const auto& mode = options_.weight();
  if (mode == "sigmoid") {
    w = torch::sigmoid(s);
  } else if (mode == "softmax") {
    w = static_cast<double>(n) * torch::softmax(s.masked_fill(mask.eq(0), -INFINITY), -1);
  } else if (mode == "straight_through") {
    auto sg = torch::sigmoid(s);
    w = sg - sg.detach() + 1.0;
  } else {
    w = torch::ones_like(s.detach());
  }
  auto a = (mask * w).sum(0) / static_cast<double>(samples);  // [T, G]
  auto in_union = mask.amax(0).gt(0);                         // [T, G]
  const int64_t tokens = a.size(0);
  const int64_t slots =
      tokens > 0 ? std::max<int64_t>(1, in_union.sum(1).max().item<int64_t>()) : 1;
  auto uorder =
      std::get<1>(torch::sort(in_union.to(torch::kByte), /*stable=*/true, -1, /*descending=*/true));
  auto idx = uorder.narrow(1, 0, std::min(slots, blocks));
  auto valid = in_union.gather(1, idx);
  Routing routing;
  routing.indices = idx.masked_fill(valid.logical_not(), -1);
  routing.weights = a.gather(1, idx) * valid.to(a.dtype());
  routing.probs = a.detach() / a.detach().sum(1, true).clamp_min(1e-12);
  routing.extras["z"] = z;
  routing.nominal_experts = static_cast<double>(samples * n);
  add_stat(routing.stats, "nominal_experts", routing.nominal_experts, Reduce::kSum);
  return routing;
}

torch::Tensor InfMoERouterImpl::noise(int64_t tokens, const torch::Device& device) {
  // Drawn in float32 whatever the model's dtype, so a converted model sees the same noise.
  const std::vector<int64_t> shape{options_.K(), tokens, options_.d_z()};
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  if (device.is_cpu()) {
    if (!is_training()) generator_ = at::detail::createCPUGenerator(seed_);
    return torch::randn(shape, generator_, options);
  }
  // On an accelerator the noise is drawn there: a host draw would cost a copy and a
  // synchronisation per step. Training draws from the device's generator (which
  // torch::manual_seed seeds); evaluation from this router's seed, as on the CPU, so every
  // evaluation sees the same noise, leaving the device generator's state as it was.
  auto generator = at::globalContext().defaultGenerator(device);
  if (is_training()) return torch::randn(shape, generator, options);
  const auto state = generator.get_state();
  generator.set_current_seed(seed_);
  auto eps = torch::randn(shape, generator, options);
  generator.set_state(state);
  return eps;
}

Routing InfMoERouterImpl::forward(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 2 && hidden.size(1) == options_.d_model(),
              "router 'inf_moe': expected hidden [tokens, ", options_.d_model(), "], got ",
              hidden.sizes());
  auto m = mu(hidden);
  auto ls = log_sigma(hidden).clamp(options_.log_sigma_min(), options_.log_sigma_max());
  auto sigma = ls.exp();
  torch::Tensor z;
  if (options_.deterministic()) {
    z = m.unsqueeze(0);
  } else {
    auto eps = noise(hidden.size(0), m.device()).to(m.scalar_type());
    z = m.unsqueeze(0) + sigma.unsqueeze(0) * eps;
  }
  Routing routing = route_samples(z);
  routing.extras["mu"] = m;
  routing.extras["sigma"] = sigma;
  add_stat(routing.stats, "sigma_mean", sigma.detach().mean(), Reduce::kMean);
  return routing;
}

double InfMoERouterImpl::flops_per_token() const {
  const double d = static_cast<double>(options_.d_model()),
               dz = static_cast<double>(options_.d_z());
  const double g = static_cast<double>(options_.num_experts());
  const double samples = options_.deterministic() ? 1.0 : static_cast<double>(options_.K());
  const double per_sample = options_.score() == "linear" ? 2 * dz * g : 3 * dz * g + dz;
  return 2 * 2 * d * dz + samples * per_sample;
}

void InfMoERouterImpl::set_inference_option(const std::string& key, double value) {
  if (key == "K") {
    OptionCheck("router", "inf_moe")
        .expect(value >= 0 && value == std::floor(value), "K",
                "an integer >= 0 (0 = deterministic z = mu)", value);
    options_.deterministic(value == 0);
    if (value > 0) options_.K(static_cast<int64_t>(value));
    return;
  }
  if (key == "deterministic") {
    options_.deterministic(value != 0);
    return;
  }
  RouterImpl::set_inference_option(key, value);
}

std::shared_ptr<RouterImpl> InfMoERouterImpl::create(const PluginSpec& spec,
                                                     const LayerContext& ctx) {
  auto o = InfMoERouterOptions(ctx.d_model, ctx.num_experts)
               .d_z(spec.get<int64_t>("d_z", 16))
               .r(spec.get<double>("r", 0.25))
               .K(spec.get<int64_t>("K", 2))
               .score(spec.get<std::string>("score", "linear"))
               .weight(spec.get<std::string>("weight", "sigmoid"))
               .deterministic(spec.get<bool>("deterministic", false))
               .sigma_init(spec.get<double>("sigma_init", 1.0))
               .log_sigma_min(spec.get<double>("log_sigma_min", -5.0))
               .log_sigma_max(spec.get<double>("log_sigma_max", 2.0));
  return std::make_shared<InfMoERouterImpl>(o);
}

std::vector<ParamDoc> InfMoERouterImpl::param_docs() {
  return with_ranges(
      {{"d_z", "16", "dimension of the continuous expert index z"},
       {"r", "0.25", "fraction of the num_experts blocks each sample keeps"},
       {"K", "2", "samples per token (also an inference option; 0 there = z = mu)"},
       {"score", "linear", "linear (s = A z) | positions (s_g = -||z - c_g||^2)"},
       {"weight", "sigmoid",
        "soft weight on kept blocks: sigmoid | softmax | straight_through | hard (no "
        "router gradient; warns)"},
       {"deterministic", "false", "z = mu (one pass, no noise)"},
       {"sigma_init", "1.0", "initial sigma (bias of the log-sigma map)"},
       {"log_sigma_min", "-5.0", "lower clamp of log sigma"},
       {"log_sigma_max", "2.0", "upper clamp of log sigma"}},
      {{"d_z", Range::ints(1, 4096)},
       {"r", Range::reals(0, 1, true)},
       {"K", Range::ints(1, 1024)},
       {"sigma_init", Range::reals(0, 1e3, true)},
       {"log_sigma_min", Range::reals(-30, 30, false, false, "<= log_sigma_max")},
       {"log_sigma_max", Range::reals(-30, 30)}});
}

MOE_REGISTER_ROUTER("inf_moe", InfMoERouterImpl,
                    "∞-MoE: Gaussian continuous expert index, K samples, top-r blocks of one "
                    "large FFN (use with experts inf_ffn)");

}  // namespace moe
