#pragma once
// Registry<Base, Args...>: one name -> factory table per plugin family.
//
// Each family reaches its registry through a function holding a leaked function-local
// static (c10's C10_DEFINE_REGISTRY shape), so registration from another translation
// unit's static initialiser never runs before the map exists. Names are data stored in
// result databases: lower snake_case, never renamed.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config_error.h"

namespace moe {

std::string list_of(const std::vector<std::string>& items);  // core/plugin_spec.h

/// The values a numeric plugin parameter may take: finite bounds, open or closed, and
/// whether it is an integer. Stated by the plugin's ParamDoc, listed by `moe plugins`, and
/// checked (check_ranges, core/plugin_spec.h) before the plugin is built, so a plan
/// refuses 1e308, NaN or -1 naming the key before anything is allocated. A bound that
/// depends on other settings (k <= moe.num_experts) is `also`: the plugin checks it.
struct Range {
  bool numeric = false;  ///< false: not a number (a choice, a flag, a table, a path)
  bool integer = false;
  double lo = 0, hi = 0;
  bool lo_open = false, hi_open = false;
  std::string also;

  /// Integers in [lo, hi].
  static Range ints(double lo, double hi, std::string also = "") {
    return {true, true, lo, hi, false, false, std::move(also)};
  }
  /// Reals in [lo, hi], (lo, hi], [lo, hi) or (lo, hi).
  static Range reals(double lo, double hi, bool lo_open = false, bool hi_open = false,
                     std::string also = "") {
    return {true, false, lo, hi, lo_open, hi_open, std::move(also)};
  }
  bool contains(double v) const {
    if (!(lo_open ? v > lo : v >= lo) || !(hi_open ? v < hi : v <= hi)) return false;
    return !integer || v == static_cast<double>(static_cast<int64_t>(v));
  }
  /// "an integer in [1, 4096]", "in (0, 1]", "... and <= moe.num_experts".
  std::string text() const;
};

/// A size that is never sensible above 2^24 (widths, ranks, counts): the bound keeps a
/// typo from reaching the allocator; the plan's memory estimate judges what is in range.
constexpr double kMaxSize = 16777216.0;

/// One documented plugin parameter, as listed by `moe plugins`.
struct ParamDoc {
  std::string name;
  std::string default_value;
  std::string help;
  Range range = {};  ///< numeric parameters state their range
};

/// docs with the ranges of their numeric parameters set by name (a name not in docs is a
/// programming error: std::logic_error).
inline std::vector<ParamDoc> with_ranges(std::vector<ParamDoc> docs,
                                         const std::vector<std::pair<std::string, Range>>& ranges) {
  for (const auto& [name, range] : ranges) {
    bool found = false;
    for (auto& d : docs) {
      if (d.name == name) d.range = range, found = true;
    }
    if (!found) throw std::logic_error("with_ranges: no parameter '" + name + "'");
  }
  return docs;
}

/// What a family's registry entries hold beyond name, help, options and tags: the facts the
/// experiment layer asks of a plugin without building it (a task's causality, a bank's
/// sizes for the memory estimate, a router's nominal experts per token), as functions of
/// its options. A family specialises this before it first names an Entry; by default an
/// entry holds none.
template <class Base>
struct RegistryFacts {
  struct type {};
};

/// A name -> factory table. An unknown name is a ConfigError listing the registered names;
/// a name registered twice is a std::logic_error (a build mistake, not a user's).
template <class Base, class... Args>
class Registry {
 public:
  using Creator = std::function<std::shared_ptr<Base>(Args...)>;
  struct Entry {
    std::string name;
    std::string help;
    std::vector<ParamDoc> params;
    Creator create;
    /// Family-specific labels (adapters: the projection sites they sit at).
    std::vector<std::string> tags = {};
    typename RegistryFacts<Base>::type facts = {};
  };

  explicit Registry(std::string family) : family_(std::move(family)) {}

  void add(Entry entry) {
    if (entries_.count(entry.name) != 0) {
      throw std::logic_error(family_ + " '" + entry.name + "' is registered twice");
    }
    auto name = entry.name;
    entries_.emplace(std::move(name), std::move(entry));
  }

  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      throw ConfigError::unknown("", family_, name, names());
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

  /// The family's default plugin, what a config that names none gets: declared in the
  /// plugin's own file (MOE_DEFAULT_PLUGIN), so no other code names it. Two defaults, or
  /// none when one is asked for, are std::logic_errors (build mistakes).
  void set_default(const std::string& name) {
    if (!default_.empty() && default_ != name) {
      throw std::logic_error(family_ + ": two defaults, '" + default_ + "' and '" + name + "'");
    }
    default_ = name;
  }
  const std::string& default_name() const {
    if (default_.empty()) throw std::logic_error(family_ + ": no default registered");
    return default_;
  }

 private:
  std::string family_;
  std::map<std::string, Entry> entries_;
  std::string default_;
};

/// Adds one entry at static-initialisation time; used by the MOE_REGISTER_* macros.
template <class R>
struct Registrar {
  Registrar(R& registry, typename R::Entry entry) { registry.add(std::move(entry)); }
};

/// Marks a registered name as its family's default at static-initialisation time; used
/// by MOE_DEFAULT_PLUGIN.
template <class R>
struct DefaultPlugin {
  DefaultPlugin(R& registry, const std::string& name) { registry.set_default(name); }
};

}  // namespace moe

#define MOE_CONCAT_INNER(a, b) a##b
#define MOE_CONCAT(a, b) MOE_CONCAT_INNER(a, b)

/// MOE_DEFAULT_PLUGIN(::moe::router_registry(), "top_k"): in the plugin's .cpp, beside its
/// MOE_REGISTER_* line, when it is what a config gets without naming one.
#define MOE_DEFAULT_PLUGIN(REGISTRY, NAME)                                             \
  static ::moe::DefaultPlugin<std::remove_reference_t<decltype(REGISTRY)>> MOE_CONCAT( \
      moe_default_plugin_, __LINE__)(REGISTRY, NAME)
