#include "experiments/sweep_file.h"

#include <filesystem>
#include <set>
#include <stdexcept>

#include "core/config_error.h"
#include "core/text.h"
#include "experiments/config_file.h"
#include "experiments/toml_json.h"

namespace moe::sweep_file {

[[noreturn]] void fail(const std::string& path, const toml::node* node, const std::string& what) {
  const int64_t line = node ? node->source().begin.line : 0;
  throw ConfigError::text("", "", what).in_file(path, line);
}

/// Merges src into dst: tables merge recursively, anything else replaces.
void merge_into(nlohmann::json& dst, const nlohmann::json& src) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    if (it.value().is_object() && dst.contains(it.key()) && dst[it.key()].is_object()) {
      merge_into(dst[it.key()], it.value());
    } else {
      dst[it.key()] = it.value();
    }
  }
}

/// A table whose keys may be dotted ("train.steps" = 3) -> nested JSON.
nlohmann::json nested(const nlohmann::json& table) {
  nlohmann::json out = nlohmann::json::object();
  for (auto it = table.begin(); it != table.end(); ++it) {
    nlohmann::json part = nlohmann::json::object();
    set_dotted(part, it.key(), it.value().is_object() ? nested(it.value()) : it.value());
    merge_into(out, part);
  }
  return out;
}

SweepSource read_sweep_file(const std::string& path, SweepPlan& plan) {
  SweepSource src;
  src.path = path;
  plan.path = path;
  plan.spec_text = read_text_file(path, "sweep");
  src.doc = parse_toml_table(plan.spec_text, path);
  const std::set<std::string> known = {
      "name", "description", "base_config", "task",        "seeds",    "base",     "presets",
      "grid", "zip",         "exclude",     "keep_models", "evaluate", "pretrain", "tune"};
  for (const auto& [k, v] : src.doc) {
    if (!known.count(std::string(k.str()))) {
      fail(path, &v,
           "unknown key '" + std::string(k.str()) +
               "'; known: " + list_of(std::vector<std::string>(known.begin(), known.end())));
    }
  }
  src.j = toml_to_json(src.doc);
  return src;
}

/// The top-level keys: name, description, seeds, keep_models, [evaluate]; table types.
void read_header(const SweepSource& src, SweepPlan& plan, SweepSpec& spec) {
  const auto& j = src.j;
  src.need_type("name", j.contains("name") && j["name"].is_string(), "a string");
  if (!j.contains("name")) fail(src.path, nullptr, "missing key 'name' (the sweep's name)");
  plan.name = j["name"];
  src.need_type("description", j.value("description", nlohmann::json("")).is_string(), "a string");
  plan.description = j.value("description", std::string());
  if (!j.contains("seeds") || !j["seeds"].is_array() || j["seeds"].empty()) {
    src.fail_at("seeds", "key 'seeds' expected a non-empty array of integers, e.g. seeds = [0, 1]");
  }
  for (const auto& s : j["seeds"]) {
    if (!s.is_number_integer()) src.fail_at("seeds", "key 'seeds' expected integers");
    spec.seeds.push_back(s.get<int64_t>());
  }
  src.need_type("keep_models", j.value("keep_models", nlohmann::json(false)).is_boolean(),
                "true or false");
  plan.keep_models = j.value("keep_models", false);
  if (j.contains("evaluate")) {
    const auto& e = j["evaluate"];
    const bool ok = e.is_object() && e.size() == 2 && e.contains("option") &&
                    e["option"].is_string() && e.contains("values") && e["values"].is_array() &&
                    !e["values"].empty();
    if (!ok) {
      src.fail_at("evaluate",
                  "table 'evaluate' expected exactly option = \"<router inference option>\" and "
                  "values = [numbers...], e.g. option = \"threshold\", values = [0.1, 0.2]");
    }
    plan.eval_option = e["option"];
    for (const auto& v : e["values"]) {
      if (!v.is_number()) src.fail_at("evaluate", "evaluate.values expected numbers");
      plan.eval_values.push_back(v.get<double>());
    }
    plan.keep_models = true;
  }
  for (const char* table : {"base", "presets", "grid", "zip", "tune"}) {
    src.need_type(table, j.contains(table) && j[table].is_object(), "a table");
  }
}

/// Why `path` is not a readable regular file ("file not found", "is a directory"), or
/// nullptr when it is one.
const char* not_a_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return nullptr;
  return std::filesystem::is_directory(path, ec) ? "is a directory" : "file not found";
}

/// base_config, task, [base]: the config every trial starts from.
nlohmann::json read_base(const SweepSource& src) {
  const auto& j = src.j;
  const auto& path = src.path;
  nlohmann::json base = nlohmann::json::object();
  if (j.contains("base_config")) {
    src.need_type("base_config", j["base_config"].is_string(), "a string path");
    auto file = std::filesystem::path(path).parent_path() / j["base_config"].get<std::string>();
    std::error_code ec;
    if (std::filesystem::weakly_canonical(file, ec) ==
        std::filesystem::weakly_canonical(std::filesystem::path(path), ec)) {
      src.fail_at("base_config",
                  "base_config names this sweep file itself; it must name a config file (e.g. "
                  "\"../configs/brown_pos_top2.toml\")");
    }
    if (const char* problem = not_a_file(file.string())) {
      src.fail_at("base_config", "base_config '" + j["base_config"].get<std::string>() +
                                     "': " + problem + " (looked for " + file.string() +
                                     ", relative to the sweep file's directory)");
    }
    base = load_toml_file(file.string());
    // Config files do not chain (no base_config of their own), so there is no cycle to
    // follow; a sweep file named as base_config is the likely mistake.
    for (const char* k : {"base_config", "seeds", "grid", "presets", "base"}) {
      if (base.contains(k)) {
        src.fail_at("base_config",
                    "base_config '" + j["base_config"].get<std::string>() +
                        "' is not a config file (it has key '" + k + "'" +
                        (std::string(k) == "base_config" ? ": config files do not chain"
                                                         : ": a sweep file?") +
                        "); it must name a config file such as "
                        "experiments/configs/brown_pos_top2.toml");
      }
    }
  }
  if (j.contains("task")) {
    src.need_type("task", j["task"].is_string(), "a task name string");
    set_dotted(base, "task.name", j["task"]);
  }
  if (j.contains("base")) merge_into(base, nested(j["base"]));
  return base;
}

/// [presets], [grid], [zip], [tune], [[exclude]].
void read_axes(const SweepSource& src, SweepPlan& plan, SweepSpec& spec) {
  const auto& j = src.j;
  const auto& doc = src.doc;
  const auto& path = src.path;
  if (j.contains("presets")) {
    for (auto it = j["presets"].begin(); it != j["presets"].end(); ++it) {
      if (!it.value().is_object())
        src.fail_at("presets", "preset '" + it.key() + "' expected a table");
      spec.presets[it.key()] = nested(it.value());
    }
  }
  std::vector<std::string> preset_names;
  for (const auto& p : spec.presets) preset_names.push_back(p.first);
  auto axes_of = [&](const char* table) {
    std::vector<Axis> axes;
    if (!j.contains(table)) return axes;
    for (auto it = j[table].begin(); it != j[table].end(); ++it) {
      const auto* node = doc[table][it.key()].node();
      if (!it.value().is_array() || it.value().empty()) {
        fail(path, node,
             std::string(table) + " axis '" + it.key() + "' expected a non-empty array");
      }
      Axis a{it.key(), {}};
      for (const auto& v : it.value()) {
        if (a.key == "method" && (!v.is_string() || !spec.presets.count(v.get<std::string>()))) {
          fail(path, node,
               "grid axis 'method': unknown preset " + v.dump() +
                   "; known: " + list_of(preset_names));
        }
        a.values.push_back(v);
      }
      axes.push_back(std::move(a));
    }
    return axes;
  };
  spec.grid = axes_of("grid");
  spec.zip = axes_of("zip");
  // [tune]: axes crossed like the grid's, one value chosen per method (and per value of
  // the other axes) on the validation split; metric = "..." names what is compared.
  if (j.contains("tune")) {
    nlohmann::json t = j["tune"];
    plan.tune_metric = "valid_loss";
    if (t.contains("metric")) {
      if (!t["metric"].is_string() || t["metric"].get<std::string>().rfind("valid_", 0) != 0) {
        fail(path, doc["tune"]["metric"].node(),
             "tune.metric expected the name of a validation metric (valid_loss, valid_accuracy, "
             "valid_perplexity, ...), got " +
                 t["metric"].dump());
      }
      plan.tune_metric = t["metric"];
      t.erase("metric");
    }
    if (t.empty())
      src.fail_at("tune",
                  "table 'tune' expected at least one axis, e.g. \"train.lr\" = [1e-3, 3e-3]");
    for (auto it = t.begin(); it != t.end(); ++it) {
      const auto* node = doc["tune"][it.key()].node();
      if (it.key() == "method")
        fail(path, node, "tune axis 'method': methods are compared, not tuned; put it in [grid]");
      if (!it.value().is_array() || it.value().empty()) {
        fail(path, node, "tune axis '" + it.key() + "' expected a non-empty array");
      }
      for (const auto& a : spec.grid) {
        if (a.key == it.key())
          fail(path, node, "axis '" + it.key() + "' is in both [grid] and [tune]");
      }
      spec.tune.push_back(Axis{it.key(), {it.value().begin(), it.value().end()}});
    }
  }
  for (const auto& a : spec.zip) {
    if (a.values.size() != spec.zip.front().values.size()) {
      fail(path, doc["zip"][a.key].node(),
           "zip axis '" + a.key + "' has " + std::to_string(a.values.size()) + " values, but '" +
               spec.zip.front().key + "' has " + std::to_string(spec.zip.front().values.size()) +
               "; zipped axes need equal lengths");
    }
  }
  if (j.contains("exclude")) {
    if (!j["exclude"].is_array())
      src.fail_at("exclude", "key 'exclude' expected an array of tables ([[exclude]])");
    for (const auto& e : j["exclude"]) spec.excludes.push_back(e);
  }
}

}  // namespace moe::sweep_file
