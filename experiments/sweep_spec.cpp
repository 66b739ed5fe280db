#include "experiments/sweep_spec.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/config_error.h"
#include "core/data/task.h"
#include "core/error_text.h"
#include "core/experts.h"
#include "core/router.h"
#include "core/train/config.h"
#include "experiments/config_file.h"
#include "experiments/param_counts.h"
#include "experiments/toml_json.h"

namespace moe {
namespace {

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

namespace {

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

/// One expanded point: (dotted key or "method", value) pairs, the tune axes from tune_from.
struct Points {
  std::vector<std::vector<std::pair<std::string, nlohmann::json>>> points = {{}};
  size_t tune_from = 0;
};

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

/// The grid crossed with the zipped axes, then the tune axes. The size is computed first,
/// from the axes' lengths: a huge grid is refused before it is built.
Points expand(const SweepSpec& spec, const std::string& path, int64_t max_trials) {
  {
    double count = static_cast<double>(spec.seeds.size());
    std::string lengths;
    auto note = [&](const std::string& table, const Axis& a) {
      lengths += (lengths.empty() ? "" : ", ") + table + "." + a.key + ": " +
                 std::to_string(a.values.size());
    };
    for (const auto& a : spec.grid) count *= static_cast<double>(a.values.size()), note("grid", a);
    if (!spec.zip.empty()) {
      count *= static_cast<double>(spec.zip.front().values.size());
      note("zip", spec.zip.front());
    }
    for (const auto& a : spec.tune) count *= static_cast<double>(a.values.size()), note("tune", a);
    if (count > static_cast<double>(max_trials)) {
      std::ostringstream n;
      n << std::setprecision(count < 1e15 ? 15 : 3) << count;
      fail(path, nullptr,
           "the sweep expands to " + n.str() +
               " trials (seeds: " + std::to_string(spec.seeds.size()) +
               (lengths.empty() ? "" : ", ") + lengths + "), above --max-trials " +
               std::to_string(max_trials) + "; shrink the axes or raise --max-trials");
    }
  }
  Points out;
  auto& points = out.points;
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
  for (const auto& a : spec.grid) cross(a);
  if (!spec.zip.empty()) {
    std::vector<std::vector<std::pair<std::string, nlohmann::json>>> next;
    for (const auto& p : points) {
      for (size_t i = 0; i < spec.zip.front().values.size(); ++i) {
        auto q = p;
        for (const auto& a : spec.zip) q.emplace_back(a.key, a.values[i]);
        next.push_back(q);
      }
    }
    points = next;
  }
  // The tune axes, marked so that labels can tell them apart.
  out.tune_from = points.front().size();
  for (const auto& a : spec.tune) cross(a);
  return out;
}

/// Checks a trial's config now, not hours into the sweep: every distinct model is built
/// once on the CPU (no data), so out-of-range plugin parameters are reported with the
/// trial's label, not when its worker starts.
class TrialValidator {
 public:
  TrialValidator(std::string path, double max_memory)
      : path_(std::move(path)),
        max_memory_(max_memory > 0 ? max_memory : machine_memory_bytes()),
        limit_(max_memory > 0 ? "--max-memory" : "this machine's memory") {}
  void operator()(const nlohmann::json& config, const std::string& label) {
    try {
      auto parsed = ExperimentConfig::from_json(config, "");
      // Before anything is allocated: what training it would take.
      const auto est = estimate_training(parsed);
      if (!(est.memory_bytes <= max_memory_)) {
        std::string inputs;
        for (const auto& i : est.inputs) inputs += (inputs.empty() ? "" : ", ") + i;
        std::ostringstream p;
        p << std::setprecision(3) << est.params;
        throw ConfigError::text(
            "", "",
            "training needs at least " + format_bytes(est.memory_bytes) + " (" + p.str() +
                " parameters x 16 B for weights, gradients and AdamW state + " +
                format_bytes(est.activation_bytes) + " of activations), over " + limit_ + " (" +
                format_bytes(max_memory_) + "; --max-memory sets another limit); from " + inputs);
      }
      for (const auto& [key, file] :
           {std::pair<std::string, std::string>{"init_from", parsed.train.init_from},
            {"upcycle_from", parsed.train.upcycle_from}}) {
        if (file.empty() || file.rfind("run:", 0) == 0) continue;  // a pretraining run's model
        if (const char* problem = not_a_file(file)) {
          throw ConfigError::text(
              "", "train." + key,
              "key 'train." + key + "': model file '" + file + "' " +
                  (std::string(problem) == "file not found" ? "not found" : problem) +
                  " (a model saved by moe train / keep_models, or \"run:<key>\" of a [pretrain])");
        }
      }
      const std::string task = parsed.task["name"];
      if (!task_registry().has(task)) task_registry().entry(task);
      if (parsed.model.moe_every > 0) {
        router_registry().entry(parsed.moe.router.value("name", ""));
        expert_registry().entry(parsed.moe.experts.value("name", ""));
      }
      nlohmann::json shape = config;
      shape.erase("seed");
      shape.erase("train");
      if (built_.insert(shape.dump()).second) check_trial_builds(config);
    } catch (const ConfigError& e) {
      throw e.in_file(path_).in_trial(label);
    } catch (const std::bad_alloc&) {
      throw ConfigError::text("", "", "building the model failed: out of memory")
          .in_file(path_)
          .in_trial(label);
    } catch (const std::exception& e) {  // building the model (an allocation the estimate missed)
      throw ConfigError::text("", "", "building the model failed: " + error_text(e))
          .in_file(path_)
          .in_trial(label);
    }
  }

 private:
  std::string path_;
  double max_memory_;
  std::string limit_;
  std::set<std::string> built_;
};

/// The "granularity" axis (DeepSeekMoE's fine-grained experts): m splits every expert
/// into m narrower ones at the same active compute: num_experts x m, experts.hidden / m,
/// router k x m, shared_experts x m (the shared width stays n * hidden); top_k keeps the
/// base's gate normalisation (normalize = base k > 1 unless given). Dense trials
/// (moe_every = 0) are left alone. Errors name the sweep file.
void apply_granularity(const std::string& path, int64_t m, nlohmann::json& config) {
  const auto parsed = ExperimentConfig::from_json(config, "trial");
  if (parsed.model.moe_every == 0) return;
  auto& moe = config["moe"];
  // The router and the bank rewrite their own blocks (their registry facts).
  const auto nominal = nominal_experts(parsed.moe.router);
  if (!nominal) {
    fail(path, nullptr,
         "axis 'granularity': router '" + parsed.moe.router.value("name", "") +
             "' has no nominal experts per token to scale (routers with one: " +
             list_of(routers_with_nominal_experts()) +
             "); give moe.num_experts, moe.experts and the router's options as [zip] axes");
  }
  auto router = parsed.moe.router, experts = parsed.moe.experts;
  try {
    refine_bank(experts, parsed.model.d_model, m);
  } catch (const ConfigError& e) {
    throw e.within("axis 'granularity'").in_file(path);
  }
  router_registry().entry(router["name"]).facts.refine(router, *nominal, m);
  moe["router"] = router;
  moe["experts"] = experts;
  moe["num_experts"] = parsed.moe.num_experts * m;
  if (parsed.moe.shared_experts > 0) moe["shared_experts"] = parsed.moe.shared_experts * m;
}

/// The [pretrain] trial (if any) and one trial per (point, seed), each validated.
void make_trials(const SweepSource& src, const SweepSpec& spec, const Points& expanded,
                 double max_memory, SweepPlan& plan) {
  const auto& j = src.j;
  TrialValidator validate(src.path, max_memory);
  std::string pretrain_key;
  if (j.contains("pretrain")) {
    src.need_type("pretrain", j["pretrain"].is_object(), "a table of config keys");
    const auto& pre = j["pretrain"];
    src.need_type("pretrain", pre.value("seed", nlohmann::json(0)).is_number_integer(),
                  "an integer pretrain.seed");
    Trial t;
    t.pretrain = true;
    t.method = "pretrain";
    t.seed = pre.value("seed", spec.seeds.front());
    t.config = spec.base;
    merge_into(t.config, nested(pre));
    t.config["seed"] = t.seed;
    t.run_key = pretrain_key = run_key_of(t.config);
    validate(t.config, t.method);
    plan.trials.push_back(std::move(t));
  }

  std::set<std::string> seen;
  for (const auto& point : expanded.points) {
    bool excluded = false;
    for (const auto& e : spec.excludes) {
      bool all = true;
      for (auto it = e.begin(); it != e.end() && all; ++it) {
        bool match = false;
        for (const auto& [k, v] : point) match |= (k == it.key() && v == it.value());
        all = match;
      }
      excluded |= all && !e.empty();
    }
    if (excluded) continue;
    nlohmann::json config = spec.base;
    std::string preset, context, tuned;
    int64_t granularity = 1;
    for (size_t i = 0; i < point.size(); ++i) {
      const auto& [k, v] = point[i];
      if (k == "method") {
        merge_into(config, spec.presets.at(v.get<std::string>()));
        preset = v.get<std::string>();
      } else if (k == "granularity") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1) {
          fail(src.path, nullptr, "axis 'granularity' expected integers >= 1, got " + v.dump());
        }
        granularity = v.get<int64_t>();
        auto& part = i >= expanded.tune_from ? tuned : context;
        part += (part.empty() ? "" : " ") + k + "=" + short_value(v);
      } else {
        set_dotted(config, k, v);
        auto& part = i >= expanded.tune_from ? tuned : context;
        part += (part.empty() ? "" : " ") + k + "=" + short_value(v);
      }
    }
    if (granularity > 1) apply_granularity(src.path, granularity, config);
    std::string label = preset;
    for (const auto* part : {&context, &tuned}) {
      if (!part->empty()) label += (label.empty() ? "" : " ") + *part;
    }
    if (label.empty()) label = plan.name;
    for (const int64_t seed : spec.seeds) {
      Trial t;
      t.seed = seed;
      t.method = label;
      t.preset = preset;
      t.context = context;
      t.tune = tuned;
      t.config = config;
      t.config["seed"] = t.seed;
      if (!pretrain_key.empty()) {  // upcycle_from = "pretrain" upcycles; the rest start from it
        const auto* train = t.config.contains("train") ? &t.config["train"] : nullptr;
        const bool upcycle =
            train && train->value("upcycle_from", nlohmann::json("")) == "pretrain";
        set_dotted(t.config, upcycle ? "train.upcycle_from" : "train.init_from",
                   "run:" + pretrain_key);
        t.depends_on = pretrain_key;
      } else if (t.config.contains("train") &&
                 t.config["train"].value("upcycle_from", nlohmann::json("")) == "pretrain") {
        fail(src.path, nullptr,
             "trial '" + label + "': train.upcycle_from = \"pretrain\" needs a [pretrain] " +
                 "section (the dense model to upcycle)");
      }
      t.run_key = run_key_of(t.config);
      validate(t.config, label);
      if (seen.insert(t.run_key).second) plan.trials.push_back(std::move(t));
    }
  }
  if (plan.trials.empty()) {
    fail(src.path, nullptr, "the sweep expands to no trials (empty grid, or everything excluded)");
  }
}

}  // namespace

SweepPlan load_sweep(const std::string& path, int64_t max_trials, double max_memory) {
  try {
    SweepPlan plan;
    const auto src = read_sweep_file(path, plan);  // read: the file is parsed once
    SweepSpec spec;
    read_header(src, plan, spec);
    spec.base = read_base(src);
    read_axes(src, plan, spec);
    const auto points = expand(spec, path, max_trials);  // expand
    make_trials(src, spec, points, max_memory, plan);    // make trials
    return plan;
  } catch (const ConfigError& e) {  // every mistake names the sweep file
    throw e.in_file(path);
  }
}

}  // namespace moe
