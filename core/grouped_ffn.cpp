#include "core/grouped_ffn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>

#include "core/compat.h"
#include "core/data/task.h"

namespace moe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool cpu_fast_path(const torch::Tensor& t) {
  return t.device().is_cpu() &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
}

// <a, b> in eight running sums, so the compiler can vectorise it (a single running sum is a
// dependency chain it may not reorder).
template <class T>
T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int kLanes = 8;
  T acc[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[c + j] * b[c + j];
  }
  T sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  for (; c < n; ++c) sum += a[c] * b[c];
  return sum;
}

// out[t] = sum_j scale(slot) * src[slot_index[t, j]] over slots j with slot_index >= 0.
// scale may be undefined (1). A gather over tokens: no two threads write the same row.
torch::Tensor sum_slots(const torch::Tensor& src, const torch::Tensor& slot_index,
                        const torch::Tensor& scale) {
  const int64_t tokens = slot_index.size(0), slots = slot_index.size(1), d = src.size(1);
  if (!cpu_fast_path(src)) {
    auto padded = torch::cat({src, torch::zeros({1, d}, src.options())});
    auto rows =
        slot_index.clamp_min(-1).where(slot_index.ge(0), torch::full_like(slot_index, src.size(0)));
    auto picked = padded.index_select(0, rows.reshape({-1})).view({tokens, slots, d});
    if (scale.defined()) {
      auto s = torch::cat({scale, torch::zeros({1}, scale.options())})
                   .index_select(0, rows.reshape({-1}))
                   .view({tokens, slots, 1});
      picked = picked * s.to(src.dtype());
    }
    return picked.sum(1);
  }
  auto out = torch::zeros({tokens, d}, src.options());
  auto idx = slot_index.contiguous();
  auto srcc = src.contiguous();
  auto scalec = scale.defined() ? scale.to(src.dtype()).contiguous() : scale;
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "sum_slots", [&] {
    const auto* in = srcc.data_ptr<scalar_t>();
    const auto* sc = scalec.defined() ? scalec.data_ptr<scalar_t>() : nullptr;
    const auto* ix = idx.data_ptr<int64_t>();
    auto* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, tokens, 64, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        scalar_t* __restrict row = o + t * d;
        for (int64_t j = 0; j < slots; ++j) {
          const int64_t s = ix[t * slots + j];
          if (s < 0) continue;
          const scalar_t w = sc ? sc[s] : scalar_t(1);
          const scalar_t* __restrict r = in + s * d;
          for (int64_t c = 0; c < d; ++c) row[c] += w * r[c];
        }
      }
    });
  });
  return out;
}

// out[s] = src[index[s]] (parallel row copy on CPU).
torch::Tensor take_rows(const torch::Tensor& src, const torch::Tensor& index) {
  if (!cpu_fast_path(src)) return src.index_select(0, index);
  const int64_t rows = index.size(0), d = src.size(1);
  auto out = torch::empty({rows, d}, src.options());
  auto srcc = src.contiguous();
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "take_rows", [&] {
    const auto* in = srcc.data_ptr<scalar_t>();
    const auto* ix = index.data_ptr<int64_t>();
    auto* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) std::copy_n(in + ix[s] * d, d, o + s * d);
    });
  });
  return out;
}

struct GatherRows : public torch::autograd::Function<GatherRows> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& token_index, const torch::Tensor& slot_index) {
    ctx->save_for_backward({slot_index});
    return take_rows(x, token_index);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto slot_index = ctx->get_saved_variables()[0];
    return {sum_slots(grads[0], slot_index, {}), torch::Tensor(), torch::Tensor()};
  }
};

struct CombineRows : public torch::autograd::Function<CombineRows> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& ys,
                               const torch::Tensor& weight, const torch::Tensor& token_index,
                               const torch::Tensor& slot_index) {
    ctx->save_for_backward({ys, weight, token_index});
    return sum_slots(ys, slot_index, weight);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &ys = saved[0], &weight = saved[1], &token_index = saved[2];
    auto grad = grads[0].contiguous();
    if (!cpu_fast_path(ys) || weight.scalar_type() != ys.scalar_type()) {
      auto g = take_rows(grad, token_index);  // [S, d]
      return {g * weight.to(g.dtype()).unsqueeze(1), (g * ys).sum(1).to(weight.dtype()),
              torch::Tensor(), torch::Tensor()};
    }
    // One pass: g_ys[s] = w[s] * grad[t(s)], g_w[s] = <grad[t(s)], ys[s]>.
    const int64_t rows = ys.size(0), d = ys.size(1);
    auto g_ys = torch::empty_like(ys);
    auto g_w = torch::empty_like(weight);
    auto ysc = ys.contiguous(), wc = weight.contiguous();
    AT_DISPATCH_FLOATING_TYPES(ys.scalar_type(), "combine_backward", [&] {
      const auto* g = grad.data_ptr<scalar_t>();
      const auto* y = ysc.data_ptr<scalar_t>();
      const auto* w = wc.data_ptr<scalar_t>();
      const auto* tok = token_index.data_ptr<int64_t>();
      auto* gy = g_ys.data_ptr<scalar_t>();
      auto* gw = g_w.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
        for (int64_t s = begin; s < end; ++s) {
          const scalar_t* __restrict gr = g + tok[s] * d;
          scalar_t* __restrict out = gy + s * d;
          const scalar_t ws = w[s];
          for (int64_t c = 0; c < d; ++c) out[c] = ws * gr[c];
          gw[s] = dot(gr, y + s * d, d);
        }
      });
    });
    return {g_ys, g_w, torch::Tensor(), torch::Tensor()};
  }
};

// Calls fn(e, offset) for every expert with rows. With many experts (small GEMMs) they run
// concurrently on CPU, one single-threaded GEMM per thread, largest first with dynamic
// scheduling: E=64/k=8 went from 17.0k to 22.7k tok/s (2 cores, OpenBLAS-openmp). With
// few large experts OpenBLAS's own threads inside each GEMM do better (E=8/k=2: 0.87-0.96x
// dense sequential vs 0.72-0.88x concurrent, medians of 5 repetitions).
// Below this many experts each GEMM is large enough for OpenBLAS's own threads.
constexpr size_t kConcurrentExperts = 16;

template <class F>
void for_each_expert(const std::vector<int64_t>& counts, bool cpu, F&& fn) {
  std::vector<int64_t> offsets(counts.size(), 0), order;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (e > 0) offsets[e] = offsets[e - 1] + counts[e - 1];
    if (counts[e] > 0) order.push_back(static_cast<int64_t>(e));
  }
  if (!cpu || at::get_num_threads() == 1 || order.size() < kConcurrentExperts) {
    for (int64_t e : order) fn(e, offsets[e]);
    return;
  }
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
  std::atomic<size_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t begin, int64_t end) {
    torch::NoGradGuard no_grad;
    for (int64_t w = begin; w < end; ++w) {
      for (size_t i; (i = next.fetch_add(1)) < order.size();) fn(order[i], offsets[order[i]]);
    }
  });
}

torch::Tensor activation_backward(Activation act, const torch::Tensor& g,
                                  const torch::Tensor& pre) {
  if (act == Activation::kGelu) return at::gelu_backward(g, pre);
  if (act == Activation::kRelu) return g * pre.gt(0).to(g.dtype());
  // SwiGLU, pre = [a | b], hid = silu(a) * b: written into the two halves of one buffer
  // (no temporaries, no cat): [silu'(a) * g * b | silu(a) * g].
  const int64_t h = pre.size(1) / 2;
  auto a = pre.narrow(1, 0, h), b = pre.narrow(1, h, h);
  auto out = torch::empty_like(pre);
  auto ga = out.narrow(1, 0, h), gb = out.narrow(1, h, h);
  at::mul_out(ga, g, b);
  at::silu_backward_out(ga, ga, a);
  at::silu_out(gb, a);
  gb.mul_(g);
  return out;
}

// Experts' row blocks for the grouped formulation: rows per expert on the host, their
// cumulative ends as int32 on the rows' device (at::_grouped_mm's offsets, copied without
// waiting for the device) and each row's expert (for the biases).
struct Groups {
  std::vector<int64_t> counts;
  torch::Tensor offs;        // [E] int32, on the device
  torch::Tensor row_expert;  // [S] int64, on the device
  bool kernel = false;       // at::_grouped_mm, else a per-expert loop
};

Groups make_groups(const std::vector<int64_t>& counts, const torch::Device& device, bool kernel) {
  Groups g;
  g.counts = counts;
  g.kernel = kernel;
  auto ends = torch::empty({static_cast<int64_t>(counts.size())}, torch::kInt);
  auto* end = ends.data_ptr<int32_t>();
  int64_t total = 0;
  for (size_t e = 0; e < counts.size(); ++e) end[e] = static_cast<int32_t>(total += counts[e]);
  g.offs = to_device(ends, device);
  g.row_expert = torch::searchsorted(g.offs, torch::arange(total, g.offs.options()),
                                     /*out_int32=*/false, /*right=*/true);
  return g;
}

// out[rows of e] = a[rows of e] b[e]:  a [S, K], b [E, K, N] -> [S, N].
torch::Tensor grouped_mm_rows(const torch::Tensor& a, const torch::Tensor& b, const Groups& g) {
#if MOE_HAVE_GROUPED_MM
  if (g.kernel) return at::_grouped_mm(a, b, g.offs);
#endif
  auto out = torch::empty({a.size(0), b.size(2)}, a.options());
  int64_t off = 0;
  for (size_t e = 0; e < g.counts.size(); ++e) {
    if (const int64_t n = g.counts[e]; n > 0) {
      auto out_e = out.narrow(0, off, n);
      at::mm_out(out_e, a.narrow(0, off, n), b[static_cast<int64_t>(e)]);
    }
    off += g.counts[e];
  }
  return out;
}

// out[e] = a[:, rows of e] b[rows of e]:  a [M, S], b [S, N] -> [E, M, N]; an expert without
// rows gets zeros.
torch::Tensor grouped_mm_over_rows(const torch::Tensor& a, const torch::Tensor& b,
                                   const Groups& g) {
  const auto experts = static_cast<int64_t>(g.counts.size());
  torch::Tensor out;
#if MOE_HAVE_GROUPED_MM
  if (g.kernel) out = at::_grouped_mm(a, b, g.offs);
#endif
  if (!out.defined()) {
    out = torch::empty({experts, a.size(0), b.size(1)}, a.options());
    int64_t off = 0;
    for (int64_t e = 0; e < experts; ++e) {
      if (const int64_t n = g.counts[e]; n > 0) {
        auto out_e = out[e];
        at::mm_out(out_e, a.narrow(1, off, n), b.narrow(0, off, n));
      }
      off += g.counts[e];
    }
  }
  for (int64_t e = 0; e < experts; ++e) {
    if (g.counts[e] == 0) out[e].zero_();
  }
  return out;
}

// Per-expert column sums of x [S, N] -> [E, N] (the bias gradients), accumulated in fp32.
torch::Tensor grouped_row_sums(const torch::Tensor& x, const Groups& g) {
  const auto experts = static_cast<int64_t>(g.counts.size());
  return torch::zeros({experts, x.size(1)}, x.options().dtype(torch::kFloat))
      .index_add_(0, g.row_expert, x.to(torch::kFloat))
      .to(x.scalar_type());
}

struct GroupedFFN : public torch::autograd::Function<GroupedFFN> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& xs,
                               const torch::Tensor& w1, const torch::Tensor& b1,
                               const torch::Tensor& w2, const torch::Tensor& b2,
                               const std::vector<int64_t>& counts, int64_t act_code,
                               int64_t how_code) {
    const auto act = static_cast<Activation>(act_code);
    const auto how = static_cast<ExpertMatmuls>(how_code);
    const bool kernel = how != ExpertMatmuls::kPerExpert && grouped_kernel_applies(xs, w1, w2);
    TORCH_INTERNAL_ASSERT(static_cast<int64_t>(counts.size()) == w1.size(0));
    ctx->saved_data["counts"] = counts;
    ctx->saved_data["act"] = act_code;
    ctx->saved_data["grouped"] = kernel || how == ExpertMatmuls::kGrouped;
    if (kernel || how == ExpertMatmuls::kGrouped) {
      const auto g = make_groups(counts, xs.device(), kernel);
      ctx->saved_data["kernel"] = kernel;  // the backward reuses the offsets and row experts
      ctx->saved_data["offs"] = g.offs;
      ctx->saved_data["row_expert"] = g.row_expert;
      auto pre = grouped_mm_rows(xs, w1, g).add_(b1.index_select(0, g.row_expert));
      auto hid = torch::empty({xs.size(0), w2.size(1)}, xs.options());
      apply_activation_into(act, pre, hid);
      auto ys = grouped_mm_rows(hid, w2, g).add_(b2.index_select(0, g.row_expert));
      ctx->save_for_backward({xs, w1, w2, pre, hid});
      return ys;
    }
    const int64_t rows = xs.size(0), d = w2.size(2), u = w1.size(2), h = w2.size(1);
    auto pre = torch::empty({rows, u}, xs.options());
    auto hid = torch::empty({rows, h}, xs.options());
    auto ys = torch::empty({rows, d}, xs.options());
    for_each_expert(counts, xs.device().is_cpu(), [&](int64_t e, int64_t off) {
      const int64_t n = counts[e];
      auto pre_e = pre.narrow(0, off, n);
      at::addmm_out(pre_e, b1[e], xs.narrow(0, off, n), w1[e]);
      auto hid_e = hid.narrow(0, off, n);
      apply_activation_into(act, pre_e, hid_e);
      auto ys_e = ys.narrow(0, off, n);
      at::addmm_out(ys_e, b2[e], hid_e, w2[e]);
    });
    ctx->save_for_backward({xs, w1, w2, pre, hid});
    return ys;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &xs = saved[0], &w1 = saved[1], &w2 = saved[2], &pre = saved[3], &hid = saved[4];
    const auto counts = ctx->saved_data["counts"].toIntVector();
    const auto act = static_cast<Activation>(ctx->saved_data["act"].toInt());
    auto gy = grads[0].contiguous();
    if (ctx->saved_data["grouped"].toBool()) {
      const Groups g{counts, ctx->saved_data["offs"].toTensor(),
                     ctx->saved_data["row_expert"].toTensor(), ctx->saved_data["kernel"].toBool()};
      auto gw2 = grouped_mm_over_rows(hid.t(), gy, g);  // [E, h, d]
      auto gb2 = grouped_row_sums(gy, g);
      auto gpre = activation_backward(act, grouped_mm_rows(gy, w2.transpose(1, 2), g), pre);
      auto gw1 = grouped_mm_over_rows(xs.t(), gpre, g);  // [E, d, u]
      auto gb1 = grouped_row_sums(gpre, g);
      auto gx = grouped_mm_rows(gpre, w1.transpose(1, 2), g);
      return {gx, gw1, gb1, gw2, gb2, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    auto gx = torch::empty_like(xs);
    // Every expert's slice is written below (an expert without rows gets zeros), so no
    // zero-filled buffers that the matmuls would then overwrite.
    auto gw1 = torch::empty_like(w1), gw2 = torch::empty_like(w2);
    auto gb1 = torch::empty({w1.size(0), w1.size(2)}, w1.options());
    auto gb2 = torch::empty({w2.size(0), w2.size(2)}, w2.options());
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] > 0) continue;
      for (auto* g : {&gw1, &gb1, &gw2, &gb2}) (*g)[static_cast<int64_t>(e)].zero_();
    }
    const int64_t rows_dim[] = {0};
    for_each_expert(counts, xs.device().is_cpu(), [&](int64_t e, int64_t off) {
      const int64_t n = counts[e];
      auto gy_e = gy.narrow(0, off, n);
      auto gw2_e = gw2[e];
      at::mm_out(gw2_e, hid.narrow(0, off, n).t(), gy_e);
      auto gb2_e = gb2[e];
      at::sum_out(gb2_e, gy_e, at::IntArrayRef(rows_dim));
      auto gpre = activation_backward(act, gy_e.mm(w2[e].t()), pre.narrow(0, off, n));
      auto gw1_e = gw1[e];
      at::mm_out(gw1_e, xs.narrow(0, off, n).t(), gpre);
      auto gb1_e = gb1[e];
      at::sum_out(gb1_e, gpre, at::IntArrayRef(rows_dim));
      auto gx_e = gx.narrow(0, off, n);
      at::mm_out(gx_e, gpre, w1[e].t());
    });
    return {gx, gw1, gb1, gw2, gb2, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gather_rows(const torch::Tensor& x, const DispatchPlan& plan) {
  return GatherRows::apply(x, plan.token_index, plan.slot_index);
}

torch::Tensor grouped_ffn(const torch::Tensor& xs, const torch::Tensor& w1, const torch::Tensor& b1,
                          const torch::Tensor& w2, const torch::Tensor& b2,
                          const std::vector<int64_t>& counts, Activation activation,
                          ExpertMatmuls how) {
  // Under autocast (train.precision = "bf16") the expert matmuls run in its dtype: the
  // inputs and (fp32 master) weights are cast, differentiably, and the output is cast back.
  if (const auto dtype = compat::autocast_matmul_dtype(xs); dtype && *dtype != xs.scalar_type()) {
    compat::NoAutocast explicit_casts;
    return GroupedFFN::apply(xs.to(*dtype), w1.to(*dtype), b1.to(*dtype), w2.to(*dtype),
                             b2.to(*dtype), counts, static_cast<int64_t>(activation),
                             static_cast<int64_t>(how))
        .to(xs.scalar_type());
  }
  return GroupedFFN::apply(xs, w1, b1, w2, b2, counts, static_cast<int64_t>(activation),
                           static_cast<int64_t>(how));
}

bool grouped_kernel_applies(const torch::Tensor& xs, const torch::Tensor& w1,
                            const torch::Tensor& w2) {
#if MOE_HAVE_GROUPED_MM
  const auto dtype = compat::autocast_matmul_dtype(xs).value_or(xs.scalar_type());
  return xs.is_cuda() && xs.size(0) > 0 && dtype == torch::kBFloat16 && w2.size(2) % 8 == 0 &&
         w1.size(2) % 8 == 0 && w2.size(1) % 8 == 0;
#else
  (void)xs, (void)w1, (void)w2;
  return false;
#endif
}

torch::Tensor combine_rows(const torch::Tensor& ys, const torch::Tensor& weight,
                           const DispatchPlan& plan, int64_t tokens) {
  TORCH_INTERNAL_ASSERT(plan.slot_index.size(0) == tokens);
  // The output takes the router weights' dtype (fp32 under bf16 autocast).
  return CombineRows::apply(ys.to(weight.scalar_type()), weight, plan.token_index, plan.slot_index);
}

}  // namespace moe
