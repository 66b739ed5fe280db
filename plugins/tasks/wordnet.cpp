#include "plugins/tasks/wordnet.h"

#include <torch/torch.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>

#include "plugins/tasks/brown_corpus.h"

namespace moe {

bool WordNetSSTTask::parse_line(const std::string& line, std::vector<std::string>& words,
                                int64_t& lex_file) {
  words.clear();
  if (line.empty() || line[0] == ' ') return false;  // licence header lines start with "  "
  const auto bar = line.find(" | ");
  if (bar == std::string::npos || line.size() < 12) return false;
  try {
    lex_file = std::stoll(line.substr(9, 2));  // "offset lex_filenum ss_type ..."
  } catch (...) {
    return false;
  }
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(lower(word));
    word.clear();
  };
  for (size_t i = bar + 3; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if (std::isalnum(c) || c == '\'' || c == '-') {
      word.push_back(static_cast<char>(c));
    } else {
      flush();
      if (std::ispunct(c)) words.emplace_back(1, static_cast<char>(c));
    }
  }
  flush();
  return true;
}

WordNetSSTTask::Options WordNetSSTTask::read_options(const PluginSpec& spec) {
  Options o;
  o.name = spec.name();
  o.seq_len = spec.get<int64_t>("seq_len", o.seq_len);
  o.lm_vocab_size = spec.get<int64_t>("lm_vocab_size", o.lm_vocab_size);
  o.wordnet_dir = spec.get<std::string>("wordnet_dir", o.wordnet_dir);
  const auto check = spec.check();
  check.expect(o.seq_len >= 2, "seq_len", ">= 2", static_cast<double>(o.seq_len));
  check.expect(o.lm_vocab_size >= 10, "lm_vocab_size", ">= 10",
               static_cast<double>(o.lm_vocab_size));
  return o;
}

WordNetSSTTask::WordNetSSTTask(const Options& o, const TaskContext& ctx) {
  const OptionCheck check("task", o.name);
  info_.name = o.name;
  info_.head = Head::kCls;
  info_.causal = kCausal;
  info_.seq_len = o.seq_len;
  const int64_t vocab = o.lm_vocab_size;
  const auto& dir = o.wordnet_dir;
  const auto ids = brown_lm_vocab(load_brown(ctx.data_dir), vocab);
  info_.vocab_size = static_cast<int64_t>(ids.size()) + 2;
  info_.num_classes = 45;
  int64_t index = 0;
  std::vector<std::string> words;
  for (const char* pos : {"adj", "adv", "noun", "verb"}) {
    const auto path = std::filesystem::path(dir) / (std::string("data.") + pos);
    std::ifstream in(path);
    if (!in.good()) {
      check.fail("cannot read '" + path.string() +
                 "'; install WordNet with: apt-get install wordnet-base (or set wordnet_dir)");
    }
    std::string line;
    while (std::getline(in, line)) {
      Sample s;
      if (!parse_line(line, words, s.label)) continue;
      TORCH_CHECK(s.label >= 0 && s.label < 45, "wordnet: lexicographer file ", s.label,
                  " out of range in '", path.string(), "'");
      for (const auto& w : words) {
        if (static_cast<int64_t>(s.tokens.size()) == info_.seq_len) break;
        auto it = ids.find(w);
        s.tokens.push_back(it == ids.end() ? 0 : it->second);
      }
      if (s.tokens.empty()) s.tokens.push_back(0);
      const int64_t r = index++ % 10;
      splits_[static_cast<int>(r == 0 ? Split::kTest : (r == 1 ? Split::kValid : Split::kTrain))]
          .push_back(std::move(s));
    }
  }
  for (const auto& split : splits_) {
    if (split.empty())
      check.fail("too few synsets in '" + dir + "' (" + std::to_string(index) + ")");
  }
}

Batch WordNetSSTTask::make_batch(const std::vector<const Sample*>& samples) const {
  const int64_t b = static_cast<int64_t>(samples.size()), len = info_.seq_len;
  auto tokens = torch::ones({b, len}, torch::kLong);  // padding id 1 (</s>), masked anyway
  auto pad = torch::ones({b, len}, torch::kBool);
  auto targets = torch::empty({b}, torch::kLong);
  auto tk = tokens.accessor<int64_t, 2>();
  auto pd = pad.accessor<bool, 2>();
  auto tg = targets.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& t = samples[i]->tokens;
    for (size_t j = 0; j < t.size(); ++j) tk[i][j] = t[j], pd[i][j] = false;
    tg[i] = samples[i]->label;
  }
  return Batch{tokens, {}, targets, torch::full({b}, -1, torch::kLong), pad};
}

Batch WordNetSSTTask::train_batch(uint64_t seed, int64_t step, int64_t batch_size) {
  const auto& train = splits_[static_cast<int>(Split::kTrain)];
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(step)));
  std::uniform_int_distribution<size_t> pick(0, train.size() - 1);
  std::vector<const Sample*> samples(batch_size);
  for (auto& s : samples) s = &train[pick(rng)];
  return make_batch(samples);
}

std::vector<Batch> WordNetSSTTask::eval_batches(Split split, int64_t batch_size,
                                                int64_t max_batches) {
  const auto& data = splits_[static_cast<int>(split)];
  std::vector<Batch> out;
  for (size_t i = 0; i < data.size(); i += batch_size) {
    if (max_batches > 0 && static_cast<int64_t>(out.size()) == max_batches) break;
    std::vector<const Sample*> samples;
    for (size_t j = i; j < std::min(data.size(), i + batch_size); ++j) samples.push_back(&data[j]);
    out.push_back(make_batch(samples));
  }
  return out;
}

int64_t WordNetSSTTask::num_train_samples() const {
  return static_cast<int64_t>(splits_[static_cast<int>(Split::kTrain)].size());
}

Batch WordNetSSTTask::train_samples(const std::vector<int64_t>& ids) {
  const auto& train = splits_[static_cast<int>(Split::kTrain)];
  std::vector<const Sample*> samples;
  for (auto id : ids) samples.push_back(&train.at(static_cast<size_t>(id)));
  return make_batch(samples);
}

std::shared_ptr<Task> WordNetSSTTask::create(const PluginSpec& spec, const TaskContext& ctx) {
  return std::make_shared<WordNetSSTTask>(read_options(spec), ctx);
}

std::vector<ParamDoc> WordNetSSTTask::param_docs() {
  return with_ranges(
      {{"seq_len", "32", "gloss tokens kept (cut or padded)"},
       {"lm_vocab_size", "10000", "brown_lm's vocab_size (the word ids are brown_lm's)"},
       {"wordnet_dir", "/usr/share/wordnet", "directory of WordNet's data.* files"}},
      {{"seq_len", Range::ints(2, 1 << 20)}, {"lm_vocab_size", Range::ints(10, kMaxSize)}});
}

MOE_REGISTER_TASK("wordnet_sst", WordNetSSTTask,
                  "WordNet supersense (45 classes) of glosses, brown_lm word ids");

}  // namespace moe
