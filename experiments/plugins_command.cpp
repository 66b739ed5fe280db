#include <boost/program_options.hpp>

#include <iostream>

#include "core/adapters.h"
#include "core/data/task.h"
#include "core/experts.h"
#include "core/router.h"
#include "experiments/commands.h"

namespace po = boost::program_options;

namespace moe {
namespace {

template <class R>
void list(const R& registry, const std::string& title, const std::string& config_key) {
  std::cout << title << " (" << config_key << ")\n";
  for (const auto& name : registry.names()) {
    const auto& e = registry.entry(name);
    std::cout << "  " << name << "\n      " << e.help << "\n";
    if (!e.tags.empty()) {
      std::cout << "      sites:";
      for (const auto& t : e.tags) std::cout << " " << t;
      std::cout << "\n";
    }
    for (const auto& p : e.params) {
      std::cout << "      " << p.name << " = " << p.default_value << "  " << p.help << "\n";
    }
  }
  std::cout << "\n";
}

}  // namespace

int plugins_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe plugins: list every registered router, expert bank, "
      "adapter and task with its options\n\nUsage: moe plugins\n\nOptions");
  desc.add_options()("help,h", "show this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  list(router_registry(), "routers", "[moe.router] name = ...");
  list(expert_registry(), "expert banks", "[moe.experts] name = ...");
  list(adapter_registry(), "adapters", "[peft] method = ...");
  list(task_registry(), "tasks", "[task] name = ...");
  std::cout << "dense FFN baseline: set model.moe_every = 0 (model.ffn_hidden, model.activation)\n";
  return 0;
}

}  // namespace moe
