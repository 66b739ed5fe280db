#pragma once
// Text in, tokens out: UTF-8 text files -> token files (core/data/token_file.h) that the
// `tokens` task trains on, through SentencePiece (BPE or unigram, trained once on the
// training text and cached by content hash) or raw UTF-8 bytes (no training).
//
// Lines are the units: blank lines are dropped; SentencePiece ids of each line are followed
// by its </s> id, the byte tokenizer keeps the newline byte. Without explicit valid / test
// files, the last test_fraction of the training lines become the test split and the
// valid_fraction before them the valid split (contiguous blocks, so no sentence of a
// document leaks across). The output directory gets train.bin, valid.bin, test.bin (when
// there is test text), tokenizer.model (SentencePiece) and moe_tokens.json (vocab_size,
// tokenizer, hashes, sources, token counts), which the `tokens` task reads.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/data/token_file.h"

namespace moe {

struct TokenizeOptions {
  std::vector<std::string> train, valid, test;  ///< text files or directories of them
  std::string out;                              ///< output directory
  std::string tokenizer = "bpe";                ///< bpe | unigram | byte
  int64_t vocab_size = 8000;                    ///< SentencePiece's; byte = 256
  double valid_fraction = 0.05, test_fraction = 0.05;
  TokenFormat format = TokenFormat::kLlmc;
  std::string cache_dir = "data/tokenizers";  ///< trained SentencePiece models by hash
  int threads = 0;                            ///< training and encoding threads, 0 = all cores
};

struct TokenizeResult {
  int64_t vocab_size = 0;
  int64_t tokens[3] = {0, 0, 0};  ///< train, valid, test
  int64_t lines[3] = {0, 0, 0};
  std::string model_path;  ///< the cached SentencePiece model ("" for byte)
  bool cached = false;     ///< the model came from the cache
  double train_seconds = 0, encode_seconds = 0;
};

/// Throws std::invalid_argument naming the file (and line and byte for invalid UTF-8)
/// or the option that is wrong, before anything is written.
TokenizeResult tokenize_text(const TokenizeOptions& options, std::ostream& log);

/// The byte offset of the first invalid UTF-8 sequence in text, or -1 when it is valid.
int64_t first_invalid_utf8(const std::string& text);

}  // namespace moe
