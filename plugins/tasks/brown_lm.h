#pragma once
// "brown_lm": word-level causal LM over the Brown corpus's lower-cased words
//   (brown_corpus.h) with a sentence-end token. Difficulty = frequency rank of the target
//   word: top 100, top 1k, rest, <unk>.
#include <memory>
#include <string>
#include <vector>

#include "core/data/task.h"

namespace moe {

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
