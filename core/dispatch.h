#pragma once
// Sort-by-expert dispatch shared by every sparse expert bank.
//
// The (token, slot) pairs a router selected are sorted by expert so that each expert
// sees one contiguous block of rows: one matmul per expert, no masking of all tokens,
// no compute for experts nobody chose. Capacity limits are applied here, per expert: by
// default every first choice before any second choice, then earlier tokens first (GShard);
// DropPolicy::kPosition ranks by token position only.
#include <torch/types.h>

#include <string>
#include <vector>

#include "core/router.h"

namespace moe {

struct DispatchPlan {
  torch::Tensor token_index;    ///< [S] int64: token of each kept slot, grouped by expert
  torch::Tensor weight;         ///< [S] float: combine weight of each kept slot
  torch::Tensor expert_index;   ///< [S] int64: expert of each kept slot (non-decreasing)
  torch::Tensor slot_index;     ///< [T, slots] int64: position of each slot in the sorted
                                ///< order, -1 when unused or dropped (the inverse map)
  std::vector<int64_t> counts;  ///< [E]: kept slots per expert (sums to S), on the host
  std::vector<int64_t> chosen;  ///< [E]: slots the router chose per expert (before capacity)
  int64_t selected = 0;         ///< slots the router selected (before capacity)
  int64_t dropped = 0;          ///< slots dropped by the capacity limit
};

/// Which (token, slot) pairs a full expert keeps. kPriority (GShard): every token's first
/// choice before any token's second choice, then by position; kPosition: by position only
/// (earlier tokens win whatever the slot).
enum class DropPolicy { kPriority, kPosition };
/// The names, in enum order ([moe] drop_policy): [priority, position].
const std::vector<std::string>& drop_policy_names();

/// Slots per expert: a fixed count (<= 0: dropless), or ceil(factor * selected / E) from the
/// slots the router actually selected (factor <= 0: dropless), counted where the dispatch
/// already holds them on the host.
struct Capacity {
  Capacity(int64_t slots = 0) : slots(slots) {}  // NOLINT: a count converts
  static Capacity from_factor(double factor) {
    Capacity c;
    c.factor = factor;
    return c;
  }
  int64_t slots = 0;
  double factor = 0;
};

/// routing.indices: [T, slots] int64 with -1 for unused.
DispatchPlan plan_dispatch(const Routing& routing, int64_t num_experts, Capacity capacity = {},
                           DropPolicy policy = DropPolicy::kPriority);

/// capacity = ceil(capacity_factor * k * T / E); 0 when capacity_factor <= 0 (dropless).
/// The MoE layer passes k * T = the slots the router selected, so a dynamic router's
/// capacity follows its mean experts per token, not the batch's widest row.
int64_t expert_capacity(double capacity_factor, int64_t k, int64_t tokens, int64_t num_experts);

}  // namespace moe
