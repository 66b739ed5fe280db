#include "core/dispatch.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace moe {

const std::vector<std::string>& drop_policy_names() {
  static const std::vector<std::string> names = {"priority", "position"};
  return names;
}

int64_t expert_capacity(double capacity_factor, int64_t k, int64_t tokens, int64_t num_experts) {
  if (capacity_factor <= 0) return 0;
  return static_cast<int64_t>(
      std::ceil(capacity_factor * static_cast<double>(k * tokens) / num_experts));
}

DispatchPlan plan_dispatch(const Routing& routing, int64_t num_experts, Capacity limit,
                           DropPolicy policy) {
  TORCH_CHECK(routing.indices.dim() == 2, "dispatch: expected indices [tokens, slots], got ",
              routing.indices.sizes());
  TORCH_CHECK(routing.weights.sizes() == routing.indices.sizes(), "dispatch: weights ",
              routing.weights.sizes(), " and indices ", routing.indices.sizes(),
              " differ in shape");
  // One device-to-host read per plan: the per-expert counts (the expert matmuls need them
  // on the host anyway). Everything else is a fixed-shape device op: the order comes from
  // one sort of all (token, slot) pairs, unused slots sorting last, instead of nonzero().
  const int64_t tokens = routing.indices.size(0), slots = routing.indices.size(1);
  const int64_t pairs = tokens * slots;
  auto flat_idx = routing.indices.reshape({-1});
  auto flat_w = routing.weights.reshape({-1});
  auto valid = flat_idx.ge(0);
  auto expert_or_unused = flat_idx.where(valid, torch::full_like(flat_idx, num_experts));
  // Counted by index_add_, not bincount: bincount on CUDA reads the input's min and max
  // back to the host (two more syncs).
  auto counts_dev = torch::zeros({num_experts + 1}, flat_idx.options())
                        .index_add_(0, expert_or_unused, torch::ones_like(expert_or_unused));
  auto counts_t = counts_dev.to(torch::kCPU);

  DispatchPlan plan;
  plan.counts.assign(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + num_experts);
  plan.chosen = plan.counts;
  for (auto c : plan.counts) plan.selected += c;
  const int64_t capacity =
      limit.factor > 0 ? expert_capacity(limit.factor, plan.selected, 1, num_experts) : limit.slots;
  // Sort key: expert, then rank within the expert. Rank is the flat position (token order),
  // or, for kPriority with a capacity, slot-major (every first choice, then every second
  // choice, each in token order) so that capacity drops later choices first.
  torch::Tensor key = expert_or_unused;  // stable: flat (token) order within an expert
  if (capacity > 0 && slots > 1 && policy == DropPolicy::kPriority) {
    auto flat = torch::arange(pairs, flat_idx.options());
    auto rank = torch::remainder(flat, slots) * tokens + torch::div(flat, slots, "floor");
    key = expert_or_unused * pairs + rank;
  }
  auto order = std::get<1>(torch::sort(key, /*stable=*/true, 0, /*descending=*/false));
  auto order_pos = order.narrow(0, 0, plan.selected);
  auto order_expert = flat_idx.index_select(0, order_pos);
  if (capacity > 0) {
    int64_t kept_total = 0;
    for (auto& c : plan.counts) {
      const int64_t kept = std::min(c, capacity);
      plan.dropped += c - kept;
      kept_total += kept;
      c = kept;
    }
    if (plan.dropped > 0) {
      // Rank of each sorted slot within its expert; those at or past the capacity go.
      auto chosen_t = counts_dev.narrow(0, 0, num_experts);
      auto start = chosen_t.cumsum(0) - chosen_t;
      auto within =
          torch::arange(plan.selected, flat_idx.options()) - start.index_select(0, order_expert);
      auto drop = within.ge(capacity).to(torch::kByte);
      auto kept_at =
          std::get<1>(torch::sort(drop, /*stable=*/true, 0, false)).narrow(0, 0, kept_total);
      order_pos = order_pos.index_select(0, kept_at);
      order_expert = order_expert.index_select(0, kept_at);
    }
  }
  plan.token_index = torch::div(order_pos, slots, "floor");
  plan.weight = flat_w.index_select(0, order_pos);
  plan.expert_index = order_expert;
  plan.slot_index =
      torch::full({flat_idx.size(0)}, -1, flat_idx.options())
          .index_put_({order_pos}, torch::arange(order_pos.size(0), flat_idx.options()))
          .view(routing.indices.sizes());
  return plan;
}

}  // namespace moe
