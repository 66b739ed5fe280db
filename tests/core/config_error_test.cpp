#include "core/config_error.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

TEST(ConfigError, AValueErrorNamesComponentKeyExpectedAndGot) {
  const auto e = ConfigError::value("router 'top_k'", "k", "an integer in [1, 8]", "9");
  EXPECT_STREQ(e.what(), "router 'top_k': parameter 'k' expected an integer in [1, 8], got 9");
  EXPECT_EQ(e.component(), "router 'top_k'");
  EXPECT_EQ(e.key(), "k");
  EXPECT_EQ(e.expected(), "an integer in [1, 8]");
  EXPECT_EQ(e.got(), "9");
  // A dotted key of a file has no component: "key '...'".
  EXPECT_STREQ(ConfigError::value("", "train.lr", "a finite number", "nan").what(),
               "key 'train.lr' expected a finite number, got nan");
}

TEST(ConfigError, FileLineAndTrialAreAddedOnTheWayOutOnce) {
  const auto inner = ConfigError::value("section 'train'", "lr", "in (0, 10]", "1e+30");
  const auto e = inner.in_trial("b").in_file("lr.toml", 7);
  EXPECT_STREQ(e.what(),
               "lr.toml:7: trial 'b': section 'train': parameter 'lr' expected in (0, 10], got "
               "1e+30");
  EXPECT_EQ(e.file(), "lr.toml");
  EXPECT_EQ(e.line(), 7);
  EXPECT_EQ(e.trial(), "b");
  // The innermost context stays: a second file or trial does not replace it.
  const auto again = e.in_file("other.toml").in_trial("c");
  EXPECT_STREQ(again.what(), e.what());
  EXPECT_STREQ(ConfigError::text("", "", "bad").in_file("s.toml", 3, 9).what(), "s.toml:3:9: bad");
}

TEST(ConfigError, UnknownNamesListTheKnownOnes) {
  const auto e = ConfigError::unknown("router 'top_k'", "parameter", "kk", {"k", "noise_std"});
  EXPECT_STREQ(e.what(), "router 'top_k': unknown parameter 'kk'; known: [k, noise_std]");
  EXPECT_EQ(e.key(), "kk");
  EXPECT_EQ(e.expected(), "one of [k, noise_std]");
  EXPECT_EQ(e.got(), "'kk'");
  EXPECT_STREQ(ConfigError::unknown("", "router", "nope", {"a", "b"}).what(),
               "unknown router 'nope'; known: [a, b]");
}

TEST(ConfigError, WithinNestsComponentsAndRendersKeysAsParameters) {
  const auto e = ConfigError::value("", "method", "one of [lora]", "'x'").within("section 'peft'");
  EXPECT_STREQ(e.what(), "section 'peft': parameter 'method' expected one of [lora], got 'x'");
  EXPECT_STREQ(ConfigError::text("adapter 'lora'", "r", "too wide").within("section 'peft'").what(),
               "section 'peft': adapter 'lora': too wide");
}

TEST(ConfigError, IsAnInvalidArgument) {
  try {
    throw ConfigError::text("c", "", "t");
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "c: t");
  }
}

}  // namespace
}  // namespace moe
