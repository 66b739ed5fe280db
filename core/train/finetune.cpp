#include "core/train/finetune.h"

#include <fnmatch.h>
#include <torch/serialize/input-archive.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "core/config_error.h"
#include "core/train/checkpoint.h"
#include "core/transformer.h"

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

void open_archive(const std::string& key, const std::string& path,
                  torch::serialize::InputArchive& archive) {
  if (!std::filesystem::exists(path)) {
    throw ConfigError::text("", key, key + ": model file '" + path + "' not found");
  }
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw ConfigError::text("", key,
                            key + ": cannot read '" + path + "': " + e.what_without_backtrace());
  }
}

/// The tensor at a dotted path of nested archives, or an undefined tensor.
torch::Tensor read_dotted(torch::serialize::InputArchive& archive, const std::string& dotted) {
  const auto dot = dotted.find('.');
  if (dot == std::string::npos) {
    torch::Tensor t;
    return archive.try_read(dotted, t) ? t : torch::Tensor();
  }
  torch::serialize::InputArchive sub;
  if (!archive.try_read(dotted.substr(0, dot), sub)) return {};
  return read_dotted(sub, dotted.substr(dot + 1));
}

}  // namespace

InitReport init_from_model(const std::string& path, torch::nn::Module& model) {
  torch::serialize::InputArchive archive;
  open_archive("train.init_from", path, archive);
  InitReport report;
  load_matching(archive, model, "", report);
  if (report.loaded == 0) {
    throw ConfigError::text("", "train.init_from",
                            "train.init_from: '" + path +
                                "' shares no parameter (same name and shape) with this model");
  }
  return report;
}

InitReport upcycle_from_model(const std::string& path, TransformerImpl& model, double noise_std) {
  torch::serialize::InputArchive archive;
  open_archive("train.upcycle_from", path, archive);
  {  // ReLU and GELU FFNs have the same shapes: only the saved name tells them apart
    c10::IValue saved;
    if (!archive.try_read(kModelActivationKey, saved) || !saved.isString()) {
      throw ConfigError::text(
          "", "train.upcycle_from",
          "train.upcycle_from: '" + path +
              "' does not record its FFN activation (saved before models carried it); retrain the "
              "dense model to upcycle it");
    }
    for (const auto& layer : model.moe_layers()) {
      const auto& want = activation_name(layer->experts->expert_activation());
      if (saved.toStringRef() != want) {
        throw ConfigError::text("", "train.upcycle_from",
                                "train.upcycle_from: '" + path + "' was trained with " +
                                    saved.toStringRef() + " FFNs but the experts use " + want +
                                    " (set moe.experts.activation = \"" + saved.toStringRef() +
                                    "\" to upcycle it)");
      }
    }
  }
  InitReport report;
  load_matching(archive, model, "", report);  // attention, norms, embeddings, dense layers
  for (size_t l = 0; l < model.blocks->size(); ++l) {
    auto block = model.blocks->ptr<BlockImpl>(l);
    if (!block->moe) continue;
    const std::string at = "blocks." + std::to_string(l) + ".ffn.";
    auto up_w = read_dotted(archive, at + "up.weight"), up_b = read_dotted(archive, at + "up.bias");
    auto down_w = read_dotted(archive, at + "down.weight");
    auto down_b = read_dotted(archive, at + "down.bias");
    if (!up_w.defined() || !up_b.defined() || !down_w.defined() || !down_b.defined()) {
      throw std::invalid_argument("train.upcycle_from: '" + path + "' has no dense FFN at " + at +
                                  "* for MoE layer " + std::to_string(l) +
                                  " (upcycle from a model trained with model.moe_every = 0)");
    }
    block->moe->experts->upcycle(up_w, up_b, down_w, down_b, noise_std);
    report.loaded += 4;
    const std::string bank = "blocks." + std::to_string(l) + ".moe.experts.";
    report.fresh.erase(std::remove_if(report.fresh.begin(), report.fresh.end(),
                                      [&](const std::string& n) { return n.rfind(bank, 0) == 0; }),
                       report.fresh.end());
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
    throw ConfigError::text("", "train.trainable",
                            "train.trainable pattern '" + patterns[i] +
                                "' matches no parameter (names look like: " + examples + ", ...)")
        .in_file(source);
  }
  return trainable;
}

}  // namespace moe
