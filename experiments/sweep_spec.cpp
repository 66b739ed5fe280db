#include "experiments/sweep_spec.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/data/task.h"
#include "core/experts.h"
#include "core/router.h"
#include "core/train/config.h"
#include "experiments/config_file.h"
#include "experiments/param_counts.h"

namespace moe {
namespace {

[[noreturn]] void fail(const std::string& path, const toml::node* node, const std::string& what) {
  std::ostringstream msg;
  msg << path;
  if (node && node->source().begin.line > 0) msg << ":" << node->source().begin.line;
  msg << ": " << what;
  throw std::invalid_argument(msg.str());
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

std::string short_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  // A whole plugin block (task = {name = "mod_sum", ...}) is labelled by its name.
  if (v.is_object() && v.contains("name") && v["name"].is_string()) return v["name"];
  return v.dump();
}

struct Axis {
  std::string key;
  std::vector<nlohmann::json> values;
};

}  // namespace

std::string stable_hash(const std::string& text) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a 64 offset basis
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string run_key_of(const nlohmann::json& config) { return stable_hash(config.dump()); }

void set_dotted(nlohmann::json& j, const std::string& dotted, const nlohmann::json& value) {
  nlohmann::json* at = &j;
  size_t begin = 0;
  for (size_t dot; (dot = dotted.find('.', begin)) != std::string::npos; begin = dot + 1) {
    auto& next = (*at)[dotted.substr(begin, dot - begin)];
    if (!next.is_object()) next = nlohmann::json::object();
    at = &next;
  }
  (*at)[dotted.substr(begin)] = value;
}

SweepPlan load_sweep(const std::string& path, int64_t max_trials) {
  SweepPlan plan;
  plan.path = path;
  {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("sweep '" + path + "': cannot read the file");
    std::stringstream b;
    b << in.rdbuf();
    plan.spec_text = b.str();
  }
  toml::table doc;
  try {
    doc = toml::parse(plan.spec_text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
      << e.description();
    throw std::invalid_argument(m.str());
  }
  const std::set<std::string> known = {
      "name", "description", "base_config", "task",        "seeds",    "base",     "presets",
      "grid", "zip",         "exclude",     "keep_models", "evaluate", "pretrain", "tune"};
  for (const auto& [k, v] : doc) {
    if (!known.count(std::string(k.str()))) {
      fail(path, &v,
           "unknown key '" + std::string(k.str()) +
               "'; known: [base, base_config, description, evaluate, exclude, grid, "
               "keep_models, name, presets, pretrain, seeds, task, tune, zip]");
    }
  }
  const auto j = parse_toml(plan.spec_text, path);
  auto need_type = [&](const char* key, bool ok, const char* what) {
    if (j.contains(key) && !ok)
      fail(path, doc.get(key), "key '" + std::string(key) + "' expected " + what);
  };
  need_type("name", j.contains("name") && j["name"].is_string(), "a string");
  if (!j.contains("name")) fail(path, nullptr, "missing key 'name' (the sweep's name)");
  plan.name = j["name"];
  need_type("description", j.value("description", nlohmann::json("")).is_string(), "a string");
  plan.description = j.value("description", std::string());
  if (!j.contains("seeds") || !j["seeds"].is_array() || j["seeds"].empty()) {
    fail(path, doc.get("seeds"),
         "key 'seeds' expected a non-empty array of integers, e.g. seeds = [0, 1]");
  }
  for (const auto& s : j["seeds"]) {
    if (!s.is_number_integer()) fail(path, doc.get("seeds"), "key 'seeds' expected integers");
  }
  need_type("keep_models", j.value("keep_models", nlohmann::json(false)).is_boolean(),
            "true or false");
  plan.keep_models = j.value("keep_models", false);
  if (j.contains("evaluate")) {
    const auto& e = j["evaluate"];
    const bool ok = e.is_object() && e.size() == 2 && e.contains("option") &&
                    e["option"].is_string() && e.contains("values") && e["values"].is_array() &&
                    !e["values"].empty();
    if (!ok) {
      fail(path, doc.get("evaluate"),
           "table 'evaluate' expected exactly option = \"<router inference option>\" and "
           "values = [numbers...], e.g. option = \"threshold\", values = [0.1, 0.2]");
    }
    plan.eval_option = e["option"];
    for (const auto& v : e["values"]) {
      if (!v.is_number()) fail(path, doc.get("evaluate"), "evaluate.values expected numbers");
      plan.eval_values.push_back(v.get<double>());
    }
    plan.keep_models = true;
  }
  for (const char* table : {"base", "presets", "grid", "zip", "tune"}) {
    need_type(table, j.contains(table) && j[table].is_object(), "a table");
  }

  nlohmann::json base = nlohmann::json::object();
  if (j.contains("base_config")) {
    need_type("base_config", j["base_config"].is_string(), "a string path");
    auto file = std::filesystem::path(path).parent_path() / j["base_config"].get<std::string>();
    std::error_code ec;
    if (std::filesystem::weakly_canonical(file, ec) ==
        std::filesystem::weakly_canonical(std::filesystem::path(path), ec)) {
      fail(path, doc.get("base_config"),
           "base_config names this sweep file itself; it must name a config file (e.g. "
           "\"../configs/brown_pos_top2.toml\")");
    }
    base = load_toml_file(file.string());
    // Config files do not chain (no base_config of their own), so there is no cycle to
    // follow; a sweep file named as base_config is the likely mistake.
    for (const char* k : {"base_config", "seeds", "grid", "presets", "base"}) {
      if (base.contains(k)) {
        fail(path, doc.get("base_config"),
             "base_config '" + j["base_config"].get<std::string>() +
                 "' is not a config file (it has key '" + k + "'" +
                 (std::string(k) == "base_config" ? ": config files do not chain"
                                                  : ": a sweep file?") +
                 "); it must name a config file such as experiments/configs/brown_pos_top2.toml");
      }
    }
  }
  if (j.contains("task")) {
    need_type("task", j["task"].is_string(), "a task name string");
    set_dotted(base, "task.name", j["task"]);
  }
  if (j.contains("base")) merge_into(base, nested(j["base"]));

  std::map<std::string, nlohmann::json> presets;
  if (j.contains("presets")) {
    for (auto it = j["presets"].begin(); it != j["presets"].end(); ++it) {
      if (!it.value().is_object())
        fail(path, doc.get("presets"), "preset '" + it.key() + "' expected a table");
      presets[it.key()] = nested(it.value());
    }
  }
  std::string preset_list = "[";
  for (const auto& p : presets) preset_list += (preset_list.size() > 1 ? ", " : "") + p.first;
  preset_list += "]";

  auto read_axes = [&](const char* table) {
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
        if (a.key == "method" && (!v.is_string() || !presets.count(v.get<std::string>()))) {
          fail(path, node,
               "grid axis 'method': unknown preset " + v.dump() + "; known: " + preset_list);
        }
        a.values.push_back(v);
      }
      axes.push_back(std::move(a));
    }
    return axes;
  };
  auto grid = read_axes("grid");
  auto zip = read_axes("zip");
  // [tune]: axes crossed like the grid's, one value chosen per method (and per value of
  // the other axes) on the validation split; metric = "..." names what is compared.
  std::vector<Axis> tune;
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
      fail(path, doc.get("tune"),
           "table 'tune' expected at least one axis, e.g. \"train.lr\" = [1e-3, 3e-3]");
    for (auto it = t.begin(); it != t.end(); ++it) {
      const auto* node = doc["tune"][it.key()].node();
      if (it.key() == "method")
        fail(path, node, "tune axis 'method': methods are compared, not tuned; put it in [grid]");
      if (!it.value().is_array() || it.value().empty()) {
        fail(path, node, "tune axis '" + it.key() + "' expected a non-empty array");
      }
      for (const auto& a : grid) {
        if (a.key == it.key())
          fail(path, node, "axis '" + it.key() + "' is in both [grid] and [tune]");
      }
      tune.push_back(Axis{it.key(), {it.value().begin(), it.value().end()}});
    }
  }
  for (const auto& a : zip) {
    if (a.values.size() != zip.front().values.size()) {
      fail(path, doc["zip"][a.key].node(),
           "zip axis '" + a.key + "' has " + std::to_string(a.values.size()) + " values, but '" +
               zip.front().key + "' has " + std::to_string(zip.front().values.size()) +
               "; zipped axes need equal lengths");
    }
  }
  std::vector<nlohmann::json> excludes;
  if (j.contains("exclude")) {
    if (!j["exclude"].is_array())
      fail(path, doc.get("exclude"), "key 'exclude' expected an array of tables ([[exclude]])");
    for (const auto& e : j["exclude"]) excludes.push_back(e);
  }

  // The size first, from the axes' lengths: a huge grid is refused before it is built.
  {
    double count = static_cast<double>(j["seeds"].size());
    std::string lengths;
    auto note = [&](const std::string& table, const Axis& a) {
      lengths += (lengths.empty() ? "" : ", ") + table + "." + a.key + ": " +
                 std::to_string(a.values.size());
    };
    for (const auto& a : grid) count *= static_cast<double>(a.values.size()), note("grid", a);
    if (!zip.empty())
      count *= static_cast<double>(zip.front().values.size()), note("zip", zip.front());
    for (const auto& a : tune) count *= static_cast<double>(a.values.size()), note("tune", a);
    if (count > static_cast<double>(max_trials)) {
      std::ostringstream n;
      n << std::setprecision(count < 1e15 ? 15 : 3) << count;
      fail(path, nullptr,
           "the sweep expands to " + n.str() +
               " trials (seeds: " + std::to_string(j["seeds"].size()) +
               (lengths.empty() ? "" : ", ") + lengths + "), above --max-trials " +
               std::to_string(max_trials) + "; shrink the axes or raise --max-trials");
    }
  }

  // Cartesian product of the grid axes, crossed with the zipped axes, then the tune axes.
  std::vector<std::vector<std::pair<std::string, nlohmann::json>>> points = {{}};
  auto cross = [&points](const Axis& a) {
    std::vector<std::vector<std::pair<std::string, nlohmann::json>>> next;
    for (const auto& p : points) {
      for (const auto& v : a.values) {
        auto q = p;
        q.emplace_back(a.key, v);
        next.push_back(q);
      }
    }
    points = next;
  };
  for (const auto& a : grid) cross(a);
  if (!zip.empty()) {
    std::vector<std::vector<std::pair<std::string, nlohmann::json>>> next;
    for (const auto& p : points) {
      for (size_t i = 0; i < zip.front().values.size(); ++i) {
        auto q = p;
        for (const auto& a : zip) q.emplace_back(a.key, a.values[i]);
        next.push_back(q);
      }
    }
    points = next;
  }
  // The tune axes, marked so that labels can tell them apart.
  const size_t tune_from = points.front().size();
  for (const auto& a : tune) cross(a);

  // Validate a trial's config now, not hours into the sweep.
  // Every distinct model is built once on the CPU (no data): out-of-range plugin
  // parameters are reported now, with the trial's label, not when its worker starts.
  std::set<std::string> built;
  auto validate = [&](const nlohmann::json& config, const std::string& label) {
    const std::string trial = "trial '" + label + "'";
    try {
      auto parsed = ExperimentConfig::from_json(config, trial);
      const std::string task = parsed.task["name"];
      if (!task_registry().has(task)) task_registry().entry(task);
      if (parsed.model.moe_every > 0) {
        router_registry().entry(parsed.moe.router.value("name", ""));
        expert_registry().entry(parsed.moe.experts.value("name", ""));
      }
      nlohmann::json shape = config;
      shape.erase("seed");
      shape.erase("train");
      if (built.insert(shape.dump()).second) check_trial_builds(config);
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      throw std::invalid_argument(path + ": " + (what.rfind(trial, 0) == 0 ? "" : trial + ": ") +
                                  what);
    }
  };
  std::string pretrain_key;
  if (j.contains("pretrain")) {
    need_type("pretrain", j["pretrain"].is_object(), "a table of config keys");
    const auto& pre = j["pretrain"];
    need_type("pretrain", pre.value("seed", nlohmann::json(0)).is_number_integer(),
              "an integer pretrain.seed");
    Trial t;
    t.pretrain = true;
    t.method = "pretrain";
    t.seed = pre.value("seed", j["seeds"][0].get<int64_t>());
    t.config = base;
    merge_into(t.config, nested(pre));
    t.config["seed"] = t.seed;
    t.run_key = pretrain_key = run_key_of(t.config);
    validate(t.config, t.method);
    plan.trials.push_back(std::move(t));
  }

  std::set<std::string> seen;
  for (const auto& point : points) {
    bool excluded = false;
    for (const auto& e : excludes) {
      bool all = true;
      for (auto it = e.begin(); it != e.end() && all; ++it) {
        bool match = false;
        for (const auto& [k, v] : point) match |= (k == it.key() && v == it.value());
        all = match;
      }
      excluded |= all && !e.empty();
    }
    if (excluded) continue;
    nlohmann::json config = base;
    std::string preset, context, tuned;
    for (size_t i = 0; i < point.size(); ++i) {
      const auto& [k, v] = point[i];
      if (k == "method") {
        merge_into(config, presets[v.get<std::string>()]);
        preset = v.get<std::string>();
      } else {
        set_dotted(config, k, v);
        auto& part = i >= tune_from ? tuned : context;
        part += (part.empty() ? "" : " ") + k + "=" + short_value(v);
      }
    }
    std::string label = preset;
    for (const auto* part : {&context, &tuned}) {
      if (!part->empty()) label += (label.empty() ? "" : " ") + *part;
    }
    if (label.empty()) label = plan.name;
    for (const auto& s : j["seeds"]) {
      Trial t;
      t.seed = s.get<int64_t>();
      t.method = label;
      t.preset = preset;
      t.context = context;
      t.tune = tuned;
      t.config = config;
      t.config["seed"] = t.seed;
      if (!pretrain_key.empty()) {
        set_dotted(t.config, "train.init_from", "run:" + pretrain_key);
        t.depends_on = pretrain_key;
      }
      t.run_key = run_key_of(t.config);
      validate(t.config, label);
      if (seen.insert(t.run_key).second) plan.trials.push_back(std::move(t));
    }
  }
  if (plan.trials.empty()) {
    fail(path, nullptr, "the sweep expands to no trials (empty grid, or everything excluded)");
  }
  return plan;
}

}  // namespace moe
