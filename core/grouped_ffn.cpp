#include "core/grouped_ffn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>

#include "core/compat.h"

namespace moe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool cpu_fast_path(const torch::Tensor& t) {
  return t.device().is_cpu() &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
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
        scalar_t* row = o + t * d;
        for (int64_t j = 0; j < slots; ++j) {
          const int64_t s = ix[t * slots + j];
          if (s < 0) continue;
          const scalar_t w = sc ? sc[s] : scalar_t(1);
          const scalar_t* r = in + s * d;
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
          const scalar_t* gr = g + tok[s] * d;
          const scalar_t* yr = y + s * d;
          scalar_t* out = gy + s * d;
          scalar_t dot = 0;
          for (int64_t c = 0; c < d; ++c) {
            out[c] = w[s] * gr[c];
            dot += gr[c] * yr[c];
          }
          gw[s] = dot;
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
  auto halves = pre.chunk(2, 1);
  return torch::cat({at::silu_backward(g * halves[1], halves[0]), g * torch::silu(halves[0])}, 1);
}

struct GroupedFFN : public torch::autograd::Function<GroupedFFN> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& xs,
                               const torch::Tensor& w1, const torch::Tensor& b1,
                               const torch::Tensor& w2, const torch::Tensor& b2,
                               const std::vector<int64_t>& counts, int64_t act_code) {
    const auto act = static_cast<Activation>(act_code);
    const int64_t rows = xs.size(0), d = w2.size(2), u = w1.size(2), h = w2.size(1);
    auto pre = torch::empty({rows, u}, xs.options());
    auto hid = torch::empty({rows, h}, xs.options());
    auto ys = torch::empty({rows, d}, xs.options());
    for_each_expert(counts, xs.device().is_cpu(), [&](int64_t e, int64_t off) {
      const int64_t n = counts[e];
      auto pre_e = pre.narrow(0, off, n);
      at::addmm_out(pre_e, b1[e], xs.narrow(0, off, n), w1[e]);
      hid.narrow(0, off, n).copy_(apply_activation(act, pre_e));
      auto ys_e = ys.narrow(0, off, n);
      at::addmm_out(ys_e, b2[e], hid.narrow(0, off, n), w2[e]);
    });
    ctx->save_for_backward({xs, w1, w2, pre, hid});
    ctx->saved_data["counts"] = counts;
    ctx->saved_data["act"] = act_code;
    return ys;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &xs = saved[0], &w1 = saved[1], &w2 = saved[2], &pre = saved[3], &hid = saved[4];
    const auto counts = ctx->saved_data["counts"].toIntVector();
    const auto act = static_cast<Activation>(ctx->saved_data["act"].toInt());
    auto gy = grads[0].contiguous();
    auto gx = torch::empty_like(xs);
    auto gw1 = torch::zeros_like(w1), gw2 = torch::zeros_like(w2);
    auto gb1 = torch::zeros({w1.size(0), w1.size(2)}, w1.options());
    auto gb2 = torch::zeros({w2.size(0), w2.size(2)}, w2.options());
    for_each_expert(counts, xs.device().is_cpu(), [&](int64_t e, int64_t off) {
      const int64_t n = counts[e];
      auto gy_e = gy.narrow(0, off, n);
      auto gw2_e = gw2[e];
      at::mm_out(gw2_e, hid.narrow(0, off, n).t(), gy_e);
      gb2[e].copy_(gy_e.sum(0));
      auto gpre = activation_backward(act, gy_e.mm(w2[e].t()), pre.narrow(0, off, n));
      auto gw1_e = gw1[e];
      at::mm_out(gw1_e, xs.narrow(0, off, n).t(), gpre);
      gb1[e].copy_(gpre.sum(0));
      auto gx_e = gx.narrow(0, off, n);
      at::mm_out(gx_e, gpre, w1[e].t());
    });
    return {gx, gw1, gb1, gw2, gb2, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gather_rows(const torch::Tensor& x, const DispatchPlan& plan) {
  return GatherRows::apply(x, plan.token_index, plan.slot_index);
}

torch::Tensor grouped_ffn(const torch::Tensor& xs, const torch::Tensor& w1, const torch::Tensor& b1,
                          const torch::Tensor& w2, const torch::Tensor& b2,
                          const std::vector<int64_t>& counts, Activation activation) {
  // Under autocast (train.precision = "bf16") the expert matmuls run in its dtype: the
  // inputs and (fp32 master) weights are cast, differentiably, and the output is cast back.
  if (const auto dtype = compat::autocast_matmul_dtype(xs); dtype && *dtype != xs.scalar_type()) {
    compat::NoAutocast explicit_casts;
    return GroupedFFN::apply(xs.to(*dtype), w1.to(*dtype), b1.to(*dtype), w2.to(*dtype),
                             b2.to(*dtype), counts, static_cast<int64_t>(activation))
        .to(xs.scalar_type());
  }
  return GroupedFFN::apply(xs, w1, b1, w2, b2, counts, static_cast<int64_t>(activation));
}

torch::Tensor combine_rows(const torch::Tensor& ys, const torch::Tensor& weight,
                           const DispatchPlan& plan, int64_t tokens) {
  TORCH_INTERNAL_ASSERT(plan.slot_index.size(0) == tokens);
  // The output takes the router weights' dtype (fp32 under bf16 autocast).
  return CombineRows::apply(ys.to(weight.scalar_type()), weight, plan.token_index, plan.slot_index);
}

}  // namespace moe
