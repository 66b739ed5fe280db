#pragma once
// PluginSpec: an untyped {name, params} block from a config file, read by one plugin.
//
// Every get() records the key it read; check_all_read() then rejects any key the plugin
// never asked for, so a typo ("kk = 2") is an error naming the valid keys, never a
// silently ignored setting.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/config_error.h"
#include "core/registry.h"
#include "core/text.h"

namespace moe {

/// A number as a reader wrote it: an integer as one (30, not 3e+01), else the shortest form
/// that reads back exactly (0.1, 1e-05, 1e+308).
std::string format_number(double value);

/// One message style for every plugin's option errors (ConfigError):
///   "<family> '<name>': parameter '<p>' expected <what>, got <value>"
///   "<family> '<name>': parameter '<p>' expected one of [a, b], got 'c'"
/// Plugins check their options in one place (their options' validate() or constructor)
/// through it, so the config reader, the plan-time check and a direct construction in a
/// test all report the same words.
class OptionCheck {
 public:
  OptionCheck(std::string family, std::string name)
      : family_(std::move(family)), name_(std::move(name)) {}
  /// Throws "parameter '<param>' expected <what>, got <got>" unless ok.
  void expect(bool ok, const std::string& param, const std::string& what, double got) const;
  void expect(bool ok, const std::string& param, const std::string& what,
              const std::string& got) const;
  /// Throws "parameter '<param>' expected one of [...], got '<got>'" unless got is a choice.
  void one_of(const std::string& param, const std::string& got,
              const std::vector<std::string>& choices) const;
  /// Throws "<family> '<name>': <what>".
  [[noreturn]] void fail(const std::string& what) const;
  /// "<family> '<name>'" (just name when family is empty): the error's component.
  std::string component() const;

 private:
  std::string family_, name_;
};

class PluginSpec {
 public:
  /// family: "router", "experts", "task", or "section" (a config section); empty for a
  /// name that is the whole component ("top level").
  /// params must be a JSON object (or null for none).
  PluginSpec(std::string family, std::string name, nlohmann::json params);

  /// Builds a spec from {"name": ..., other keys...}; the name key is required.
  static PluginSpec from_block(const std::string& family, const nlohmann::json& block);

  const std::string& name() const { return name_; }
  const std::string& family() const { return family_; }
  const nlohmann::json& params() const { return params_; }

  bool contains(const std::string& key) const { return params_.contains(key); }

  /// The value at key converted to T, or default_value when the key is absent.
  /// Throws ConfigError naming the key and expected type on a type mismatch.
  template <class T>
  T get(const std::string& key, T default_value) const {
    known_.insert(key);
    if (!params_.contains(key)) return default_value;
    return convert<T>(key);
  }

  /// The string at key (default_value when absent), which must be one of choices:
  /// "<family> '<name>': parameter '<key>' expected one of [a, b], got 'c'".
  std::string choice(const std::string& key, const std::string& default_value,
                     const std::vector<std::string>& choices) const;

  /// An enum setting checked as choice() checks it: `names` are the enum's names in its
  /// order (activation_names(), sampling_names()), fallback its value when key is absent.
  template <class E>
  E enum_choice(const std::string& key, E fallback, const std::vector<std::string>& names) const {
    const auto value = choice(key, names.at(static_cast<size_t>(fallback)), names);
    return static_cast<E>(std::find(names.begin(), names.end(), value) - names.begin());
  }

  /// The checker whose messages name this spec's family and name.
  OptionCheck check() const { return OptionCheck(family_, name_); }

  /// The value at key; throws when it is absent.
  template <class T>
  T require(const std::string& key) const {
    known_.insert(key);
    if (!params_.contains(key)) {
      throw ConfigError::text(check().component(), key, "missing required parameter '" + key + "'");
    }
    return convert<T>(key);
  }

  /// Raw JSON sub-block (object) at key, or an empty object; marks the key read.
  nlohmann::json block(const std::string& key) const;

  /// Throws ConfigError for the first key never read:
  /// "router 'top_k': unknown parameter 'kk'; known: [k, noise_std]".
  void check_all_read() const;

  /// Throws ConfigError with "<family> '<name>': <what>".
  [[noreturn]] void fail(const std::string& what) const;
  /// Throws ConfigError about key: "<family> '<name>': parameter '<key>': <what>".
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  template <class T>
  T convert(const std::string& key) const;

  std::string family_;
  std::string name_;
  nlohmann::json params_;
  mutable std::set<std::string> known_;
};

/// Every parameter of spec that docs give a Range must be a number in it (an integer
/// where the range says so): "<family> '<name>': parameter '<p>' expected an integer in
/// [1, 16777216], got 1e+308". Called before the plugin is built.
void check_ranges(const PluginSpec& spec, const std::vector<ParamDoc>& docs);

}  // namespace moe
