#include "core/data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>

#include "core/config_error.h"

namespace moe {

// Both layouts are little-endian; the tokens are read in place.
static_assert(std::endian::native == std::endian::little, "token files need a little-endian host");

TokenFormat parse_token_format(const std::string& name) {
  if (name == "auto") return TokenFormat::kAuto;
  if (name == "llmc") return TokenFormat::kLlmc;
  if (name == "nanogpt") return TokenFormat::kNanoGpt;
  throw ConfigError::text(
      "", "format", "token file format '" + name + "' is unknown; valid: [auto, llmc, nanogpt]");
}

const char* token_format_name(TokenFormat format) {
  switch (format) {
    case TokenFormat::kAuto:
      return "auto";
    case TokenFormat::kLlmc:
      return "llmc";
    case TokenFormat::kNanoGpt:
      return "nanogpt";
  }
  return "?";
}

void TokenFile::fail(const std::string& what) const {
  throw std::invalid_argument("token file '" + path_ + "': " + what);
}

TokenFile TokenFile::open(const std::string& path, TokenFormat format) {
  TokenFile f;
  f.path_ = path;
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) f.fail("does not exist");
  if (fs::is_directory(status)) f.fail("is a directory, not a token file");
  if (!fs::is_regular_file(status)) f.fail("is not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) f.fail(std::string("cannot be opened: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    f.fail(std::string("cannot be read: ") + std::strerror(err));
  }
  const auto bytes = static_cast<int64_t>(st.st_size);
  if (bytes == 0) {
    ::close(fd);
    f.fail("is empty");
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  if (map == MAP_FAILED) {
    ::close(fd);
    f.fail(std::string("cannot be memory-mapped: ") + std::strerror(map_err));
  }
  f.fd_ = fd;  // kept to notice a file cut short under the mapping (check_size)
  f.map_ = map;
  f.map_bytes_ = static_cast<size_t>(bytes);

  int32_t header[3] = {0, 0, 0};
  if (bytes >= 12) std::memcpy(header, map, sizeof(header));
  if (format == TokenFormat::kAuto) {
    format = header[0] == kLlmcMagic ? TokenFormat::kLlmc : TokenFormat::kNanoGpt;
  }
  f.format_ = format;
  if (format == TokenFormat::kLlmc) {
    if (bytes < kLlmcHeaderBytes) {
      f.fail(std::to_string(bytes) + " bytes is shorter than llm.c's " +
             std::to_string(kLlmcHeaderBytes) + "-byte header");
    }
    if (header[0] != kLlmcMagic) {
      f.fail("header magic is " + std::to_string(header[0]) + ", expected " +
             std::to_string(kLlmcMagic) +
             " (llm.c's token-file format); for nanoGPT's raw uint16 files set format = "
             "\"nanogpt\"");
    }
    if (header[1] != 1 && header[1] != 2) {
      f.fail("header version is " + std::to_string(header[1]) +
             ", expected 1 (uint16 tokens) or 2 (uint32 tokens)");
    }
    f.width_ = header[1] == 1 ? 2 : 4;
    const int64_t body = bytes - kLlmcHeaderBytes;
    if (body % f.width_ != 0) {
      f.fail(std::to_string(body) + " bytes after the header is not a whole number of " +
             std::to_string(f.width_) + "-byte tokens");
    }
    if (header[2] < 0 || header[2] != body / f.width_) {
      f.fail("header says " + std::to_string(header[2]) + " tokens, the file holds " +
             std::to_string(body / f.width_) + " (" + std::to_string(body) +
             " bytes after the header): truncated or not an llm.c token file");
    }
    f.count_ = body / f.width_;
    f.tokens_ = static_cast<const char*>(map) + kLlmcHeaderBytes;
  } else {
    f.width_ = 2;
    if (header[0] == kLlmcMagic && bytes >= kLlmcHeaderBytes) {
      f.fail(
          "starts with llm.c's magic 20240520: it is an llm.c token file, not nanoGPT's raw "
          "uint16; set format = \"llmc\" or \"auto\"");
    }
    if (bytes % 2 != 0) {
      f.fail(std::to_string(bytes) +
             " bytes is not a whole number of 2-byte tokens (nanoGPT's raw uint16 layout)");
    }
    f.count_ = bytes / 2;
    f.tokens_ = map;
  }
  if (f.count_ == 0) f.fail("holds no tokens");
  return f;
}

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    if (map_ != nullptr) ::munmap(map_, map_bytes_);
    path_ = std::move(other.path_);
    format_ = other.format_;
    width_ = other.width_;
    count_ = other.count_;
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
  }
  return *this;
}

TokenFile::~TokenFile() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  if (fd_ >= 0) ::close(fd_);
}

void TokenFile::check_size() const {
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && static_cast<size_t>(st.st_size) < map_bytes_) {
    fail("was cut to " + std::to_string(st.st_size) + " bytes while in use (it had " +
         std::to_string(map_bytes_) + "); reading it now would crash, so the run stops here");
  }
}

namespace {
template <typename T>
void copy_checked(const TokenFile& f, const T* src, int64_t begin, int64_t n, int64_t vocab,
                  int64_t* out) {
  uint64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = src[begin + i];
    bad |= static_cast<uint64_t>(out[i] >= vocab);
  }
  if (bad == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (out[i] >= vocab) {
      f.fail("token " + std::to_string(out[i]) + " at position " + std::to_string(begin + i) +
             " is >= vocab_size " + std::to_string(vocab));
    }
  }
}
}  // namespace

void TokenFile::copy(int64_t begin, int64_t n, int64_t vocab_size, int64_t* out) const {
  if (begin < 0 || n < 0 || begin + n > count_) {
    fail("tokens [" + std::to_string(begin) + ", " + std::to_string(begin + n) + ") requested of " +
         std::to_string(count_));
  }
  check_size();
  if (width_ == 2) {
    copy_checked(*this, static_cast<const uint16_t*>(tokens_), begin, n, vocab_size, out);
  } else {
    copy_checked(*this, static_cast<const uint32_t*>(tokens_), begin, n, vocab_size, out);
  }
}

std::pair<uint32_t, int64_t> TokenFile::max_id(int64_t begin, int64_t end) const {
  uint32_t best = 0;
  auto scan = [&](const auto* src) {
    for (int64_t i = begin; i < end; ++i) best = std::max<uint32_t>(best, src[i]);
  };
  if (width_ == 2) {
    scan(static_cast<const uint16_t*>(tokens_));
  } else {
    scan(static_cast<const uint32_t*>(tokens_));
  }
  int64_t at = begin;
  while (at < end && (*this)[at] != best) ++at;
  return {best, at};
}

void TokenFile::check_ids(int64_t vocab_size) const {
  // In chunks, so a bad id early in a large file is reported without scanning the rest.
  constexpr int64_t kChunk = int64_t{1} << 22;
  for (int64_t begin = 0; begin < count_; begin += kChunk) {
    const auto [id, at] = max_id(begin, std::min(count_, begin + kChunk));
    if (static_cast<int64_t>(id) >= vocab_size) {
      fail("token " + std::to_string(id) + " at position " + std::to_string(at) +
           " is >= vocab_size " + std::to_string(vocab_size));
    }
  }
}

void write_token_file(const std::string& path, TokenFormat format,
                      const std::vector<uint32_t>& tokens) {
  uint32_t largest = 0;
  for (uint32_t t : tokens) largest = std::max(largest, t);
  const bool narrow = largest < 65536;
  if (format == TokenFormat::kAuto) format = TokenFormat::kLlmc;
  if (format == TokenFormat::kNanoGpt && !narrow) {
    throw std::invalid_argument("token file '" + path + "': token id " + std::to_string(largest) +
                                " does not fit nanoGPT's uint16 layout; use format llmc");
  }
  if (format == TokenFormat::kLlmc && tokens.size() > 0x7fffffffULL) {
    throw std::invalid_argument("token file '" + path + "': " + std::to_string(tokens.size()) +
                                " tokens do not fit llm.c's int32 header count");
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw std::invalid_argument("token file '" + path +
                                  "': cannot be written: " + std::strerror(errno));
    }
    if (format == TokenFormat::kLlmc) {
      std::vector<int32_t> header(256, 0);
      header[0] = kLlmcMagic;
      header[1] = narrow ? 1 : 2;
      header[2] = static_cast<int32_t>(tokens.size());
      out.write(reinterpret_cast<const char*>(header.data()), kLlmcHeaderBytes);
    }
    if (narrow) {
      std::vector<uint16_t> small(tokens.begin(), tokens.end());
      out.write(reinterpret_cast<const char*>(small.data()),
                static_cast<std::streamsize>(small.size() * 2));
    } else {
      out.write(reinterpret_cast<const char*>(tokens.data()),
                static_cast<std::streamsize>(tokens.size() * 4));
    }
    out.flush();
    if (!out) {
      throw std::invalid_argument("token file '" + path +
                                  "': writing failed: " + std::strerror(errno));
    }
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace moe
