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
      std::cout << "      " << p.name << " = " << p.default_value << "  " << p.help;
      if (p.range.numeric) std::cout << " [" << p.range.text() << "]";
      std::cout << "\n";
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
  std::cout
      << "dense FFN baseline: set model.moe_every = 0 (model.ffn_hidden, model.activation)\n\n";
  // Options of the MoE layer and the trainer that work with any router (not plugins).
  const std::pair<const char*, const char*> options[] = {
      {"moe.shared_experts = 0",
       "always-on experts of the bank's width added to the routed output (DeepSeekMoE); "
       "counted as active"},
      {"moe.capacity_factor = 0",
       "ceil(CF * selected slots / E) per expert; 0 = dropless; CF <= E"},
      {"loss.balance = 1e-2", "Switch balance loss N sum_i f_i P_i over the batch"},
      {"loss.balance_seq = 0",
       "the same per sequence, averaged over sequences (DeepSeek-V3's sequence-wise loss)"},
      {"loss.l1 = 1", "multiplies remoe's adaptive-lambda L1 penalty"},
      {"loss.layer_reduce = \"sum\"",
       "sum: every MoE layer's aux losses at the full coefficient (Switch, Megatron-Core) | "
       "mean: divided by the number of MoE layers"},
      {"loss.balance_count = \"all\"",
       "top_k's balance f_i: share of all T k choices (Megatron-Core, DeepSeek-V3) | first: "
       "of the first choices only (GShard's paper)"},
      {"train.upcycle_from = \"\"",
       "sparse upcycling: every expert starts as its layer's FFN of a saved dense model; in "
       "a sweep, \"pretrain\" names the [pretrain] run"},
      {"train.upcycle_noise = 0", "std of N(0, s^2) added to each upcycled expert's weights"},
      {"train.precision = \"fp32\"", "fp32 | bf16 (autocast forward; routing in fp32)"},
      {"sweep axis granularity = [1, 2, 4]",
       "fine-grained experts: num_experts x m, experts.hidden / m, router k x m (top_k keeps "
       "the base's gate normalisation)"}};
  std::cout << "layer, loss and training options (any router)\n";
  for (const auto& [key, help] : options) std::cout << "  " << key << "\n      " << help << "\n";
  return 0;
}

}  // namespace moe
