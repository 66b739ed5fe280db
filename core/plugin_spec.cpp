#include "core/plugin_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace moe {
namespace {

std::string type_of(const nlohmann::json& v) {
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string '" + v.get<std::string>() + "'";
  if (v.is_array()) return "array";
  if (v.is_object()) return "table";
  return "null";
}

template <class T>
bool matches(const nlohmann::json& v);
template <>
bool matches<bool>(const nlohmann::json& v) {
  return v.is_boolean();
}
template <>
bool matches<int64_t>(const nlohmann::json& v) {
  return v.is_number_integer();
}
template <>
bool matches<int>(const nlohmann::json& v) {
  return v.is_number_integer();
}
template <>
bool matches<double>(const nlohmann::json& v) {
  return v.is_number();
}
template <>
bool matches<std::string>(const nlohmann::json& v) {
  return v.is_string();
}
template <>
bool matches<std::vector<std::string>>(const nlohmann::json& v) {
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    if (!e.is_string()) return false;
  }
  return true;
}

template <class T>
const char* expected_name();
template <>
const char* expected_name<bool>() {
  return "a boolean";
}
template <>
const char* expected_name<int64_t>() {
  return "an integer";
}
template <>
const char* expected_name<int>() {
  return "an integer";
}
template <>
const char* expected_name<double>() {
  return "a number";
}
template <>
const char* expected_name<std::string>() {
  return "a string";
}
template <>
const char* expected_name<std::vector<std::string>>() {
  return "an array of strings";
}

}  // namespace

std::string format_number(double value) {
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {  // 30, not 3e+01
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

void OptionCheck::expect(bool ok, const std::string& param, const std::string& what,
                         double got) const {
  if (!ok) throw ConfigError::value(component(), param, what, format_number(got));
}

void OptionCheck::expect(bool ok, const std::string& param, const std::string& what,
                         const std::string& got) const {
  if (!ok) throw ConfigError::value(component(), param, what, got);
}

void OptionCheck::one_of(const std::string& param, const std::string& got,
                         const std::vector<std::string>& choices) const {
  if (std::find(choices.begin(), choices.end(), got) != choices.end()) return;
  throw ConfigError::value(component(), param, "one of " + list_of(choices), "'" + got + "'");
}

void OptionCheck::fail(const std::string& what) const {
  throw ConfigError::text(component(), "", what);
}

std::string OptionCheck::component() const {
  return family_.empty() ? name_ : family_ + " '" + name_ + "'";
}

PluginSpec::PluginSpec(std::string family, std::string name, nlohmann::json params)
    : family_(std::move(family)), name_(std::move(name)), params_(std::move(params)) {
  if (params_.is_null()) params_ = nlohmann::json::object();
  if (!params_.is_object()) {
    throw ConfigError::value(check().component(), "", "a table of parameters", type_of(params_));
  }
}

PluginSpec PluginSpec::from_block(const std::string& family, const nlohmann::json& block) {
  if (!block.is_object() || !block.contains("name") || !block["name"].is_string()) {
    throw ConfigError::value(
        family, "name", "a table with a string key 'name'",
        block.is_object() && block.contains("name") ? type_of(block["name"]) : type_of(block));
  }
  nlohmann::json params = block;
  params.erase("name");
  return PluginSpec(family, block["name"].get<std::string>(), params);
}

nlohmann::json PluginSpec::block(const std::string& key) const {
  known_.insert(key);
  if (!params_.contains(key)) return nlohmann::json::object();
  const auto& v = params_.at(key);
  if (!v.is_object()) throw ConfigError::value(check().component(), key, "a table", type_of(v));
  return v;
}

std::string PluginSpec::choice(const std::string& key, const std::string& default_value,
                               const std::vector<std::string>& choices) const {
  const auto value = get<std::string>(key, default_value);
  check().one_of(key, value, choices);
  return value;
}

void PluginSpec::check_all_read() const {
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    if (known_.count(it.key()) == 0) {
      throw ConfigError::unknown(check().component(), "parameter", it.key(),
                                 std::vector<std::string>(known_.begin(), known_.end()));
    }
  }
}

void PluginSpec::fail(const std::string& what) const { check().fail(what); }

void PluginSpec::fail(const std::string& key, const std::string& what) const {
  throw ConfigError::text(check().component(), key, "parameter '" + key + "': " + what);
}

template <class T>
T PluginSpec::convert(const std::string& key) const {
  const auto& v = params_.at(key);
  if (!matches<T>(v)) {
    throw ConfigError::value(check().component(), key, expected_name<T>(), type_of(v));
  }
  return v.get<T>();
}

template bool PluginSpec::convert<bool>(const std::string&) const;
template int64_t PluginSpec::convert<int64_t>(const std::string&) const;
template int PluginSpec::convert<int>(const std::string&) const;
template double PluginSpec::convert<double>(const std::string&) const;
std::string Range::text() const {
  if (!numeric) return "";
  std::string t = (integer ? "an integer in " : "in ") + std::string(lo_open ? "(" : "[") +
                  format_number(lo) + ", " + format_number(hi) + (hi_open ? ")" : "]");
  return also.empty() ? t : t + " and " + also;
}

void check_ranges(const PluginSpec& spec, const std::vector<ParamDoc>& docs) {
  for (const auto& d : docs) {
    if (!d.range.numeric || !spec.params().contains(d.name)) continue;
    const auto& v = spec.params().at(d.name);
    if (!v.is_number()) continue;  // the plugin's get() names the type it expected
    spec.check().expect(d.range.contains(v.get<double>()), d.name, d.range.text(), v.get<double>());
  }
}

template std::string PluginSpec::convert<std::string>(const std::string&) const;
template std::vector<std::string> PluginSpec::convert<std::vector<std::string>>(
    const std::string&) const;

}  // namespace moe
