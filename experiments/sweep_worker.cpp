// moe sweep worker: trains one planned trial into the results store (started by moe sweep
// run, one process per trial). An exception, NaN loss or out-of-memory marks the run failed
// with its message; SIGINT/SIGTERM checkpoint the trial at the next step boundary and mark
// it interrupted. A trial with a checkpoint (checkpoint_path) continues from it: the rows
// up to its step are kept, the later ones deleted.
#include "experiments/sweep_worker.h"

#include <signal.h>
#include <sys/prctl.h>
#include <torch/torch.h>
#include <unistd.h>
#include <boost/program_options.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/error_text.h"
#include "core/train/checkpoint.h"
#include "core/train/device.h"
#include "core/train/trainer.h"
#include "experiments/eval_command.h"
#include "experiments/store_sink.h"
#include "results/store.h"

namespace po = boost::program_options;

namespace moe {
namespace {

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }
/// Set by the heartbeat thread when the run's current attempt is no longer ours.
std::atomic<bool> superseded{false};

/// Abandons the trial when another process took the run over (nothing more is written).
void check_superseded() {
  if (superseded) throw results::Superseded("another process took this run over");
}

}  // namespace

int sweep_signal() { return g_signal.load(); }

std::string checkpoint_path(const std::string& db, const std::string& run_key,
                            const std::string& dir) {
  return (dir.empty() ? db + "-checkpoints" : dir) + "/" + run_key + ".pt";
}

void install_sweep_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool process_alive(int64_t pid) {
  if (pid <= 0) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  // /proc/PID/stat: "PID (COMM) STATE ..."; COMM may hold spaces and parentheses.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

int sweep_worker_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe sweep worker: run one planned trial (started by moe sweep run)");
  std::string db, key, device, save_model_to, checkpoint_dir;
  int64_t threads = 0, attempt = 0;
  bool keep_checkpoint = false;
  desc.add_options()("help,h", "show this help")("db", po::value(&db)->required(), "database")(
      "save-model", po::value(&save_model_to), "save the trained model here")(
      "run-key", po::value(&key)->required(), "run key")("device", po::value(&device), "device")(
      "threads", po::value(&threads), "CPU threads")("attempt", po::value(&attempt)->required(),
                                                     "the attempt the runner claimed")(
      "keep-checkpoint", po::bool_switch(&keep_checkpoint),
      "keep the trial's checkpoint when it completes")(
      "checkpoint-dir", po::value(&checkpoint_dir),
      "where the trial's checkpoint lives (default: DB-checkpoints)");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  po::notify(vm);
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // die with the sweep process
  install_sweep_signal_handlers();
  results::Store store(db);
  auto row = store.find_run(key);
  if (!row) throw std::invalid_argument("no run '" + key + "' in " + db);
  auto json = nlohmann::json::parse(row->config_json);
  // threads = 0: the runner chose the count (a continuation keeps its checkpoint's).
  const bool runner_threads = json.value("threads", int64_t{0}) == 0;
  if (!device.empty()) json["device"] = device;
  if (vm.count("threads")) json["threads"] = threads;
  const auto t_start = std::chrono::steady_clock::now();
  // Throws Superseded (exit 1, nothing written) if another process took the run over.
  const int64_t run_id =
      store.start_attempt(key, attempt, host_name(), getpid(), json.value("device", "auto"),
                          libtorch_version(), MOE_CODE_VERSION);
  const double startup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::atomic<bool> done{false};
  superseded = false;
  std::thread beat([&] {
    results::Store hb(db);
    while (!done) {
      for (int i = 0; i < 100 && !done; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!done && !hb.heartbeat(run_id, attempt)) superseded = true;
    }
  });
  auto status = results::RunStatus::kCompleted;
  std::string error;
  int64_t stopped_at = -1;  ///< the step a signal stopped training at; -2 = completed
  try {
    // A sweep's fine-tuning (and upcycled) trials name their pretraining run: "run:<key>".
    for (const char* field : {"init_from", "upcycle_from"}) {
      if (!json.contains("train") || json["train"].value(field, "").rfind("run:", 0) != 0) continue;
      const std::string pre = json["train"][field].get<std::string>().substr(4);
      const auto path = model_path(db, pre);
      if (!std::filesystem::exists(path)) {
        throw std::invalid_argument("pretraining run " + pre + " has no saved model (" + path +
                                    "); rerun the sweep to train it");
      }
      json["train"][field] = path;
    }
    // The sweep's checkpoint for this trial; the config's own cadence, else every
    // kCheckpointMinutes of training (and on a signal, and at the end of training).
    const std::string ckpt = checkpoint_path(db, key, checkpoint_dir);
    auto& train = json["train"];
    if (train.is_null()) train = nlohmann::json::object();
    train["checkpoint"] = ckpt;
    train["resume"] = false;
    if (!train.contains("checkpoint_every") && !train.contains("checkpoint_minutes")) {
      train["checkpoint_minutes"] = kCheckpointMinutes;
    }
    const auto config = ExperimentConfig::from_json(json, "run " + key);
    StoreSink sink(store, run_id, check_superseded, [] { return g_signal.load() != 0; });
    auto trainer = std::make_unique<Trainer>(config, &sink, nullptr);
    int64_t resume_step = -1;
    if (std::filesystem::exists(ckpt)) {
      try {
        trainer->load(ckpt);
        resume_step = trainer->step();
        std::cerr << "moe sweep worker: " << key << " continues from step " << resume_step << " ("
                  << ckpt << ")\n";
        // Threads the runner chose (the config says 0): continue with the checkpoint's count,
        // so the continued trial's numbers equal an uninterrupted run's whatever the runner
        // would give it now (its --workers, other runners on the host).
        const int64_t was = trainer->checkpoint_threads();
        if (runner_threads && was > 0 && was != config.threads) {
          configure_threads(was);
          std::cerr << "moe sweep worker: " << key << " continues with the checkpoint's " << was
                    << " thread(s)\n";
        }
      } catch (const std::exception& e) {  // unusable: start over (a fresh model and optimizer)
        std::cerr << "moe sweep worker: " << key << ": " << error_text(e)
                  << "; starting from step 0\n";
        std::filesystem::remove(ckpt);
        trainer = std::make_unique<Trainer>(config, &sink, nullptr);
      }
    }
    store.keep_rows_through(run_id, resume_step, resume_step >= config.train.steps);
    // The continuation's record: split 'resume', at the checkpoint's step (the steps it
    // did not train again).
    if (resume_step > 0) store.add_metric(run_id, resume_step, "resume", "from_step", resume_step);
    const auto result = trainer->run();
    if (!save_model_to.empty()) save_model(save_model_to, trainer->model());
    const auto t = std::chrono::steady_clock::now();
    store.flush();
    const double flush =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    store.add_metric(run_id, trainer->step(), "final", "harness_seconds",
                     sink.seconds() + flush + startup_seconds);
    stopped_at = -2;                        // completed: the checkpoint has served
  } catch (const results::Superseded& e) {  // not ours any more: write nothing
    std::cerr << "moe sweep worker: " << e.what() << "\n";
    done = true;
    beat.join();
    return 1;
  } catch (const TrainingStopped& e) {
    status = results::RunStatus::kInterrupted;
    stopped_at = e.step;
    error = "stopped by signal " + std::to_string(g_signal.load()) + " at step " +
            std::to_string(e.step) + " (checkpointed; moe sweep run continues it)";
  } catch (const std::exception& e) {  // a configuration mistake, or what training met
    status = results::RunStatus::kFailed;
    error = error_text(e);
  }
  done = true;
  beat.join();
  if (status != results::RunStatus::kCompleted &&
      (error.find("out of memory") != std::string::npos ||
       error.find("can't allocate memory") != std::string::npos)) {
    error = "out of memory: " + error;
  }
  // The checkpoint outlives an interruption; a completed trial's is removed unless asked
  // to keep it, a failed one's too (a retry would meet the same failure from there).
  if (status == results::RunStatus::kFailed || (stopped_at == -2 && !keep_checkpoint)) {
    std::error_code ec;
    std::filesystem::remove(checkpoint_path(db, key, checkpoint_dir), ec);
    std::filesystem::remove(checkpoint_path(db, key, checkpoint_dir) + ".tmp", ec);
  }
  try {
    if (!store.finish_run(run_id, status, error)) return 1;  // another process took it over
  } catch (const results::Superseded& e) {
    std::cerr << "moe sweep worker: " << e.what() << "\n";
    return 1;
  }
  return status == results::RunStatus::kCompleted ? 0 : 1;
}

}  // namespace moe
