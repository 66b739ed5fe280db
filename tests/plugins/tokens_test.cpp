// The `tokens` task and its files: llm.c's and nanoGPT's layouts as their own scripts write
// them, windows, splits, difficulty, and every bad file refused with its name and problem.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include "core/data/task.h"
#include "core/data/token_file.h"
#include "experiments/sweep_spec.h"
#include "experiments/text_tokenizer.h"
#include "plugins/tasks/tokens.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

/// llm.c's write_datafile layout, written byte by byte here (not through moe's writer):
/// int32 header[256] = {20240520, version, count, 0...}, then the tokens.
void write_llmc(const std::string& path, const std::vector<uint32_t>& tokens, int version = 1,
                int32_t magic = kLlmcMagic, int64_t header_count = -1) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = static_cast<int32_t>(header_count >= 0 ? header_count : tokens.size());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 1024);
  for (uint32_t t : tokens) {
    if (version == 1) {
      const auto v = static_cast<uint16_t>(t);
      out.write(reinterpret_cast<const char*>(&v), 2);
    } else {
      out.write(reinterpret_cast<const char*>(&t), 4);
    }
  }
}

/// nanoGPT's prepare.py: np.array(ids, dtype=np.uint16).tofile(path).
void write_nanogpt(const std::string& path, const std::vector<uint32_t>& tokens) {
  std::ofstream out(path, std::ios::binary);
  for (uint32_t t : tokens) {
    const auto v = static_cast<uint16_t>(t);
    out.write(reinterpret_cast<const char*>(&v), 2);
  }
}

std::vector<uint32_t> range_tokens(int64_t n, uint32_t lo, uint32_t hi) {
  std::vector<uint32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(lo + static_cast<uint32_t>(i % (hi - lo)));
  return t;
}

std::shared_ptr<Task> tokens_task(const nlohmann::json& params) {
  return make_task(PluginSpec("task", "tokens", params), TaskContext{"data"});
}

class Tokens : public ::testing::Test {
 protected:
  std::string path(const std::string& n) { return tmp_.file(n); }
  moe::testing::TempDir tmp_;
};

TEST_F(Tokens, ReadsLlmcVersionsAndNanoGptAsTheirScriptsWriteThem) {
  const std::vector<uint32_t> narrow = {0, 1, 65535, 7, 42};
  const std::vector<uint32_t> wide = {0, 70000, 100277, 3};
  write_llmc(path("a.bin"), narrow, 1);
  write_llmc(path("b.bin"), wide, 2);
  write_nanogpt(path("c.bin"), narrow);
  const auto a = TokenFile::open(path("a.bin"));
  const auto b = TokenFile::open(path("b.bin"));
  const auto c = TokenFile::open(path("c.bin"));
  EXPECT_EQ(a.format(), TokenFormat::kLlmc);
  EXPECT_EQ(a.bytes_per_token(), 2);
  EXPECT_EQ(b.bytes_per_token(), 4);
  EXPECT_EQ(c.format(), TokenFormat::kNanoGpt);
  ASSERT_EQ(a.size(), 5);
  ASSERT_EQ(b.size(), 4);
  ASSERT_EQ(c.size(), 5);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i], narrow[i]);
    EXPECT_EQ(c[i], narrow[i]);
  }
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b[i], wide[i]);
  EXPECT_EQ(b.max_id(0, 4), std::make_pair(uint32_t{100277}, int64_t{2}));
  // moe's writer produces the same bytes as llm.c's layout.
  write_token_file(path("w.bin"), TokenFormat::kLlmc, narrow);
  std::ifstream x(path("a.bin"), std::ios::binary), y(path("w.bin"), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(x), {}),
            std::string(std::istreambuf_iterator<char>(y), {}));
  write_token_file(path("w2.bin"), TokenFormat::kLlmc, wide);
  EXPECT_EQ(TokenFile::open(path("w2.bin")).bytes_per_token(), 4);
  expect_error([&] { write_token_file(path("w3.bin"), TokenFormat::kNanoGpt, wide); },
               "token id 100277 does not fit nanoGPT's uint16 layout");
}

TEST_F(Tokens, EveryBadFileIsRefusedNamingTheFileAndTheProblem) {
  write_llmc(path("magic.bin"), {1, 2, 3}, 1, 12345);
  write_llmc(path("version.bin"), {1, 2, 3}, 3);
  write_llmc(path("count.bin"), {1, 2, 3}, 1, kLlmcMagic, 10);
  write_llmc(path("short_header.bin"), {}, 1);
  std::filesystem::resize_file(path("short_header.bin"), 600);
  write_llmc(path("odd.bin"), {1, 2, 3}, 2);
  std::filesystem::resize_file(path("odd.bin"), 1024 + 10);
  write_nanogpt(path("odd_nano.bin"), {1, 2, 3});
  std::filesystem::resize_file(path("odd_nano.bin"), 5);
  std::ofstream(path("empty.bin")).close();
  write_llmc(path("none.bin"), {}, 1);
  std::filesystem::create_directories(path("dir.bin"));
  const std::string f = "token file '" + path("");
  expect_error([&] { TokenFile::open(path("missing.bin")); }, f + "missing.bin': does not exist");
  expect_error([&] { TokenFile::open(path("magic.bin"), TokenFormat::kLlmc); },
               f + "magic.bin': header magic is 12345, expected 20240520 (llm.c's token-file "
                   "format); for nanoGPT's raw uint16 files set format = \"nanogpt\"");
  expect_error([&] { TokenFile::open(path("version.bin")); },
               f + "version.bin': header version is 3, expected 1 (uint16 tokens) or 2 (uint32 "
                   "tokens)");
  expect_error([&] { TokenFile::open(path("count.bin")); },
               f + "count.bin': header says 10 tokens, the file holds 3 (6 bytes after the "
                   "header): truncated or not an llm.c token file");
  expect_error([&] { TokenFile::open(path("short_header.bin"), TokenFormat::kLlmc); },
               f + "short_header.bin': 600 bytes is shorter than llm.c's 1024-byte header");
  expect_error([&] { TokenFile::open(path("odd.bin")); },
               f + "odd.bin': 10 bytes after the header is not a whole number of 4-byte tokens");
  expect_error([&] { TokenFile::open(path("odd_nano.bin")); },
               f + "odd_nano.bin': 5 bytes is not a whole number of 2-byte tokens (nanoGPT's raw "
                   "uint16 layout)");
  expect_error([&] { TokenFile::open(path("empty.bin")); }, f + "empty.bin': is empty");
  expect_error([&] { TokenFile::open(path("none.bin")); }, f + "none.bin': holds no tokens");
  expect_error([&] { TokenFile::open(path("dir.bin")); },
               f + "dir.bin': is a directory, not a token file");
  write_llmc(path("llmc.bin"), {1, 2, 3});
  expect_error([&] { TokenFile::open(path("llmc.bin"), TokenFormat::kNanoGpt); },
               f + "llmc.bin': starts with llm.c's magic 20240520: it is an llm.c token file, not "
                   "nanoGPT's raw uint16; set format = \"llmc\" or \"auto\"");
  expect_error([&] { parse_token_format("llm.c"); },
               "token file format 'llm.c' is unknown; valid: [auto, llmc, nanogpt]");
}

// A file cut short while a run reads it would raise SIGBUS through the mapping: refused.
TEST_F(Tokens, AFileCutShortWhileInUseStopsTheRunWithAMessage) {
  write_llmc(path("t.bin"), range_tokens(1000, 0, 50));
  const auto f = TokenFile::open(path("t.bin"));
  std::vector<int64_t> out(10);
  f.copy(990, 10, 64, out.data());
  EXPECT_EQ(out[9], 999 % 50);
  std::filesystem::resize_file(path("t.bin"), 600);
  expect_error(
      [&] { f.copy(990, 10, 64, out.data()); },
      "token file '" + path("t.bin") + "': was cut to 600 bytes while in use (it had 3024)");
}

TEST_F(Tokens, AnUnreadableFileIsRefusedWithTheSystemsReason) {
  write_nanogpt(path("secret.bin"), {1, 2, 3, 4});
  ::chmod(path("secret.bin").c_str(), 0);
  ::chmod(tmp_.path().c_str(), 0755);
  // Root reads anything: check as an unprivileged user in a child process then.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg = "no error";
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) msg = "setuid failed";
    try {
      TokenFile::open(path("secret.bin"));
    } catch (const std::exception& e) {
      msg = e.what();
    }
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) msg.append(buf, n);
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(msg, "token file '" + path("secret.bin") + "': cannot be opened: Permission denied");
}

TEST_F(Tokens, TaskOptionsAndShortSplitsAreRefusedBeforeTraining) {
  write_llmc(path("train.bin"), range_tokens(100, 0, 50));
  write_llmc(path("valid.bin"), range_tokens(10, 0, 50));
  write_llmc(path("bad.bin"), {1, 2, 3, 70, 4, 5, 6, 7, 8, 9, 10});
  const auto train = path("train.bin"), valid = path("valid.bin");
  std::filesystem::create_directories(path("d"));
  std::filesystem::copy_file(train, path("d/train.bin"));  // and no valid.bin / val.bin
  expect_error(
      [&] {
        tokens_task({{"vocab_size", 64}, {"seq_len", 4}});
      },
      "task 'tokens': no token files named: set exactly one of dir");
  expect_error(
      [&] {
        tokens_task({{"train", train}, {"vocab_size", 64}, {"seq_len", 4}});
      },
      "task 'tokens': missing required parameter 'valid'");
  expect_error(
      [&] {
        tokens_task({{"train", train}, {"valid", valid}, {"seq_len", 4}});
      },
      "task 'tokens': missing required parameter 'vocab_size' (no moe_tokens.json from "
      "moe tokenize beside '" +
          train + "'; GPT-2's BPE as nanoGPT and llm.c prepare it: 50257)");
  expect_error(
      [&] {
        tokens_task({{"train", train}, {"valid", valid}, {"vocab_size", 64}, {"seq_len", 16}});
      },
      "task 'tokens': split 'valid': token file '" + valid +
          "' tokens [0, 5) hold 5 tokens, fewer than one window (seq_len + 1 = 17)");
  expect_error(
      [&] {
        tokens_task({{"train", train}, {"valid", train}, {"vocab_size", 64}});
      },
      "task 'tokens': train and valid name the same file '" + train + "'");
  expect_error(
      [&] {
        tokens_task({{"file", train}, {"valid_fraction", 0.7}, {"vocab_size", 64}});
      },
      "task 'tokens': parameter 'valid_fraction' expected in (0, 0.5), got 0.7");
  expect_error(
      [&] {
        tokens_task({{"dir", path("nowhere")}, {"vocab_size", 64}});
      },
      "task 'tokens': parameter 'dir': '" + path("nowhere") + "' does not exist");
  expect_error(
      [&] {
        tokens_task({{"dir", path("d")}, {"vocab_size", 64}});
      },
      "' has neither valid.bin nor val.bin");
  expect_error(
      [&] {
        tokens_task({{"train", path("x.bin")}, {"valid", valid}, {"vocab_size", 64}});
      },
      "task 'tokens': parameter 'train': token file '" + path("x.bin") + "': does not exist");
  expect_error(
      [&] {
        tokens_task({{"train", train}, {"valid", valid}, {"vocab_size", 1}, {"seq_len", 4}});
      },
      "parameter 'vocab_size' expected >= 2, got 1");
  // A token id >= vocab_size: the plan-time check scans every file; training reads refuse it.
  const nlohmann::json bad = {
      {"train", train}, {"valid", path("bad.bin")}, {"vocab_size", 64}, {"seq_len", 4}};
  expect_error([&] { check_task_options(PluginSpec("task", "tokens", bad)); },
               "task 'tokens': token file '" + path("bad.bin") +
                   "': token 70 at position 3 is >= vocab_size 64");
  auto task = tokens_task(bad);
  expect_error([&] { task->eval_batches(Split::kValid, 4, 0); },
               "token file '" + path("bad.bin") + "': token 70 at position 3 is >= vocab_size 64");
}

TEST_F(Tokens, WindowsAreDeterministicShiftedAndStayInsideTheirSplitAndFile) {
  // One file: tokens 0..39 in the training block, 40..49 valid, 50..59 test (the id shows
  // which block a token came from).
  std::vector<uint32_t> all;
  for (int i = 0; i < 900; ++i) all.push_back(static_cast<uint32_t>(i % 40));
  for (int i = 0; i < 150; ++i) all.push_back(40 + static_cast<uint32_t>(i % 10));
  for (int i = 0; i < 150; ++i) all.push_back(50 + static_cast<uint32_t>(i % 10));
  write_nanogpt(path("all.bin"), all);
  auto task = tokens_task({{"file", path("all.bin")},
                           {"valid_fraction", 0.125},
                           {"test_fraction", 0.125},
                           {"vocab_size", 64},
                           {"seq_len", 8}});
  const auto& info = task->info();
  EXPECT_EQ(info.head, Head::kLm);
  EXPECT_TRUE(info.causal);
  EXPECT_EQ(info.vocab_size, 64);
  EXPECT_EQ(info.difficulty_levels, (std::vector<std::string>{"all"}));  // 64 ids
  auto range_of = [](const torch::Tensor& t) {
    return std::make_pair(t.min().item<int64_t>(), t.max().item<int64_t>());
  };
  for (int step = 0; step < 50; ++step) {
    const auto b = task->train_batch(3, step, 16);
    EXPECT_TRUE(b.tokens.equal(task->train_batch(3, step, 16).tokens));
    EXPECT_LE(range_of(b.targets).second, 39);
    EXPECT_LE(range_of(b.tokens).second, 39);
    // Targets are the next token.
    EXPECT_TRUE(b.targets.slice(1, 0, 7).equal(b.tokens.slice(1, 1, 8)));
    EXPECT_TRUE(b.targets.select(1, 0).equal((b.tokens.select(1, 0) + 1).remainder(40)));
  }
  EXPECT_FALSE(task->train_batch(3, 0, 16).tokens.equal(task->train_batch(4, 0, 16).tokens));
  const auto valid = task->eval_batches(Split::kValid, 4, 0);
  const auto test = task->eval_batches(Split::kTest, 4, 0);
  ASSERT_EQ(valid.size(), 5u);  // (150 - 1) / 8 = 18 windows in batches of 4
  int64_t windows = 0;
  for (const auto& b : valid) {
    EXPECT_GE(range_of(b.tokens).first, 40);
    EXPECT_LE(range_of(b.targets).second, 49);
    windows += b.tokens.size(0);
  }
  EXPECT_EQ(windows, 18);
  for (const auto& b : test) EXPECT_GE(range_of(b.tokens).first, 50);
  // Fixed: the same windows every time, back to back from the split's start.
  EXPECT_TRUE(valid[0].tokens.equal(task->eval_batches(Split::kValid, 4, 1)[0].tokens));
  EXPECT_EQ(valid[0].tokens[1][0].item<int64_t>(), 48);  // window 1 starts at token 8 of 40..49
  // The pool: back-to-back training windows, sample i at i * seq_len.
  EXPECT_EQ(task->num_train_samples(), (900 - 1) / 8);
  const auto pool = task->train_samples({0, 2});
  EXPECT_EQ(pool.tokens[1][0].item<int64_t>(), 16);
  EXPECT_EQ(pool.difficulty.min().item<int64_t>(), 0);
}

TEST_F(Tokens, ShardsNeverShareAWindowAndAMissingTestSplitIsHalfOfValid) {
  write_llmc(path("shard_a.bin"), std::vector<uint32_t>(50, 1));
  write_llmc(path("shard_b.bin"), std::vector<uint32_t>(500, 2));
  write_llmc(path("val.bin"), range_tokens(200, 3, 7));
  auto task =
      tokens_task({{"train", std::vector<std::string>{path("shard_a.bin"), path("shard_b.bin")}},
                   {"valid", path("val.bin")},
                   {"vocab_size", 8},
                   {"seq_len", 10}});
  std::set<int64_t> seen;
  for (int step = 0; step < 40; ++step) {
    const auto b = task->train_batch(0, step, 8);
    for (int64_t i = 0; i < b.tokens.size(0); ++i) {
      const auto row = b.tokens[i];
      EXPECT_EQ(row.min().item<int64_t>(), row.max().item<int64_t>()) << "a window crossed files";
      seen.insert(row[0].item<int64_t>());
    }
  }
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2}));
  EXPECT_EQ(task->info().notes.at("tokens: valid"), 100);
  EXPECT_EQ(task->info().notes.at("tokens: test"), 100);
  // The first valid window starts at token 0 of val.bin, the first test window at token 100.
  EXPECT_EQ(task->eval_batches(Split::kValid, 1, 1)[0].tokens[0][0].item<int64_t>(), 3);
  EXPECT_EQ(task->eval_batches(Split::kTest, 1, 1)[0].tokens[0][0].item<int64_t>(), 3 + 100 % 4);
}

TEST_F(Tokens, DifficultyIsTheTargetsTrainingFrequencyRank) {
  // Token 5 is the most frequent; 150 ids appear, so ranks 0..99 are "top 100".
  std::vector<uint32_t> t;
  for (int i = 0; i < 3000; ++i) t.push_back(5);
  for (int rep = 0; rep < 3; ++rep) {
    for (uint32_t id = 0; id < 150; ++id) t.push_back(id);
  }
  write_llmc(path("train.bin"), t);
  write_llmc(path("valid.bin"), range_tokens(100, 0, 150));
  auto task = tokens_task({{"train", path("train.bin")},
                           {"valid", path("valid.bin")},
                           {"vocab_size", 200},
                           {"seq_len", 8}});
  auto& tokens = dynamic_cast<TokensTask&>(*task);
  EXPECT_EQ(tokens.levels()[5], 0);
  EXPECT_EQ(tokens.levels()[0], 0);    // count 3, ties broken by id
  EXPECT_EQ(tokens.levels()[99], 0);   // rank 99 (5 is rank 0, 0..4 ranks 1..5)
  EXPECT_EQ(tokens.levels()[100], 1);  // rank 100
  EXPECT_EQ(tokens.levels()[199], 1);  // never seen
}

TEST_F(Tokens, TextIsTokenizedIntoFilesTheTaskReadsAndBadTextIsRefused) {
  // 400 lines of words made of two or three of 20 syllables: enough pieces for BPE to merge.
  std::ofstream text(path("text.txt"));
  const char* syllables[] = {"ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "pe", "du",
                             "ga", "be", "fo", "zi", "ho", "la", "we", "xu", "jo", "qi"};
  std::mt19937 rng(1);
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 12; ++w) {
      const int parts = 2 + static_cast<int>(rng() % 2);
      for (int p = 0; p < parts; ++p) text << syllables[rng() % 20];
      text << (w < 11 ? " " : "\n");
    }
  }
  text.close();
  std::ostringstream log;
  TokenizeOptions o;
  o.train = {path("text.txt")};
  o.out = path("bytes");
  o.tokenizer = "byte";
  auto r = tokenize_text(o, log);
  EXPECT_EQ(r.vocab_size, 256);
  EXPECT_EQ(r.lines[1], 20);
  EXPECT_EQ(r.lines[2], 20);
  EXPECT_EQ(r.lines[0], 360);
  auto task = tokens_task({{"dir", o.out}, {"seq_len", 16}});  // vocab_size from moe_tokens.json
  EXPECT_EQ(task->info().vocab_size, 256);
  const auto first = task->eval_batches(Split::kValid, 1, 1)[0].tokens[0];
  EXPECT_GE(first[0].item<int64_t>(), 'a');

  o.out = path("bpe");
  o.tokenizer = "bpe";
  o.vocab_size = 300;
  o.cache_dir = path("cache");
  r = tokenize_text(o, log);
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(r.vocab_size, 300);
  EXPECT_TRUE(std::filesystem::exists(path("bpe/tokenizer.model")));
  r = tokenize_text(o, log);
  EXPECT_TRUE(r.cached) << "the same text and options reuse the trained model";
  auto bpe = tokens_task({{"dir", o.out}, {"seq_len", 8}});
  EXPECT_EQ(bpe->info().vocab_size, 300);
  EXPECT_EQ(bpe->train_batch(0, 0, 2).tokens.size(1), 8);

  std::ofstream(path("latin1.txt")) << "ok line\ncaf\xe9 au lait\n";
  o.train = {path("latin1.txt")};
  expect_error([&] { tokenize_text(o, log); },
               "text file '" + path("latin1.txt") +
                   "' line 2 (byte 11): not valid UTF-8 (byte 0xe9); convert it first");
  o.train = {path("absent.txt")};
  expect_error([&] { tokenize_text(o, log); },
               "text file '" + path("absent.txt") + "' does not exist");
  o.train = {path("text.txt")};
  o.tokenizer = "wordpiece";
  expect_error([&] { tokenize_text(o, log); },
               "--tokenizer 'wordpiece' is unknown; valid: [bpe, unigram, byte]");
  EXPECT_EQ(first_invalid_utf8("ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), -1);
  EXPECT_EQ(first_invalid_utf8("\xc0\xaf"), 0);        // overlong '/'
  EXPECT_EQ(first_invalid_utf8("ab\xed\xa0\x80"), 2);  // a UTF-16 surrogate
  EXPECT_EQ(first_invalid_utf8("abc\xe2\x82"), 3);     // cut short
}

// Files named in a sweep are checked at plan time, with the sweep file and trial named.
TEST_F(Tokens, ASweepNamingBadTokenFilesIsRefusedAtPlan) {
  write_llmc(path("train.bin"), range_tokens(200, 0, 50));
  write_llmc(path("valid.bin"), {1, 2, 3, 99, 4, 5, 6, 7, 8, 9, 10, 11});
  std::ofstream(path("s.toml")) << "name = \"t\"\nseeds = [0]\n[base]\ntask = { name = "
                                   "\"tokens\", train = \""
                                << path("train.bin") << "\", valid = \"" << path("valid.bin")
                                << "\", vocab_size = 64, seq_len = 4 }\n"
                                << "model = { d_model = 8, layers = 1, heads = 2 }\n";
  expect_error([&] { load_sweep(path("s.toml")); },
               "s.toml: trial 't': task 'tokens': token file '" + path("valid.bin") +
                   "': token 99 at position 3 is >= vocab_size 64");
}

}  // namespace
}  // namespace moe
