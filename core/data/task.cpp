#include "core/data/task.h"

#include <torch/torch.h>

#include <random>

#include "core/config_error.h"

namespace moe {

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kValid:
      return "valid";
    case Split::kTest:
      return "test";
  }
  return "?";
}

torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
  if (device.is_cuda() && t.device().is_cpu()) {
    return t.pin_memory().to(device, /*non_blocking=*/true);
  }
  return t.to(device);
}

Batch Batch::to(const torch::Device& device) const {
  Batch b;
  b.tokens = to_device(tokens, device);
  if (features.defined()) b.features = to_device(features, device);
  b.targets = to_device(targets, device);
  b.difficulty = to_device(difficulty, device);
  if (pad_mask.defined()) b.pad_mask = to_device(pad_mask, device);
  return b;
}

int64_t Batch::num_targets() const { return targets.ne(-100).sum().item<int64_t>(); }

TaskRegistry& task_registry() {
  static auto* registry = new TaskRegistry("task");
  return *registry;
}

bool task_is_causal(const std::string& name) {
  return task_registry().entry(name).facts.causal;  // unknown task: lists the known ones
}

void check_task_options(const PluginSpec& spec) {
  const auto& entry = task_registry().entry(spec.name());  // unknown: lists the known
  check_ranges(spec, entry.params);
  entry.facts.check_options(spec);
  spec.check_all_read();
}

std::shared_ptr<Task> make_task(const PluginSpec& spec, const TaskContext& ctx) {
  check_ranges(spec, task_registry().entry(spec.name()).params);
  auto task = task_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  return task;
}

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Batch StreamTask::make_batch(const Stream& s, const std::vector<int64_t>& starts) const {
  const int64_t b = static_cast<int64_t>(starts.size()), len = info_.seq_len;
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  auto tokens = torch::zeros({b, len}, torch::kLong);
  auto targets = torch::full({b, len}, -100, torch::kLong);
  auto diff = torch::full({b, len}, -1, torch::kLong);
  auto pad = torch::zeros({b, len}, torch::kBool);
  torch::Tensor feats;
  if (num_features_ > 0) feats = torch::zeros({b, len, num_features_}, torch::kLong);
  auto tk = tokens.accessor<int64_t, 2>(), tg = targets.accessor<int64_t, 2>();
  auto df = diff.accessor<int64_t, 2>();
  auto pd = pad.accessor<bool, 2>();
  int64_t* fp = num_features_ > 0 ? feats.data_ptr<int64_t>() : nullptr;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < len; ++j) {
      const int64_t p = starts[i] + j;
      if (p >= n) {
        pd[i][j] = true;
        continue;
      }
      tk[i][j] = s.tokens[p];
      tg[i][j] = s.targets[p];
      df[i][j] = s.difficulty[p];
      for (int64_t f = 0; f < num_features_; ++f) {
        fp[(i * len + j) * num_features_ + f] = s.features[p * num_features_ + f];
      }
    }
  }
  Batch batch{tokens, feats, targets, diff, {}};
  if (pd[b - 1][len - 1]) batch.pad_mask = pad;  // only the last window can run short
  return batch;
}

Batch StreamTask::train_batch(uint64_t seed, int64_t step, int64_t batch_size) {
  const auto& s = streams_[static_cast<int>(Split::kTrain)];
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  TORCH_CHECK(n > info_.seq_len, "task '", info_.name, "': training split has only ", n,
              " tokens, fewer than seq_len ", info_.seq_len);
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(step)));
  std::uniform_int_distribution<int64_t> pick(0, n - info_.seq_len);
  std::vector<int64_t> starts(batch_size);
  for (auto& st : starts) st = pick(rng);
  return make_batch(s, starts);
}

Batch Task::train_samples(const std::vector<int64_t>& /*ids*/) {
  throw ConfigError::text("task '" + info().name + "'", "train.sampling",
                          "has no fixed training pool; use train.sampling = \"iid\"");
}

int64_t StreamTask::num_train_samples() const {
  const int64_t n = static_cast<int64_t>(streams_[static_cast<int>(Split::kTrain)].tokens.size());
  return n >= info_.seq_len ? (n - info_.seq_len) / info_.seq_len + 1 : 0;
}

Batch StreamTask::train_samples(const std::vector<int64_t>& ids) {
  const int64_t size = num_train_samples();
  std::vector<int64_t> starts;
  for (int64_t id : ids) {
    TORCH_CHECK(id >= 0 && id < size, "task '", info_.name, "': sample id ", id,
                " outside the training pool [0, ", size, ")");
    starts.push_back(id * info_.seq_len);
  }
  return make_batch(streams_[static_cast<int>(Split::kTrain)], starts);
}

std::vector<Batch> StreamTask::eval_batches(Split split, int64_t batch_size, int64_t max_batches) {
  const auto& s = streams_[static_cast<int>(split)];
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  std::vector<Batch> out;
  std::vector<int64_t> starts;
  for (int64_t p = 0; p < n; p += info_.seq_len) {
    starts.push_back(p);
    if (static_cast<int64_t>(starts.size()) == batch_size || p + info_.seq_len >= n) {
      out.push_back(make_batch(s, starts));
      starts.clear();
      if (max_batches > 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    }
  }
  return out;
}

}  // namespace moe
