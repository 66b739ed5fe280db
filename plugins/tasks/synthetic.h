#pragma once
// Synthetic graded-difficulty tasks, generated from a seed. Training sequences are drawn
// fresh for every (seed, step); valid and test are fixed sets drawn from data_seed.
//
// With train.sampling = epochs | curriculum, training uses a fixed pool of
// `train_sequences` sequences drawn from data_seed (the same pool for every run seed).
//
// "mod_sum": tokens are values in [0, p); each position t carries a depth d_t in
//   [1, max_depth] as an input feature; the target is (v_{t-d_t+1} + ... + v_t) mod p.
//   Difficulty level = d_t - 1. Causal attention.
// "pointer_chase": the first `slots` positions hold a random map f: [0, slots) -> [0, slots)
//   (token at position i is f(i)); each later position holds a start s (token) and a hop
//   count h in [1, max_hops] (feature); its target is f^h(s). Difficulty level = h - 1.
// "facts": associative recall of a fixed table of keys^2 facts f(a, b) in [0, values),
//   drawn once from data_seed and shared by train, valid and test. Tokens are keys drawn
//   i.i.d. with P(k) ~ (k + 1)^-zipf; the target at t >= 1 is f(x_{t-1}, x_t). Nothing in
//   the context determines a fact: the model must store the table in its weights, so it is
//   capacity-bound (where experts' extra parameters help at equal active compute; Jelassi
//   et al. 2024, "Mixture of Parrots"). Difficulty level = the fact's frequency quartile
//   (level 0 = the most frequent quarter of the facts).
#include <random>

#include "core/data/task.h"

namespace moe {

/// Generates one sequence at a time; batches are stacks of sequences.
class SequenceTask : public Task {
 public:
  static constexpr bool kCausal = true;  ///< answers are read left to right
  /// The parameters every sequence task reads.
  struct Common {
    std::string name;
    int64_t seq_len = 32, eval_sequences = 512, train_sequences = 16384;
    uint64_t data_seed = 1234;
  };
  /// Reads and checks the common parameters (no data is made).
  static Common read_common(const PluginSpec& spec, int64_t default_len);
  /// A sequence task's documented options: seq_len, the task's own, then the common ones
  /// (read_common), each with its range.
  static std::vector<ParamDoc> common_docs(
      const std::string& seq_help, std::vector<ParamDoc> own,
      const std::string& seed_help = "seed of the fixed valid/test sets");

  struct Sequence {
    std::vector<int64_t> tokens, targets, difficulty, features;  // features: [S * F]
  };
  const TaskInfo& info() const override { return info_; }
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) override;
  std::vector<Batch> eval_batches(Split split, int64_t batch_size, int64_t max_batches) override;
  int64_t num_train_samples() const override { return train_sequences_; }
  Batch train_samples(const std::vector<int64_t>& ids) override;

 protected:
  explicit SequenceTask(const Common& c);
  virtual Sequence generate(std::mt19937_64& rng) const = 0;
  Batch stack(const std::vector<Sequence>& seqs) const;

  TaskInfo info_;
  int64_t num_features_ = 1;
  int64_t eval_sequences_;
  int64_t train_sequences_;
  uint64_t data_seed_;
};

class ModSumTask : public SequenceTask {
 public:
  struct Options {
    Common common;
    int64_t modulus = 10, max_depth = 4;
  };
  /// Reads and checks every parameter without making data (also the plan-time check).
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  explicit ModSumTask(const Options& o);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

 protected:
  Sequence generate(std::mt19937_64& rng) const override;

 private:
  int64_t modulus_, max_depth_;
};

class PointerChaseTask : public SequenceTask {
 public:
  struct Options {
    Common common;
    int64_t slots = 16, max_hops = 3;
  };
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  explicit PointerChaseTask(const Options& o);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

 protected:
  Sequence generate(std::mt19937_64& rng) const override;

 private:
  int64_t slots_, max_hops_;
};

class FactsTask : public SequenceTask {
 public:
  struct Options {
    Common common;
    int64_t keys = 128, values = 16;
    double zipf = 0;
  };
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  explicit FactsTask(const Options& o);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

 protected:
  Sequence generate(std::mt19937_64& rng) const override;

 private:
  int64_t keys_, values_;
  std::vector<int64_t> table_, quartile_;  ///< [keys * keys]: the fact, its frequency level
  std::vector<double> key_weights_;
};

}  // namespace moe
