#pragma once
// ConfigError: the one error type for configuration mistakes (a sweep or config file, a
// --set, a plugin's options block, a file a config names). The standard library only, so
// every layer throws and catches it.
//
// It carries where the mistake is (file, line, trial, the component, the key) and what
// was wrong (expected, got); what() is the message, built from them:
//   "<file>:<line>: trial '<t>': <component>: parameter '<key>' expected <what>, got <got>"
// Whoever throws knows the component and key; whoever reads the file or expands the
// trial adds those (in_file, in_trial) on the way out. TORCH_CHECK stays for tensor
// contracts and for what data can cause at run time.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace moe {

class ConfigError : public std::invalid_argument {
 public:
  /// A value out of its valid set: "<component>: parameter '<key>' expected <expected>,
  /// got <got>" ("key '<key>'" when there is no component: a dotted key of a file).
  static ConfigError value(std::string component, std::string key, std::string expected,
                           std::string got);
  /// A name nobody knows: "<component>: unknown <noun> '<key>'; known: [a, b]" (noun:
  /// "parameter", "key", or a plugin family: "unknown router 'x'").
  static ConfigError unknown(std::string component, const std::string& noun, std::string key,
                             const std::vector<std::string>& known);
  /// Anything else, in words: "<component>: <text>"; key names the setting it is about
  /// (the text says so itself).
  static ConfigError text(std::string component, std::string key, std::string text);

  /// Context added on the way out; a field already set stays (the innermost knows best).
  ConfigError in_file(const std::string& file, int64_t line = 0, int64_t column = 0) const;
  ConfigError in_trial(const std::string& trial) const;
  /// The same mistake inside an outer component: "section 'peft': adapter 'lora'".
  ConfigError within(const std::string& outer) const;

  const std::string& file() const { return file_; }
  int64_t line() const { return line_; }
  const std::string& trial() const { return trial_; }
  const std::string& component() const { return component_; }
  const std::string& key() const { return key_; }
  const std::string& expected() const { return expected_; }
  const std::string& got() const { return got_; }

  const char* what() const noexcept override { return message_.c_str(); }

 private:
  enum class Kind { kValue, kUnknown, kText };
  ConfigError() : std::invalid_argument("configuration error") {}
  void compose();

  Kind kind_ = Kind::kText;
  std::string file_;
  int64_t line_ = 0, column_ = 0;
  std::string trial_, component_, key_, expected_, got_;
  std::string text_;  ///< kUnknown, kText: the message after the component
  std::string message_;
};

}  // namespace moe
