#pragma once
// Registry<Base, Args...>: one name -> factory table per plugin family.
//
// Each family reaches its registry through a function holding a leaked function-local
// static (c10's C10_DEFINE_REGISTRY shape), so registration from another translation
// unit's static initialiser never runs before the map exists. Names are data stored in
// result databases: lower snake_case, never renamed.
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace moe {

std::string list_of(const std::vector<std::string>& items);  // core/plugin_spec.h

/// One documented plugin parameter, as listed by `moe plugins`.
struct ParamDoc {
  std::string name;
  std::string default_value;
  std::string help;
};

/// A name -> factory table. Duplicate names and unknown names throw std::invalid_argument
/// with the registered names listed.
template <class Base, class... Args>
class Registry {
 public:
  using Creator = std::function<std::shared_ptr<Base>(Args...)>;
  struct Entry {
    std::string name;
    std::string help;
    std::vector<ParamDoc> params;
    Creator create;
    /// Family-specific facts (adapters: the projection sites they sit at).
    std::vector<std::string> tags = {};
  };

  explicit Registry(std::string family) : family_(std::move(family)) {}

  void add(Entry entry) {
    if (entries_.count(entry.name) != 0) {
      throw std::invalid_argument(family_ + " '" + entry.name + "' is registered twice");
    }
    auto name = entry.name;
    entries_.emplace(std::move(name), std::move(entry));
  }

  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      throw std::invalid_argument("unknown " + family_ + " '" + name + "'; known: " + known());
    }
    return it->second;
  }

  std::shared_ptr<Base> create(const std::string& name, Args... args) const {
    return entry(name).create(std::forward<Args>(args)...);
  }

  /// Sorted registered names.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }

  /// "[a, b, c]", for error messages.
  std::string known() const { return list_of(names()); }

  const std::string& family() const { return family_; }

 private:
  std::string family_;
  std::map<std::string, Entry> entries_;
};

/// Adds one entry at static-initialisation time; used by the MOE_REGISTER_* macros.
template <class R>
struct Registrar {
  Registrar(R& registry, typename R::Entry entry) { registry.add(std::move(entry)); }
};

}  // namespace moe

#define MOE_CONCAT_INNER(a, b) a##b
#define MOE_CONCAT(a, b) MOE_CONCAT_INNER(a, b)
