#include "experiments/text_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace moe {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

/// Regular files named by paths; a directory stands for its regular files, sorted, recursively.
std::vector<std::string> expand(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st)) fail("text file '" + p + "' does not exist");
    if (fs::is_directory(st)) {
      std::vector<std::string> inside;
      for (const auto& e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file()) inside.push_back(e.path().string());
      }
      std::sort(inside.begin(), inside.end());
      if (inside.empty()) fail("text directory '" + p + "' holds no files");
      files.insert(files.end(), inside.begin(), inside.end());
    } else if (fs::is_regular_file(st)) {
      files.push_back(p);
    } else {
      fail("text file '" + p + "' is not a regular file");
    }
  }
  return files;
}

/// The non-blank lines of the files, each checked to be UTF-8.
std::vector<std::string> read_lines(const std::vector<std::string>& files) {
  std::vector<std::string> lines;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) fail("text file '" + f + "' cannot be read: " + std::strerror(errno));
    std::string line;
    int64_t offset = 0;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      const int64_t bad = first_invalid_utf8(line);
      if (bad >= 0) {
        std::ostringstream msg;
        msg << "text file '" << f << "' line " << no << " (byte " << offset + bad
            << "): not valid UTF-8 (byte 0x" << std::hex << std::setw(2) << std::setfill('0')
            << static_cast<int>(static_cast<unsigned char>(line[bad]))
            << "); convert it first, e.g. iconv -f latin1 -t utf-8";
        fail(msg.str());
      }
      offset += static_cast<int64_t>(line.size()) + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(std::move(line));
    }
    if (in.bad()) fail("text file '" + f + "' cannot be read: " + std::strerror(errno));
  }
  return lines;
}

/// FNV-1a, 64 bits: the cache key of a tokenizer's training text and options.
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\n", 1);
  }
  std::string hex() const {
    std::ostringstream out;
    out << std::hex << std::setw(16) << std::setfill('0') << h;
    return out.str();
  }
};

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  size_t i_ = 0;
};

std::string train_sentencepiece(const TokenizeOptions& o, const std::vector<std::string>& lines,
                                const std::string& path) {
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.tokenizer},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "0.9995"},
      {"byte_fallback", "true"},  // characters outside the vocabulary become bytes, not <unk>
      {"input_sentence_size", "2000000"},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "1000000"},
      {"num_threads",
       std::to_string(o.threads > 0 ? o.threads
                                    : std::max(1u, std::thread::hardware_concurrency()))},
      {"minloglevel", "1"}};
  sentencepiece::SetRandomGeneratorSeed(20240520);
  LineIterator it(lines);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok()) {
    fail("SentencePiece " + o.tokenizer + " training with vocab_size " +
         std::to_string(o.vocab_size) + " failed: " + status.ToString());
  }
  fs::create_directories(fs::path(path).parent_path());
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::binary) << model;
  fs::rename(tmp, path);
  return model;
}

}  // namespace

int64_t first_invalid_utf8(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = 0;
    uint32_t min = 0, cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return static_cast<int64_t>(i);
    }
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return static_cast<int64_t>(i);
    }
    i += len;
  }
  return -1;
}

TokenizeResult tokenize_text(const TokenizeOptions& o, std::ostream& log) {
  if (o.tokenizer != "bpe" && o.tokenizer != "unigram" && o.tokenizer != "byte") {
    fail("--tokenizer '" + o.tokenizer + "' is unknown; valid: [bpe, unigram, byte]");
  }
  const bool bytes = o.tokenizer == "byte";
  if (!bytes && (o.vocab_size < 300 || o.vocab_size > 1000000)) {
    fail("--vocab-size " + std::to_string(o.vocab_size) +
         " is outside [300, 1000000] (SentencePiece with byte fallback needs the 256 bytes "
         "plus its own pieces)");
  }
  if (o.out.empty()) fail("--out (the output directory) is required");
  if (o.train.empty()) fail("no training text files given");
  if (o.valid.empty()) {
    for (const auto& [name, f] : {std::pair{"--valid-fraction", o.valid_fraction},
                                  std::pair{"--test-fraction", o.test_fraction}}) {
      if (!(f >= 0 && f < 0.5)) {
        fail(std::string(name) + " " + std::to_string(f) + " is outside [0, 0.5)");
      }
    }
    if (o.valid_fraction <= 0) fail("--valid-fraction must be > 0 without --valid files");
  }
  if (!o.test.empty() && o.valid.empty()) fail("--test files go with --valid files");
  if (o.format == TokenFormat::kAuto) fail("--format must be llmc or nanogpt");
  if (fs::exists(o.out) && !fs::is_directory(o.out)) {
    fail("--out '" + o.out + "' exists and is not a directory");
  }

  // Read and check every file before anything is trained or written.
  std::vector<std::string> split_lines[3];
  const auto train_files = expand(o.train);
  const auto valid_files = expand(o.valid), test_files = expand(o.test);
  split_lines[0] = read_lines(train_files);
  if (!o.valid.empty()) {
    split_lines[1] = read_lines(valid_files);
    if (!o.test.empty()) split_lines[2] = read_lines(test_files);
  } else {
    auto& all = split_lines[0];
    const auto n = static_cast<int64_t>(all.size());
    const auto n_test = static_cast<int64_t>(static_cast<double>(n) * o.test_fraction);
    const auto n_valid = static_cast<int64_t>(static_cast<double>(n) * o.valid_fraction);
    split_lines[2].assign(all.end() - n_test, all.end());
    split_lines[1].assign(all.end() - n_test - n_valid, all.end() - n_test);
    all.resize(static_cast<size_t>(n - n_test - n_valid));
  }
  const char* names[3] = {"train", "valid", "test"};
  for (int s = 0; s < 2; ++s) {
    if (split_lines[s].empty()) {
      fail(std::string("the ") + names[s] + " split has no text (" +
           (s == 0 || !o.valid.empty() ? "its files hold only blank lines"
                                       : "too few lines for --valid-fraction") +
           ")");
    }
  }

  TokenizeResult result;
  sentencepiece::SentencePieceProcessor sp;
  std::string model;
  if (!bytes) {
    Fnv key;
    key.add("sentencepiece 0.1.97 v1 " + o.tokenizer + " " + std::to_string(o.vocab_size));
    for (const auto& line : split_lines[0]) key.add(line);
    result.model_path = (fs::path(o.cache_dir) / (o.tokenizer + "-" + std::to_string(o.vocab_size) +
                                                  "-" + key.hex() + ".model"))
                            .string();
    const auto t0 = Clock::now();
    if (fs::exists(result.model_path)) {
      std::ifstream in(result.model_path, std::ios::binary);
      model.assign(std::istreambuf_iterator<char>(in), {});
      result.cached = sp.LoadFromSerializedProto(model).ok();
      if (!result.cached)
        log << "tokenize: cached model '" << result.model_path
            << "' is unreadable; training again\n";
    }
    if (!result.cached) {
      log << "tokenize: training a SentencePiece " << o.tokenizer << " model, vocab_size "
          << o.vocab_size << ", on " << split_lines[0].size() << " lines ...\n";
      model = train_sentencepiece(o, split_lines[0], result.model_path);
      const auto st = sp.LoadFromSerializedProto(model);
      if (!st.ok()) fail("SentencePiece model could not be loaded: " + st.ToString());
    }
    result.train_seconds = seconds_since(t0);
    result.vocab_size = sp.GetPieceSize();
  } else {
    result.vocab_size = 256;
  }

  fs::create_directories(o.out);
  const auto t1 = Clock::now();
  // Lines are encoded in parallel (SentencePiece's Encode is const), in contiguous blocks
  // joined in order: the same tokens for any thread count.
  const int threads = o.threads > 0
                          ? o.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int s = 0; s < 3; ++s) {
    if (split_lines[s].empty()) continue;
    const auto& lines = split_lines[s];
    const size_t blocks = std::min<size_t>(static_cast<size_t>(threads), lines.size());
    std::vector<std::vector<uint32_t>> parts(blocks);
    std::vector<std::string> errors(blocks);
    auto encode = [&](size_t b) {
      std::vector<int> ids;
      auto& out = parts[b];
      for (size_t i = lines.size() * b / blocks; i < lines.size() * (b + 1) / blocks; ++i) {
        if (bytes) {
          for (unsigned char c : lines[i]) out.push_back(c);
          out.push_back('\n');
        } else {
          const auto st = sp.Encode(lines[i], &ids);
          if (!st.ok()) {
            errors[b] = "SentencePiece could not encode a line: " + st.ToString();
            return;
          }
          out.insert(out.end(), ids.begin(), ids.end());
          out.push_back(static_cast<uint32_t>(sp.eos_id()));
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t b = 1; b < blocks; ++b) pool.emplace_back(encode, b);
    encode(0);
    for (auto& t : pool) t.join();
    for (const auto& e : errors) {
      if (!e.empty()) fail(e);
    }
    std::vector<uint32_t> tokens;
    for (auto& part : parts) tokens.insert(tokens.end(), part.begin(), part.end());
    result.tokens[s] = static_cast<int64_t>(tokens.size());
    result.lines[s] = static_cast<int64_t>(split_lines[s].size());
    write_token_file((fs::path(o.out) / (std::string(names[s]) + ".bin")).string(), o.format,
                     tokens);
  }
  result.encode_seconds = seconds_since(t1);
  if (split_lines[2].empty()) {
    std::error_code ec;  // a previous run's test split would be read as this one's
    fs::remove(fs::path(o.out) / "test.bin", ec);
  }
  if (!bytes) {
    std::ofstream(fs::path(o.out) / "tokenizer.model", std::ios::binary) << model;
  }

  nlohmann::json meta = {
      {"tokenizer", o.tokenizer},
      {"vocab_size", result.vocab_size},
      {"format", token_format_name(o.format)},
      {"model", bytes ? "" : "tokenizer.model"},
      {"model_cache", result.model_path},
      {"eos_id", bytes ? -1 : sp.eos_id()},
      {"library", bytes ? "none (UTF-8 bytes)" : "SentencePiece 0.1.97 (Debian libsentencepiece)"}};
  for (int s = 0; s < 3; ++s) {
    if (split_lines[s].empty()) continue;
    meta["splits"][names[s]] = {{"file", std::string(names[s]) + ".bin"},
                                {"tokens", result.tokens[s]},
                                {"lines", result.lines[s]}};
  }
  meta["sources"] = {{"train", train_files}, {"valid", valid_files}, {"test", test_files}};
  if (o.valid.empty()) {
    meta["sources"]["split"] = {{"valid_fraction", o.valid_fraction},
                                {"test_fraction", o.test_fraction}};
  }
  std::ofstream(fs::path(o.out) / "moe_tokens.json") << meta.dump(2) << "\n";
  return result;
}

}  // namespace moe
