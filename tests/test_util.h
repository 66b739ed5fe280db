#pragma once
// Small shared fixtures for the moe_tests binary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/train/config.h"

namespace moe::testing {

/// Runs fn and checks that it throws an exception whose message contains `needle`.
template <class F>
void expect_error(F&& fn, const std::string& needle) {
  try {
    fn();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "message was: " << msg;
    return;
  }
  ADD_FAILURE() << "expected an error containing '" << needle << "'";
}

/// A fresh directory named after the running test (and process), removed afterwards.
class TempDir {
 public:
  TempDir()
      : path_(std::filesystem::temp_directory_path() /
              ("moe_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  /// Path of a file inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A tiny, fast experiment on the synthetic mod_sum task.
inline nlohmann::json tiny_config_json(int64_t k = 2) {
  return nlohmann::json::parse(R"({
    "seed": 7, "device": "cpu", "threads": 1,
    "task": {"name": "mod_sum", "seq_len": 12, "modulus": 5, "max_depth": 2,
             "eval_sequences": 32},
    "model": {"d_model": 16, "layers": 2, "heads": 2, "ffn_hidden": 32, "moe_every": 1},
    "moe": {"num_experts": 4, "router": {"name": "top_k", "k": )" + std::to_string(k) + R"(},
            "experts": {"name": "ffn", "hidden": 16}},
    "train": {"steps": 40, "batch_size": 16, "lr": 3e-3, "warmup": 5, "log_every": 5,
              "eval_batch_size": 16}
  })");
}

inline ExperimentConfig tiny_config(int64_t k = 2) {
  return ExperimentConfig::from_json(tiny_config_json(k), "tiny");
}

}  // namespace moe::testing
