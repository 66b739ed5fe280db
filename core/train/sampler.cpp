#include "core/train/sampler.h"

#include <torch/torch.h>

#include <numeric>
#include <random>

#include "core/config_error.h"
#include "core/train/curriculum.h"

namespace moe {

BatchSampler::BatchSampler(Task& task, const TrainOptions& options, uint64_t seed,
                           int64_t moe_layers)
    : task_(task), options_(options), seed_(seed), layers_(moe_layers) {
  if (options_.sampling == Sampling::kIid) return;
  pool_ = task_.num_train_samples();
  const std::string sampling = "train.sampling = \"" + sampling_name(options_.sampling) + "\"";
  if (pool_ <= 0) {
    throw ConfigError::text(
        "", "train.sampling",
        sampling + ": task '" + task_.info().name + "' has no fixed training pool; use \"iid\"");
  }
  if (pool_ < options_.batch_size) {
    throw ConfigError::text("", "train.sampling",
                            sampling + ": the training pool (" + std::to_string(pool_) +
                                " samples) is smaller than train.batch_size (" +
                                std::to_string(options_.batch_size) + ")");
  }
}

void BatchSampler::start_epoch(int64_t epoch) {
  std::vector<int64_t> base(pool_);
  std::iota(base.begin(), base.end(), 0);
  std::mt19937_64 rng(mix_seed(seed_ ^ 0x6570636fULL, static_cast<uint64_t>(epoch)));
  std::shuffle(base.begin(), base.end(), rng);
  const bool curriculum = options_.sampling == Sampling::kCurriculum && layers_ > 0;
  if (curriculum && complexity_.defined() && epoch == epoch_ + 1) {
    // Samples the last epoch did not reach (the remainder of a partial batch) have no
    // complexity: they go first, so they are not left out again.
    std::vector<int64_t> unseen, seen;
    for (int64_t id : base) (seen_[id] ? seen : unseen).push_back(id);
    // The one read of the epoch's routing back to the host.
    auto sub = complexity_.to(torch::kCPU).index_select(0, torch::tensor(seen, torch::kLong));
    std::vector<int64_t> local(seen.size());
    std::iota(local.begin(), local.end(), 0);
    order_ = std::move(unseen);
    for (int64_t i : curriculum_order(sub, options_.curriculum_eps, local)) {
      order_.push_back(seen[i]);
    }
  } else {
    order_ = std::move(base);
  }
  if (curriculum) {
    // Kept where the routing is (the model's device), so recording it costs no sync.
    const auto device = complexity_.defined() ? complexity_.device() : torch::Device(torch::kCPU);
    complexity_ =
        torch::zeros({pool_, layers_}, torch::TensorOptions(torch::kFloat).device(device));
    seen_.assign(pool_, false);
  }
  epoch_ = epoch;
}

Batch BatchSampler::batch(int64_t step) {
  const int64_t b = options_.batch_size;
  if (options_.sampling == Sampling::kIid) return task_.train_batch(seed_, step, b);
  const int64_t per_epoch = pool_ / b;
  const int64_t epoch = step / per_epoch, at = (step % per_epoch) * b;
  if (epoch != epoch_) start_epoch(epoch);
  ids_.assign(order_.begin() + at, order_.begin() + at + b);
  return task_.train_samples(ids_);
}

void BatchSampler::save(torch::serialize::OutputArchive& archive) const {
  if (options_.sampling == Sampling::kIid || epoch_ < 0) return;
  archive.write("sampler.epoch", torch::tensor(epoch_));
  archive.write("sampler.order", torch::tensor(order_, torch::kLong));
  if (complexity_.defined()) {
    archive.write("sampler.complexity", complexity_.to(torch::kCPU));
    std::vector<uint8_t> seen(seen_.begin(), seen_.end());
    archive.write("sampler.seen", torch::tensor(seen, torch::kUInt8));
  }
}

void BatchSampler::load(torch::serialize::InputArchive& archive) {
  torch::Tensor epoch, order, complexity, seen;
  if (options_.sampling == Sampling::kIid || !archive.try_read("sampler.epoch", epoch)) return;
  archive.read("sampler.order", order);
  TORCH_CHECK(order.numel() == pool_, "checkpoint: the sampler's order has ", order.numel(),
              " samples, the task's training pool ", pool_);
  epoch_ = epoch.item<int64_t>();
  order = order.contiguous();
  order_.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
  if (archive.try_read("sampler.complexity", complexity)) {
    archive.read("sampler.seen", seen);
    complexity_ = complexity;
    seen = seen.contiguous();
    seen_.assign(seen.data_ptr<uint8_t>(), seen.data_ptr<uint8_t>() + seen.numel());
  }
}

void BatchSampler::record_routing(const std::vector<LayerTrace>& traces, const Batch& batch) {
  if (options_.sampling != Sampling::kCurriculum || traces.empty()) return;
  TORCH_CHECK(static_cast<int64_t>(traces.size()) == layers_, "curriculum: expected ", layers_,
              " MoE layers, got ", traces.size());
  const auto device = traces[0].token_experts.device();
  if (complexity_.device() != device) complexity_ = complexity_.to(device);
  auto ids = to_device(torch::tensor(ids_, torch::kLong), device);
  const int64_t b = batch.tokens.size(0);
  for (int64_t l = 0; l < layers_; ++l) {
    auto r = multi_expert_fraction(traces[l].token_experts, b, batch.pad_mask);
    complexity_.select(1, l).index_copy_(0, ids, r.to(complexity_.scalar_type()));
  }
  for (int64_t id : ids_) seen_[id] = true;
}

}  // namespace moe
