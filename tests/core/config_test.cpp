// ExperimentConfig::from_json's own sections ([model], [moe], [train], [loss], the top
// level): every key a section reads is documented in config_docs(), and every numeric key
// states a finite range that from_json refuses values outside of, naming the key: the
// class of bad values (below, above, NaN, +-1e308, a fraction for an integer), not a list.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/config_error.h"
#include "core/plugin_spec.h"
#include "core/train/config.h"
#include "tests/range_probes.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using nlohmann::json;

/// The tiny config with `key` of `section` ("" = top level) set to value.
json with(const std::string& section, const std::string& key, const json& value) {
  auto c = testing::tiny_config_json();
  if (section.empty()) {
    c[key] = value;
  } else {
    c[section][key] = value;
  }
  return c;
}

/// The message from_json throws for c ("" when it accepts it).
std::string refusal(const json& c) {
  try {
    ExperimentConfig::from_json(c, "c.toml");
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "c.toml") << e.what();
    return e.what();
  }
  return "";
}

/// The keys a section reads, from its unknown-key message ("...; known: [a, b]").
std::set<std::string> keys_read(const std::string& section) {
  const auto msg = refusal(with(section, "no_such_key", 1));
  const auto at = msg.find("known: [");
  EXPECT_NE(at, std::string::npos) << msg;
  std::set<std::string> keys;
  std::string rest = msg.substr(at + 8, msg.rfind(']') - at - 8);
  for (size_t start = 0; start <= rest.size();) {
    const auto comma = rest.find(", ", start);
    keys.insert(rest.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  return keys;
}

TEST(Config, EverySectionsKeysAreDocumentedAndEveryNumberHasAFiniteRangeCheckedNamingTheKey) {
  int64_t ranged = 0;
  ASSERT_TRUE(refusal(testing::tiny_config_json()).empty()) << "the tiny config is accepted";
  for (const auto& section : config_docs()) {
    SCOPED_TRACE("section '" + section.section + "'");
    std::set<std::string> documented;
    for (const auto& d : section.keys) documented.insert(d.name);
    if (section.section != "peft") {  // [peft]'s other keys belong to the adapter
      EXPECT_EQ(keys_read(section.section), documented) << "every key read is documented";
    }
    for (const auto& d : section.keys) {
      SCOPED_TRACE("key '" + d.name + "'");
      if (!d.range.numeric) {  // a number is refused, naming the key
        const auto msg = refusal(with(section.section, d.name, 0.5));
        EXPECT_NE(msg.find("'" + d.name + "'"), std::string::npos)
            << "takes a number but states no range: " << msg;
        continue;
      }
      ++ranged;
      const auto& r = d.range;
      EXPECT_TRUE(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo <= r.hi) << r.text();
      for (const auto& [value, why] : testing::outside(r)) {
        const auto msg = refusal(with(section.section, d.name, value));
        EXPECT_NE(msg.find("parameter '" + d.name + "'"), std::string::npos)
            << why << " (" << value.dump() << "), stated range " << r.text() << ": '" << msg << "'";
      }
      // Both ends pass the range check (other checks, such as heads dividing d_model,
      // are the section's own).
      for (const json& v : testing::inside(r)) {
        EXPECT_NO_THROW(
            check_ranges(PluginSpec("section", section.section, {{d.name, v}}), section.keys))
            << v.dump() << " is in " << r.text();
      }
    }
  }
  EXPECT_GE(ranged, 30) << "numeric keys found";
}

TEST(Config, AnUpperBoundIsRefusedWithTheRangeInTheMessage) {
  EXPECT_EQ(refusal(with("train", "lr", 1e30)),
            "c.toml: section 'train': parameter 'lr' expected in (0, 10], got 1e+30");
  EXPECT_EQ(refusal(with("model", "layers", 50000000)),
            "c.toml: section 'model': parameter 'layers' expected an integer in [1, 65536], got "
            "50000000");
  EXPECT_EQ(refusal(with("loss", "z", 1e308)),
            "c.toml: section 'loss': parameter 'z' expected in [0, 1000000], got 1e+308");
}

}  // namespace
}  // namespace moe
