#pragma once
// Tasks: where batches come from. Every task labels each target with a difficulty level
// so accuracy (and experts used) can be reported per level.
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/model_kinds.h"
#include "core/plugin_spec.h"
#include "core/registry.h"

namespace moe {

enum class Split { kTrain, kValid, kTest };
const char* split_name(Split split);

/// A host tensor to `device`; to a GPU through pinned memory without blocking (a pageable
/// copy would make the host wait for the device).
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device);

struct Batch {
  torch::Tensor tokens;      ///< [B, S] int64
  torch::Tensor features;    ///< [B, S, F] int64, or undefined when the task has none
  torch::Tensor targets;     ///< [B, S] int64 (-100 = ignored), or [B] for "cls" tasks
  torch::Tensor difficulty;  ///< same shape as targets, int64 level in [0, levels), -1 = none
  torch::Tensor pad_mask;    ///< optional [B, S] bool, true = padding

  Batch to(const torch::Device& device) const;  ///< each tensor through to_device
  int64_t num_targets() const;                  ///< targets that are not ignored
};

struct TaskInfo {
  std::string name;
  Head head = Head::kTag;  ///< which model head it needs
  bool causal = true;
  int64_t vocab_size = 0;
  int64_t feature_vocab = 0;
  int64_t num_classes = 0;  ///< classes of the head (vocab_size for lm)
  int64_t seq_len = 0;
  std::vector<std::string> difficulty_levels;  ///< names of levels 0..n-1
  std::map<std::string, double> notes;         ///< reference numbers (e.g. baselines)
};

struct TaskContext {
  std::string data_dir;  ///< root of the data cache (fetched corpora)
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const TaskInfo& info() const = 0;
  /// Deterministic in (seed, step): resuming at a step replays the same batches.
  virtual Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) = 0;
  /// The split in a fixed order; at most max_batches batches (0 = the whole split).
  virtual std::vector<Batch> eval_batches(Split split, int64_t batch_size, int64_t max_batches) = 0;

  /// The training split as a fixed pool of samples (for epochs and the curriculum):
  /// its size, and a batch of the samples with these ids (in [0, size)). Size 0 = the
  /// task has no pool, and epoch-based sampling is refused.
  virtual int64_t num_train_samples() const { return 0; }
  virtual Batch train_samples(const std::vector<int64_t>& ids);
};

/// A task's registry facts, known without its data.
struct TaskFacts {
  /// Reads and checks every option (what `moe sweep plan` runs; no data is read).
  void (*check_options)(const PluginSpec&) = nullptr;
  /// Whether its model attends causally (its TaskInfo::causal).
  bool causal = false;
};
template <>
struct RegistryFacts<Task> {
  using type = TaskFacts;
};

using TaskRegistry = Registry<Task, const PluginSpec&, const TaskContext&>;
/// Tasks are plugins (plugins/tasks/): each registers itself with MOE_REGISTER_TASK.
TaskRegistry& task_registry();

/// Reads and checks a task's parameters without reading its data (what `moe sweep plan`
/// runs for every distinct task config): the task's own check_options, then unknown keys.
void check_task_options(const PluginSpec& spec);

/// Whether the task's model attends causally (TaskInfo::causal), known without its data.
bool task_is_causal(const std::string& name);

/// Creates the task named by spec; rejects unknown parameters.
std::shared_ptr<Task> make_task(const PluginSpec& spec, const TaskContext& ctx);

/// splitmix64 of (a, b): a well-mixed seed for per-step generators.
uint64_t mix_seed(uint64_t a, uint64_t b);

/// A task stored as one token stream per split, cut into windows of seq_len
/// (targets already aligned with tokens). Used by the corpus tasks.
class StreamTask : public Task {
 public:
  struct Stream {
    std::vector<int64_t> tokens, targets, difficulty;
    std::vector<int64_t> features;  ///< num_features per token, row-major
  };
  const TaskInfo& info() const override { return info_; }
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) override;
  std::vector<Batch> eval_batches(Split split, int64_t batch_size, int64_t max_batches) override;
  /// Pool: the non-overlapping windows of the training stream, sample i at i * seq_len.
  int64_t num_train_samples() const override;
  Batch train_samples(const std::vector<int64_t>& ids) override;

 protected:
  Batch make_batch(const Stream& s, const std::vector<int64_t>& starts) const;
  TaskInfo info_;
  int64_t num_features_ = 0;
  Stream streams_[3];
};

}  // namespace moe

/// MOE_REGISTER_TASK("mod_sum", ModSumTask, "help"): the class supplies
/// `static std::shared_ptr<Task> create(const PluginSpec&, const TaskContext&)`,
/// `static void check_options(const PluginSpec&)` (every parameter read and checked, no
/// data), `static std::vector<ParamDoc> param_docs()` and `static constexpr bool kCausal`
/// (its TaskInfo::causal).
#define MOE_REGISTER_TASK(NAME, CLASS, HELP)                                        \
  static ::moe::Registrar<::moe::TaskRegistry> MOE_CONCAT(moe_task_reg_, __LINE__)( \
      ::moe::task_registry(), {NAME,                                                \
                               HELP,                                                \
                               CLASS::param_docs(),                                 \
                               &CLASS::create,                                      \
                               {},                                                  \
                               ::moe::TaskFacts{&CLASS::check_options, CLASS::kCausal}})
