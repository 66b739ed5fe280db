#pragma once
// PluginSpec: an untyped {name, params} block from a config file, read by one plugin.
//
// Every get() records the key it read; check_all_read() then rejects any key the plugin
// never asked for, so a typo ("kk = 2") is an error naming the valid keys, never a
// silently ignored setting.
#include <nlohmann/json.hpp>

#include <set>
#include <vector>
#include <string>

namespace moe {

class PluginSpec {
 public:
  /// family: "router", "experts", "task", or a config section ("config section 'train'").
  /// params must be a JSON object (or null for none).
  PluginSpec(std::string family, std::string name, nlohmann::json params);

  /// Builds a spec from {"name": ..., other keys...}; the name key is required.
  static PluginSpec from_block(const std::string& family, const nlohmann::json& block);

  const std::string& name() const { return name_; }
  const std::string& family() const { return family_; }
  const nlohmann::json& params() const { return params_; }

  bool contains(const std::string& key) const { return params_.contains(key); }

  /// The value at key converted to T, or default_value when the key is absent.
  /// Throws std::invalid_argument naming the key and expected type on a type mismatch.
  template <class T>
  T get(const std::string& key, T default_value) const {
    known_.insert(key);
    if (!params_.contains(key)) return default_value;
    return convert<T>(key);
  }

  /// The value at key; throws when it is absent.
  template <class T>
  T require(const std::string& key) const {
    known_.insert(key);
    if (!params_.contains(key)) fail("missing required parameter '" + key + "'");
    return convert<T>(key);
  }

  /// Raw JSON sub-block (object) at key, or an empty object; marks the key read.
  nlohmann::json block(const std::string& key) const;

  /// Throws std::invalid_argument for the first key never read:
  /// "router 'top_k': unknown parameter 'kk'; known: [k, noise_std]".
  void check_all_read() const;

  /// Throws std::invalid_argument with "<family> '<name>': <what>".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  template <class T>
  T convert(const std::string& key) const;

  std::string family_;
  std::string name_;
  nlohmann::json params_;
  mutable std::set<std::string> known_;
};

}  // namespace moe
