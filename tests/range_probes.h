#pragma once
// The values a range test tries for a stated Range (core/registry.h): outside it (NaN,
// +-1e308, just below and above each bound, a fraction for an integer) and its two ends
// (the nearest inside value of an open bound). Used by tests/core/config_test.cpp and
// tests/plugins/plugin_ranges_test.cpp.
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/registry.h"

namespace moe::testing {

struct Probe {
  nlohmann::json value;
  std::string why;
};

inline std::vector<Probe> outside(const Range& r) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<Probe> p = {{std::nan(""), "NaN"}, {1e308, "1e308"}, {-1e308, "-1e308"}};
  if (r.integer) {
    p.push_back({static_cast<int64_t>(r.lo) - 1, "below the lower bound"});
    p.push_back({static_cast<int64_t>(r.hi) + 1, "above the upper bound"});
    p.push_back({r.lo + 0.5, "a fraction"});
  } else {
    p.push_back({r.lo_open ? r.lo : std::nextafter(r.lo, -inf), "below the lower bound"});
    p.push_back({r.hi_open ? r.hi : std::nextafter(r.hi, inf), "above the upper bound"});
  }
  return p;
}

inline std::vector<nlohmann::json> inside(const Range& r) {
  const double inf = std::numeric_limits<double>::infinity();
  if (r.integer) return {static_cast<int64_t>(r.lo), static_cast<int64_t>(r.hi)};
  return {r.lo_open ? std::nextafter(r.lo, inf) : r.lo,
          r.hi_open ? std::nextafter(r.hi, -inf) : r.hi};
}

}  // namespace moe::testing
