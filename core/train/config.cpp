#include "core/train/config.h"

#include "core/plugin_spec.h"

namespace moe {

const std::vector<std::string>& sampling_names() {
  static const std::vector<std::string> names = {"iid", "epochs", "curriculum"};
  return names;
}

const std::vector<std::string>& layer_reduce_names() {
  static const std::vector<std::string> names = {"sum", "mean"};
  return names;
}

const std::string& sampling_name(Sampling s) { return sampling_names().at(static_cast<size_t>(s)); }

ExperimentConfig ExperimentConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ExperimentConfig c;
  c.resolved = j;
  const std::string family = source + ": section";
  PluginSpec top(source + ":", "top level", j);
  c.seed = static_cast<uint64_t>(top.get<int64_t>("seed", 0));
  c.device = top.get<std::string>("device", c.device);
  c.threads = top.get<int64_t>("threads", 0);
  top.check().expect(c.threads >= 0 && c.threads <= 4096, "threads", "in [0, 4096] (0 = all cores)",
                     static_cast<double>(c.threads));
  if (top.contains("seed")) {
    const auto seed = top.get<int64_t>("seed", 0);
    top.check().expect(seed >= 0, "seed", ">= 0", static_cast<double>(seed));
  }
  c.data_dir = top.get<std::string>("data_dir", c.data_dir);
  top.get<std::string>("name", "");
  top.get<std::string>("description", "");
  if (top.contains("task")) {
    c.task = top.block("task");
    if (!c.task.contains("name") || !c.task["name"].is_string()) {
      top.fail("section 'task' expected a string key 'name'");
    }
  } else {
    top.block("task");
  }

  PluginSpec model(family, "model", top.block("model"));
  auto& m = c.model;
  m.d_model = model.get<int64_t>("d_model", m.d_model);
  m.layers = model.get<int64_t>("layers", m.layers);
  m.heads = model.get<int64_t>("heads", m.heads);
  m.ffn_hidden = model.get<int64_t>("ffn_hidden", m.ffn_hidden);
  m.moe_every = model.get<int64_t>("moe_every", m.moe_every);
  m.activation = model.enum_choice("activation", m.activation, activation_names());
  m.dropout = model.get<double>("dropout", m.dropout);
  m.attention_bias = model.enum_choice("attention_bias", m.attention_bias, attention_bias_names());
  model.check_all_read();
  if (m.d_model <= 0 || m.layers <= 0 || m.heads <= 0 || m.d_model % m.heads != 0) {
    model.fail("expected d_model, layers, heads > 0 with d_model divisible by heads");
  }
  if (m.moe_every < 0) model.fail("parameter 'moe_every' expected >= 0 (0 = dense model)");
  model.check().expect(m.ffn_hidden > 0, "ffn_hidden", "> 0", static_cast<double>(m.ffn_hidden));
  model.check().expect(m.dropout >= 0 && m.dropout < 1, "dropout", "in [0, 1)", m.dropout);

  PluginSpec moe(family, "moe", top.block("moe"));
  c.moe.num_experts = moe.get<int64_t>("num_experts", c.moe.num_experts);
  c.moe.capacity_factor = moe.get<double>("capacity_factor", 0.0);
  c.moe.eval_capacity_factor = moe.get<double>("eval_capacity_factor", -1.0);
  c.moe.shared_experts = moe.get<int64_t>("shared_experts", c.moe.shared_experts);
  c.moe.drop_policy = moe.enum_choice("drop_policy", c.moe.drop_policy, drop_policy_names());
  if (moe.contains("router")) c.moe.router = moe.block("router");
  if (moe.contains("experts")) c.moe.experts = moe.block("experts");
  moe.block("router");
  moe.block("experts");
  moe.check_all_read();
  if (c.moe.num_experts <= 0) moe.fail("parameter 'num_experts' expected > 0");
  moe.check().expect(c.moe.shared_experts >= 0, "shared_experts", ">= 0 (0 = none)",
                     static_cast<double>(c.moe.shared_experts));
  // Above num_experts every expert's capacity already holds every token (k >= 1): a larger
  // factor only sizes buffers (1e308 would overflow them).
  const auto experts = static_cast<double>(c.moe.num_experts);
  moe.check().expect(c.moe.capacity_factor >= 0 && c.moe.capacity_factor <= experts,
                     "capacity_factor", "in [0, num_experts] (0 = dropless)",
                     c.moe.capacity_factor);
  // Absent (-1 internally) = the training capacity factor; given, it must be a factor.
  if (moe.contains("eval_capacity_factor")) {
    moe.check().expect(c.moe.eval_capacity_factor >= 0 && c.moe.eval_capacity_factor <= experts,
                       "eval_capacity_factor",
                       "in [0, num_experts] (0 = dropless; leave it out to use capacity_factor)",
                       c.moe.eval_capacity_factor);
  }

  PluginSpec train(family, "train", top.block("train"));
  auto& t = c.train;
  t.steps = train.get<int64_t>("steps", t.steps);
  t.batch_size = train.get<int64_t>("batch_size", t.batch_size);
  t.lr = train.get<double>("lr", t.lr);
  t.min_lr_ratio = train.get<double>("min_lr_ratio", t.min_lr_ratio);
  t.warmup = train.get<int64_t>("warmup", t.warmup);
  t.weight_decay = train.get<double>("weight_decay", t.weight_decay);
  t.clip = train.get<double>("clip", t.clip);
  t.eval_every = train.get<int64_t>("eval_every", t.eval_every);
  t.eval_batches = train.get<int64_t>("eval_batches", t.eval_batches);
  t.eval_batch_size = train.get<int64_t>("eval_batch_size", t.eval_batch_size);
  t.log_every = train.get<int64_t>("log_every", t.log_every);
  t.checkpoint = train.get<std::string>("checkpoint", t.checkpoint);
  t.checkpoint_every = train.get<int64_t>("checkpoint_every", t.checkpoint_every);
  t.checkpoint_minutes = train.get<double>("checkpoint_minutes", t.checkpoint_minutes);
  t.resume = train.get<bool>("resume", t.resume);
  t.sampling = train.enum_choice("sampling", t.sampling, sampling_names());
  t.curriculum_eps = train.get<double>("curriculum_eps", t.curriculum_eps);
  t.target_loss = train.get<double>("target_loss", t.target_loss);
  t.init_from = train.get<std::string>("init_from", t.init_from);
  t.upcycle_from = train.get<std::string>("upcycle_from", t.upcycle_from);
  t.upcycle_noise = train.get<double>("upcycle_noise", t.upcycle_noise);
  t.trainable = train.get<std::vector<std::string>>("trainable", t.trainable);
  t.precision = train.choice("precision", t.precision, {"fp32", "bf16"});
  t.peak_tflops = train.get<double>("peak_tflops", t.peak_tflops);
  train.check_all_read();
  if (t.curriculum_eps < 0 || t.target_loss < 0) {
    train.fail("expected curriculum_eps >= 0 and target_loss >= 0");
  }
  if (t.steps <= 0 || t.batch_size <= 0 || t.eval_batch_size <= 0 || t.lr <= 0) {
    train.fail("expected steps, batch_size, eval_batch_size and lr > 0");
  }
  if (t.log_every <= 0) train.fail("parameter 'log_every' expected > 0");
  train.check().expect(t.warmup >= 0, "warmup", ">= 0", static_cast<double>(t.warmup));
  train.check().expect(t.min_lr_ratio >= 0 && t.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]",
                       t.min_lr_ratio);
  train.check().expect(t.weight_decay >= 0, "weight_decay", ">= 0", t.weight_decay);
  train.check().expect(t.clip >= 0, "clip", ">= 0 (0 = off)", t.clip);
  train.check().expect(t.eval_every >= 0, "eval_every", ">= 0 (0 = only at the end)",
                       static_cast<double>(t.eval_every));
  train.check().expect(t.eval_batches >= 0, "eval_batches", ">= 0 (0 = all)",
                       static_cast<double>(t.eval_batches));
  if (!t.upcycle_from.empty() && !t.init_from.empty()) {
    train.fail(
        "expected at most one of init_from and upcycle_from (upcycling also copies "
        "every other tensor by name)");
  }
  if (!t.upcycle_from.empty() && m.moe_every == 0) {
    train.fail("parameter 'upcycle_from' needs MoE layers to upcycle (model.moe_every > 0)");
  }
  train.check().expect(t.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = off)",
                       static_cast<double>(t.checkpoint_every));
  train.check().expect(t.checkpoint_minutes >= 0, "checkpoint_minutes", ">= 0 (0 = off)",
                       t.checkpoint_minutes);
  train.check().expect(t.upcycle_noise >= 0, "upcycle_noise", ">= 0", t.upcycle_noise);
  train.check().expect(t.peak_tflops >= 0, "peak_tflops", ">= 0 (0 = measured / looked up)",
                       t.peak_tflops);

  // [peft]: method names the adapter plugin, which reads (and checks) the other keys.
  PluginSpec peft(family, "peft", top.block("peft"));
  auto& pe = c.peft;
  pe.method = peft.get<std::string>("method", pe.method);
  pe.params = peft.params().is_object() ? peft.params() : nlohmann::json::object();
  pe.params.erase("method");
  try {
    check_peft(pe);
  } catch (const std::invalid_argument& e) {
    peft.fail(e.what());
  }

  PluginSpec loss(family, "loss", top.block("loss"));
  for (auto& kv : c.loss_coefs) {
    kv.second = loss.get<double>(kv.first, kv.second);
    loss.check().expect(kv.second >= 0, kv.first, ">= 0 (0 = off)", kv.second);
  }
  c.loss_layer_reduce = loss.enum_choice("layer_reduce", c.loss_layer_reduce, layer_reduce_names());
  c.moe.balance_count =
      loss.enum_choice("balance_count", c.moe.balance_count, balance_count_names());
  loss.check_all_read();
  top.check_all_read();
  return c;
}

}  // namespace moe
