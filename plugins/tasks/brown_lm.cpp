#include "plugins/tasks/brown_lm.h"

#include <vector>

#include "plugins/tasks/brown_corpus.h"

namespace moe {

BrownLMTask::Options BrownLMTask::read_options(const PluginSpec& spec) {
  Options o;
  o.name = spec.name();
  o.seq_len = spec.get<int64_t>("seq_len", o.seq_len);
  o.vocab_size = spec.get<int64_t>("vocab_size", o.vocab_size);
  const auto check = spec.check();
  check.expect(o.seq_len >= 2, "seq_len", ">= 2", static_cast<double>(o.seq_len));
  check.expect(o.vocab_size >= 10, "vocab_size", ">= 10", static_cast<double>(o.vocab_size));
  return o;
}

BrownLMTask::BrownLMTask(const Options& o, const TaskContext& ctx) {
  info_.name = o.name;
  info_.head = Head::kLm;
  info_.causal = kCausal;
  info_.seq_len = o.seq_len;
  const int64_t vocab = o.vocab_size;
  const auto& corpus = load_brown(ctx.data_dir);
  const auto ids = brown_lm_vocab(corpus, vocab);
  info_.vocab_size = static_cast<int64_t>(ids.size()) + 2;
  info_.num_classes = info_.vocab_size;
  info_.difficulty_levels = {"top 100", "top 1k", "rare", "unk"};
  auto level = [](int64_t id) { return id == 0 ? 3 : (id < 102 ? 0 : (id < 1002 ? 1 : 2)); };
  for (int split = 0; split < 3; ++split) {
    std::vector<int64_t> seq;
    for (const auto& s : corpus.splits[split]) {
      for (const auto& wt : s) {
        auto it = ids.find(lower(wt.first));
        seq.push_back(it == ids.end() ? 0 : it->second);
      }
      seq.push_back(1);
    }
    auto& st = streams_[split];
    st.tokens.assign(seq.begin(), seq.end() - 1);
    st.targets.assign(seq.begin() + 1, seq.end());
    for (int64_t t : st.targets) st.difficulty.push_back(level(t));
  }
}

std::shared_ptr<Task> BrownLMTask::create(const PluginSpec& spec, const TaskContext& ctx) {
  return std::make_shared<BrownLMTask>(read_options(spec), ctx);
}

std::vector<ParamDoc> BrownLMTask::param_docs() {
  return with_ranges(
      {{"seq_len", "64", "tokens per window"},
       {"vocab_size", "10000", "most frequent training words kept (+ <unk>, </s>)"}},
      {{"seq_len", Range::ints(2, 1 << 20)}, {"vocab_size", Range::ints(10, kMaxSize)}});
}

MOE_REGISTER_TASK("brown_lm", BrownLMTask,
                  "Brown corpus word-level language model; difficulty = word rank");

}  // namespace moe
