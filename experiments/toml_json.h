#pragma once
// TOML documents as JSON, for the readers of config and sweep files. A sweep file keeps
// its TOML document (for the line numbers of its errors) and its JSON form, parsed once.
#include <toml++/toml.h>

#include <nlohmann/json.hpp>

#include <string>

namespace moe {

/// Parses TOML text; a syntax error names source:line:column.
toml::table parse_toml_table(const std::string& text, const std::string& source);
/// The document as JSON; nan, inf, dates and times are errors naming the key and line.
nlohmann::json toml_to_json(const toml::table& table);
/// The whole text of a file; throws "<what> '<path>': cannot read the file".
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace moe
