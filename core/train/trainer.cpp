#include "core/train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "core/text.h"
#include "core/train/checkpoint.h"
#include "core/train/device.h"
#include "core/train/finetune.h"
#include "core/train/optimizer.h"

namespace moe {

Transformer build_model(const ExperimentConfig& c, const TaskInfo& info) {
  auto options = TransformerOptions()
                     .vocab_size(info.vocab_size)
                     .feature_vocab(info.feature_vocab)
                     .d_model(c.model.d_model)
                     .layers(c.model.layers)
                     .heads(c.model.heads)
                     .max_len(info.seq_len)
                     .causal(info.causal)
                     .head(info.head)
                     .num_classes(info.num_classes)
                     .ffn_hidden(c.model.ffn_hidden)
                     .activation(c.model.activation)
                     .moe_every(c.model.moe_every)
                     .dropout(c.model.dropout)
                     .attention_bias(c.model.attention_bias)
                     .moe(c.moe)
                     .peft(c.peft)
                     .precision(c.train.precision);
  return Transformer(options);
}

Trainer::Trainer(ExperimentConfig config, MetricSink* sink, std::ostream* progress)
    : config_(std::move(config)),
      sink_(sink),
      progress_(progress),
      device_(select_device(config_.device)) {
  configure_threads(config_.threads);
  torch::manual_seed(config_.seed);
  task_ = make_task(PluginSpec::from_block("task", config_.task), TaskContext{config_.data_dir});
  model_ = build_model(config_, task_->info());
  model_->to(device_);
  if (!config_.train.init_from.empty()) {
    const auto report = init_from_model(config_.train.init_from, *model_);
    if (progress_) {
      *progress_ << "init_from " << config_.train.init_from << ": " << report.loaded
                 << " tensors loaded, " << report.fresh.size() + report.reshaped.size() << " fresh";
      for (const auto& n : report.reshaped) *progress_ << " " << n << " (shape differs)";
      *progress_ << "\n";
    }
  }
  if (!config_.train.upcycle_from.empty()) {
    const auto report =
        upcycle_from_model(config_.train.upcycle_from, *model_, config_.train.upcycle_noise);
    if (progress_) {
      *progress_ << "upcycle_from " << config_.train.upcycle_from << ": " << report.loaded
                 << " tensors loaded (every expert from its layer's dense FFN), "
                 << report.fresh.size() + report.reshaped.size() << " fresh\n";
    }
  }
  apply_trainable(*model_, config_.train.trainable, "train.trainable");
  sampler_ = std::make_unique<BatchSampler>(*task_, config_.train, config_.seed,
                                            static_cast<int64_t>(model_->moe_layers().size()));
  optimizer_ = make_optimizer(model_->named_parameters(), config_.train);
}

double Trainer::lr_at(int64_t step) const {
  const auto& t = config_.train;
  if (step < t.warmup) return t.lr * (step + 1) / static_cast<double>(t.warmup);
  const double span = std::max<int64_t>(1, t.steps - t.warmup);
  const double progress = std::min(1.0, (step - t.warmup) / span);
  const double floor = t.lr * t.min_lr_ratio;
  return floor + 0.5 * (t.lr - floor) * (1 + std::cos(M_PI * progress));
}

Trainer::StepOutcome Trainer::step_once() {
  StepOutcome r;
  r.lr = lr_at(step_);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(r.lr);
  }
  auto batch = sampler_->batch(step_).to(device_);
  auto out = model_->forward(batch.tokens, batch.features, batch.pad_mask);
  auto loss = task_loss(out.logits, batch.targets);
  if (config_.loss_layer_reduce == LayerReduce::kMean && out.traces.size() > 1) {
    for (auto& kv : out.aux_losses) kv.second = kv.second / static_cast<double>(out.traces.size());
  }
  auto total = loss;
  for (const auto& kv : out.aux_losses) {
    auto it = config_.loss_coefs.find(kv.first);
    TORCH_INTERNAL_ASSERT(it != config_.loss_coefs.end(), "a router returned aux loss '", kv.first,
                          "', which no router declares (RouterImpl::aux_losses)");
    if (it->second != 0) total = total + it->second * kv.second;
  }
  sampler_->record_routing(out.traces, batch);
  drop_grads(model_->parameters());
  total.backward();
  // train.clip <= 0 measures the norm without changing anything.
  r.grad_norm = clip_grad_norm(model_->parameters(), config_.train.clip);
  optimizer_->step();
  {  // routers that adapt between steps (aux-loss-free balancing) see this step's load
    auto layers = model_->moe_layers();
    for (size_t l = 0; l < layers.size() && l < out.traces.size(); ++l) {
      layers[l]->router->after_step(out.traces, l);
    }
  }
  r.loss = loss.detach();
  r.grad_norm = r.grad_norm.to(r.loss.device());  // a CPU zero when nothing has a gradient
  for (const auto& kv : out.aux_losses) r.aux[kv.first] = kv.second.detach();
  for (const auto& trace : out.traces) r.mean_experts.push_back(trace.mean_experts());
  last_mean_experts_ = r.mean_experts;
  r.tokens = batch.tokens.numel();
  return r;
}

void Trainer::Window::add(const StepOutcome& s) {
  auto l = s.loss.to(torch::kDouble), g = s.grad_norm.to(torch::kDouble);
  loss_sum = steps == 0 ? l : loss_sum + l;
  grad_norm_sum = steps == 0 ? g : grad_norm_sum + g;
  last_grad_norm = g;
  tokens += s.tokens;
  if (experts.size() < s.mean_experts.size()) experts.resize(s.mean_experts.size(), 0.0);
  for (size_t l = 0; l < s.mean_experts.size(); ++l) experts[l] += s.mean_experts[l];
  ++steps;
}

double Trainer::Window::read() {
  if (steps == 0) return 0;
  auto host = torch::stack({loss_sum, grad_norm_sum, last_grad_norm}).to(torch::kCPU);
  const auto* v = host.data_ptr<double>();
  loss = v[0];
  grad_norm = v[1];
  return v[2];
}

void Trainer::log_window(int64_t done, const StepOutcome& last, const Window& w) {
  if (!sink_ || w.steps == 0) return;
  sink_->metric(done, "train", "loss", w.loss / w.steps);
  sink_->metric(done, "train", "lr", last.lr);
  sink_->metric(done, "train", "grad_norm", w.grad_norm / w.steps);
  sink_->metric(done, "train", "tokens_per_s", w.tokens / w.seconds);
  sink_->metric(done, "train", "step_seconds", w.seconds / w.steps);
  sink_->metric(done, "train", "seconds", train_seconds_);
  for (const auto& kv : last.aux) {
    sink_->metric(done, "train", "aux/" + kv.first, kv.second.item<double>());
  }
  for (size_t l = 0; l < w.experts.size(); ++l) {
    sink_->layer_stat(done, "train", static_cast<int64_t>(l), "mean_experts",
                      w.experts[l] / w.steps);
  }
}

void Trainer::evaluate_during(int64_t done) {
  const auto& t = config_.train;
  auto r = evaluate(model_, *task_, Split::kValid, t.eval_batch_size, t.eval_batches, device_);
  track_fluctuation(r);
  if (sink_) {
    write_eval(*sink_, done, "valid", r, task_->info());
    sink_->metric(done, "valid", "seconds", train_seconds_);
  }
  if (t.target_loss > 0 && steps_to_target_ < 0 && r.loss <= t.target_loss) {
    steps_to_target_ = done;
    seconds_to_target_ = train_seconds_;
  }
}

void Trainer::track_fluctuation(EvalResult& r) {
  r.fluctuation = routing_fluctuation(previous_probe_, r);
  previous_probe_.probe_top1 = r.probe_top1;
}

bool Trainer::checkpoint_due(int64_t done) const {
  const auto& t = config_.train;
  if (t.checkpoint.empty()) return false;
  if (t.checkpoint_every > 0 && done % t.checkpoint_every == 0) return true;
  return t.checkpoint_minutes > 0 && train_seconds_ - saved_at_seconds_ >=
                                         std::max(60.0 * t.checkpoint_minutes, 100 * save_cost_);
}

void Trainer::train_until(int64_t until) {
  const auto& t = config_.train;
  model_->train();
  // When the host reads the loss: every step on the CPU (free there; the progress line is
  // live and a non-finite loss names its step); on an accelerator only where a log line,
  // an evaluation, a checkpoint or the end is due, so the device queue never drains
  // in between.
  const bool read_every_step = device_.is_cpu();
  int64_t last_read = step_;
  while (step_ < until) {
    if (sink_) {
      sink_->poll();
      if (sink_->stop_requested()) {  // a consistent point: step_ steps done, nothing pending
        if (!t.checkpoint.empty() && saved_step_ != step_) checkpoint();
        throw TrainingStopped(step_);
      }
    }
    const auto start = std::chrono::steady_clock::now();
    const auto s = step_once();
    window_.add(s);
    const int64_t done = ++step_;
    const bool log_due = done % t.log_every == 0 || done == t.steps;
    const bool eval_due = t.eval_every > 0 && done % t.eval_every == 0 && done < t.steps;
    const bool save_due = checkpoint_due(done);
    const bool read = read_every_step || log_due || eval_due || save_due || done == until;
    if (read) {
      last_grad_norm_ = window_.read();
      if (!std::isfinite(window_.loss)) {
        std::ostringstream where;
        if (last_read + 1 == done) {
          where << "at step " << done;
        } else {
          where << "at one of steps " << last_read + 1 << "-" << done << " (read once per log "
                << "interval on " << device_ << ")";
        }
        // NaN as "nan" whatever its sign bit (which differs between LibTorch builds).
        const std::string value = std::isnan(window_.loss) ? "nan" : std::to_string(window_.loss);
        TORCH_CHECK(false, "non-finite training loss (", value, ") ", where.str(),
                    "; lower train.lr or set train.clip");
      }
      last_read = done;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    window_.seconds += seconds;
    train_seconds_ += seconds;
    train_tokens_ += s.tokens;
    if (read) {
      print_progress(window_.loss / window_.steps, window_.tokens / std::max(window_.seconds, 1e-9),
                     false);
    }
    if (log_due) {
      log_window(done, s, window_);
      window_ = Window{};
    }
    if (eval_due) evaluate_during(done);
    if (save_due) checkpoint();
  }
}

TrainResult Trainer::run() {
  const auto& t = config_.train;
  if (t.resume && !t.checkpoint.empty() && std::filesystem::exists(t.checkpoint)) {
    load(t.checkpoint);
    if (progress_) *progress_ << "resumed from " << t.checkpoint << " at step " << step_ << "\n";
  }
  train_until(t.steps);
  print_progress(0, 0, true);
  // Unless the last step's was just written: an interruption during the final evaluation
  // resumes here, with the evaluation only to redo.
  if (!t.checkpoint.empty() && saved_step_ != step_) checkpoint();
  TrainResult result;
  result.valid = evaluate(model_, *task_, Split::kValid, t.eval_batch_size, 0, device_);
  track_fluctuation(result.valid);
  log_eval("valid", result.valid);
  if (t.target_loss > 0 && steps_to_target_ < 0 && result.valid.loss <= t.target_loss) {
    steps_to_target_ = step_;
    seconds_to_target_ = train_seconds_;
  }
  result.test = evaluate(model_, *task_, Split::kTest, t.eval_batch_size, 0, device_);
  log_eval("test", result.test);
  TrainingTotals totals;
  totals.train_seconds = train_seconds_;
  totals.train_tokens = train_tokens_;
  totals.train_flops_per_token = train_flops_per_token(result.test.mean_experts());
  totals.peak_flops_per_s = peak().flops_per_s;
  if (!t.checkpoint.empty()) totals.checkpoint_seconds = checkpoint_seconds_;
  if (const double mb = cuda_max_allocated_mb(device_); mb >= 0) totals.cuda_max_allocated_mb = mb;
  totals.target_set = t.target_loss > 0;
  totals.steps_to_target = steps_to_target_;
  totals.seconds_to_target = seconds_to_target_;
  result.summary = summarize(
      result.valid, result.test, task_->info().head == Head::kLm,
      {model_->total_params(), model_->trainable_params(), model_->embedding_params()}, totals);
  if (sink_) {
    for (const auto& kv : final_metrics(result.summary)) {
      sink_->metric(step_, "final", kv.first, kv.second);
    }
  }
  return result;
}

void Trainer::log_eval(const std::string& split, const EvalResult& r) {
  if (sink_) write_eval(*sink_, step_, split, r, task_->info());
}

const PeakFlops& Trainer::peak() {
  if (!peak_) peak_ = peak_flops(device_, config_.train.precision, config_.train.peak_tflops);
  return *peak_;
}

double Trainer::train_flops_per_token(const std::vector<double>& mean_experts) const {
  return 3.0 * model_->flops_per_token(mean_experts, task_->info().seq_len);
}

double Trainer::mfu(double tokens_per_s, const std::vector<double>& mean_experts) {
  const double p = peak().flops_per_s;
  return p > 0 ? train_flops_per_token(mean_experts) * tokens_per_s / p : 0.0;
}

void Trainer::print_progress(double loss, double tokens_per_s, bool force) {
  if (!progress_) return;
  const auto now = std::chrono::steady_clock::now();
  auto& last = last_progress_;
  const int64_t done = std::max<int64_t>(step_, 1), total = config_.train.steps;
  const bool tty = progress_ == &std::cerr && isatty(STDERR_FILENO);
  if (force) {
    if (tty) *progress_ << "\n";
    return;
  }
  const bool due = tty ? std::chrono::duration<double>(now - last).count() > 0.25
                       : done % config_.train.log_every == 0;
  if (!due && done != total) return;
  last = now;
  const double eta = train_seconds_ / done * (total - done);
  std::ostringstream line;
  line << "step " << done << "/" << total << "  loss " << std::fixed << std::setprecision(4) << loss
       << "  |g| " << std::setprecision(2) << last_grad_norm_ << "  tok/s " << std::setprecision(0)
       << tokens_per_s << "  MFU " << std::setprecision(1)
       << 100.0 * mfu(tokens_per_s, last_mean_experts_) << "%  ETA " << format_duration(eta);
  *progress_ << (tty ? "\r" : "") << line.str() << (tty ? "   " : "\n") << std::flush;
}

void Trainer::Window::save(torch::serialize::OutputArchive& a) const {
  a.write("trainer.window.counts", torch::tensor({steps, tokens}, torch::kLong));
  a.write("trainer.window.seconds", torch::tensor(seconds, torch::kDouble));
  a.write("trainer.window.experts", torch::tensor(experts, torch::kDouble));
  if (steps > 0) {
    a.write("trainer.window.sums",
            torch::stack({loss_sum, grad_norm_sum, last_grad_norm}).to(torch::kCPU));
  }
}

void Trainer::Window::load(torch::serialize::InputArchive& a, const torch::Device& device) {
  *this = Window{};
  torch::Tensor counts, secs, exp, sums;
  if (!a.try_read("trainer.window.counts", counts)) return;  // an older checkpoint
  a.read("trainer.window.seconds", secs);
  a.read("trainer.window.experts", exp);
  steps = counts[0].item<int64_t>();
  tokens = counts[1].item<int64_t>();
  seconds = secs.item<double>();
  exp = exp.contiguous();
  experts.assign(exp.data_ptr<double>(), exp.data_ptr<double>() + exp.numel());
  if (steps > 0) {
    a.read("trainer.window.sums", sums);
    sums = sums.to(device);
    loss_sum = sums[0];
    grad_norm_sum = sums[1];
    last_grad_norm = sums[2];
  }
}

void Trainer::save(const std::string& path) {
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir);
  }
  save_checkpoint(path, model_, *optimizer_, step_, [&](torch::serialize::OutputArchive& a) {
    a.write(
        "trainer.clock",
        torch::tensor({train_seconds_, seconds_to_target_, checkpoint_seconds_}, torch::kDouble));
    a.write("trainer.counts", torch::tensor({train_tokens_, steps_to_target_}, torch::kLong));
    // CPU results depend on the thread count (reduction order): a continuation that wants
    // the uninterrupted run's numbers trains with the same one.
    a.write("trainer.threads", torch::tensor(static_cast<int64_t>(torch::get_num_threads())));
    a.write("trainer.probe_layers",
            torch::tensor(static_cast<int64_t>(previous_probe_.probe_top1.size())));
    for (size_t l = 0; l < previous_probe_.probe_top1.size(); ++l) {
      a.write("trainer.probe." + std::to_string(l), previous_probe_.probe_top1[l].to(torch::kCPU));
    }
    window_.save(a);
    sampler_->save(a);
  });
}

void Trainer::load(const std::string& path) {
  step_ = load_checkpoint(path, model_, *optimizer_, [&](torch::serialize::InputArchive& a) {
    torch::Tensor clock, counts, layers;
    if (a.try_read("trainer.clock", clock)) {
      a.read("trainer.counts", counts);
      train_seconds_ = clock[0].item<double>();
      seconds_to_target_ = clock[1].item<double>();
      checkpoint_seconds_ = clock.numel() > 2 ? clock[2].item<double>() : 0.0;
      train_tokens_ = counts[0].item<int64_t>();
      steps_to_target_ = counts[1].item<int64_t>();
    }
    torch::Tensor threads;
    checkpoint_threads_ = a.try_read("trainer.threads", threads) ? threads.item<int64_t>() : 0;
    previous_probe_ = EvalResult{};
    if (a.try_read("trainer.probe_layers", layers)) {
      for (int64_t l = 0; l < layers.item<int64_t>(); ++l) {
        torch::Tensor p;
        a.read("trainer.probe." + std::to_string(l), p);
        previous_probe_.probe_top1.push_back(p.to(device_));
      }
    }
    window_.load(a, device_);
    sampler_->load(a);
  });
  saved_at_seconds_ = train_seconds_;
  saved_step_ = step_;
}

void Trainer::checkpoint() {
  const auto start = std::chrono::steady_clock::now();
  if (sink_) sink_->flush();
  save(config_.train.checkpoint);
  save_cost_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  checkpoint_seconds_ += save_cost_;
  saved_at_seconds_ = train_seconds_;
  saved_step_ = step_;
}

}  // namespace moe
