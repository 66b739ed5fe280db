#pragma once
// What the training loop does to parameters and gradients, apart from the loop: the AdamW
// optimizer with its parameter groups, gradient clipping without a host read, and dropping
// gradients between steps.
#include <torch/optim/adamw.h>
#include <torch/ordered_dict.h>

#include <memory>
#include <string>
#include <vector>

#include "core/train/config.h"

namespace moe {

/// AdamW (betas 0.9, 0.98) at train.lr over the trainable parameters. Adapter scale and bias
/// vectors ((IA)^3 / MoV scales start at 1; weight decay would pull them to 0) get no weight
/// decay: a second parameter group, only when there is one; everything else decays by
/// train.weight_decay.
std::unique_ptr<torch::optim::AdamW> make_optimizer(
    const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
    const TrainOptions& train);

/// torch::nn::utils::clip_grad_norm_ without its host read: the total 2-norm of the
/// parameters' gradients as a scalar on their device; when max_norm > 0 each gradient is
/// scaled by min(1, max_norm / (norm + 1e-6)) on the device (the same arithmetic).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

/// Drops the parameters' gradients (LibTorch 2.x's zero_grad() default; 1.13's zeroes them),
/// so the next backward hands its buffers over instead of adding into zero-filled ones, and
/// AdamW skips a parameter that gets no gradient, under either version.
void drop_grads(const std::vector<torch::Tensor>& parameters);

}  // namespace moe
