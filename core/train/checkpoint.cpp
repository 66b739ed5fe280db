#include "core/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>

namespace moe {

void save_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt,
                     int64_t step) {
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
  // Write then rename, so a crash never leaves a truncated checkpoint behind.
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

int64_t load_checkpoint(const std::string& path, Transformer& model, torch::optim::Optimizer& opt) {
  TORCH_CHECK(std::filesystem::exists(path), "checkpoint '", path, "': file not found");
  torch::serialize::InputArchive archive, model_archive, opt_archive;
  try {
    archive.load_from(path);
    archive.read("model", model_archive);
    archive.read("optimizer", opt_archive);
    model->load(model_archive);
    opt.load(opt_archive);
  } catch (const c10::Error& e) {
    TORCH_CHECK(
        false, "checkpoint '", path,
        "': cannot be loaded into this model (different config?): ", e.what_without_backtrace());
  }
  torch::Tensor step, rng;
  archive.read("step", step);
  archive.read("rng_cpu", rng);
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(rng);
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
  TORCH_CHECK(std::filesystem::exists(path), "model '", path, "': file not found");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    model->load(archive);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "model '", path, "': cannot be loaded into this model (different config?): ",
                e.what_without_backtrace());
  }
}

}  // namespace moe
