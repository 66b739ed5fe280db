#include "core/moe_layer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/config_error.h"
#include "core/losses.h"

namespace moe {

void add_stat(Stats& stats, const std::string& name, const torch::Tensor& value, Reduce reduce) {
  stats[name] = Stat{value.detach(), reduce};
}

void add_stat(Stats& stats, const std::string& name, double value, Reduce reduce) {
  stats[name] = Stat{torch::tensor(value, torch::kDouble), reduce};
}

void LayerStats::add(const LayerTrace& trace) {
  torch::NoGradGuard no_grad;
  if (load.size() < trace.load.size()) load.resize(trace.load.size(), 0.0);
  for (size_t e = 0; e < trace.load.size(); ++e) load[e] += static_cast<double>(trace.load[e]);
  if (static_cast<int64_t>(histogram.size()) < trace.slots + 1) {
    histogram.resize(trace.slots + 1, 0.0);
  }
  if (trace.token_experts.defined() && trace.token_experts.numel() > 0) {
    auto hist = torch::bincount(trace.token_experts.reshape({-1}), {}, trace.slots + 1)
                    .to(torch::kCPU, torch::kLong);
    for (int64_t i = 0; i < hist.size(0); ++i) histogram[i] += hist[i].item<int64_t>();
    // Padded positions hold 0 experts in token_experts but are no tokens.
    histogram[0] -= static_cast<double>(trace.token_experts.numel() - trace.tokens);
  }
  if (trace.router_probs.defined() && trace.router_probs.numel() > 0) {
    auto p = trace.router_probs.to(torch::kDouble);
    entropy_sum += -(p * torch::log(p.clamp_min(1e-12))).sum().item<double>();
    saturation_sum += std::get<0>(p.max(1)).sum().item<double>();
  }
  for (const auto& kv : trace.stats) {
    const double v = kv.second.value.to(torch::kCPU, torch::kDouble).item<double>();
    auto it = stat_sums.find(kv.first);
    if (it == stat_sums.end()) {
      stat_sums[kv.first] = {v, kv.second.reduce};
    } else if (kv.second.reduce == Reduce::kMax) {
      it->second.value = std::max(it->second.value, v);
    } else {
      it->second.value += v;
    }
  }
  ++forwards;
  tokens += trace.tokens;
  selected_slots += trace.selected;
  dropped_slots += trace.dropped;
}

int64_t LayerStats::dead_experts() const { return std::count(load.begin(), load.end(), 0.0); }

double LayerStats::load_cv() const {
  if (load.empty()) return 0.0;
  double mean = 0, var = 0;
  for (double v : load) mean += v / static_cast<double>(load.size());
  for (double v : load) var += (v - mean) * (v - mean) / static_cast<double>(load.size());
  return mean > 0 ? std::sqrt(var) / mean : 0.0;
}

double LayerStats::load_max_over_mean() const {
  if (load.empty()) return 0.0;
  double total = 0;
  for (double v : load) total += v;
  const double mean = total / static_cast<double>(load.size());
  return mean > 0 ? *std::max_element(load.begin(), load.end()) / mean : 0.0;
}

double LayerStats::load_top20_share() const {
  if (load.empty()) return 0.0;
  auto sorted = load;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  const size_t top = static_cast<size_t>(std::ceil(0.2 * static_cast<double>(load.size())));
  double total = 0, head = 0;
  for (size_t e = 0; e < sorted.size(); ++e) {
    total += sorted[e];
    if (e < top) head += sorted[e];
  }
  return total > 0 ? head / total : 0.0;
}

double LayerStats::experts_quantile(double q) const {
  if (tokens == 0) return 0.0;
  double below = 0;
  for (size_t n = 0; n < histogram.size(); ++n) {
    below += histogram[n];
    if (below >= q * static_cast<double>(tokens) - 1e-9) return static_cast<double>(n);
  }
  return static_cast<double>(histogram.size()) - 1;
}

std::vector<double> LayerStats::load_fraction() const {
  std::vector<double> out(load.size(), 0.0);
  double total = 0;
  for (double v : load) total += v;
  for (size_t i = 0; i < load.size() && total > 0; ++i) out[i] = load[i] / total;
  return out;
}

std::map<std::string, double> LayerStats::statistics() const {
  std::map<std::string, double> out;
  for (const auto& kv : stat_sums) {
    const auto& a = kv.second;
    out[kv.first] = a.reduce == Reduce::kMax ? a.value : (forwards ? a.value / forwards : 0.0);
  }
  return out;
}

std::map<std::string, double> combine_layers(const std::vector<LayerStats>& layers) {
  std::map<std::string, double> out;
  std::map<std::string, int64_t> count;
  std::map<std::string, Reduce> reduce;
  for (const auto& layer : layers) {
    for (const auto& kv : layer.statistics()) {
      const Reduce r = layer.stat_sums.at(kv.first).reduce;
      auto it = out.find(kv.first);
      if (it == out.end()) {
        out[kv.first] = kv.second;
      } else if (r == Reduce::kMax) {
        it->second = std::max(it->second, kv.second);
      } else {
        it->second += kv.second;
      }
      ++count[kv.first];
      reduce[kv.first] = r;
    }
  }
  for (auto& kv : out) {
    if (reduce[kv.first] == Reduce::kMean) kv.second /= static_cast<double>(count[kv.first]);
  }
  return out;
}

MoELayerImpl::MoELayerImpl(Router router_in, ExpertBank experts_in, MoELayerOptions options)
    : options_(options) {
  if (options_.num_experts() <= 0) {
    throw ConfigError::value("moe layer", "num_experts", "> 0",
                             std::to_string(options_.num_experts()));
  }
  if (!(options_.capacity_factor() >= 0)) {
    throw ConfigError::value("moe layer", "capacity_factor", ">= 0",
                             format_number(options_.capacity_factor()));
  }
  router = register_module("router", std::move(router_in));
  experts = register_module("experts", std::move(experts_in));
}

TokenSelection TokenSelection::of(const torch::Tensor& pad_mask) {
  TokenSelection s;
  s.from_mask = true;
  if (pad_mask.defined()) {
    auto keep = pad_mask.reshape({-1}).logical_not();
    auto index = keep.nonzero().squeeze(1);  // one host read (its size)
    if (index.size(0) < keep.numel()) s.keep_index = index;
  }
  return s;
}

MoEOutput MoELayerImpl::forward(const torch::Tensor& x, const torch::Tensor& pad_mask) {
  if (pad_mask.defined()) {
    TORCH_CHECK(pad_mask.numel() * x.size(-1) == x.numel(), "moe layer: pad_mask has ",
                pad_mask.numel(), " entries for ", x.numel() / x.size(-1), " tokens");
  }
  return forward(x, TokenSelection::of(pad_mask));
}

MoEOutput MoELayerImpl::forward(const torch::Tensor& x, const TokenSelection& selection) {
  const auto shape = x.sizes().vec();
  auto all = x.reshape({-1, shape.back()});
  // Padding is dropped before routing and put back (as zeros) after the experts.
  const torch::Tensor& keep_index = selection.keep_index;
  auto hidden = keep_index.defined() ? all.index_select(0, keep_index) : all;
  Routing routing = router->forward(hidden);
  const int64_t tokens = hidden.size(0);
  TORCH_CHECK(routing.indices.dim() == 2 && routing.indices.size(0) == tokens, "router '",
              router->plugin_name(), "': expected indices [", tokens, ", slots], got ",
              routing.indices.sizes());
  const double factor = !is_training() && options_.eval_capacity_factor() >= 0
                            ? options_.eval_capacity_factor()
                            : options_.capacity_factor();
  // Capacity from the slots actually selected, counted by the dispatch itself.
  DispatchPlan plan = plan_dispatch(routing, options_.num_experts(), Capacity::from_factor(factor),
                                    options_.drop_policy());
  auto bank = experts->forward(hidden, routing, plan);
  MoEOutput out;
  auto token_experts = routing.indices.detach().ge(0).sum(1);
  if (keep_index.defined()) {
    out.y = torch::zeros_like(all).index_copy(0, keep_index, bank.y).reshape(shape);
    token_experts = torch::zeros({all.size(0)}, token_experts.options())
                        .index_copy(0, keep_index, token_experts);
  } else {
    out.y = bank.y.reshape(shape);
  }
  auto& t = out.trace;
  t.aux_losses = std::move(routing.aux_losses);
  if (routing.balance_assigned.defined() && tokens > 0) {
    // Sequences are the input's rows ([B, S, d]); a bare [T, d] input is one sequence.
    const int64_t seq_len = shape.size() >= 3 ? shape[shape.size() - 2] : all.size(0);
    auto position = keep_index.defined()
                        ? keep_index
                        : torch::arange(tokens, routing.indices.options().dtype(torch::kLong));
    t.aux_losses["balance_seq"] =
        sequence_balance_loss(routing.probs, routing.balance_assigned,
                              torch::div(position, seq_len, "floor"), all.size(0) / seq_len);
  }
  t.token_experts = token_experts;
  t.router_probs = routing.probs.detach();
  t.tokens = tokens;
  t.slots = routing.indices.size(1);
  t.selected = plan.selected;
  t.dropped = plan.dropped;
  t.load = std::move(plan.chosen);  // what the router chose, so imbalance stays visible
  t.stats = std::move(routing.stats);
  for (auto& kv : bank.stats) t.stats[kv.first] = std::move(kv.second);
  return out;
}

}  // namespace moe
