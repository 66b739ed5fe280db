#pragma once
// Fused kernels for sort-by-expert MoE layers, each an autograd function with a
// hand-written backward, so the glue around the expert matmuls costs one memory pass each
// way instead of cat/split/stack/index_add chains.
//
// gather_rows:   x [T, d] -> xs [S, d], xs[s] = x[plan.token_index[s]]
//                backward: gx[t] = sum over t's kept slots of g[slot]   (a gather, no scatter)
// grouped_ffn:   xs [S, d] -> ys [S, d]; rows of expert e (a contiguous block of counts[e])
//                get act(xs W1[e] + b1[e]) W2[e] + b2[e]. W1 [E, d, u], b1 [E, u],
//                W2 [E, h, d], b2 [E, d]; u = 2h for swiglu, else h.
// combine_rows:  ys [S, d], w [S] -> y [T, d], y[t] = sum over t's kept slots of w[s] ys[s]
//                backward gives both gys and gw (the router's gradient).
#include <torch/types.h>

#include <string>

#include "core/activation.h"
#include "core/dispatch.h"

namespace moe {

torch::Tensor gather_rows(const torch::Tensor& x, const DispatchPlan& plan);

/// How grouped_ffn runs the expert matmuls.
///  kAuto:      one grouped kernel per matmul for all experts (at::_grouped_mm, LibTorch 2.9+)
///              where grouped_kernel_applies, else one matmul per expert;
///  kGrouped:   the grouped formulation always, a per-expert loop standing in for the kernel
///              where it does not apply (how the CPU tests check the grouped path);
///  kPerExpert: one matmul per expert (on CPU, experts run concurrently when there are many).
enum class ExpertMatmuls { kAuto, kGrouped, kPerExpert };

torch::Tensor grouped_ffn(const torch::Tensor& xs, const torch::Tensor& w1, const torch::Tensor& b1,
                          const torch::Tensor& w2, const torch::Tensor& b2,
                          const std::vector<int64_t>& counts, Activation activation,
                          ExpertMatmuls how = ExpertMatmuls::kAuto);

/// Whether kAuto runs at::_grouped_mm for these operands (as grouped_ffn casts them): the
/// LibTorch has it, xs has rows, is on CUDA and in bf16, and every matrix width (d, u, h) is
/// a multiple of 8 (the kernel's 16-byte alignment).
bool grouped_kernel_applies(const torch::Tensor& xs, const torch::Tensor& w1,
                            const torch::Tensor& w2);

torch::Tensor combine_rows(const torch::Tensor& ys, const torch::Tensor& weight,
                           const DispatchPlan& plan, int64_t tokens);

}  // namespace moe
