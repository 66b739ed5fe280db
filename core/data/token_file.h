#pragma once
// Token files on disk, memory-mapped (never read whole into memory), in the two layouts
// researchers' preparation scripts write:
//   llm.c:   a 256 x int32 little-endian header (magic 20240520, version 1 = uint16 tokens
//            or 2 = uint32 tokens, token count), then the tokens, little-endian;
//   nanoGPT: raw little-endian uint16 tokens, no header (prepare.py's train.bin / val.bin).
// Every problem with a file is a std::invalid_argument "token file '<path>': <what>".
// No LibTorch here: `moe tokenize` writes these files and the `tokens` task reads them.
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

enum class TokenFormat { kAuto, kLlmc, kNanoGpt };
/// "auto" | "llmc" | "nanogpt"; throws listing the choices.
TokenFormat parse_token_format(const std::string& name);
const char* token_format_name(TokenFormat format);

inline constexpr int32_t kLlmcMagic = 20240520;
inline constexpr int64_t kLlmcHeaderBytes = 256 * 4;

class TokenFile {
 public:
  /// Maps `path` read-only and checks its layout. kAuto: llm.c when the file starts with
  /// llm.c's magic, else nanoGPT's raw uint16 (a file of neither layout then shows up as
  /// an odd byte count or token ids beyond vocab_size).
  static TokenFile open(const std::string& path, TokenFormat format = TokenFormat::kAuto);
  TokenFile() = default;
  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  const std::string& path() const { return path_; }
  TokenFormat format() const { return format_; }  ///< kLlmc or kNanoGpt, never kAuto
  int bytes_per_token() const { return width_; }
  int64_t size() const { return count_; }  ///< tokens
  uint32_t operator[](int64_t i) const {
    return width_ == 2 ? static_cast<const uint16_t*>(tokens_)[i]
                       : static_cast<const uint32_t*>(tokens_)[i];
  }
  /// Copies tokens [begin, begin + n) into out as int64, throwing "token <id> at position
  /// <p> is >= vocab_size <v>" for the first out-of-range id.
  void copy(int64_t begin, int64_t n, int64_t vocab_size, int64_t* out) const;
  /// The largest token id in [begin, end) and its first position (a full scan).
  std::pair<uint32_t, int64_t> max_id(int64_t begin, int64_t end) const;
  /// Throws naming the first id >= vocab_size in the whole file.
  void check_ids(int64_t vocab_size) const;
  /// Throws when the file on disk is now shorter than its mapping (reading the lost pages
  /// would raise SIGBUS); copy() checks it before every read.
  void check_size() const;
  /// Throws "token file '<path>': <what>".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  TokenFormat format_ = TokenFormat::kNanoGpt;
  int width_ = 2;
  int64_t count_ = 0;
  int fd_ = -1;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const void* tokens_ = nullptr;
};

/// Writes tokens in `format` (kLlmc: version 1 when every id < 65536, else 2; kNanoGpt:
/// uint16, refusing ids >= 65536) to path through a temporary file and a rename.
void write_token_file(const std::string& path, TokenFormat format,
                      const std::vector<uint32_t>& tokens);

}  // namespace moe
