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
#include "experiments/sweep_file.h"
#include "experiments/toml_json.h"

namespace moe {
namespace {

using sweep_file::Axis;
using sweep_file::fail;
using sweep_file::merge_into;
using sweep_file::nested;
using sweep_file::not_a_file;
using sweep_file::SweepSource;
using sweep_file::SweepSpec;

std::string short_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  // A whole plugin block (task = {name = "mod_sum", ...}) is labelled by its name.
  if (v.is_object() && v.contains("name") && v["name"].is_string()) return v["name"];
  return v.dump();
}

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

/// One expanded point: (dotted key or "method", value) pairs, the tune axes from tune_from.
struct Points {
  std::vector<std::vector<std::pair<std::string, nlohmann::json>>> points = {{}};
  size_t tune_from = 0;
};

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
        const std::string inputs = join(est.inputs);
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
    } catch (const std::invalid_argument& e) {  // what a file the config names holds
      throw ConfigError::text("", "", e.what()).in_file(path_).in_trial(label);
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
    const auto src = sweep_file::read_sweep_file(path, plan);  // read: parsed once
    SweepSpec spec;
    sweep_file::read_header(src, plan, spec);
    spec.base = sweep_file::read_base(src);
    sweep_file::read_axes(src, plan, spec);
    const auto points = expand(spec, path, max_trials);  // expand
    make_trials(src, spec, points, max_memory, plan);    // make trials
    return plan;
  } catch (const ConfigError& e) {  // every mistake names the sweep file
    throw e.in_file(path);
  }
}

}  // namespace moe
