// moe sweep plan|run|status: the commands of the resumable, process-isolated sweep runner
// (experiments/scheduler.cpp starts and reaps the workers; experiments/sweep_worker.cpp
// trains one trial).
//
// `run` plans the trials, records them as queued, and hands them to the scheduler: one
// worker process per trial, at most --workers at a time. A worker trains one trial and
// writes its metrics; an exception, NaN loss or out-of-memory marks that run failed with
// its message.
#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "core/train/config.h"
#include "core/train/device.h"
#include "experiments/cli_args.h"
#include "experiments/commands.h"
#include "experiments/eval_command.h"
#include "experiments/param_counts.h"
#include "experiments/scheduler.h"
#include "experiments/sweep_spec.h"
#include "experiments/sweep_worker.h"
#include "results/compare.h"
#include "results/store.h"

namespace po = boost::program_options;

namespace moe {
namespace {

std::string default_db() { return "results/moe.sqlite"; }

/// "64G", "512M", "1.5T", "80GB", or a byte count: bytes (decimal units, as format_bytes).
double parse_memory(const std::string& text) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (...) {
  }
  std::string unit = text.substr(std::min(used, text.size()));
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b') && unit.size() > 1)
    unit.pop_back();
  static const std::map<std::string, double> scale = {{"", 1},    {"K", 1e3},  {"k", 1e3},
                                                      {"M", 1e6}, {"m", 1e6},  {"G", 1e9},
                                                      {"g", 1e9}, {"T", 1e12}, {"t", 1e12}};
  const auto it = scale.find(unit);
  if (!(v > 0) || !std::isfinite(v) || it == scale.end()) {
    throw std::invalid_argument("--max-memory '" + text +
                                "': expected a size such as 64G, 512M or 80GB");
  }
  return v * it->second;
}

std::vector<Trial> shard_of(const SweepPlan& plan, const std::string& shard) {
  if (shard.empty()) return plan.trials;
  const auto slash = shard.find('/');
  int64_t i = -1, n = 0;
  try {
    i = std::stoll(shard.substr(0, slash));
    n = std::stoll(shard.substr(slash + 1));
  } catch (...) {
  }
  if (slash == std::string::npos || n <= 0 || i < 0 || i >= n) {
    throw std::invalid_argument("--shard '" + shard + "': expected I/N with 0 <= I < N (e.g. 0/4)");
  }
  std::vector<Trial> out;
  for (size_t t = 0; t < plan.trials.size(); ++t) {  // every shard needs the pretraining
    if (plan.trials[t].pretrain || static_cast<int64_t>(t % n) == i) out.push_back(plan.trials[t]);
  }
  return out;
}

void ensure_parent_dir(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
}

int plan_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe sweep plan: print the trials of a sweep file (dry run)\n\n"
      "Usage: moe sweep plan FILE [--db PATH] [--params] [--max-trials N] [--max-memory SIZE]\n\n"
      "Every check runs before the table is printed (and before `moe sweep run` starts a\n"
      "trial): types and ranges of every config key, nan / inf anywhere, the trial count\n"
      "from the axes' lengths, and each distinct model built once on the CPU without data,\n"
      "so that router, expert and adapter parameters are checked.\n\n"
      "Before any model is built, each trial's training memory (parameters x 16 B for\n"
      "weights, gradients and AdamW state + activations at its batch and sequence length)\n"
      "is estimated from its config and must fit this machine's memory or --max-memory.\n\n"
      "--params adds that estimate and the forward FLOPs per token, then builds each\n"
      "trial's model on the CPU for its non-embedding total and nominal active parameters\n"
      "per token (top_k: k experts; '-' for routers whose count is measured): how matched\n"
      "baselines are checked.\n\nOptions");
  std::string file, db, max_memory;
  int64_t max_trials = kDefaultMaxTrials;
  desc.add_options()("help,h", "show this help")("file", po::value(&file), "sweep file")(
      "db", po::value(&db)->default_value(default_db()),
      "results database to check for done trials")(
      "params", "add non-embedding total / active parameters per trial")(
      "max-trials", po::value(&max_trials)->default_value(kDefaultMaxTrials),
      "refuse a sweep that expands to more trials than this")(
      "max-memory", po::value(&max_memory),
      "refuse trials whose training memory estimate exceeds this (e.g. 80G for a GPU's; "
      "default: this machine's memory)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "file"); rc >= 0) return rc;
  auto plan = load_sweep(file, max_trials, max_memory.empty() ? 0 : parse_memory(max_memory));
  const bool params = vm.count("params") > 0;
  std::map<std::string, std::string> status;
  if (std::filesystem::exists(db)) {
    results::Store store(db);
    for (const auto& r : store.runs(plan.name)) status[r.run_key] = results::status_name(r.status);
  }
  std::cout << "sweep '" << plan.name << "': " << plan.trials.size() << " trials\n";
  std::cout << std::left << std::setw(18) << "run_key" << std::setw(32) << "method" << std::setw(6)
            << "seed" << std::setw(12) << "status"
            << (params ? "est_memory  fwd_flops/token  nonembed_total  nonembed_active" : "")
            << "\n";
  for (const auto& t : plan.trials) {
    std::cout << std::setw(18) << t.run_key << std::setw(32) << t.method << std::setw(6) << t.seed
              << std::setw(12) << (status.count(t.run_key) ? status[t.run_key] : "new");
    if (params) {
      const auto e = estimate_training(ExperimentConfig::from_json(t.config, t.run_key));
      std::ostringstream flops;
      flops << std::setprecision(3) << e.flops_per_token;
      std::cout << std::setw(12) << format_bytes(e.memory_bytes) << std::setw(17) << flops.str();
      const auto c = nominal_param_counts(t.config);
      std::cout << std::setw(16) << static_cast<int64_t>(c.nonembed_total)
                << (std::isnan(c.nonembed_active)
                        ? std::string("-")
                        : std::to_string(static_cast<int64_t>(c.nonembed_active)));
    }
    std::cout << "\n";
  }
  return 0;
}

int status_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe sweep status: summarise a sweep's runs in the database\n\n"
      "Usage: moe sweep status FILE [--db PATH]\n\nOptions");
  std::string file, db;
  desc.add_options()("help,h", "show this help")("file", po::value(&file), "sweep file")(
      "db", po::value(&db)->default_value(default_db()), "results database");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "file"); rc >= 0) return rc;
  auto plan = load_sweep(file);
  results::Store store(db);
  std::map<std::string, results::RunRow> rows;
  for (auto& r : store.runs(plan.name)) rows[r.run_key] = r;
  std::map<std::string, int> count;
  for (const auto& t : plan.trials) {
    auto it = rows.find(t.run_key);
    std::string s = it == rows.end() ? "missing" : results::status_name(it->second.status);
    if (it != rows.end() && it->second.status == results::RunStatus::kRunning &&
        need_of(it->second, false) == Need::kRun) {
      s = "stale";
    }
    ++count[s];
    if (it != rows.end() && it->second.status == results::RunStatus::kFailed)
      std::cout << "failed  " << t.method << " seed " << t.seed << ": " << it->second.error << "\n";
  }
  std::cout << "sweep '" << plan.name << "' in " << db << ": " << plan.trials.size() << " trials";
  for (const auto& kv : count) std::cout << ", " << kv.second << " " << kv.first;
  std::cout << "\n";
  return 0;
}

/// Parses `moe sweep run`'s arguments; returns an exit status >= 0 when there is nothing to
/// run (--help), -1 otherwise.
int parse_run_args(const std::vector<std::string>& args, RunOptions& o) {
  po::options_description desc(
      "moe sweep run: train every trial of a sweep that is not done yet\n\n"
      "Usage: moe sweep run FILE [--db PATH] [--workers N] [--devices LIST] [--shard I/N]\n"
      "                          [--retry-failed] [--keep-checkpoints] [--max-trials N]\n"
      "                          [--max-memory SIZE] [--checkpoint-dir DIR]\n\n"
      "Completed trials are skipped; failed ones are rerun only with --retry-failed; trials of\n"
      "a killed run (stale heartbeat) or interrupted ones are continued from their checkpoint\n"
      "(DB-checkpoints/RUN_KEY.pt: written every train.checkpoint_every steps or\n"
      "train.checkpoint_minutes of training, default 10, and at once on SIGTERM / SIGINT),\n"
      "keeping their rows up to its step; without one they start over. Exit status 1 if any\n"
      "trial failed. Several runners may share one database (each trial is claimed\n"
      "atomically and runs once); on a cluster without a lockable shared file system, give\n"
      "each job its own --shard database and `moe merge` them.\n\nOptions");
  std::string devices;
  desc.add_options()("help,h", "show this help")("file", po::value(&o.file), "sweep file")(
      "db", po::value(&o.db)->default_value(default_db()), "results database (SQLite)")(
      "workers,j", po::value(&o.workers)->default_value(1),
      "trials run at once (separate processes)")(
      "devices", po::value(&devices),
      "comma-separated devices, one per worker (e.g. cuda:0,cuda:1); default: the config's")(
      "shard", po::value(&o.shard), "I/N: run only trials with index % N == I (Slurm arrays)")(
      "retry-failed", "rerun trials recorded as failed")(
      "keep-checkpoints", "keep completed trials' checkpoints (removed by default)")(
      "checkpoint-dir", po::value(&o.checkpoint_dir),
      "trials' checkpoints go here (default: DB-checkpoints beside the database); shared "
      "storage when the database is node-local")(
      "max-memory", po::value<std::string>(),
      "refuse trials whose training memory estimate exceeds this (e.g. 80G; default: this "
      "machine's memory)")("max-trials", po::value(&o.max_trials)->default_value(kDefaultMaxTrials),
                           "refuse a sweep that expands to more trials than this");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "file"); rc >= 0) return rc;
  if (o.workers < 1) throw std::invalid_argument("--workers: expected >= 1");
  for (size_t b = 0; !devices.empty() && b <= devices.size();) {
    auto c = devices.find(',', b);
    o.devices.push_back(devices.substr(b, c == std::string::npos ? std::string::npos : c - b));
    if (c == std::string::npos) break;
    b = c + 1;
  }
  if (!o.devices.empty()) {
    for (const auto& d : o.devices) select_device(d);  // fail fast with a clear message
    o.workers = std::min<int64_t>(o.workers, o.devices.size());
  }
  o.retry_failed = vm.count("retry-failed") > 0;
  o.keep_checkpoints = vm.count("keep-checkpoints") > 0;
  if (vm.count("max-memory")) o.max_memory = parse_memory(vm["max-memory"].as<std::string>());
  return -1;
}

/// The closing lines: counts, the tuned choices (recorded in the store) and the sweep's
/// re-evaluations. Returns the exit status.
int report_run(const SweepPlan& plan, const std::vector<Trial>& trials, results::Store& store,
               const RunOptions& o, const TrialScheduler& s,
               const std::set<std::string>& done_before) {
  int64_t failed_total = 0, by_others = 0;
  for (const auto& t : trials) {
    const auto row = store.find_run(t.run_key);
    failed_total += row->status == results::RunStatus::kFailed;
    by_others += row->status == results::RunStatus::kCompleted && !s.claimed(t.run_key) &&
                 !done_before.count(t.run_key);
  }
  std::cerr << "[" << plan.name << "] finished: " << s.done << " completed here, " << by_others
            << " by other processes, " << s.failed << " failed, " << s.skipped << " skipped";
  if (failed_total > s.failed) {
    std::cerr << "; " << failed_total - s.failed << " failed earlier (rerun with --retry-failed)";
  }
  if (s.blocked > 0) std::cerr << "; " << s.blocked << " not run: their pretraining run failed";
  std::cerr << "\n";
  if (!plan.tune_metric.empty()) {
    const auto chosen = results::record_selections(store.db(), plan.name);
    std::cerr << "[" << plan.name << "] tuned on " << plan.tune_metric
              << " (mean over seeds; table selections):";
    for (const auto& c : chosen) {
      std::ostringstream score;
      score << std::setprecision(6) << c.score;
      std::cerr << "\n  " << c.preset << (c.context.empty() ? "" : " " + c.context) << ": "
                << c.tune << " (mean " << score.str() << " over " << c.n << " seed(s); "
                << c.candidates << " value(s) tried)";
    }
    std::cerr << "\n";
  }
  if (!plan.eval_option.empty()) {
    std::cerr << "[" << plan.name << "] re-evaluating trained models at " << plan.eval_option
              << " values (moe sweep eval)\n";
    const auto n = evaluate_trials(trials, o.db, plan.eval_option, plan.eval_values, std::cerr);
    std::cerr << "[" << plan.name << "] " << n << " evaluation(s) written\n";
  }
  return failed_total > 0 || s.blocked > 0 ? 1 : 0;
}

int run_command(const std::vector<std::string>& args) {
  RunOptions o;
  if (const int rc = parse_run_args(args, o); rc >= 0) return rc;
  // Planning: read and expand the sweep (every distinct model is built there), record it.
  const auto t_plan = std::chrono::steady_clock::now();
  const auto plan = load_sweep(o.file, o.max_trials, o.max_memory);
  const auto trials = shard_of(plan, o.shard);
  ensure_parent_dir(o.db);
  results::Store store(o.db);
  store.upsert_sweep(plan.name, plan.spec_text, plan.tune_metric);
  for (const auto& t : trials) {
    store.ensure_run(
        {t.run_key, plan.name, t.method, t.config.dump(), t.seed, t.preset, t.context, t.tune});
  }
  std::set<std::string> done_before;
  for (const auto& r : store.runs(plan.name)) {
    if (r.status == results::RunStatus::kCompleted) done_before.insert(r.run_key);
  }
  TrialScheduler scheduler(plan, trials, store, o);
  const double plan_ms =
      1000 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t_plan).count();
  std::cerr << "sweep '" << plan.name << "': " << trials.size() << " trials"
            << (o.shard.empty() ? "" : " in shard " + o.shard) << ", " << scheduler.skipped
            << " already done or failed, " << scheduler.waiting << " running elsewhere, "
            << scheduler.to_run() << " to run, " << o.workers << " worker(s), database " << o.db
            << " (planned in " << std::fixed << std::setprecision(0) << plan_ms << " ms)\n";
  install_sweep_signal_handlers();
  scheduler.run();
  if (sweep_signal()) {
    std::cerr << "[" << plan.name
              << "] stopped by signal; completed runs are kept, running ones checkpointed: "
                 "rerun to continue them\n";
    return 130;
  }
  return report_run(plan, trials, store, o, scheduler, done_before);
}

}  // namespace

int sweep_command(const std::vector<std::string>& args) {
  const std::string usage =
      "moe sweep: plan and run ablation sweeps\n\n"
      "Usage: moe sweep <plan|run|status|eval> FILE [options]   (moe sweep <sub> --help)\n\n"
      "  plan    print the trials (dry run)\n"
      "  run     train every trial not done yet ([pretrain] first), then the [evaluate]\n"
      "          re-evaluations\n"
      "  status  count the runs by status\n"
      "  eval    re-evaluate saved models at router inference settings\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "plan") return plan_command(rest);
  if (args[0] == "run") return run_command(rest);
  if (args[0] == "status") return status_command(rest);
  if (args[0] == "worker") return sweep_worker_command(rest);
  if (args[0] == "eval") return eval_command(rest);
  std::cerr << "moe sweep: unknown sub-command '" << args[0] << "'\n" << usage;
  return 2;
}

}  // namespace moe
