#include "core/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include "core/config_error.h"

namespace moe {

namespace {

/// The RNG of the device the model lives on, when it is not the CPU (nullopt otherwise).
std::optional<at::Generator> device_generator(Transformer& model) {
  const auto params = model->parameters();
  if (params.empty() || params[0].device().is_cpu()) return std::nullopt;
  return at::globalContext().defaultGenerator(params[0].device());
}

}  // namespace

void save_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                     int64_t step,
                     const std::function<void(torch::serialize::OutputArchive&)>& extra) {
  torch::serialize::OutputArchive archive, model_archive, opt_archive;
  model->save(model_archive);
  opt.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  archive.write("step", torch::tensor(step));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng_cpu", gen.get_state());
  }
  if (auto gen = device_generator(model)) {
    std::lock_guard<std::mutex> lock(gen->mutex());
    archive.write("rng_device", gen->get_state());
  }
  if (extra) extra(archive);
  // Write then rename, so a crash never leaves a truncated checkpoint behind.
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

int64_t load_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                        const std::function<void(torch::serialize::InputArchive&)>& extra) {
  TORCH_CHECK(std::filesystem::exists(path), "checkpoint '", path, "': file not found");
  TORCH_CHECK(!std::filesystem::is_directory(path), "checkpoint '", path, "': is a directory");
  torch::serialize::InputArchive archive, model_archive, opt_archive;
  torch::Tensor step, rng, rng_device;
  try {
    archive.load_from(path);
    archive.read("model", model_archive);
    archive.read("optimizer", opt_archive);
    model->load(model_archive);
    opt.load(opt_archive);
    archive.read("step", step);
    archive.read("rng_cpu", rng);
    if (extra) extra(archive);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint '", path,
                "': cannot be loaded into this model (different config, or a damaged file?): ",
                e.what_without_backtrace());
  }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  if (auto gen = device_generator(model); gen && archive.try_read("rng_device", rng_device)) {
    std::lock_guard<std::mutex> lock(gen->mutex());
    gen->set_state(rng_device);
  }
  return step.item<int64_t>();
}

void save_model(const std::string& path, Transformer& model) {
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir);
  }
  torch::serialize::OutputArchive archive;
  model->save(archive);
  // What the tensors cannot say: the dense FFNs' activation (upcycling checks it).
  archive.write(kModelActivationKey, c10::IValue(activation_name(model->options().activation())));
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

void load_model(const std::string& path, Transformer& model) {
  if (!std::filesystem::exists(path)) {
    throw ConfigError::text("model '" + path + "'", "model", "file not found");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    model->load(archive);
  } catch (const c10::Error& e) {
    throw ConfigError::text("model '" + path + "'", "model",
                            std::string("cannot be loaded into this model (different config?): ") +
                                e.what_without_backtrace());
  }
}

}  // namespace moe
