#pragma once
// Config files: TOML in, JSON out (the canonical form the core parses strictly).
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace moe {

/// Parses a TOML file into JSON. Throws ConfigError naming the file, line and column of a
/// syntax error, or saying the file cannot be read.
nlohmann::json load_toml_file(const std::string& path);

/// Parses TOML text (source names it in errors).
nlohmann::json parse_toml(const std::string& text, const std::string& source);

/// Applies "a.b.c=value" to j, creating tables as needed. value is read as a TOML value
/// (100, 1e-3, true, "x", [1, 2], {k = 1}); anything that is not valid TOML is a string.
void apply_override(nlohmann::json& j, const std::string& assignment);

/// Sets a dotted key ("moe.router.k") in j, creating tables. Throws ConfigError for an
/// empty part ("a..b") or a value where a table is needed ('moe' = 3, then 'moe.k').
void set_dotted(nlohmann::json& j, const std::string& dotted, const nlohmann::json& value);

/// load_toml_file + every override in order.
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace moe
