#pragma once
// "tokens": a causal language model over token files on disk (core/data/token_file.h:
// llm.c's header + uint16/uint32 layout or nanoGPT's raw uint16 .bin), memory-mapped.
//
// Where the splits come from (exactly one of):
//   dir   = a directory with train.bin, valid.bin (or nanoGPT's val.bin) and optionally
//           test.bin: what `moe tokenize` writes, or nanoGPT's data/<name>/ as prepared;
//   train = file or [files] (llm.c's shards), valid = file or [files], test = optional;
//   file  = one file cut into train | valid | test by valid_fraction and test_fraction
//           (valid and test are the last contiguous blocks, in that order).
// Without a test split, the second half of the valid split is the test split (and the
// first half stays valid). vocab_size defaults to the one in moe_tokens.json beside the
// training file (written by `moe tokenize`); without it the parameter is required.
//
// Windows: seq_len + 1 consecutive tokens of one file (inputs and shifted targets), never
// crossing a split or file boundary. Training windows start anywhere, drawn from (seed,
// step); valid and test windows are fixed: back to back from the start of their split.
// The training pool (epochs, curriculum) is the back-to-back windows of the training split.
// Difficulty of a target token = its frequency rank among the training tokens (counted on
// up to 16M tokens spread evenly over the split): top 100 | top 1k | top 10k | rarer, the
// levels a vocabulary of that size can fill (one level, "all", up to 100 ids).
//
// Checks: the files, their headers and sizes when the options are read (plan time and
// start); every id < vocab_size over the whole files at plan time (check_options) and in
// every window the task reads.
#include <memory>
#include <string>
#include <vector>

#include "core/data/task.h"
#include "core/data/token_file.h"

namespace moe {

class TokensTask : public Task {
 public:
  static constexpr bool kCausal = true;
  /// A block [begin, end) of one file.
  struct Segment {
    std::shared_ptr<const TokenFile> file;
    int64_t begin = 0, end = 0;
  };
  struct Options {
    std::string name;
    int64_t seq_len = 256, vocab_size = 0;
    TokenFormat format = TokenFormat::kAuto;
    std::vector<Segment> splits[3];  ///< indexed by Split, files opened and checked
  };
  /// Reads the options, opens (maps) and checks every file; no token is scanned.
  static Options read_options(const PluginSpec& spec);
  /// read_options plus every token id checked against vocab_size (plan time).
  static void check_options(const PluginSpec& spec);
  explicit TokensTask(Options o);
  static std::shared_ptr<Task> create(const PluginSpec& spec, const TaskContext& ctx);
  static std::vector<ParamDoc> param_docs();

  const TaskInfo& info() const override { return info_; }
  Batch train_batch(uint64_t seed, int64_t step, int64_t batch_size) override;
  std::vector<Batch> eval_batches(Split split, int64_t batch_size, int64_t max_batches) override;
  int64_t num_train_samples() const override;
  Batch train_samples(const std::vector<int64_t>& ids) override;

  /// The difficulty level of each token id (frequency-rank bucket).
  const std::vector<int8_t>& levels() const { return level_of_; }

 private:
  /// A window: segment index within the split and its first token.
  struct Window {
    int64_t segment, start;
  };
  Batch make_batch(Split split, const std::vector<Window>& windows) const;
  /// The index'th back-to-back window of a split (index < windows_in(split)).
  Window nth_window(Split split, int64_t index) const;
  int64_t windows_in(Split split) const;

  TaskInfo info_;
  Options o_;
  std::vector<int64_t> train_starts_cum_;  ///< cumulative start positions per train segment
  std::vector<int64_t> windows_cum_[3];    ///< cumulative back-to-back windows per segment
  std::vector<int8_t> level_of_;
};

}  // namespace moe
