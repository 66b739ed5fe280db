#pragma once
// Text forms shared by every layer: the standard library only, so results/ (no LibTorch)
// includes it too.
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

/// "a, b, c" (with sep ", ").
inline std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

/// "[a, b, c]": how messages list the valid choices.
inline std::string list_of(const std::vector<std::string>& items) {
  return "[" + join(items) + "]";
}

/// Whole seconds as "42s", "3m7s" or "2h0m5s" (elapsed times, ETAs).
inline std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(seconds > 0 ? seconds : 0);
  std::string out;
  if (total >= 3600) out += std::to_string(total / 3600) + "h";
  if (total >= 60) out += std::to_string(total / 60 % 60) + "m";
  return out + std::to_string(total % 60) + "s";
}

}  // namespace moe
