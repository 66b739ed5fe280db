#include "plugins/tasks/brown_pos.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <random>
#include <unordered_map>

#include "plugins/tasks/brown_corpus.h"

namespace moe {
namespace {

/// Word-shape feature: case pattern x has-digit x has-hyphen, 16 values.
int64_t shape_of(const std::string& w) {
  bool upper0 = std::isupper(static_cast<unsigned char>(w[0])), all_upper = true, alpha = false;
  bool digit = false, hyphen = false;
  for (char c : w) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) alpha = true;
    if (std::islower(u)) all_upper = false;
    if (std::isdigit(u)) digit = true;
    if (c == '-') hyphen = true;
  }
  const int64_t kind = !alpha ? 3 : (all_upper && w.size() > 1 ? 2 : (upper0 ? 1 : 0));
  return kind * 4 + (digit ? 2 : 0) + (hyphen ? 1 : 0);
}

/// Ids for strings seen >= min_count times in train; 0 is the shared unknown id.
struct Vocab {
  std::unordered_map<std::string, int64_t> ids;
  int64_t size = 1;
  void build(const std::unordered_map<std::string, int64_t>& counts, int64_t min_count) {
    std::vector<std::string> keys;
    for (const auto& kv : counts) {
      if (kv.second >= min_count) keys.push_back(kv.first);
    }
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) ids[k] = size++;
  }
  int64_t id(const std::string& s) const {
    auto it = ids.find(s);
    return it == ids.end() ? 0 : it->second;
  }
};

std::string suffix(const std::string& w, size_t n) {
  return w.size() > n ? w.substr(w.size() - n) : "^" + w;
}

}  // namespace

BrownPosTask::Options BrownPosTask::read_options(const PluginSpec& spec) {
  Options o;
  o.name = spec.name();
  o.seq_len = spec.get<int64_t>("seq_len", o.seq_len);
  o.min_count = spec.get<int64_t>("min_count", o.min_count);
  o.suffix_min_count = spec.get<int64_t>("suffix_min_count", o.suffix_min_count);
  o.word_dropout = spec.get<double>("word_dropout", o.word_dropout);
  o.features = spec.get<bool>("features", o.features);
  o.vocab = spec.choice("vocab", o.vocab, {"own", "lm"});
  o.lm_vocab_size = spec.get<int64_t>("lm_vocab_size", o.lm_vocab_size);
  const auto check = spec.check();
  check.expect(o.seq_len >= 2, "seq_len", ">= 2", static_cast<double>(o.seq_len));
  check.expect(o.min_count >= 1, "min_count", ">= 1", static_cast<double>(o.min_count));
  check.expect(o.suffix_min_count >= 1, "suffix_min_count", ">= 1",
               static_cast<double>(o.suffix_min_count));
  check.expect(o.lm_vocab_size >= 10, "lm_vocab_size", ">= 10",
               static_cast<double>(o.lm_vocab_size));
  check.expect(o.word_dropout >= 0 && o.word_dropout < 1, "word_dropout", "in [0, 1)",
               o.word_dropout);
  return o;
}

BrownPosTask::BrownPosTask(const Options& o, const TaskContext& ctx) {
  info_.name = o.name;
  info_.head = Head::kTag;
  info_.causal = kCausal;
  info_.seq_len = o.seq_len;
  const int64_t min_count = o.min_count;
  const int64_t suffix_min = o.suffix_min_count;
  word_dropout_ = o.word_dropout;
  const bool features = o.features;
  const auto& vocab_kind = o.vocab;
  const int64_t lm_vocab_size = o.lm_vocab_size;
  const auto& corpus = load_brown(ctx.data_dir);
  const auto& train = corpus.splits[static_cast<int>(Split::kTrain)];

  std::unordered_map<std::string, int64_t> words, suf3, suf2;
  std::unordered_map<std::string, std::map<std::string, int64_t>> tags_of;
  std::map<std::string, int64_t> tag_ids;
  for (const auto& split : corpus.splits) {
    for (const auto& s : split) {
      for (const auto& wt : s) tag_ids.emplace(wt.second, 0);
    }
  }
  int64_t next = 0;
  for (auto& kv : tag_ids) kv.second = next++;
  for (const auto& s : train) {
    for (const auto& [w, t] : s) {
      const auto lw = lower(w);
      ++words[lw];
      ++suf3[suffix(lw, 3)];
      ++suf2[suffix(lw, 2)];
      ++tags_of[w][t];
    }
  }
  Vocab wv, s3, s2;
  wv.build(words, min_count);
  s3.build(suf3, suffix_min);
  s2.build(suf2, suffix_min);
  info_.vocab_size = wv.size;
  // vocab = "lm": brown_lm's word ids (<unk> = 0), so a pretrained LM's embeddings apply.
  std::unordered_map<std::string, int64_t> lm_ids;
  if (vocab_kind == "lm") {
    lm_ids = brown_lm_vocab(corpus, lm_vocab_size);
    info_.vocab_size = static_cast<int64_t>(lm_ids.size()) + 2;
  }
  auto word_id = [&](const std::string& lw) {
    if (vocab_kind == "own") return wv.id(lw);
    auto it = lm_ids.find(lw);
    return it == lm_ids.end() ? int64_t{0} : it->second;
  };
  info_.num_classes = static_cast<int64_t>(tag_ids.size());
  info_.feature_vocab = features ? s3.size + s2.size + 16 : 0;
  info_.difficulty_levels = {"1 tag", "2 tags", "3 tags", "4+ tags", "unseen"};
  num_features_ = features ? 3 : 0;

  int64_t mft_right = 0, mft_total = 0;
  for (int split = 0; split < 3; ++split) {
    auto& st = streams_[split];
    for (const auto& s : corpus.splits[split]) {
      for (const auto& [w, t] : s) {
        const auto lw = lower(w);
        st.tokens.push_back(word_id(lw));
        if (features) {
          st.features.push_back(s3.id(suffix(lw, 3)));
          st.features.push_back(s3.size + s2.id(suffix(lw, 2)));
          st.features.push_back(s3.size + s2.size + shape_of(w));
        }
        st.targets.push_back(tag_ids.at(t));
        auto it = tags_of.find(w);
        const int64_t n = it == tags_of.end() ? 0 : static_cast<int64_t>(it->second.size());
        st.difficulty.push_back(n == 0 ? 4 : std::min<int64_t>(n, 4) - 1);
        if (split == static_cast<int>(Split::kTest)) {
          std::string guess = "nn";
          if (it != tags_of.end()) {
            guess = std::max_element(it->second.begin(), it->second.end(), [](auto& a, auto& b) {
                      return a.second < b.second;
                    })->first;
          }
          mft_right += guess == t;
          ++mft_total;
        }
      }
    }
  }
  info_.notes["baseline: most-frequent-tag test accuracy"] =
      double(mft_right) / std::max<int64_t>(mft_total, 1);
}

Batch BrownPosTask::train_batch(uint64_t seed, int64_t step, int64_t batch_size) {
  auto batch = StreamTask::train_batch(seed, step, batch_size);
  if (word_dropout_ > 0) {
    std::mt19937_64 rng(mix_seed(mix_seed(seed, static_cast<uint64_t>(step)), 0x5eed));
    std::bernoulli_distribution drop(word_dropout_);
    auto* t = batch.tokens.data_ptr<int64_t>();
    for (int64_t i = 0; i < batch.tokens.numel(); ++i) {
      if (drop(rng)) t[i] = 0;
    }
  }
  return batch;
}

std::shared_ptr<Task> BrownPosTask::create(const PluginSpec& spec, const TaskContext& ctx) {
  return std::make_shared<BrownPosTask>(read_options(spec), ctx);
}

std::vector<ParamDoc> BrownPosTask::param_docs() {
  return with_ranges(
      {{"seq_len", "64", "tokens per window"},
       {"min_count", "2", "training count for a word to get its own id"},
       {"suffix_min_count", "5", "training count for a suffix to get its own id"},
       {"word_dropout", "0.05", "training probability of replacing a word id by <unk>"},
       {"features", "true", "add suffix and shape features to the word id"},
       {"vocab", "own",
        "own (words seen min_count times) | lm (brown_lm's ids, to "
        "fine-tune a pretrained brown_lm model)"},
       {"lm_vocab_size", "10000", "brown_lm's vocab_size, with vocab = lm"}},
      {{"seq_len", Range::ints(2, 1 << 20)},
       {"min_count", Range::ints(1, kMaxSize)},
       {"suffix_min_count", Range::ints(1, kMaxSize)},
       {"word_dropout", Range::reals(0, 1, false, true)},
       {"lm_vocab_size", Range::ints(10, kMaxSize)}});
}
MOE_DEFAULT_PLUGIN(::moe::task_registry(), "brown_pos");  // what a config gets without [task]
MOE_REGISTER_TASK("brown_pos", BrownPosTask,
                  "Brown corpus POS tagging; difficulty = tags per word form");

}  // namespace moe
