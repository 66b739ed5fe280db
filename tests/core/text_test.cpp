#include "core/text.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

TEST(Text, ListOfBracketsAndSeparatesWithCommas) {
  EXPECT_EQ(list_of({}), "[]");
  EXPECT_EQ(list_of({"a"}), "[a]");
  EXPECT_EQ(list_of({"a", "b", "c"}), "[a, b, c]");
}

TEST(Text, FormatDurationShowsOnlyTheUnitsItNeeds) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(42.9), "42s");  // whole seconds, truncated
  EXPECT_EQ(format_duration(187), "3m7s");
  EXPECT_EQ(format_duration(7205), "2h0m5s");
  EXPECT_EQ(format_duration(-3), "0s");  // an estimate below zero is no time left
}

}  // namespace
}  // namespace moe
