#include "core/adapters.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

#include "core/config_error.h"

namespace moe {

AdapterRegistry& adapter_registry() {
  static auto* registry = new AdapterRegistry("adapter");
  return *registry;
}

bool adapter_at(const PeftOptions& peft, const std::string& site) {
  if (!peft.enabled()) return false;
  const auto& tags = adapter_registry().entry(peft.method).tags;
  return std::find(tags.begin(), tags.end(), site) != tags.end();
}

AdapterPtr make_adapter(const PeftOptions& peft, int64_t d_in, int64_t d_out, int64_t heads) {
  PluginSpec spec("adapter", peft.method, peft.params);
  check_ranges(spec, adapter_registry().entry(peft.method).params);
  auto adapter = adapter_registry().create(peft.method, spec, d_in, d_out, heads);
  spec.check_all_read();
  return adapter;
}

void check_peft(const PeftOptions& peft) {
  if (!peft.enabled()) {
    if (!peft.params.empty()) {
      throw ConfigError::text(
          "", "method",
          "parameters " + peft.params.dump() +
              " given without 'method'; known methods: " + adapter_registry().known());
    }
    return;
  }
  if (!adapter_registry().has(peft.method)) {
    throw ConfigError::value("", "method", "one of " + adapter_registry().known(),
                             "'" + peft.method + "'");
  }
  torch::NoGradGuard no_grad;
  make_adapter(peft, 4, 4, 2);
}

void check_mixture(const OptionCheck& check, int64_t experts, int64_t top_k) {
  check.expect(experts >= 1, "experts", ">= 1", static_cast<double>(experts));
  check.expect(top_k >= 0 && top_k <= experts, "top_k",
               "0 (soft merge) .. experts (" + std::to_string(experts) + ")",
               static_cast<double>(top_k));
}

torch::Tensor mixture_from_logits(const torch::Tensor& logits, int64_t top_k) {
  auto p = torch::softmax(
      logits.scalar_type() == torch::kDouble ? logits : logits.to(torch::kFloat), -1);
  if (top_k > 0 && top_k < p.size(-1)) {  // exactly k, even under ties; no renormalisation
    auto keep = torch::zeros_like(p).scatter_(-1, std::get<1>(p.topk(top_k, -1)), 1.0);
    p = p * keep;
  }
  return p;
}

torch::Tensor adapter_mixture(const torch::Tensor& x, const torch::Tensor& router, int64_t top_k) {
  return mixture_from_logits(torch::matmul(x, router.to(x.dtype())), top_k);
}

}  // namespace moe
