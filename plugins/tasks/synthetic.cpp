#include "plugins/tasks/synthetic.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe {
std::vector<ParamDoc> SequenceTask::common_docs(const std::string& seq_help,
                                                std::vector<ParamDoc> own,
                                                const std::string& seed_help) {
  std::vector<ParamDoc> docs = {{"seq_len", "32", seq_help, Range::ints(2, 1 << 20)}};
  docs.insert(docs.end(), own.begin(), own.end());
  docs.push_back(
      {"eval_sequences", "512", "sequences in each of valid and test", Range::ints(1, 1 << 24)});
  docs.push_back({"train_sequences", "16384",
                  "training pool size (train.sampling = epochs | curriculum)",
                  Range::ints(1, 1 << 24)});
  docs.push_back({"data_seed", "1234", seed_help, Range::ints(0, 4294967295.0)});
  return docs;
}

SequenceTask::Common SequenceTask::read_common(const PluginSpec& spec, int64_t default_len) {
  Common c;
  c.name = spec.name();
  c.seq_len = spec.get<int64_t>("seq_len", default_len);
  c.eval_sequences = spec.get<int64_t>("eval_sequences", c.eval_sequences);
  c.train_sequences = spec.get<int64_t>("train_sequences", c.train_sequences);
  c.data_seed = static_cast<uint64_t>(spec.get<int64_t>("data_seed", 1234));
  const auto check = spec.check();
  check.expect(c.seq_len >= 2, "seq_len", ">= 2", static_cast<double>(c.seq_len));
  check.expect(c.eval_sequences >= 1, "eval_sequences", ">= 1",
               static_cast<double>(c.eval_sequences));
  check.expect(c.train_sequences >= 1, "train_sequences", ">= 1",
               static_cast<double>(c.train_sequences));
  return c;
}

SequenceTask::SequenceTask(const Common& c)
    : eval_sequences_(c.eval_sequences),
      train_sequences_(c.train_sequences),
      data_seed_(c.data_seed) {
  info_.name = c.name;
  info_.seq_len = c.seq_len;
  info_.head = Head::kTag;
  info_.causal = kCausal;
}

Batch SequenceTask::stack(const std::vector<Sequence>& seqs) const {
  const int64_t b = static_cast<int64_t>(seqs.size()), s = info_.seq_len;
  auto tokens = torch::empty({b, s}, torch::kLong), targets = torch::empty({b, s}, torch::kLong);
  auto diff = torch::empty({b, s}, torch::kLong);
  auto feats = torch::empty({b, s, num_features_}, torch::kLong);
  for (int64_t i = 0; i < b; ++i) {
    std::copy(seqs[i].tokens.begin(), seqs[i].tokens.end(), tokens.data_ptr<int64_t>() + i * s);
    std::copy(seqs[i].targets.begin(), seqs[i].targets.end(), targets.data_ptr<int64_t>() + i * s);
    std::copy(seqs[i].difficulty.begin(), seqs[i].difficulty.end(),
              diff.data_ptr<int64_t>() + i * s);
    std::copy(seqs[i].features.begin(), seqs[i].features.end(),
              feats.data_ptr<int64_t>() + i * s * num_features_);
  }
  return Batch{tokens, feats, targets, diff, {}};
}

Batch SequenceTask::train_batch(uint64_t seed, int64_t step, int64_t batch_size) {
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(step)));
  std::vector<Sequence> seqs;
  for (int64_t i = 0; i < batch_size; ++i) seqs.push_back(generate(rng));
  return stack(seqs);
}

Batch SequenceTask::train_samples(const std::vector<int64_t>& ids) {
  std::vector<Sequence> seqs;
  for (int64_t id : ids) {
    TORCH_CHECK(id >= 0 && id < train_sequences_, "task '", info_.name, "': sample id ", id,
                " outside the training pool [0, ", train_sequences_, ")");
    std::mt19937_64 rng(mix_seed(data_seed_ + 7919, static_cast<uint64_t>(id)));
    seqs.push_back(generate(rng));
  }
  return stack(seqs);
}

std::vector<Batch> SequenceTask::eval_batches(Split split, int64_t batch_size,
                                              int64_t max_batches) {
  std::mt19937_64 rng(mix_seed(data_seed_, 1000 + static_cast<uint64_t>(split)));
  std::vector<Batch> out;
  std::vector<Sequence> seqs;
  for (int64_t i = 0; i < eval_sequences_; ++i) {
    seqs.push_back(generate(rng));
    if (static_cast<int64_t>(seqs.size()) == batch_size || i + 1 == eval_sequences_) {
      out.push_back(stack(seqs));
      seqs.clear();
      if (max_batches > 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    }
  }
  return out;
}

ModSumTask::Options ModSumTask::read_options(const PluginSpec& spec) {
  Options o;
  o.common = read_common(spec, 32);
  o.modulus = spec.get<int64_t>("modulus", o.modulus);
  o.max_depth = spec.get<int64_t>("max_depth", o.max_depth);
  const auto check = spec.check();
  check.expect(o.modulus >= 2, "modulus", ">= 2", static_cast<double>(o.modulus));
  check.expect(o.max_depth >= 1 && o.max_depth <= o.common.seq_len, "max_depth",
               "1..seq_len (" + std::to_string(o.common.seq_len) + ")",
               static_cast<double>(o.max_depth));
  return o;
}

ModSumTask::ModSumTask(const Options& o)
    : SequenceTask(o.common), modulus_(o.modulus), max_depth_(o.max_depth) {
  info_.vocab_size = modulus_;
  info_.num_classes = modulus_;
  info_.feature_vocab = max_depth_ + 1;
  for (int64_t d = 1; d <= max_depth_; ++d) {
    info_.difficulty_levels.push_back("depth " + std::to_string(d));
  }
}

SequenceTask::Sequence ModSumTask::generate(std::mt19937_64& rng) const {
  const int64_t s = info_.seq_len;
  std::uniform_int_distribution<int64_t> value(0, modulus_ - 1), depth(1, max_depth_);
  Sequence q;
  q.tokens.resize(s);
  for (auto& v : q.tokens) v = value(rng);
  for (int64_t t = 0; t < s; ++t) {
    const int64_t d = depth(rng);
    q.features.push_back(d);
    if (t + 1 < d) {  // not enough history: no target
      q.targets.push_back(-100);
      q.difficulty.push_back(-1);
      continue;
    }
    int64_t sum = 0;
    for (int64_t i = t - d + 1; i <= t; ++i) sum += q.tokens[i];
    q.targets.push_back(sum % modulus_);
    q.difficulty.push_back(d - 1);
  }
  return q;
}

std::shared_ptr<Task> ModSumTask::create(const PluginSpec& spec, const TaskContext&) {
  return std::make_shared<ModSumTask>(read_options(spec));
}

std::vector<ParamDoc> ModSumTask::param_docs() {
  return common_docs(
      "tokens per sequence",
      {{"modulus", "10", "p: values and targets are in [0, p)", Range::ints(2, 1 << 20)},
       {"max_depth", "4", "largest number of summed values (difficulty levels)",
        Range::ints(1, 1 << 20, "<= seq_len")}});
}

PointerChaseTask::Options PointerChaseTask::read_options(const PluginSpec& spec) {
  Options o;
  o.common = read_common(spec, 32);
  o.slots = spec.get<int64_t>("slots", o.slots);
  o.max_hops = spec.get<int64_t>("max_hops", o.max_hops);
  const auto check = spec.check();
  check.expect(o.slots >= 2 && o.slots < o.common.seq_len, "slots",
               "2..seq_len-1 (" + std::to_string(o.common.seq_len - 1) + ")",
               static_cast<double>(o.slots));
  check.expect(o.max_hops >= 1, "max_hops", ">= 1", static_cast<double>(o.max_hops));
  return o;
}

PointerChaseTask::PointerChaseTask(const Options& o)
    : SequenceTask(o.common), slots_(o.slots), max_hops_(o.max_hops) {
  info_.vocab_size = slots_;
  info_.num_classes = slots_;
  info_.feature_vocab = max_hops_ + 1;
  for (int64_t h = 1; h <= max_hops_; ++h) {
    info_.difficulty_levels.push_back(std::to_string(h) + (h == 1 ? " hop" : " hops"));
  }
}

SequenceTask::Sequence PointerChaseTask::generate(std::mt19937_64& rng) const {
  const int64_t s = info_.seq_len;
  std::uniform_int_distribution<int64_t> slot(0, slots_ - 1), hops(1, max_hops_);
  Sequence q;
  for (int64_t i = 0; i < slots_; ++i) {
    q.tokens.push_back(slot(rng));
    q.features.push_back(0);
    q.targets.push_back(-100);
    q.difficulty.push_back(-1);
  }
  for (int64_t t = slots_; t < s; ++t) {
    const int64_t start = slot(rng), h = hops(rng);
    int64_t at = start;
    for (int64_t i = 0; i < h; ++i) at = q.tokens[at];
    q.tokens.push_back(start);
    q.features.push_back(h);
    q.targets.push_back(at);
    q.difficulty.push_back(h - 1);
  }
  return q;
}

std::shared_ptr<Task> PointerChaseTask::create(const PluginSpec& spec, const TaskContext&) {
  return std::make_shared<PointerChaseTask>(read_options(spec));
}

std::vector<ParamDoc> PointerChaseTask::param_docs() {
  return common_docs(
      "tokens per sequence (slots + queries)",
      {{"slots", "16", "size of the pointer table at the start of each sequence",
        Range::ints(2, 1 << 20, "< seq_len")},
       {"max_hops", "3", "largest number of hops (difficulty levels)", Range::ints(1, 1 << 20)}});
}

FactsTask::Options FactsTask::read_options(const PluginSpec& spec) {
  Options o;
  o.common = read_common(spec, 32);
  o.keys = spec.get<int64_t>("keys", o.keys);
  o.values = spec.get<int64_t>("values", o.values);
  o.zipf = spec.get<double>("zipf", o.zipf);
  const auto check = spec.check();
  check.expect(o.keys >= 2 && o.keys <= 4096, "keys", "2..4096", static_cast<double>(o.keys));
  check.expect(o.values >= 2, "values", ">= 2", static_cast<double>(o.values));
  check.expect(o.zipf >= 0 && o.zipf <= 4, "zipf", "in [0, 4]", o.zipf);
  return o;
}

FactsTask::FactsTask(const Options& o) : SequenceTask(o.common), keys_(o.keys), values_(o.values) {
  const double zipf = o.zipf;
  info_.vocab_size = keys_;
  info_.num_classes = values_;
  info_.feature_vocab = 0;
  info_.difficulty_levels = {"top 25% facts", "25-50%", "50-75%", "rarest 25%"};
  std::mt19937_64 rng(mix_seed(data_seed_, 77));
  std::uniform_int_distribution<int64_t> value(0, values_ - 1);
  const int64_t n = keys_ * keys_;
  table_.resize(n);
  for (auto& v : table_) v = value(rng);
  for (int64_t k = 0; k < keys_; ++k) key_weights_.push_back(std::pow(k + 1.0, -zipf));
  // Frequency quartile of each fact: rank the pairs by (a + 1)(b + 1) (their probability is
  // decreasing in it); ties keep index order, so uniform keys split the table evenly.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return (x / keys_ + 1) * (x % keys_ + 1) < (y / keys_ + 1) * (y % keys_ + 1);
  });
  quartile_.resize(n);
  for (int64_t r = 0; r < n; ++r) quartile_[order[r]] = std::min<int64_t>(3, 4 * r / n);
}

SequenceTask::Sequence FactsTask::generate(std::mt19937_64& rng) const {
  std::discrete_distribution<int64_t> key(key_weights_.begin(), key_weights_.end());
  Sequence q;
  for (int64_t t = 0; t < info_.seq_len; ++t) {
    q.tokens.push_back(key(rng));
    q.features.push_back(0);
    if (t == 0) {
      q.targets.push_back(-100);
      q.difficulty.push_back(-1);
      continue;
    }
    const int64_t fact = q.tokens[t - 1] * keys_ + q.tokens[t];
    q.targets.push_back(table_[fact]);
    q.difficulty.push_back(quartile_[fact]);
  }
  return q;
}

std::shared_ptr<Task> FactsTask::create(const PluginSpec& spec, const TaskContext&) {
  return std::make_shared<FactsTask>(read_options(spec));
}

std::vector<ParamDoc> FactsTask::param_docs() {
  return common_docs(
      "tokens per sequence",
      {{"keys", "128", "K: token vocabulary; the table holds K^2 facts f(previous, current)",
        Range::ints(2, 4096)},
       {"values", "16", "classes a fact can take", Range::ints(2, 1 << 20)},
       {"zipf", "0", "keys drawn with P(k) ~ (k + 1)^-zipf (0 = uniform)", Range::reals(0, 4)}},
      "seed of the fact table and of the fixed valid/test sets");
}

MOE_REGISTER_TASK("mod_sum", ModSumTask,
                  "variable-depth modular sum; difficulty = number of summed values");
MOE_REGISTER_TASK("pointer_chase", PointerChaseTask,
                  "variable-hop pointer chasing; difficulty = number of hops");
MOE_REGISTER_TASK("facts", FactsTask,
                  "associative recall of a fixed table of key-pair facts (capacity-bound)");

}  // namespace moe
