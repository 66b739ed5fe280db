#include "core/train/evaluator.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>

namespace moe {

std::vector<double> routing_fluctuation(const EvalResult& before, const EvalResult& now) {
  std::vector<double> out;
  if (before.probe_top1.size() != now.probe_top1.size()) return out;
  for (size_t l = 0; l < now.probe_top1.size(); ++l) {
    const auto& a = before.probe_top1[l];
    const auto& b = now.probe_top1[l];
    if (a.numel() == 0 || a.sizes() != b.sizes()) return {};
    out.push_back(a.ne(b).to(torch::kDouble).mean().item<double>());
  }
  return out;
}

std::vector<double> EvalResult::mean_experts() const {
  std::vector<double> out;
  for (const auto& l : layers) out.push_back(l.mean_experts());
  return out;
}

std::optional<double> EvalResult::mean_experts_over_layers() const {
  if (layers.empty()) return std::nullopt;
  double k = 0;
  for (double v : mean_experts()) k += v;
  return k / static_cast<double>(layers.size());
}

torch::Tensor task_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

double spearman_from_table(const std::vector<std::vector<double>>& table) {
  const size_t nx = table.size(), ny = nx ? table[0].size() : 0;
  std::vector<double> row(nx, 0.0), col(ny, 0.0);
  double n = 0;
  for (size_t i = 0; i < nx; ++i) {
    for (size_t j = 0; j < ny; ++j) {
      row[i] += table[i][j];
      col[j] += table[i][j];
      n += table[i][j];
    }
  }
  // Mean rank (1-based) of each value: the ranks before it plus the middle of its own.
  auto mean_ranks = [](const std::vector<double>& counts) {
    std::vector<double> r(counts.size());
    double before = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      r[i] = before + (counts[i] + 1) / 2;
      before += counts[i];
    }
    return r;
  };
  const auto rx = mean_ranks(row), ry = mean_ranks(col);
  const double mean = (n + 1) / 2;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < nx; ++i) sxx += row[i] * (rx[i] - mean) * (rx[i] - mean);
  for (size_t j = 0; j < ny; ++j) syy += col[j] * (ry[j] - mean) * (ry[j] - mean);
  for (size_t i = 0; i < nx; ++i) {
    for (size_t j = 0; j < ny; ++j) sxy += table[i][j] * (rx[i] - mean) * (ry[j] - mean);
  }
  if (sxx <= 0 || syy <= 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

namespace {

/// tables[l][level][experts]: token counts; the last table sums experts over layers.
using Tables = std::vector<std::vector<std::vector<double>>>;

void add_to_table(std::vector<std::vector<double>>& table, const std::vector<int64_t>& level,
                  const std::vector<int64_t>& experts) {
  for (size_t t = 0; t < level.size(); ++t) {
    auto& row = table[level[t]];
    if (static_cast<int64_t>(row.size()) <= experts[t]) {
      for (auto& r : table) r.resize(experts[t] + 1, 0.0);
    }
    row[experts[t]] += 1;
  }
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

/// Counts (level, experts used) pairs of this batch's targeted tokens in every MoE layer.
void add_routing_by_level(const std::vector<LayerTrace>& traces, const torch::Tensor& difficulty,
                          const torch::Tensor& keep, Tables& tables, int64_t levels) {
  if (traces.empty()) return;
  auto diff = difficulty.reshape({-1});
  if (diff.numel() != traces[0].token_experts.numel()) return;  // e.g. cls tasks
  auto valid = diff.ge(0).logical_and(keep.reshape({-1}));
  if (tables.empty()) tables.assign(traces.size() + 1, std::vector<std::vector<double>>(levels));
  const auto lv = to_vector(diff.masked_select(valid));
  torch::Tensor total;
  for (size_t l = 0; l < traces.size(); ++l) {
    auto used = traces[l].token_experts.masked_select(valid);
    total = total.defined() ? total + used : used;
    add_to_table(tables[l], lv, to_vector(used));
  }
  add_to_table(tables.back(), lv, to_vector(total));
}

/// Mean of the column index (experts) in each row (level); NaN for empty rows.
std::vector<double> row_means(const std::vector<std::vector<double>>& table) {
  std::vector<double> out;
  for (const auto& row : table) {
    double n = 0, sum = 0;
    for (size_t e = 0; e < row.size(); ++e) {
      n += row[e];
      sum += row[e] * static_cast<double>(e);
    }
    out.push_back(n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

}  // namespace

EvalResult evaluate(Transformer& model, Task& task, Split split, int64_t batch_size,
                    int64_t max_batches, const torch::Device& device) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto& info = task.info();
  const int64_t levels = static_cast<int64_t>(info.difficulty_levels.size());
  auto batches = task.eval_batches(split, batch_size, max_batches);

  EvalResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<int64_t> level_correct(levels, 0);
  r.level_count.assign(levels, 0);
  Tables tables;
  r.layers.resize(model->moe_layers().size());
  const auto start = std::chrono::steady_clock::now();
  for (const auto& host : batches) {
    auto b = host.to(device);
    auto out = model->forward(b.tokens, b.features, b.pad_mask);
    for (size_t l = 0; l < out.traces.size(); ++l) r.layers[l].add(out.traces[l]);
    if (r.probe_top1.empty()) {
      for (const auto& t : out.traces) r.probe_top1.push_back(t.router_probs.argmax(1).cpu());
    }
    const auto& logits = out.logits;
    auto flat_logits = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat);
    auto targets = b.targets.reshape({-1});
    auto keep = targets.ne(-100);
    auto ce = torch::nn::functional::cross_entropy(
        flat_logits, targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
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
      auto hit =
          torch::bincount(diff.masked_select(valid.logical_and(right)), {}, levels).to(torch::kCPU);
      for (int64_t i = 0; i < levels; ++i) {
        r.level_count[i] += count[i].item<int64_t>();
        level_correct[i] += hit[i].item<int64_t>();
      }
      add_routing_by_level(out.traces, b.difficulty, keep, tables, levels);
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
  if (!tables.empty()) {
    for (size_t l = 0; l + 1 < tables.size(); ++l) {
      r.level_experts.push_back(row_means(tables[l]));
      r.layer_difficulty_spearman.push_back(spearman_from_table(tables[l]));
    }
    r.level_experts_all = row_means(tables.back());
    for (auto& v : r.level_experts_all) v /= static_cast<double>(tables.size() - 1);
    r.difficulty_spearman = spearman_from_table(tables.back());
  }
  const auto k = r.mean_experts();
  r.active_params = model->active_params(k);
  r.nonembed_active_params = r.active_params - static_cast<double>(model->embedding_params());
  r.flops = model->flops_breakdown(k, info.seq_len);
  r.flops_per_token = r.flops.total();
  if (was_training) model->train();
  return r;
}

}  // namespace moe
