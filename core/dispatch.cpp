#include "core/dispatch.h"

#include <torch/torch.h>

#include <cmath>

namespace moe {

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
  const int64_t slots = routing.indices.size(1);
  auto flat_idx = routing.indices.reshape({-1});
  auto flat_w = routing.weights.reshape({-1});
  auto valid = flat_idx.ge(0);
  auto pos = valid.nonzero().squeeze(1);  // flat (token, slot) positions in use
  const int64_t capacity =
      limit.factor > 0 ? expert_capacity(limit.factor, pos.size(0), 1, num_experts) : limit.slots;
  if (capacity > 0 && slots > 1 && policy == DropPolicy::kPriority) {
    // Slot-major: all first choices, then all second choices, each in token order; the
    // stable sort by expert below keeps that order, so capacity drops later choices first.
    const int64_t tokens = routing.indices.size(0);
    auto key = torch::remainder(pos, slots) * tokens + torch::div(pos, slots, "floor");
    pos = pos.index_select(0, std::get<1>(torch::sort(key, /*stable=*/true, 0, false)));
  }
  auto expert = flat_idx.index_select(0, pos);
  // Stable sort keeps token order within each expert: capacity then drops later tokens.
  auto sorted = std::get<1>(torch::sort(expert, /*stable=*/true, 0, /*descending=*/false));
  auto order_pos = pos.index_select(0, sorted);
  auto order_expert = expert.index_select(0, sorted);
  auto counts_t = torch::bincount(expert, {}, num_experts).to(torch::kCPU);

  DispatchPlan plan;
  plan.selected = pos.size(0);
  plan.counts.assign(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + num_experts);
  plan.chosen = plan.counts;
  if (capacity > 0) {
    std::vector<int64_t> keep;  // positions within the sorted order that fit the capacity
    keep.reserve(plan.selected);
    int64_t offset = 0;
    for (auto& c : plan.counts) {
      const int64_t kept = std::min(c, capacity);
      for (int64_t i = 0; i < kept; ++i) keep.push_back(offset + i);
      offset += c;
      plan.dropped += c - kept;
      c = kept;
    }
    if (plan.dropped > 0) {
      auto keep_t = torch::tensor(keep, torch::kLong).to(order_pos.device());
      order_pos = order_pos.index_select(0, keep_t);
      order_expert = order_expert.index_select(0, keep_t);
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
