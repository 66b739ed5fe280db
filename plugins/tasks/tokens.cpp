#include "plugins/tasks/tokens.h"

#include <c10/util/Exception.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

namespace moe {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;
/// Tokens counted for the frequency ranks behind the difficulty levels.
constexpr int64_t kRankSample = int64_t{1} << 24;
constexpr const char* kMetaName = "moe_tokens.json";

std::vector<std::string> files_at(const PluginSpec& spec, const std::string& key) {
  if (!spec.contains(key)) return {};
  if (spec.params().at(key).is_string()) return {spec.get<std::string>(key, "")};
  auto files = spec.get<std::vector<std::string>>(key, {});
  if (files.empty()) {
    throw ConfigError::value(spec.check().component(), key, "a file or a non-empty array of files",
                             "[]");
  }
  return files;
}

std::shared_ptr<const TokenFile> open_file(const PluginSpec& spec, const std::string& key,
                                           const std::string& path, TokenFormat format) {
  try {
    return std::make_shared<const TokenFile>(TokenFile::open(path, format));
  } catch (const std::invalid_argument& e) {
    spec.fail(key, e.what());
  }
}

/// The vocabulary size that `moe tokenize` wrote beside the training files, or 0.
int64_t meta_vocab_size(const PluginSpec& spec, const fs::path& dir) {
  const auto meta = dir / kMetaName;
  if (!fs::exists(meta)) return 0;
  std::ifstream in(meta);
  const auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("vocab_size") ||
      !json["vocab_size"].is_number_integer()) {
    spec.fail("'" + meta.string() + "' has no integer vocab_size; rewrite it with moe tokenize " +
              "or set the task's vocab_size");
  }
  return json["vocab_size"].get<int64_t>();
}

}  // namespace

TokensTask::Options TokensTask::read_options(const PluginSpec& spec) {
  Options o;
  o.name = spec.name();
  o.seq_len = spec.get<int64_t>("seq_len", o.seq_len);
  o.vocab_size = spec.get<int64_t>("vocab_size", o.vocab_size);
  const auto format_name = spec.choice("format", "auto", {"auto", "llmc", "nanogpt"});
  o.format = parse_token_format(format_name);
  const auto dir = spec.get<std::string>("dir", "");
  const auto one_file = spec.get<std::string>("file", "");
  const auto train = files_at(spec, "train"), valid = files_at(spec, "valid"),
             test = files_at(spec, "test");
  const bool fractions = spec.contains("valid_fraction") || spec.contains("test_fraction");
  const double valid_fraction = spec.get<double>("valid_fraction", 0.05);
  const double test_fraction = spec.get<double>("test_fraction", 0.05);
  const auto check = spec.check();
  check.expect(o.seq_len >= 1 && o.seq_len <= kMaxSeqLen, "seq_len",
               "in [1, " + std::to_string(kMaxSeqLen) + "]", static_cast<double>(o.seq_len));
  check.expect(o.vocab_size >= 0 && o.vocab_size <= kMaxVocab, "vocab_size",
               "in [2, " + std::to_string(kMaxVocab) + "] (0 = from " + kMetaName + ")",
               static_cast<double>(o.vocab_size));
  const int sources = !dir.empty() + !one_file.empty() + !train.empty();
  if (sources != 1) {
    spec.fail(std::string(sources == 0 ? "no token files named" : "token files named twice") +
              ": set exactly one of dir (train.bin, valid.bin or val.bin, test.bin), train + "
              "valid (+ test) files, or file with valid_fraction and test_fraction");
  }
  if (train.empty() && (!valid.empty() || !test.empty())) {
    spec.fail("valid and test files go with train files, not with dir or file");
  }
  if (!train.empty() && valid.empty()) {
    spec.fail("missing required parameter 'valid' (the validation token file) beside 'train'");
  }
  if (fractions && one_file.empty()) {
    spec.fail("valid_fraction and test_fraction cut a single file; they go with file");
  }
  if (!one_file.empty()) {
    check.expect(valid_fraction > 0 && valid_fraction < 0.5, "valid_fraction", "in (0, 0.5)",
                 valid_fraction);
    check.expect(test_fraction > 0 && test_fraction < 0.5, "test_fraction", "in (0, 0.5)",
                 test_fraction);
  }

  auto whole = [&](const std::string& key, const std::vector<std::string>& paths) {
    std::vector<Segment> segments;
    for (const auto& p : paths) {
      auto f = open_file(spec, key, p, o.format);
      segments.push_back({f, 0, f->size()});
    }
    return segments;
  };
  auto& tr = o.splits[static_cast<int>(Split::kTrain)];
  auto& va = o.splits[static_cast<int>(Split::kValid)];
  auto& te = o.splits[static_cast<int>(Split::kTest)];
  fs::path meta_dir;
  if (!dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      spec.fail("dir",
                "'" + dir + "' " + (fs::exists(dir, ec) ? "is not a directory" : "does not exist"));
    }
    const fs::path d(dir);
    tr = whole("dir", {(d / "train.bin").string()});
    const bool has_valid = fs::exists(d / "valid.bin", ec);
    if (!has_valid && !fs::exists(d / "val.bin", ec)) {
      spec.fail("dir", "'" + dir + "' has neither valid.bin nor val.bin");
    }
    va = whole("dir", {(d / (has_valid ? "valid.bin" : "val.bin")).string()});
    if (fs::exists(d / "test.bin", ec)) te = whole("dir", {(d / "test.bin").string()});
    meta_dir = d;
  } else if (!train.empty()) {
    tr = whole("train", train);
    va = whole("valid", valid);
    if (!test.empty()) te = whole("test", test);
    meta_dir = fs::path(train.front()).parent_path();
  } else {
    auto f = open_file(spec, "file", one_file, o.format);
    const int64_t n = f->size();
    const auto n_test = static_cast<int64_t>(static_cast<double>(n) * test_fraction);
    const auto n_valid = static_cast<int64_t>(static_cast<double>(n) * valid_fraction);
    tr = {{f, 0, n - n_valid - n_test}};
    va = {{f, n - n_valid - n_test, n - n_test}};
    te = {{f, n - n_test, n}};
    meta_dir = fs::path(one_file).parent_path();
  }
  if (te.empty()) {  // the second half of the valid split
    std::vector<Segment> first, second;
    for (const auto& s : va) {
      const int64_t mid = s.begin + (s.end - s.begin) / 2;
      first.push_back({s.file, s.begin, mid});
      second.push_back({s.file, mid, s.end});
    }
    va = first;
    te = second;
  }
  // Splits are disjoint: no file may serve two of them whole.
  for (int a = 0; a < 3; ++a) {
    for (int b = a + 1; b < 3; ++b) {
      for (const auto& sa : o.splits[a]) {
        for (const auto& sb : o.splits[b]) {
          std::error_code ec;
          if (sa.file != sb.file && fs::equivalent(sa.file->path(), sb.file->path(), ec)) {
            spec.fail(std::string(split_name(static_cast<Split>(a))) + " and " +
                      split_name(static_cast<Split>(b)) + " name the same file '" +
                      sb.file->path() + "'; their windows must be disjoint");
          }
        }
      }
    }
  }
  for (int s = 0; s < 3; ++s) {
    for (const auto& seg : o.splits[s]) {
      const int64_t n = seg.end - seg.begin;
      if (n < o.seq_len + 1) {
        const bool part = seg.begin != 0 || seg.end != seg.file->size();
        spec.fail(std::string("split '") + split_name(static_cast<Split>(s)) + "': token file '" +
                  seg.file->path() + "' " +
                  (part ? "tokens [" + std::to_string(seg.begin) + ", " + std::to_string(seg.end) +
                              ") hold "
                        : "holds ") +
                  std::to_string(n) + " tokens, fewer than one window (seq_len + 1 = " +
                  std::to_string(o.seq_len + 1) + ")");
      }
    }
  }
  if (o.vocab_size == 0) {
    o.vocab_size = meta_vocab_size(spec, meta_dir.empty() ? fs::path(".") : meta_dir);
    if (o.vocab_size == 0) {
      spec.fail("missing required parameter 'vocab_size' (no " + std::string(kMetaName) +
                " from moe tokenize beside '" + tr.front().file->path() +
                "'; GPT-2's BPE as nanoGPT and llm.c prepare it: 50257)");
    }
  }
  check.expect(o.vocab_size >= 2, "vocab_size", ">= 2", static_cast<double>(o.vocab_size));
  return o;
}

void TokensTask::check_options(const PluginSpec& spec) {
  const auto o = read_options(spec);
  // Each file is scanned once per process and vocabulary size (a plan checks every distinct
  // model shape, and they usually share their files); a file changed since is scanned again.
  static std::mutex mu;
  static std::set<std::string> verified;
  for (const auto& split : o.splits) {
    for (const auto& seg : split) {
      std::error_code ec;
      const auto& path = seg.file->path();
      const auto key = fs::weakly_canonical(path, ec).string() + "|" +
                       std::to_string(fs::file_size(path, ec)) + "|" +
                       std::to_string(fs::last_write_time(path, ec).time_since_epoch().count()) +
                       "|" + std::to_string(o.vocab_size);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (verified.count(key)) continue;
      }
      try {
        seg.file->check_ids(o.vocab_size);
      } catch (const std::invalid_argument& e) {
        spec.fail(e.what());
      }
      std::lock_guard<std::mutex> lock(mu);
      verified.insert(key);
    }
  }
}

TokensTask::TokensTask(Options o) : o_(std::move(o)) {
  info_.name = o_.name;
  info_.head = Head::kLm;
  info_.causal = kCausal;
  info_.seq_len = o_.seq_len;
  info_.vocab_size = o_.vocab_size;
  info_.num_classes = o_.vocab_size;
  const int64_t len = o_.seq_len;
  int64_t starts = 0;
  for (const auto& seg : o_.splits[static_cast<int>(Split::kTrain)]) {
    starts += seg.end - seg.begin - len;
    train_starts_cum_.push_back(starts);
  }
  for (int s = 0; s < 3; ++s) {
    int64_t windows = 0;
    for (const auto& seg : o_.splits[s]) {
      windows += (seg.end - seg.begin - 1) / len;
      windows_cum_[s].push_back(windows);
    }
  }
  // Frequency ranks on up to kRankSample training tokens, in 256 evenly spaced chunks.
  std::vector<int64_t> counts(static_cast<size_t>(o_.vocab_size), 0);
  for (const auto& seg : o_.splits[static_cast<int>(Split::kTrain)]) {
    const int64_t n = seg.end - seg.begin;
    const int64_t share =
        std::max<int64_t>(1, kRankSample / static_cast<int64_t>(o_.splits[0].size()));
    const int64_t chunks = n <= share ? 1 : 256, chunk = std::min(n, share / chunks);
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t from = seg.begin + (n - chunk) * c / std::max<int64_t>(chunks - 1, 1);
      for (int64_t i = from; i < from + chunk; ++i) {
        const uint32_t id = (*seg.file)[i];
        if (id < counts.size()) ++counts[id];
      }
    }
  }
  std::vector<int64_t> order(counts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
  const std::vector<std::pair<int64_t, const char*>> bounds = {
      {100, "top 100"}, {1000, "top 1k"}, {10000, "top 10k"}};
  std::vector<int64_t> limits;
  for (const auto& [rank, name] : bounds) {
    if (rank < o_.vocab_size) {
      limits.push_back(rank);
      info_.difficulty_levels.push_back(name);
    }
  }
  info_.difficulty_levels.push_back(limits.empty() ? "all" : "rarer");
  level_of_.assign(order.size(), 0);
  for (size_t r = 0; r < order.size(); ++r) {
    int8_t level = 0;
    while (level < static_cast<int8_t>(limits.size()) && static_cast<int64_t>(r) >= limits[level]) {
      ++level;
    }
    level_of_[order[r]] = level;
  }
  int64_t total[3] = {0, 0, 0};
  for (int s = 0; s < 3; ++s) {
    for (const auto& seg : o_.splits[s]) total[s] += seg.end - seg.begin;
  }
  info_.notes["tokens: train"] = static_cast<double>(total[0]);
  info_.notes["tokens: valid"] = static_cast<double>(total[1]);
  info_.notes["tokens: test"] = static_cast<double>(total[2]);
}

Batch TokensTask::make_batch(Split split, const std::vector<Window>& windows) const {
  const int64_t b = static_cast<int64_t>(windows.size()), len = o_.seq_len;
  auto tokens = torch::empty({b, len}, torch::kLong);
  auto targets = torch::empty({b, len}, torch::kLong);
  auto diff = torch::empty({b, len}, torch::kLong);
  std::vector<int64_t> buf(static_cast<size_t>(len + 1));
  auto* tk = tokens.data_ptr<int64_t>();
  auto* tg = targets.data_ptr<int64_t>();
  auto* df = diff.data_ptr<int64_t>();
  const auto& segments = o_.splits[static_cast<int>(split)];
  for (int64_t i = 0; i < b; ++i) {
    const auto& seg = segments[windows[i].segment];
    seg.file->copy(windows[i].start, len + 1, o_.vocab_size, buf.data());
    std::copy(buf.begin(), buf.end() - 1, tk + i * len);
    std::copy(buf.begin() + 1, buf.end(), tg + i * len);
    for (int64_t j = 0; j < len; ++j) df[i * len + j] = level_of_[buf[j + 1]];
  }
  return Batch{tokens, {}, targets, diff, {}};
}

Batch TokensTask::train_batch(uint64_t seed, int64_t step, int64_t batch_size) {
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(step)));
  std::uniform_int_distribution<int64_t> pick(0, train_starts_cum_.back() - 1);
  const auto& segments = o_.splits[static_cast<int>(Split::kTrain)];
  std::vector<Window> windows(static_cast<size_t>(batch_size));
  for (auto& w : windows) {
    const int64_t at = pick(rng);
    const auto seg = std::upper_bound(train_starts_cum_.begin(), train_starts_cum_.end(), at) -
                     train_starts_cum_.begin();
    const int64_t before = seg == 0 ? 0 : train_starts_cum_[seg - 1];
    w = {seg, segments[seg].begin + at - before};
  }
  return make_batch(Split::kTrain, windows);
}

int64_t TokensTask::windows_in(Split split) const {
  return windows_cum_[static_cast<int>(split)].back();
}

TokensTask::Window TokensTask::nth_window(Split split, int64_t index) const {
  const auto& cum = windows_cum_[static_cast<int>(split)];
  const auto seg = std::upper_bound(cum.begin(), cum.end(), index) - cum.begin();
  const int64_t before = seg == 0 ? 0 : cum[seg - 1];
  return {seg, o_.splits[static_cast<int>(split)][seg].begin + (index - before) * o_.seq_len};
}

std::vector<Batch> TokensTask::eval_batches(Split split, int64_t batch_size, int64_t max_batches) {
  const int64_t n = windows_in(split);
  std::vector<Batch> out;
  for (int64_t first = 0; first < n; first += batch_size) {
    if (max_batches > 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    std::vector<Window> windows;
    for (int64_t i = first; i < std::min(n, first + batch_size); ++i) {
      windows.push_back(nth_window(split, i));
    }
    out.push_back(make_batch(split, windows));
  }
  return out;
}

int64_t TokensTask::num_train_samples() const { return windows_in(Split::kTrain); }

Batch TokensTask::train_samples(const std::vector<int64_t>& ids) {
  const int64_t size = num_train_samples();
  std::vector<Window> windows;
  for (int64_t id : ids) {
    TORCH_CHECK(id >= 0 && id < size, "task '", info_.name, "': sample id ", id,
                " outside the training pool [0, ", size, ")");
    windows.push_back(nth_window(Split::kTrain, id));
  }
  return make_batch(Split::kTrain, windows);
}

std::shared_ptr<Task> TokensTask::create(const PluginSpec& spec, const TaskContext& /*ctx*/) {
  return std::make_shared<TokensTask>(read_options(spec));
}

std::vector<ParamDoc> TokensTask::param_docs() {
  return with_ranges(
      {{"dir", "",
        "directory with train.bin, valid.bin (or val.bin) and test.bin (moe tokenize's output, "
        "nanoGPT's data/<name>/)"},
       {"train", "", "training token file or [files] (llm.c shards), with valid"},
       {"valid", "", "validation token file or [files]"},
       {"test", "", "test token file or [files]; absent: the second half of valid"},
       {"file", "", "one token file cut into train | valid | test by the fractions"},
       {"valid_fraction", "0.05", "with file: the validation block before the test block"},
       {"test_fraction", "0.05", "with file: the test block at the end"},
       {"format", "auto", "auto (llm.c when the magic is there, else nanoGPT) | llmc | nanogpt"},
       {"vocab_size", "0", "ids are < vocab_size; 0 = from moe_tokens.json beside the files"},
       {"seq_len", "256", "tokens per window"}},
      {{"valid_fraction", Range::reals(0, 0.5, true, true)},
       {"test_fraction", Range::reals(0, 0.5, true, true)},
       {"vocab_size", Range::ints(0, 1 << 24)},
       {"seq_len", Range::ints(1, 1 << 20)}});
}

MOE_REGISTER_TASK("tokens", TokensTask,
                  "causal LM over token files (llm.c / nanoGPT .bin, memory-mapped); "
                  "difficulty = token frequency rank");

}  // namespace moe
