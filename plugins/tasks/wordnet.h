#pragma once
// "wordnet_sst": WordNet 3.0 supersense classification of glosses (Debian package
// wordnet-base, installed by experiments/setup.sh). Every synset of data.{adj,adv,noun,
// verb} is one sample: its gloss (definition and examples, the text after '|'),
// lower-cased and cut into words (letters, digits, apostrophes, hyphens) and single
// punctuation marks, mapped to brown_lm's word ids (plugins/tasks/brown_corpus.h; <unk> = 0) so a
// pretrained brown_lm model's embeddings carry over, cut or padded to seq_len. The label
// is the synset's lexicographer file number: 45 supersenses (adj.all .. verb.weather).
// Synsets in file order (adj, adv, noun, verb): index % 10 == 0 -> test, == 1 -> valid,
// the rest train. "cls" head (mean over non-padded positions), bidirectional attention.
#include <string>
#include <vector>

#include "core/data/task.h"

namespace moe {

class WordNetSSTTask : public Task {
 public:
  static constexpr bool kCausal = false;
  struct Options {
    std::string name;
    int64_t seq_len = 32, lm_vocab_size = 10000;
    std::string wordnet_dir = "/usr/share/wordnet";
  };
  /// Reads and checks every parameter without reading data (also the plan-time check).
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  WordNetSSTTask(const Options& o, const TaskContext& ctx);
  const TaskInfo& info() const override { return info_; }
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) override;
  std::vector<Batch> eval_batches(Split split, int64_t batch_size, int64_t max_batches) override;
  int64_t num_train_samples() const override;
  Batch train_samples(const std::vector<int64_t>& ids) override;

  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

  struct Sample {
    std::vector<int64_t> tokens;  ///< at most seq_len ids
    int64_t label = 0;
  };
  /// Parses one data.* line: (gloss words, lexicographer file number); false for the
  /// licence header and malformed lines.
  static bool parse_line(const std::string& line, std::vector<std::string>& words,
                         int64_t& lex_file);

 private:
  Batch make_batch(const std::vector<const Sample*>& samples) const;

  TaskInfo info_;
  std::vector<Sample> splits_[3];
};

}  // namespace moe
