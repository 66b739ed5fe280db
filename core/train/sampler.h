#pragma once
// BatchSampler: where the trainer's batches come from (train.sampling).
//   iid        task.train_batch(seed, step): fresh samples, a pure function of (seed, step)
//   epochs     the task's fixed training pool, reshuffled every epoch from (seed, epoch);
//              an epoch is floor(pool / batch_size) steps (the remainder waits)
//   curriculum as epochs for the first epoch; every later epoch is ordered by the routing
//              complexity recorded during the one before (core/train/curriculum.h)
// Resuming from a checkpoint replays every mode exactly: iid and epochs are pure functions
// of (seed, step); the curriculum's current order and the complexities recorded so far in
// its epoch are checkpointed (save / load).
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <vector>

#include "core/data/task.h"
#include "core/trace.h"
#include "core/train/config.h"

namespace moe {

class BatchSampler {
 public:
  /// Throws naming train.sampling when the task has no pool or it is smaller than a batch.
  BatchSampler(Task& task, const TrainOptions& options, uint64_t seed, int64_t moe_layers);

  /// The batch of a training step (steps are visited in increasing order).
  Batch batch(int64_t step);
  /// After the forward pass of the last batch, with its traces (one per MoE layer): the
  /// curriculum records each sample's per-layer fraction of multi-expert tokens. A no-op
  /// in the other modes.
  void record_routing(const std::vector<LayerTrace>& traces, const Batch& batch);

  /// The state a continuation needs (pool modes), under keys "sampler.*".
  void save(torch::serialize::OutputArchive& archive) const;
  /// Reads what save wrote; a checkpoint without it (iid, or written before the curriculum
  /// state was kept) leaves the sampler as built.
  void load(torch::serialize::InputArchive& archive);

  /// Sample ids of the last batch (pool modes; empty for iid).
  const std::vector<int64_t>& last_ids() const { return ids_; }
  /// The visiting order of the current epoch (pool modes).
  const std::vector<int64_t>& order() const { return order_; }

 private:
  void start_epoch(int64_t epoch);

  Task& task_;
  TrainOptions options_;
  uint64_t seed_;
  int64_t layers_, pool_ = 0, epoch_ = -1;
  std::vector<int64_t> order_, ids_;
  torch::Tensor complexity_;  ///< [pool, layers] float, on the model's device
  std::vector<bool> seen_;    ///< samples with a complexity from the current epoch
};

}  // namespace moe
