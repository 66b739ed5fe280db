// The fused expert kernels (core/grouped_ffn.h): the grouped formulation against per-expert
// matmuls, and the grouped kernel on CUDA.
#include "core/grouped_ffn.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <iostream>

#include "core/compat.h"
#include "core/experts.h"
#include "core/train/device.h"

namespace moe {
namespace {

// grouped_ffn's operands and gradients for one case: rows sorted by expert, `counts` rows per
// expert, d = 8, h = 16 (kernel-aligned), in `options`.

struct FFNCase {
  torch::Tensor xs, w1, b1, w2, b2, grad;
  std::vector<int64_t> counts;
};

FFNCase ffn_case(Activation act, torch::TensorOptions options) {
  torch::manual_seed(11);
  FFNCase c;
  c.counts = {3, 0, 5, 1};  // expert 1 gets no rows
  const int64_t rows = 9, d = 8, h = 16, u = up_width(act, h), e = 4;
  auto make = [&](std::vector<int64_t> shape) {
    return torch::randn(shape).to(options).requires_grad_();
  };
  c.xs = make({rows, d});
  c.w1 = make({e, d, u});
  c.b1 = make({e, u});
  c.w2 = make({e, h, d});
  c.b2 = make({e, d});
  c.grad = torch::randn({rows, d}).to(options);
  return c;
}

std::vector<torch::Tensor> run_ffn(const FFNCase& c, Activation act, ExpertMatmuls how) {
  auto y = grouped_ffn(c.xs, c.w1, c.b1, c.w2, c.b2, c.counts, act, how);
  auto grads = torch::autograd::grad({y}, {c.xs, c.w1, c.b1, c.w2, c.b2}, {c.grad});
  grads.insert(grads.begin(), y.detach());
  return grads;
}

TEST(GroupedFFN, GroupedFormulationMatchesPerExpertMatmuls) {
  // The grouped path (at::_grouped_mm's layout: offsets, transposed weights, bias rows,
  // bias gradients as a matmul with ones) with its per-expert stand-in, against the
  // per-expert matmuls; an expert without rows gets zero gradients either way.
  for (const std::string name : {"gelu", "relu", "swiglu"}) {
    SCOPED_TRACE(name);
    const auto act = parse_activation(name);
    auto c = ffn_case(act, torch::kFloat);
    auto grouped = run_ffn(c, act, ExpertMatmuls::kGrouped);
    auto per_expert = run_ffn(c, act, ExpertMatmuls::kPerExpert);
    const char* what[] = {"y", "gx", "gw1", "gb1", "gw2", "gb2"};
    for (size_t i = 0; i < grouped.size(); ++i) {
      EXPECT_TRUE(torch::allclose(grouped[i], per_expert[i], 1e-5, 1e-5)) << what[i];
    }
    for (size_t i = 2; i < grouped.size(); ++i) {
      EXPECT_TRUE(grouped[i][1].eq(0).all().item<bool>()) << "expert 1's " << what[i];
    }
  }
  EXPECT_FALSE(grouped_kernel_applies(torch::zeros({4, 8}), torch::zeros({2, 8, 16}),
                                      torch::zeros({2, 16, 8})))
      << "the kernel is for CUDA bf16 only";
}

TEST(GroupedFFN, GroupedKernelMatchesPerExpertInBf16WithoutHostSyncs_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA absent";
  const auto options = torch::TensorOptions(torch::kCUDA).dtype(torch::kBFloat16);
  for (const std::string name : {"gelu", "swiglu"}) {
    SCOPED_TRACE(name);
    const auto act = parse_activation(name);
    auto c = ffn_case(act, options);
    EXPECT_EQ(grouped_kernel_applies(c.xs, c.w1, c.w2), bool(MOE_HAVE_GROUPED_MM));
    auto kernel = run_ffn(c, act, ExpertMatmuls::kAuto);
    auto per_expert = run_ffn(c, act, ExpertMatmuls::kPerExpert);
    const char* what[] = {"y", "gx", "gw1", "gb1", "gw2", "gb2"};
    for (size_t i = 0; i < kernel.size(); ++i) {
      EXPECT_TRUE(
          torch::allclose(kernel[i].to(torch::kFloat), per_expert[i].to(torch::kFloat), 3e-2, 3e-2))
          << what[i];
      if (i >= 2) {
        EXPECT_TRUE(kernel[i][1].eq(0).all().item<bool>()) << "expert 1's " << what[i];
      }
    }
    run_ffn(c, act, ExpertMatmuls::kAuto);  // warm-up
    const auto syncs = count_cuda_syncs([&] { run_ffn(c, act, ExpertMatmuls::kAuto); });
    if (MOE_HAVE_GROUPED_MM) {
      EXPECT_EQ(syncs, 0) << "the grouped kernel path reads nothing back";
    }
    std::cout << "[ grouped  ] " << name << ": kernel " << MOE_HAVE_GROUPED_MM << ", " << syncs
              << " host syncs in forward + backward\n";
  }
}

}  // namespace
}  // namespace moe
