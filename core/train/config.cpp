#include "core/train/config.h"

#include "core/config_error.h"
#include "core/plugin_spec.h"
#include "core/router.h"

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

namespace {

/// Step counts, intervals and minutes: beyond 2^40 is a typo, not a run.
constexpr double kMaxCount = 1099511627776.0;

std::string number(double v) { return format_number(v); }
std::string quoted(const std::string& v) { return "\"" + v + "\""; }
/// An enum setting's default as the file spells it: its name among `names` (enum order).
template <class E>
std::string quoted(E value, const std::vector<std::string>& names) {
  return quoted(names.at(static_cast<size_t>(value)));
}

/// A plugin block's default as the docs print it: { name = "top_k" }.
std::string named(const nlohmann::json& block) {
  return "{ name = \"" + block.value("name", std::string()) + "\" }";
}

std::vector<ConfigSectionDoc> make_config_docs() {
  const ExperimentConfig d;
  const auto& m = d.model;
  const auto& t = d.train;
  const auto names = [](const std::vector<std::string>& n) { return list_of(n); };
  std::vector<ConfigSectionDoc> docs;
  docs.push_back(
      {"",
       {{"seed", "0", "seeds the weights, the data order and the sampled data",
         Range::ints(0, 9007199254740991.0)},
        {"device", quoted(d.device), "auto | cpu | cuda | cuda:N"},
        {"threads", "0", "CPU threads; 0 = the runner's share of the cores", Range::ints(0, 4096)},
        {"data_dir", quoted(d.data_dir), "where experiments/fetch_data.sh put the corpora"},
        {"name", "\"\"", "a label (ignored)"},
        {"description", "\"\"", "a label (ignored)"},
        {"task", named(d.task), "a task plugin and its options (tasks above)"},
        {"model", "{}", "the section below"},
        {"moe", "{}", "the section below"},
        {"train", "{}", "the section below"},
        {"peft", "{}", "the section below"},
        {"loss", "{}", "the section below"}}});
  docs.push_back(
      {"model",
       {{"d_model", number(m.d_model), "residual width", Range::ints(1, kMaxSize)},
        {"layers", number(m.layers), "transformer blocks", Range::ints(1, 65536)},
        {"heads", number(m.heads), "attention heads", Range::ints(1, kMaxSize, "divides d_model")},
        {"ffn_hidden", number(m.ffn_hidden), "dense FFN width", Range::ints(1, kMaxSize)},
        {"moe_every", number(m.moe_every), "MoE in every n-th layer; 0 = dense model",
         Range::ints(0, 65536)},
        {"activation", quoted(m.activation, activation_names()), names(activation_names())},
        {"dropout", number(m.dropout), "dropout probability", Range::reals(0, 1, false, true)},
        {"attention_bias", quoted(m.attention_bias, attention_bias_names()),
         names(attention_bias_names()) + "; alibi: -slope_h * |i - j| on the scores"}}});
  docs.push_back(
      {"moe",
       {{"num_experts", number(d.moe.num_experts), "routed experts per MoE layer",
         Range::ints(1, kMaxSize)},
        {"shared_experts", number(d.moe.shared_experts),
         "always-on experts of the bank's width added to the routed output (DeepSeekMoE); "
         "counted as active",
         Range::ints(0, kMaxSize)},
        {"capacity_factor", number(d.moe.capacity_factor),
         "ceil(CF * selected slots / E) per expert; 0 = dropless",
         Range::reals(0, kMaxSize, false, false, "<= num_experts")},
        {"eval_capacity_factor", "(capacity_factor)", "the factor in evaluation",
         Range::reals(0, kMaxSize, false, false, "<= num_experts")},
        {"drop_policy", quoted(d.moe.drop_policy, drop_policy_names()),
         names(drop_policy_names()) +
             ": a full expert keeps first choices first, or tokens in order"},
        {"router", named(d.moe.router), "a router plugin and its options (routers above)"},
        {"experts", named(d.moe.experts), "an expert bank and its options (expert banks above)"}}});
  docs.push_back(
      {"train",
       {{"steps", number(t.steps), "optimizer steps", Range::ints(1, kMaxCount)},
        {"batch_size", number(t.batch_size), "sequences per step", Range::ints(1, kMaxSize)},
        {"lr", number(t.lr), "AdamW peak learning rate (warmup, then cosine)",
         Range::reals(0, 10, true)},
        {"min_lr_ratio", number(t.min_lr_ratio), "the cosine ends at lr * min_lr_ratio",
         Range::reals(0, 1)},
        {"warmup", number(t.warmup), "linear warmup steps", Range::ints(0, kMaxCount)},
        {"weight_decay", number(t.weight_decay), "AdamW's decoupled weight decay",
         Range::reals(0, 100)},
        {"clip", number(t.clip), "global gradient-norm clipping; 0 = off", Range::reals(0, 1e6)},
        {"eval_every", number(t.eval_every), "steps between evaluations; 0 = only at the end",
         Range::ints(0, kMaxCount)},
        {"eval_batches", number(t.eval_batches),
         "cap on validation batches during training; 0 = all", Range::ints(0, kMaxCount)},
        {"eval_batch_size", number(t.eval_batch_size), "sequences per evaluation batch",
         Range::ints(1, kMaxSize)},
        {"log_every", number(t.log_every), "steps between logged training rows",
         Range::ints(1, kMaxCount)},
        {"checkpoint", "\"\"", "checkpoint path (a sweep sets it)"},
        {"checkpoint_every", number(t.checkpoint_every), "steps between checkpoints; 0 = off",
         Range::ints(0, kMaxCount)},
        {"checkpoint_minutes", number(t.checkpoint_minutes),
         "training minutes between checkpoints; 0 = off", Range::reals(0, 1e6)},
        {"resume", "false", "continue from `checkpoint` if it exists"},
        {"sampling", quoted(t.sampling, sampling_names()), names(sampling_names())},
        {"curriculum_eps", number(t.curriculum_eps),
         "added to the curriculum's cosine similarity's denominator", Range::reals(0, 1)},
        {"target_loss", number(t.target_loss),
         "> 0: record steps and seconds until valid loss <= it", Range::reals(0, 1e6)},
        {"init_from", "\"\"", "a saved model to start from (tensors matching by name and shape)"},
        {"upcycle_from", "\"\"",
         "sparse upcycling: every expert starts as its layer's FFN of a saved dense model; in "
         "a sweep, \"pretrain\" names the [pretrain] run"},
        {"upcycle_noise", number(t.upcycle_noise),
         "std of N(0, s^2) added to each upcycled expert's weights", Range::reals(0, 100)},
        {"trainable", "[]", "globs over parameter names; only matches train ([] = all)"},
        {"precision", quoted(t.precision, precision_names()),
         names(precision_names()) + ": bf16 autocasts the forward pass; routing in fp32"},
        {"peak_tflops", number(t.peak_tflops),
         "the device's peak for MFU, TFLOP/s; 0 = looked up (CUDA) or measured (CPU)",
         Range::reals(0, 1e7)}}});
  docs.push_back({"peft", {{"method", "\"\"", "an adapter plugin (adapters above); \"\" = none"}}});
  ConfigSectionDoc loss{"loss", {}};
  for (const auto& term : loss_terms()) {
    loss.keys.push_back(
        {term.name, number(d.loss_coefs.at(term.name)), term.help, Range::reals(0, 1e6)});
  }
  loss.keys.push_back(
      {"layer_reduce", quoted(d.loss_layer_reduce, layer_reduce_names()),
       "sum: every MoE layer's aux losses at the full coefficient (Switch, Megatron-Core) | "
       "mean: divided by the number of MoE layers"});
  loss.keys.push_back({"balance_count", quoted(d.moe.balance_count, balance_count_names()),
                       "the balance losses' f_i: share of all T k choices (Megatron-Core, "
                       "DeepSeek-V3) | first: of the first choices only (GShard's paper)"});
  docs.push_back(std::move(loss));
  return docs;
}

const std::vector<ParamDoc>& keys_of(const std::string& section) {
  for (const auto& s : config_docs()) {
    if (s.section == section) return s.keys;
  }
  throw std::logic_error("config_docs: no section '" + section + "'");
}

}  // namespace

const std::vector<ConfigSectionDoc>& config_docs() {
  static const std::vector<ConfigSectionDoc> docs = make_config_docs();
  return docs;
}

std::map<std::string, double> default_loss_coefs() {
  std::map<std::string, double> coefs;
  for (const auto& term : loss_terms()) coefs[term.name] = term.coefficient;
  return coefs;
}

ExperimentConfig ExperimentConfig::from_json(const nlohmann::json& j, const std::string& source) {
  try {
    return read(j);
  } catch (const ConfigError& e) {
    if (source.empty()) throw;
    throw e.in_file(source);
  }
}

ExperimentConfig ExperimentConfig::read(const nlohmann::json& j) {
  ExperimentConfig c;
  c.resolved = j;
  const std::string family = "section";
  PluginSpec top("", "top level", j);
  c.seed = static_cast<uint64_t>(top.get<int64_t>("seed", 0));
  c.device = top.get<std::string>("device", c.device);
  c.threads = top.get<int64_t>("threads", 0);
  check_ranges(top, keys_of(""));
  c.data_dir = top.get<std::string>("data_dir", c.data_dir);
  top.get<std::string>("name", "");
  top.get<std::string>("description", "");
  if (top.contains("task")) {
    c.task = top.block("task");
    if (!c.task.contains("name") || !c.task["name"].is_string()) {
      throw ConfigError::value("section 'task'", "name", "a string",
                               c.task.contains("name") ? c.task["name"].dump() : "nothing");
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
  check_ranges(model, keys_of("model"));
  model.check().expect(m.d_model % m.heads == 0, "heads",
                       "to divide d_model = " + format_number(static_cast<double>(m.d_model)),
                       static_cast<double>(m.heads));

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
  check_ranges(moe, keys_of("moe"));
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
  t.precision = train.enum_choice("precision", t.precision, precision_names());
  t.peak_tflops = train.get<double>("peak_tflops", t.peak_tflops);
  train.check_all_read();
  check_ranges(train, keys_of("train"));
  if (!t.upcycle_from.empty() && !t.init_from.empty()) {
    train.fail(
        "expected at most one of init_from and upcycle_from (upcycling also copies "
        "every other tensor by name)");
  }
  if (!t.upcycle_from.empty() && m.moe_every == 0) {
    train.fail("upcycle_from", "needs MoE layers to upcycle (model.moe_every > 0)");
  }

  // [peft]: method names the adapter plugin, which reads (and checks) the other keys.
  PluginSpec peft(family, "peft", top.block("peft"));
  auto& pe = c.peft;
  pe.method = peft.get<std::string>("method", pe.method);
  pe.params = peft.params().is_object() ? peft.params() : nlohmann::json::object();
  pe.params.erase("method");
  try {
    check_peft(pe);
  } catch (const ConfigError& e) {
    throw e.within(peft.check().component());
  }

  PluginSpec loss(family, "loss", top.block("loss"));
  for (auto& kv : c.loss_coefs) kv.second = loss.get<double>(kv.first, kv.second);
  c.loss_layer_reduce = loss.enum_choice("layer_reduce", c.loss_layer_reduce, layer_reduce_names());
  c.moe.balance_count =
      loss.enum_choice("balance_count", c.moe.balance_count, balance_count_names());
  loss.check_all_read();
  check_ranges(loss, keys_of("loss"));
  top.check_all_read();
  return c;
}

}  // namespace moe
