#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/data/task.h"
#include "plugins/tasks/brown_corpus.h"
#include "plugins/tasks/wordnet.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

std::shared_ptr<Task> task(const std::string& name, nlohmann::json params,
                           const std::string& dir = "unused") {
  return make_task(PluginSpec("task", name, params), TaskContext{dir});
}

TEST(ModSum, TargetsAreModularSumsOfTheLastDepthValues) {
  auto t = task("mod_sum", {{"seq_len", 10}, {"modulus", 7}, {"max_depth", 3}});
  auto b = t->train_batch(1, 0, 4);
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t s = 0; s < 10; ++s) {
      const int64_t d = b.features[i][s][0].item<int64_t>();
      ASSERT_GE(d, 1);
      ASSERT_LE(d, 3);
      if (s + 1 < d) {
        EXPECT_EQ(b.targets[i][s].item<int64_t>(), -100);
        continue;
      }
      const int64_t sum = b.tokens[i].narrow(0, s - d + 1, d).sum().item<int64_t>();
      EXPECT_EQ(b.targets[i][s].item<int64_t>(), sum % 7);
      EXPECT_EQ(b.difficulty[i][s].item<int64_t>(), d - 1);
    }
  }
}

TEST(PointerChase, TargetsFollowTheHops) {
  auto t = task("pointer_chase", {{"seq_len", 12}, {"slots", 6}, {"max_hops", 3}});
  auto b = t->train_batch(2, 5, 3);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t s = 6; s < 12; ++s) {
      int64_t at = b.tokens[i][s].item<int64_t>();
      const int64_t hops = b.features[i][s][0].item<int64_t>();
      for (int64_t h = 0; h < hops; ++h) at = b.tokens[i][at].item<int64_t>();
      EXPECT_EQ(b.targets[i][s].item<int64_t>(), at);
      EXPECT_EQ(b.difficulty[i][s].item<int64_t>(), hops - 1);
    }
  }
}

TEST(Facts, TargetsAreOneFixedTableOfKeyPairs) {
  auto t = task("facts", {{"seq_len", 16}, {"keys", 4}, {"values", 5}});
  // The table is the same for every batch and split: collect f(a, b) and check consistency.
  std::map<int64_t, int64_t> seen;
  std::map<int64_t, std::set<int64_t>> level;
  auto check = [&](const Batch& b) {
    for (int64_t i = 0; i < b.tokens.size(0); ++i) {
      EXPECT_EQ(b.targets[i][0].item<int64_t>(), -100);
      for (int64_t s = 1; s < 16; ++s) {
        const int64_t a = b.tokens[i][s - 1].item<int64_t>(), c = b.tokens[i][s].item<int64_t>();
        const int64_t f = b.targets[i][s].item<int64_t>(), pair = a * 4 + c;
        ASSERT_GE(f, 0);
        ASSERT_LT(f, 5);
        auto [it, fresh] = seen.emplace(pair, f);
        EXPECT_EQ(it->second, f) << "fact (" << a << ", " << c << ") changed";
        level[b.difficulty[i][s].item<int64_t>()].insert(pair);
      }
    }
  };
  check(t->train_batch(1, 0, 8));
  check(t->train_batch(2, 9, 8));
  check(t->eval_batches(Split::kTest, 8, 1)[0]);
  EXPECT_EQ(seen.size(), 16u) << "all 16 pairs appear in 8 * 3 sequences of 16";
  // Frequency quartiles by (a + 1)(b + 1), ties in index order: 4 facts per level; pair
  // (0, 0) is the most frequent, (3, 3) the rarest.
  ASSERT_EQ(level.size(), 4u);
  for (const auto& kv : level) EXPECT_EQ(kv.second.size(), 4u);
  EXPECT_TRUE(level[0].count(0));
  EXPECT_TRUE(level[3].count(15));
  // zipf > 0 makes low keys more frequent.
  auto z = task("facts", {{"seq_len", 64}, {"keys", 8}, {"zipf", 1.5}});
  auto tokens = z->train_batch(3, 0, 64).tokens;
  EXPECT_GT((tokens == 0).sum().item<int64_t>(), 3 * (tokens == 7).sum().item<int64_t>());
  expect_error(
      [] {
        task("facts", {{"keys", 1}});
      },
      "parameter 'keys' expected an integer in [2, 4096], got 1");
}

TEST(Tasks, BatchesAreAFunctionOfSeedAndStep) {
  auto t = task("mod_sum", {});
  EXPECT_TRUE(torch::equal(t->train_batch(1, 3, 8).tokens, t->train_batch(1, 3, 8).tokens));
  EXPECT_FALSE(torch::equal(t->train_batch(1, 3, 8).tokens, t->train_batch(1, 4, 8).tokens));
  EXPECT_FALSE(torch::equal(t->train_batch(1, 3, 8).tokens, t->train_batch(2, 3, 8).tokens));
  auto valid = t->eval_batches(Split::kValid, 100, 0),
       again = t->eval_batches(Split::kValid, 100, 0);
  ASSERT_EQ(valid.size(), 6u);  // 512 sequences in batches of 100
  EXPECT_TRUE(torch::equal(valid[0].tokens, again[0].tokens));
  EXPECT_FALSE(torch::equal(valid[0].tokens, t->eval_batches(Split::kTest, 100, 1)[0].tokens));
}

TEST(Tasks, UnknownTaskAndParameterAreNamed) {
  expect_error([] { task("nope", {}); }, "unknown task 'nope'; known: [brown_lm, brown_pos");
  expect_error(
      [] {
        task("mod_sum", {{"depth", 3}});
      },
      "task 'mod_sum': unknown parameter 'depth'");
}

// A miniature Brown corpus in the corpus' own format: 500 files, one sentence each.
class BrownFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "brown");
    int i = 0;
    for (char c = 'a'; c <= 'r' && i < 500; ++c) {
      for (int n = 1; n <= 99 && i < 500; ++n, ++i) {
        char name[8];
        std::snprintf(name, sizeof(name), "c%c%02d", c, n);
        std::ofstream(dir_ / "brown" / name)
            << "\n\n\tThe/at dog/nn runs/vbz ./.\n\n\tA/at run/nn-hl " << (i % 2 ? "dog" : "run")
            << "/vb ./.\n";
      }
    }
  }
  moe::testing::TempDir tmp_;
  std::filesystem::path dir_ = tmp_.path();
};

TEST_F(BrownFixture, PosTaskSplitsTagsAndDifficulty) {
  auto t = task("brown_pos", {{"seq_len", 8}}, dir_.string());
  const auto& info = t->info();
  EXPECT_EQ(info.num_classes, 5);  // . at nn vb vbz (nn-hl normalised to nn)
  EXPECT_FALSE(info.causal);
  // "run" is nn in even files and vb in odd ones: 2 tags; "dog" is nn and vb: 2 tags.
  auto b = t->eval_batches(Split::kTest, 1, 1)[0];
  EXPECT_EQ(b.difficulty[0][0].item<int64_t>(), 0);  // The: 1 tag
  EXPECT_EQ(b.difficulty[0][1].item<int64_t>(), 1);  // dog: 2 tags
  EXPECT_EQ(b.features.size(2), 3);
  EXPECT_GT(info.notes.at("baseline: most-frequent-tag test accuracy"), 0.5);
  EXPECT_EQ(load_brown(dir_.string()).splits[0].size(), 2u * 400);  // 400 training files
}

TEST(WordNet, ParsesLexFileAndGloss) {
  std::vector<std::string> words;
  int64_t lex = -1;
  ASSERT_TRUE(WordNetSSTTask::parse_line(
      "00005930 03 n 01 dwarf 0 001 @ 00004475 n 0000 | a plant or animal that is atypically "
      "small; \"Dwarf's hat\"  ",
      words, lex));
  EXPECT_EQ(lex, 3);  // noun.animal
  EXPECT_EQ(words,
            (std::vector<std::string>{"a", "plant", "or", "animal", "that", "is", "atypically",
                                      "small", ";", "\"", "dwarf's", "hat", "\""}));
  EXPECT_FALSE(WordNetSSTTask::parse_line("  1 This software and database is ...", words, lex));
}

TEST_F(BrownFixture, SharedVocabularyAcrossLMPosAndWordNet) {
  const auto ids = brown_lm_vocab(load_brown(dir_.string()), 10000);
  // brown_pos with vocab = lm uses brown_lm's ids ("the" is the first word: "The/at" twice).
  auto pos = task("brown_pos", {{"seq_len", 8}, {"vocab", "lm"}}, dir_.string());
  EXPECT_EQ(pos->info().vocab_size, static_cast<int64_t>(ids.size()) + 2);
  auto b = pos->eval_batches(Split::kTest, 1, 1)[0];
  EXPECT_EQ(b.tokens[0][0].item<int64_t>(), ids.at("the"));
  EXPECT_EQ(b.tokens[0][1].item<int64_t>(), ids.at("dog"));
  // A miniature WordNet: 10 synsets per file, labels 0..3; the gloss maps to the same ids.
  const auto wn = dir_ / "wordnet";
  std::filesystem::create_directories(wn);
  int file = 0;
  for (const char* name : {"data.adj", "data.adv", "data.noun", "data.verb"}) {
    std::ofstream out(wn / name);
    out << "  1 licence header\n";
    for (int i = 0; i < 10; ++i) {
      out << "0000000" << i << " 0" << file << " n 01 x 0 000 | the dog runs zebra\n";
    }
    ++file;
  }
  auto sst = task("wordnet_sst", {{"seq_len", 3}, {"wordnet_dir", wn.string()}}, dir_.string());
  EXPECT_EQ(sst->info().head, Head::kCls);
  EXPECT_EQ(sst->info().num_classes, 45);
  EXPECT_EQ(sst->num_train_samples(), 32);               // 40 synsets, index % 10 >= 2
  auto batches = sst->eval_batches(Split::kTest, 8, 0);  // synsets 0, 10, 20, 30
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_TRUE(torch::equal(batches[0].targets, torch::tensor({0, 1, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(batches[0].tokens[0], torch::tensor({ids.at("the"), ids.at("dog"),
                                                                ids.at("runs")})));  // cut at 3
  expect_error(
      [&] {
        task("wordnet_sst", {{"wordnet_dir", "/nonexistent"}}, dir_.string());
      },
      "install WordNet with: apt-get install wordnet-base");
}

TEST_F(BrownFixture, MissingCorpusSaysHowToFetch) {
  std::filesystem::remove(dir_ / "brown" / "ca05");
  expect_error([&] { task("brown_lm", {}, dir_.string() + "/"); },
               "found 499; fetch it with: bash experiments/fetch_data.sh");
}

TEST_F(BrownFixture, CorruptFileIsNamed) {
  std::ofstream(dir_ / "brown" / "cb02") << "The/at brokentoken ./.\n";
  expect_error([&] { task("brown_pos", {}, dir_.string() + "//"); },
               "cb02' line 1: token 'brokentoken' is not word/tag");
}

}  // namespace
}  // namespace moe
