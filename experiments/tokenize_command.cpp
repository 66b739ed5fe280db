// moe tokenize: UTF-8 text files -> token files for the `tokens` task.
#include <boost/program_options.hpp>

#include <iomanip>
#include <iostream>

#include "experiments/cli_args.h"
#include "experiments/commands.h"
#include "experiments/text_tokenizer.h"

namespace po = boost::program_options;

namespace moe {

int tokenize_command(const std::vector<std::string>& args) {
  TokenizeOptions o;
  std::string format = "llmc";
  po::options_description desc(
      "moe tokenize: turn UTF-8 text into token files that the `tokens` task trains on\n\n"
      "Usage: moe tokenize --out DIR [options] TEXT...\n\n"
      "TEXT: training text files (a directory stands for its files, sorted). Lines are the\n"
      "units; blank lines are dropped. Without --valid, the last --test-fraction of the lines\n"
      "become test.bin and the --valid-fraction before them valid.bin. SentencePiece models\n"
      "are trained once on the training text and cached by its content hash (--cache). DIR\n"
      "gets train.bin, valid.bin, test.bin, tokenizer.model and moe_tokens.json; train on\n"
      "it with  task = { name = \"tokens\", dir = \"DIR\" }.\n\nOptions");
  desc.add_options()("help,h", "show this help")("out,o", po::value(&o.out),
                                                 "output directory (created)")(
      "train", po::value(&o.train)->multitoken(), "training text files (or positional)")(
      "valid", po::value(&o.valid)->multitoken(), "validation text files")(
      "test", po::value(&o.test)->multitoken(),
      "test text files (with --valid; absent: the tokens task uses half of valid)")(
      "tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer),
      "bpe | unigram (SentencePiece, trained) | byte (UTF-8 bytes, vocab 256)")(
      "vocab-size", po::value(&o.vocab_size)->default_value(o.vocab_size),
      "SentencePiece vocabulary size")(
      "valid-fraction", po::value(&o.valid_fraction)->default_value(o.valid_fraction, "0.05"),
      "without --valid: share of the lines for valid.bin")(
      "test-fraction", po::value(&o.test_fraction)->default_value(o.test_fraction, "0.05"),
      "without --valid: share of the lines for test.bin (0 = none)")(
      "format", po::value(&format)->default_value(format),
      "llmc (llm.c's header, uint16 or uint32) | nanogpt (raw uint16)")(
      "cache", po::value(&o.cache_dir)->default_value(o.cache_dir),
      "directory of trained SentencePiece models")("threads",
                                                   po::value(&o.threads)->default_value(0),
                                                   "SentencePiece training threads (0 = all)");
  po::positional_options_description pos;
  pos.add("train", -1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "train"); rc >= 0) return rc;
  if (format != "llmc" && format != "nanogpt") {
    throw std::invalid_argument("--format '" + format + "' is unknown; valid: [llmc, nanogpt]");
  }
  o.format = parse_token_format(format);
  const auto r = tokenize_text(o, std::cout);
  if (!r.model_path.empty()) {
    std::cout << "tokenize: " << (r.cached ? "cached" : "trained") << " tokenizer " << r.model_path
              << " (" << std::fixed << std::setprecision(1) << r.train_seconds << " s)\n";
  }
  const char* names[3] = {"train", "valid", "test"};
  for (int s = 0; s < 3; ++s) {
    if (r.lines[s] == 0) continue;
    std::cout << "tokenize: " << o.out << "/" << names[s] << ".bin  " << r.tokens[s]
              << " tokens from " << r.lines[s] << " lines\n";
  }
  std::cout << "tokenize: vocab_size " << r.vocab_size << ", encoded in " << std::fixed
            << std::setprecision(1) << r.encode_seconds << " s; train with  task = { name = "
            << "\"tokens\", dir = \"" << o.out << "\" }\n";
  return 0;
}

}  // namespace moe
