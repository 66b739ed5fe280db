#include "tests/plugin_fixtures/test_copy.h"

namespace moe {

TestCopyTask::Options TestCopyTask::read_options(const PluginSpec& spec) {
  Options o;
  o.common = read_common(spec, 32);
  o.vocab = spec.get<int64_t>("vocab", o.vocab);
  spec.check().expect(o.vocab >= 2, "vocab", ">= 2", static_cast<double>(o.vocab));
  return o;
}

TestCopyTask::TestCopyTask(const Options& o) : SequenceTask(o.common), vocab_(o.vocab) {
  info_.vocab_size = vocab_;
  info_.num_classes = vocab_;
  info_.feature_vocab = 1;
  info_.difficulty_levels = {"copy"};
}

SequenceTask::Sequence TestCopyTask::generate(std::mt19937_64& rng) const {
  std::uniform_int_distribution<int64_t> token(0, vocab_ - 1);
  Sequence s;
  for (int64_t t = 0; t < info_.seq_len; ++t) {
    s.tokens.push_back(token(rng));
    s.targets.push_back(t == 0 ? -100 : s.tokens[t - 1]);
    s.difficulty.push_back(0);
    s.features.push_back(0);
  }
  return s;
}

std::shared_ptr<Task> TestCopyTask::create(const PluginSpec& spec, const TaskContext&) {
  return std::make_shared<TestCopyTask>(read_options(spec));
}

std::vector<ParamDoc> TestCopyTask::param_docs() {
  return common_docs("tokens per sequence",
                     {{"vocab", "8", "token values", Range::ints(2, 1 << 20)}});
}

MOE_REGISTER_TASK("test_copy", TestCopyTask, "test only: predict the previous token");

}  // namespace moe
