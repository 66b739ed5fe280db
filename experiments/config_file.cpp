#include "experiments/config_file.h"

#include "core/config_error.h"
#include "experiments/toml_json.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moe {
namespace {

/// The error at node's place in its file.
ConfigError at(const toml::node& node, const ConfigError& e) {
  const auto& src = node.source();
  return e.in_file(src.path ? *src.path : std::string(), src.begin.line);
}

/// key: the dotted path of the node ("train.lr", "grid.\"train.lr\"[1]"), for messages.
nlohmann::json to_json(const toml::node& node, const std::string& key) {
  if (auto t = node.as_table()) {
    auto out = nlohmann::json::object();
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      out[name] = to_json(v, key.empty() ? name : key + "." + name);
    }
    return out;
  }
  if (auto a = node.as_array()) {
    auto out = nlohmann::json::array();
    size_t i = 0;
    for (const auto& v : *a) out.push_back(to_json(v, key + "[" + std::to_string(i++) + "]"));
    return out;
  }
  if (auto v = node.as_integer()) return v->get();
  if (auto v = node.as_floating_point()) {
    // JSON has no NaN or infinity: they would become null and fail far from here.
    if (!std::isfinite(v->get())) {
      std::ostringstream value;
      value << v->get();
      throw at(node, ConfigError::value("", key, "a finite number",
                                        value.str() + " (nan and inf are not config values)"));
    }
    return v->get();
  }
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_string()) return v->get();
  throw at(node, ConfigError::value("", key, "a number, string, boolean, array or table",
                                    "a date or time (not a config value)"));
}

}  // namespace

toml::table parse_toml_table(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError::text("", "", std::string(e.description()))
        .in_file(source, e.source().begin.line, e.source().begin.column);
  }
}

nlohmann::json toml_to_json(const toml::table& table) { return to_json(table, ""); }

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw ConfigError::text(what + " '" + path + "'", "", "cannot read the file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::json parse_toml(const std::string& text, const std::string& source) {
  return toml_to_json(parse_toml_table(text, source));
}

nlohmann::json load_toml_file(const std::string& path) {
  return parse_toml(read_text_file(path, "config"), path);
}

void apply_override(nlohmann::json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError::value("--set '" + assignment + "'", "", "key=value (e.g. train.steps=100)",
                             "");
  }
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = parse_toml("v = " + text, "--set")["v"];
  } catch (const ConfigError&) {
    value = text;  // a bare word: a string
  }
  try {
    set_dotted(j, key, value);
  } catch (const ConfigError& e) {
    throw e.within("--set '" + assignment + "'");
  }
}

void set_dotted(nlohmann::json& j, const std::string& dotted, const nlohmann::json& value) {
  nlohmann::json* at = &j;
  size_t begin = 0;
  while (true) {
    const auto dot = dotted.find('.', begin);
    const std::string part =
        dotted.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    if (part.empty()) throw ConfigError::text("", dotted, "key '" + dotted + "': empty key part");
    if (dot == std::string::npos) {
      (*at)[part] = value;
      return;
    }
    auto& next = (*at)[part];
    if (next.is_null()) next = nlohmann::json::object();
    if (!next.is_object()) {
      throw ConfigError::text(
          "", dotted,
          "key '" + dotted + "': '" + dotted.substr(0, dot) + "' is a value, not a table");
    }
    at = &next;
    begin = dot + 1;
  }
}

nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto j = load_toml_file(path);
  for (const auto& o : overrides) apply_override(j, o);
  return j;
}

}  // namespace moe
