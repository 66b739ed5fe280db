#pragma once
// The sweep file reader (experiments/sweep_spec.h documents the format): reads a sweep
// file once and checks what it declares (its header, the base config, presets and axes),
// naming the file, line and key of every mistake. The planner (sweep_spec.cpp) expands
// what it read into trials. Internal to experiments/.
#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "experiments/sweep_spec.h"

namespace moe::sweep_file {

/// Throws ConfigError "<path>[:<line of node>]: <what>".
[[noreturn]] void fail(const std::string& path, const toml::node* node, const std::string& what);

/// Merges src into dst: tables merge recursively, anything else replaces.
void merge_into(nlohmann::json& dst, const nlohmann::json& src);

/// A table whose keys may be dotted ("train.steps" = 3) -> nested JSON.
nlohmann::json nested(const nlohmann::json& table);

/// Why `path` is not a readable regular file ("file not found", "is a directory"), or
/// nullptr when it is one.
const char* not_a_file(const std::string& path);

struct Axis {
  std::string key;
  std::vector<nlohmann::json> values;
};

/// A sweep file read once: its text, its TOML document (for error lines) and its JSON form.
struct SweepSource {
  std::string path;
  toml::table doc;
  nlohmann::json j;

  [[noreturn]] void fail_at(const char* key, const std::string& what) const {
    fail(path, doc.get(key), what);
  }
  void need_type(const char* key, bool ok, const char* what) const {
    if (j.contains(key) && !ok) fail_at(key, "key '" + std::string(key) + "' expected " + what);
  }
};

/// What a sweep file declares, checked: the config every trial starts from and the axes.
struct SweepSpec {
  nlohmann::json base = nlohmann::json::object();
  std::map<std::string, nlohmann::json> presets;
  std::vector<Axis> grid, zip, tune;
  std::vector<nlohmann::json> excludes;
  std::vector<int64_t> seeds;
};

/// Reads and parses the file once (plan.path, plan.spec_text); unknown top-level keys fail.
SweepSource read_sweep_file(const std::string& path, SweepPlan& plan);
/// The top-level keys: name, description, seeds, keep_models, [evaluate]; table types.
void read_header(const SweepSource& src, SweepPlan& plan, SweepSpec& spec);
/// base_config, task, [base]: the config every trial starts from.
nlohmann::json read_base(const SweepSource& src);
/// [presets], [grid], [zip], [tune], [[exclude]].
void read_axes(const SweepSource& src, SweepPlan& plan, SweepSpec& spec);

}  // namespace moe::sweep_file
