#include "core/router.h"

#include <c10/util/Exception.h>

namespace moe {

void RouterImpl::set_inference_option(const std::string& key, double /*value*/) {
  std::string list = "[";
  for (const auto& k : inference_options()) list += (list.size() > 1 ? ", " : "") + k;
  TORCH_CHECK(false, "router '", plugin_name_, "': no inference option '", key,
              "'; known: ", list, "]");
}

RouterRegistry& router_registry() {
  static auto* registry = new RouterRegistry("router");
  return *registry;
}

Router make_router(const PluginSpec& spec, const LayerContext& ctx) {
  auto impl = router_registry().create(spec.name(), spec, ctx);
  spec.check_all_read();
  impl->set_plugin_name(spec.name());
  return Router(impl);
}

}  // namespace moe
