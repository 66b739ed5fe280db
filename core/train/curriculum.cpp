#include "core/train/curriculum.h"

#include <torch/torch.h>

#include <algorithm>

namespace moe {

std::vector<int64_t> curriculum_order(const torch::Tensor& complexity, double eps,
                                      const std::vector<int64_t>& base) {
  TORCH_CHECK(complexity.dim() == 2, "curriculum: expected complexity [N, L], got ",
              complexity.sizes());
  const int64_t n = complexity.size(0);
  TORCH_CHECK(static_cast<int64_t>(base.size()) == n, "curriculum: base order has ", base.size(),
              " ids for ", n, " samples");
  if (n == 0) return {};
  auto c = complexity.to(torch::kCPU, torch::kDouble).contiguous();
  auto l1 = c.abs().sum(1);
  const int64_t anchor = l1.argmin().item<int64_t>();  // first of the least complex
  auto a = c[anchor];
  const double a_norm = a.norm().item<double>();
  std::vector<double> key(n);
  if (a_norm == 0) {
    auto acc = l1.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) key[i] = acc[i];  // ascending L1
  } else {
    auto sim = c.matmul(a) / (c.norm(2, 1) * a_norm + eps);
    auto acc = sim.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) key[i] = -acc[i];  // descending similarity
  }
  std::vector<int64_t> order = base;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return key[x] < key[y]; });
  return order;
}

torch::Tensor multi_expert_fraction(const torch::Tensor& experts_per_token, int64_t batch,
                                    const torch::Tensor& pad_mask) {
  auto used = experts_per_token.reshape({batch, -1});
  auto real = pad_mask.defined() ? pad_mask.logical_not() : torch::ones_like(used, torch::kBool);
  auto multi = used.ge(2).logical_and(real).sum(1).to(torch::kFloat);
  return multi / real.sum(1).clamp_min(1).to(torch::kFloat);
}

}  // namespace moe
