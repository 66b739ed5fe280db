#include "core/config_error.h"

#include "core/text.h"

namespace moe {

ConfigError ConfigError::value(std::string component, std::string key, std::string expected,
                               std::string got) {
  ConfigError e;
  e.kind_ = Kind::kValue;
  e.component_ = std::move(component);
  e.key_ = std::move(key);
  e.expected_ = std::move(expected);
  e.got_ = std::move(got);
  e.compose();
  return e;
}

ConfigError ConfigError::unknown(std::string component, const std::string& noun, std::string key,
                                 const std::vector<std::string>& known) {
  ConfigError e;
  e.kind_ = Kind::kUnknown;
  e.component_ = std::move(component);
  e.key_ = std::move(key);
  const std::string names = list_of(known);
  e.expected_ = "one of " + names;
  e.got_ = "'" + e.key_ + "'";
  e.text_ = "unknown " + noun + " '" + e.key_ + "'; known: " + names;
  e.compose();
  return e;
}

ConfigError ConfigError::text(std::string component, std::string key, std::string text) {
  ConfigError e;
  e.kind_ = Kind::kText;
  e.component_ = std::move(component);
  e.key_ = std::move(key);
  e.text_ = std::move(text);
  e.compose();
  return e;
}

ConfigError ConfigError::in_file(const std::string& file, int64_t line, int64_t column) const {
  ConfigError e = *this;
  if (e.file_.empty()) {
    e.file_ = file;
    e.line_ = line;
    e.column_ = column;
  }
  e.compose();
  return e;
}

ConfigError ConfigError::in_trial(const std::string& trial) const {
  ConfigError e = *this;
  if (e.trial_.empty()) e.trial_ = trial;
  e.compose();
  return e;
}

ConfigError ConfigError::within(const std::string& outer) const {
  ConfigError e = *this;
  e.component_ = e.component_.empty() ? outer : outer + ": " + e.component_;
  e.compose();
  return e;
}

void ConfigError::compose() {
  message_.clear();
  if (!file_.empty()) {
    message_ = file_;
    if (line_ > 0) message_ += ":" + std::to_string(line_);
    if (line_ > 0 && column_ > 0) message_ += ":" + std::to_string(column_);
    message_ += ": ";
  }
  if (!trial_.empty()) message_ += "trial '" + trial_ + "': ";
  if (!component_.empty()) message_ += component_ + ": ";
  if (kind_ != Kind::kValue) {
    message_ += text_;
    return;
  }
  if (!key_.empty()) message_ += (component_.empty() ? "key '" : "parameter '") + key_ + "' ";
  message_ += "expected " + expected_;
  if (!got_.empty()) message_ += ", got " + got_;
}

}  // namespace moe
