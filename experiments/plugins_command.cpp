#include <boost/program_options.hpp>

#include <functional>
#include <iostream>

#include "core/adapters.h"
#include "core/data/task.h"
#include "core/experts.h"
#include "core/router.h"
#include "core/train/config.h"
#include "experiments/commands.h"

namespace po = boost::program_options;

namespace moe {
namespace {

void print_param(const ParamDoc& p) {
  std::cout << "      " << p.name << " = " << p.default_value << "  " << p.help;
  if (p.range.numeric) std::cout << " [" << p.range.text() << "]";
  std::cout << "\n";
}

/// facts: a line of the entry's registry facts ("" = none).
template <class R>
void list(const R& registry, const std::string& title, const std::string& config_key,
          const std::function<std::string(const typename R::Entry&)>& facts) {
  std::cout << title << " (" << config_key << ")\n";
  for (const auto& name : registry.names()) {
    const auto& e = registry.entry(name);
    std::cout << "  " << name << "\n      " << e.help << "\n";
    if (const auto f = facts(e); !f.empty()) std::cout << "      " << f << "\n";
    for (const auto& p : e.params) print_param(p);
  }
  std::cout << "\n";
}

}  // namespace

int plugins_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe plugins: list every registered router, expert bank, "
      "adapter and task with its options, and every config key, with defaults and ranges\n\nUsage: "
      "moe plugins\n\nOptions");
  desc.add_options()("help,h", "show this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  list(router_registry(), "routers", "[moe.router] name = ...",
       [](const RouterRegistry::Entry& e) -> std::string {
         const auto k = e.facts.nominal_experts(PluginSpec("router", e.name, {}));
         std::string facts =
             k ? "experts per token: k (nominal count; default " + std::to_string(*k) + ")"
               : "experts per token: measured";
         std::vector<std::string> losses;
         for (const auto& l : e.facts.aux_losses()) losses.push_back(l.name);
         return facts + "; aux losses ([loss] keys): " + (losses.empty() ? "none" : join(losses));
       });
  list(expert_registry(), "expert banks", "[moe.experts] name = ...",
       [](const ExpertRegistry::Entry&) { return std::string(); });
  list(adapter_registry(), "adapters", "[peft] method = ...", [](const AdapterRegistry::Entry& e) {
    std::string sites = "sites:";
    for (const auto& t : e.tags) sites += " " + t;
    return sites;
  });
  list(task_registry(), "tasks", "[task] name = ...", [](const TaskRegistry::Entry& e) {
    return std::string(e.facts.causal ? "causal" : "bidirectional") + " attention";
  });
  std::cout
      << "dense FFN baseline: set model.moe_every = 0 (model.ffn_hidden, model.activation)\n\n";
  // The config sections' own keys (not plugins), with their ranges.
  std::cout << "config keys (any router; [task] and [peft] options are the plugin's, above)\n";
  for (const auto& section : config_docs()) {
    std::cout << "  [" << (section.section.empty() ? "top level" : section.section) << "]\n";
    for (const auto& p : section.keys) print_param(p);
  }
  std::cout << "\nsweep axis granularity = [1, 2, 4]\n      fine-grained experts: num_experts x m, "
               "experts.hidden / m, router k x m (top_k keeps the base's gate normalisation)\n";
  return 0;
}

}  // namespace moe
