// Every numeric option of every router, expert bank, adapter and task states a finite
// range (ParamDoc::range, listed by `moe plugins`), and the plan-time check refuses every
// value outside it naming the key, before anything is built: the class of bad values
// (below, above, NaN, +-1e308, a fraction for an integer), not a list of known cases. An
// option without a range must not take a number at all.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/adapters.h"
#include "core/config_error.h"
#include "core/data/task.h"
#include "core/experts.h"
#include "core/plugin_spec.h"
#include "core/router.h"
#include "experiments/param_counts.h"
#include "tests/range_probes.h"

namespace moe {
namespace {

using nlohmann::json;

/// A tiny trial that uses `family` plugin `name` (with `params`), for the plan's check.
json trial(const std::string& family, const std::string& name, const json& params) {
  json c = {{"seed", 0},
            {"device", "cpu"},
            {"task", {{"name", "mod_sum"}, {"seq_len", 8}, {"modulus", 3}, {"max_depth", 2}}},
            {"model", {{"d_model", 16}, {"layers", 1}, {"heads", 2}, {"ffn_hidden", 16}}},
            {"moe",
             {{"num_experts", 4},
              {"router", {{"name", "top_k"}, {"k", 2}}},
              {"experts", {{"name", "ffn"}, {"hidden", 8}}}}}};
  json block = params;
  if (family == "task") {
    block["name"] = name;
    c["task"] = block;
  } else if (family == "router") {
    block["name"] = name;
    if (name == "expert_choice" && !block.contains("allow_noncausal")) {
      block["allow_noncausal"] = true;  // mod_sum is causal
    }
    c["moe"]["router"] = block;
    if (name == "inf_moe") c["moe"]["experts"] = {{"name", "inf_ffn"}, {"D", 2}};
  } else if (family == "experts") {
    block["name"] = name;
    c["moe"]["experts"] = block;
    if (name == "inf_ffn") c["moe"]["router"] = {{"name", "inf_moe"}};
  } else {
    block["method"] = name;
    c["peft"] = block;
  }
  return c;
}

/// The plan's check of one trial: the task's options, then the model (its plugins).
void plan_check(const std::string& family, const json& config) {
  if (family == "task") {
    check_task_options(PluginSpec::from_block("task", config["task"]));
  } else {
    check_trial_builds(config);
  }
}

using testing::inside;
using testing::outside;

template <class R>
void check_family(const R& registry, const std::string& family, int64_t* ranged) {
  for (const auto& name : registry.names()) {
    const auto& docs = registry.entry(name).params;
    SCOPED_TRACE(family + " '" + name + "'");
    if (name != "tokens") {  // (its defaults name no token files)
      EXPECT_NO_THROW(plan_check(family, trial(family, name, json::object())))
          << "the defaults plan";
    }
    for (const auto& d : docs) {
      SCOPED_TRACE("parameter '" + d.name + "'");
      if (!d.range.numeric) {  // not a number: a number is refused, naming the key
        try {
          plan_check(family, trial(family, name, {{d.name, 0.5}}));
          ADD_FAILURE() << "takes a number but states no range";
        } catch (const ConfigError& e) {
          EXPECT_NE(std::string(e.what()).find("'" + d.name + "'"), std::string::npos) << e.what();
        }
        continue;
      }
      ++*ranged;
      EXPECT_TRUE(std::isfinite(d.range.lo) && std::isfinite(d.range.hi) &&
                  d.range.lo <= d.range.hi)
          << "a finite range";
      for (const auto& p : outside(d.range)) {
        try {
          plan_check(family, trial(family, name, {{d.name, p.value}}));
          ADD_FAILURE() << p.why << " (" << p.value.dump() << ") is accepted; stated range "
                        << d.range.text();
        } catch (const ConfigError& e) {
          EXPECT_NE(std::string(e.what()).find("parameter '" + d.name + "'"), std::string::npos)
              << p.why << ": " << e.what();
          EXPECT_EQ(e.key(), d.name) << e.what();
        }
      }
      for (const auto& v : inside(d.range)) {
        EXPECT_NO_THROW(check_ranges(PluginSpec(family, name, {{d.name, v}}), docs))
            << v.dump() << " is in " << d.range.text();
      }
    }
  }
}

TEST(PluginRanges, EveryNumericOptionHasAFiniteRangeThePlanChecksNamingTheKey) {
  int64_t ranged = 0;
  check_family(router_registry(), "router", &ranged);
  check_family(expert_registry(), "experts", &ranged);
  check_family(adapter_registry(), "peft", &ranged);
  check_family(task_registry(), "task", &ranged);
  EXPECT_GE(ranged, 50) << "numeric options found";
}

TEST(PluginRanges, RangeTextAndMembership) {
  const auto k = Range::ints(1, 8, "<= moe.num_experts");
  EXPECT_EQ(k.text(), "an integer in [1, 8] and <= moe.num_experts");
  EXPECT_TRUE(k.contains(1) && k.contains(8));
  EXPECT_FALSE(k.contains(0) || k.contains(9) || k.contains(1.5) || k.contains(std::nan("")));
  const auto r = Range::reals(0, 1, true);
  EXPECT_EQ(r.text(), "in (0, 1]");
  EXPECT_FALSE(r.contains(0));
  EXPECT_TRUE(r.contains(1e-300) && r.contains(1));
  try {
    check_ranges(PluginSpec("router", "top_k", {{"noise_std", 1e308}}),
                 router_registry().entry("top_k").params);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.component(), "router 'top_k'");
    EXPECT_EQ(e.key(), "noise_std");
    EXPECT_EQ(e.expected(), "in [0, 100] and < 1 with noise = jitter");
    EXPECT_EQ(e.got(), "1e+308");
    EXPECT_EQ(std::string(e.what()),
              "router 'top_k': parameter 'noise_std' expected in [0, 100] and < 1 with noise = "
              "jitter, got 1e+308");
  }
}

}  // namespace
}  // namespace moe
