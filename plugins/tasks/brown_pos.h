#pragma once
// "brown_pos": POS tagging of the Brown corpus (brown_corpus.h) with bidirectional
//   attention. Input: lower-cased word id (train words seen >= min_count times, else
//   <unk>) plus summed features (3-letter suffix, 2-letter suffix, shape). Difficulty = how
//   many distinct tags the word form takes in the training split: 1, 2, 3, 4+, or unseen.
//   While training, each word id is replaced by <unk> with probability word_dropout
//   (features kept), so the model learns to tag unseen words from their suffix and shape.
//   With vocab = "lm" it uses brown_lm's word ids instead of its own.
#include <memory>
#include <string>
#include <vector>

#include "core/data/task.h"

namespace moe {

class BrownPosTask : public StreamTask {
 public:
  static constexpr bool kCausal = false;  ///< a tagger sees the whole sentence
  struct Options {
    std::string name;
    int64_t seq_len = 64, min_count = 2, suffix_min_count = 5, lm_vocab_size = 10000;
    double word_dropout = 0.05;
    bool features = true;
    std::string vocab = "own";
  };
  /// Reads and checks every parameter without reading the corpus (also the plan-time check).
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  BrownPosTask(const Options& o, const TaskContext& ctx);
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) override;
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

 private:
  double word_dropout_ = 0.0;
};

}  // namespace moe
