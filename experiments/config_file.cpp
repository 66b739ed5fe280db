#include "experiments/config_file.h"

#include "experiments/toml_json.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moe {
namespace {

std::string where_of(const toml::node& node) {
  std::ostringstream where;
  const auto& src = node.source();
  if (src.path && !src.path->empty()) where << *src.path << ":";
  if (src.begin.line > 0) where << src.begin.line << ": ";
  return where.str();
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
      throw std::invalid_argument(where_of(node) + "key '" + key +
                                  "' expected a finite number, got " + value.str() +
                                  " (nan and inf are not config values)");
    }
    return v->get();
  }
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_string()) return v->get();
  throw std::invalid_argument(where_of(node) + "key '" + key +
                              "': unsupported TOML value (dates and times are not config values)");
}

}  // namespace

toml::table parse_toml_table(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    throw std::invalid_argument(msg.str());
  }
}

nlohmann::json toml_to_json(const toml::table& table) { return to_json(table, ""); }

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(what + " '" + path + "': cannot read the file");
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
    throw std::invalid_argument("--set '" + assignment +
                                "': expected key=value (e.g. train.steps=100)");
  }
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = parse_toml("v = " + text, "--set")["v"];
  } catch (const std::invalid_argument&) {
    value = text;  // a bare word: a string
  }
  nlohmann::json* at = &j;
  size_t begin = 0;
  while (true) {
    const auto dot = key.find('.', begin);
    const std::string part =
        key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    if (part.empty()) throw std::invalid_argument("--set '" + assignment + "': empty key part");
    if (dot == std::string::npos) {
      (*at)[part] = value;
      return;
    }
    auto& next = (*at)[part];
    if (next.is_null()) next = nlohmann::json::object();
    if (!next.is_object()) {
      throw std::invalid_argument("--set '" + assignment + "': '" + key.substr(0, dot) +
                                  "' is a value, not a table");
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
