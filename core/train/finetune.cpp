#include "core/train/finetune.h"

#include <fnmatch.h>
#include <torch/serialize/input-archive.h>
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

namespace moe {
namespace {

void load_matching(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                   const std::string& prefix, InitReport& report) {
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor& target, bool is_buffer) {
    torch::Tensor source;
    if (!archive.try_read(name, source, is_buffer)) {
      report.fresh.push_back(prefix + name);
    } else if (source.sizes() != target.sizes()) {
      report.reshaped.push_back(prefix + name);
    } else {
      target.copy_(source);
      ++report.loaded;
    }
  };
  for (auto& p : module.named_parameters(/*recurse=*/false)) copy(p.key(), p.value(), false);
  for (auto& b : module.named_buffers(/*recurse=*/false)) copy(b.key(), b.value(), true);
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive sub;
    if (archive.try_read(child.key(), sub)) {
      load_matching(sub, *child.value(), prefix + child.key() + ".", report);
    } else {
      for (auto& p : child.value()->named_parameters()) {
        report.fresh.push_back(prefix + child.key() + "." + p.key());
      }
    }
  }
}

}  // namespace

InitReport init_from_model(const std::string& path, torch::nn::Module& model) {
  if (!std::filesystem::exists(path)) {
    throw std::invalid_argument("train.init_from: model file '" + path + "' not found");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("train.init_from: cannot read '" + path +
                                "': " + e.what_without_backtrace());
  }
  InitReport report;
  load_matching(archive, model, "", report);
  if (report.loaded == 0) {
    throw std::invalid_argument("train.init_from: '" + path +
                                "' shares no parameter (same name and shape) with this model");
  }
  return report;
}

int64_t apply_trainable(torch::nn::Module& model, const std::vector<std::string>& patterns,
                        const std::string& source) {
  auto params = model.named_parameters();
  std::vector<bool> used(patterns.size(), false);
  int64_t trainable = 0;
  for (auto& p : params) {
    bool train = patterns.empty();
    for (size_t i = 0; i < patterns.size(); ++i) {
      if (fnmatch(patterns[i].c_str(), p.key().c_str(), 0) == 0) train = used[i] = true;
    }
    p.value().set_requires_grad(train);
    if (train) trainable += p.value().numel();
  }
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (used[i]) continue;
    std::string examples;
    for (size_t j = 0; j < params.size() && j < 6; ++j) {
      examples += (j ? ", " : "") + params[j].key();
    }
    throw std::invalid_argument(source + ": train.trainable pattern '" + patterns[i] +
                                "' matches no parameter (names look like: " + examples + ", ...)");
  }
  return trainable;
}

}  // namespace moe
