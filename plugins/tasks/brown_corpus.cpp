#include "plugins/tasks/brown_corpus.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace moe {

std::string lower(const std::string& s) {
  std::string out = s;
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace {

constexpr const char* kFetchHint = "fetch it with: bash experiments/fetch_data.sh";

std::string normalise_tag(std::string tag) {
  for (bool changed = true; changed;) {
    changed = false;
    for (const char* suffix : {"-tl", "-hl", "-nc"}) {
      if (tag.size() > 3 && tag.compare(tag.size() - 3, 3, suffix) == 0) {
        tag.resize(tag.size() - 3);
        changed = true;
      }
    }
  }
  return tag;
}

BrownCorpus parse(const std::string& data_dir) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(data_dir) / "brown";
  std::vector<std::string> files;
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const auto n = e.path().filename().string();
      if (n.size() == 4 && n[0] == 'c' && std::isalpha(static_cast<unsigned char>(n[1])) &&
          std::isdigit(static_cast<unsigned char>(n[2])) &&
          std::isdigit(static_cast<unsigned char>(n[3]))) {
        files.push_back(n);
      }
    }
  }
  TORCH_CHECK(files.size() == 500, "brown corpus: expected 500 files ca01..cr09 in '", dir.string(),
              "', found ", files.size(), "; ", kFetchHint);
  std::sort(files.begin(), files.end());
  BrownCorpus corpus;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto split = i % 10 == 0 ? Split::kTest : (i % 10 == 1 ? Split::kValid : Split::kTrain);
    std::ifstream in(dir / files[i]);
    TORCH_CHECK(in.good(), "brown corpus: cannot read '", (dir / files[i]).string(), "'; ",
                kFetchHint);
    std::string line, tok;
    for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
      std::istringstream words(line);
      BrownCorpus::Sentence sentence;
      while (words >> tok) {
        const auto slash = tok.rfind('/');
        TORCH_CHECK(slash != std::string::npos && slash > 0 && slash + 1 < tok.size(),
                    "brown corpus: '", (dir / files[i]).string(), "' line ", line_no, ": token '",
                    tok, "' is not word/tag; the file is corrupt, ", kFetchHint);
        sentence.emplace_back(tok.substr(0, slash), normalise_tag(tok.substr(slash + 1)));
      }
      if (!sentence.empty()) corpus.splits[static_cast<int>(split)].push_back(std::move(sentence));
    }
  }
  return corpus;
}

}  // namespace

const BrownCorpus& load_brown(const std::string& data_dir) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<BrownCorpus>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[data_dir];
  if (!slot) slot = std::make_unique<BrownCorpus>(parse(data_dir));
  return *slot;
}

std::unordered_map<std::string, int64_t> brown_lm_vocab(const BrownCorpus& corpus,
                                                        int64_t vocab_size) {
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& s : corpus.splits[static_cast<int>(Split::kTrain)]) {
    for (const auto& wt : s) ++counts[lower(wt.first)];
  }
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& kv : counts) ranked.emplace_back(-kv.second, kv.first);
  std::sort(ranked.begin(), ranked.end());
  // id 0 = <unk>, 1 = </s>, then words by descending frequency (ties: alphabetical).
  std::unordered_map<std::string, int64_t> ids;
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(ids.size()) < vocab_size - 2; ++i) {
    ids[ranked[i].second] = static_cast<int64_t>(ids.size()) + 2;
  }
  return ids;
}

}  // namespace moe
