#include "core/train/evaluator.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>

namespace moe {

std::vector<double> EvalResult::mean_experts() const {
  std::vector<double> out;
  for (const auto& l : layers) out.push_back(l.mean_experts());
  return out;
}

torch::Tensor task_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

EvalResult evaluate(Transformer& model, Task& task, Split split, int64_t batch_size,
                    int64_t max_batches, const torch::Device& device) {
  const bool was_training = model->is_training();
  model->eval();
  model->set_collect_stats(true);
  torch::NoGradGuard no_grad;
  const auto& info = task.info();
  const int64_t levels = static_cast<int64_t>(info.difficulty_levels.size());
  auto batches = task.eval_batches(split, batch_size, max_batches);

  EvalResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<int64_t> level_correct(levels, 0);
  r.level_count.assign(levels, 0);
  const auto start = std::chrono::steady_clock::now();
  for (const auto& host : batches) {
    auto b = host.to(device);
    auto logits = model->forward(b.tokens, b.features, b.pad_mask);
    auto flat_logits = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat);
    auto targets = b.targets.reshape({-1});
    auto keep = targets.ne(-100);
    auto ce = torch::nn::functional::cross_entropy(
        flat_logits, targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(
            torch::kSum));
    auto right = flat_logits.argmax(-1).eq(targets).logical_and(keep);
    loss_sum += ce.item<double>();
    correct += right.sum().item<int64_t>();
    r.targets += keep.sum().item<int64_t>();
    r.tokens += b.tokens.numel() - (b.pad_mask.defined() ? b.pad_mask.sum().item<int64_t>() : 0);
    if (levels > 0) {
      auto diff = b.difficulty.reshape({-1});
      auto valid = diff.ge(0).logical_and(keep);
      auto lv = diff.masked_select(valid);
      auto count = torch::bincount(lv, {}, levels).to(torch::kCPU);
      auto hit = torch::bincount(diff.masked_select(valid.logical_and(right)), {}, levels)
                     .to(torch::kCPU);
      for (int64_t i = 0; i < levels; ++i) {
        r.level_count[i] += count[i].item<int64_t>();
        level_correct[i] += hit[i].item<int64_t>();
      }
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_s = r.seconds > 0 ? r.tokens / r.seconds : 0;
  r.loss = r.targets ? loss_sum / r.targets : std::numeric_limits<double>::quiet_NaN();
  r.accuracy = r.targets ? double(correct) / r.targets : std::numeric_limits<double>::quiet_NaN();
  r.perplexity = std::exp(r.loss);
  for (int64_t i = 0; i < levels; ++i) {
    r.level_accuracy.push_back(r.level_count[i] ? double(level_correct[i]) / r.level_count[i]
                                                : std::numeric_limits<double>::quiet_NaN());
  }
  for (const auto& layer : model->moe_layers()) r.layers.push_back(layer->stats());
  model->set_collect_stats(false);
  const auto k = r.mean_experts();
  r.active_params = model->active_params(k);
  r.flops_per_token = model->flops_per_token(k, info.seq_len);
  if (was_training) model->train();
  return r;
}

}  // namespace moe
