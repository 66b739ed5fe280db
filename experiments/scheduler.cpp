#include "experiments/scheduler.h"

#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "core/text.h"
#include "experiments/eval_command.h"
#include "experiments/sweep_worker.h"

extern char** environ;

namespace moe {

int64_t usable_cores() {
  if (const char* s = std::getenv("SLURM_CPUS_PER_TASK")) {
    char* end = nullptr;
    const long n = std::strtol(s, &end, 10);
    if (end != s && *end == '\0' && n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

Need need_of(const results::RunRow& r, bool retry_failed) {
  using results::RunStatus;
  if (r.status == RunStatus::kCompleted) return Need::kDone;
  if (r.status == RunStatus::kFailed) return retry_failed ? Need::kRun : Need::kDone;
  if (r.status == RunStatus::kRunning) {
    if (results::now_seconds() - r.heartbeat > results::kStaleSeconds) return Need::kRun;
    // A worker of this host whose process is gone died without saying so.
    if (r.host == host_name() && !process_alive(r.pid)) return Need::kRun;
    return Need::kWait;
  }
  return Need::kRun;  // queued, interrupted
}

TrialScheduler::TrialScheduler(const SweepPlan& plan, const std::vector<Trial>& trials,
                               results::Store& store, const RunOptions& o)
    : plan_(plan), trials_(trials), store_(store), o_(o), slot_busy_(o.workers, false) {
  collect();
  skipped = static_cast<int64_t>(trials_.size() - todo_.size()) - waiting;
}

void TrialScheduler::run() {
  start_ = std::chrono::steady_clock::now();
  int64_t last_waiting = -1;
  for (;;) {
    while ((next_ < todo_.size() && !sweep_signal()) || !running_.empty()) {
      spawn_ready();
      if (running_.empty()) {  // the pretraining run is held by another process
        std::this_thread::sleep_for(std::chrono::seconds(2));
        continue;
      }
      if (!reap_one()) break;
    }
    if (sweep_signal()) return;
    // Trials another process held when we looked may have finished, or died, since.
    collect();
    if (next_ < todo_.size()) continue;
    if (waiting == 0) return;
    if (waiting != last_waiting) {
      std::cerr << "[" << plan_.name << "] waiting for " << waiting
                << " trial(s) running in another process\n";
      last_waiting = waiting;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
}

bool TrialScheduler::claimable(const results::RunRow& r) const {
  return need_of(r, o_.retry_failed) == Need::kRun;
}

void TrialScheduler::collect() {
  waiting = 0;
  for (const auto& t : trials_) {
    if (taken_.count(t.run_key) || queued_.count(t.run_key)) continue;
    const Need need = need_of(*store_.find_run(t.run_key), o_.retry_failed);
    if (need == Need::kRun) {
      todo_.push_back(&t);
      queued_.insert(t.run_key);
    } else if (need == Need::kWait) {
      ++waiting;
    }
  }
}

void TrialScheduler::spawn_ready() {
  while (!sweep_signal() && next_ < todo_.size() &&
         static_cast<int64_t>(running_.size()) < o_.workers) {
    const Trial* t = todo_[next_];
    if (!t->depends_on.empty()) {  // wait for the pretraining run; skip if it failed
      const auto dep = store_.find_run(t->depends_on);
      if (dep && dep->status == results::RunStatus::kFailed) {
        ++blocked, ++next_;
        continue;
      }
      if (!dep || dep->status != results::RunStatus::kCompleted) return;
    }
    ++next_;
    queued_.erase(t->run_key);
    // The claim is atomic: if another runner took the trial since we looked, move on.
    const auto claim = store_.claim_run(t->run_key, host_name(), getpid(),
                                        [this](const results::RunRow& r) { return claimable(r); });
    if (!claim) {
      ++lost_;
      continue;
    }
    taken_.insert(t->run_key);
    spawn(*t, claim->attempt);
  }
}

void TrialScheduler::spawn(const Trial& t, int64_t attempt) {
  int64_t slot = 0;
  while (slot_busy_[slot]) ++slot;
  // Every other trial waits for the pretraining run: it gets all the cores. Workers of
  // other runners on this host share the cores too (two runners started on one machine
  // would otherwise each take them all, and OpenMP threads oversubscribed 2x run several
  // times slower).
  const int64_t cores = usable_cores();
  const int64_t threads = std::max<int64_t>(1, cores / o_.workers);
  // Live processes only: a killed sweep's rows say 'running' until they are reclaimed,
  // and counting them would change a continued trial's thread count (and its numbers).
  int64_t elsewhere = 0;
  for (const int64_t p : store_.running_on_host(host_name())) {
    const auto pid = static_cast<pid_t>(p);
    elsewhere += process_alive(p) && pid != getpid() && !running_.count(pid);
  }
  const int64_t share = std::max<int64_t>(1, cores / (o_.workers + elsewhere));
  // A config's own `threads` (> 0) is the researcher's: CPU results depend on the thread
  // count, so a trial that names one gets it whatever the machine's load.
  const int64_t own = t.config.value("threads", int64_t{0});
  const auto n_threads = std::to_string(own > 0      ? own
                                        : t.pretrain ? cores
                                                     : std::min(threads, share));
  std::vector<std::string> argv_s = {"/proc/self/exe",
                                     "sweep",
                                     "worker",
                                     "--db",
                                     o_.db,
                                     "--run-key",
                                     t.run_key,
                                     "--threads",
                                     n_threads,
                                     "--attempt",
                                     std::to_string(attempt)};
  if (o_.keep_checkpoints) argv_s.push_back("--keep-checkpoint");
  if (!o_.checkpoint_dir.empty()) {
    argv_s.push_back("--checkpoint-dir");
    argv_s.push_back(o_.checkpoint_dir);
  }
  if (plan_.keep_models || t.pretrain) {
    argv_s.push_back("--save-model");
    argv_s.push_back(model_path(o_.db, t.run_key));
  }
  if (!o_.devices.empty()) {
    argv_s.push_back("--device");
    argv_s.push_back(o_.devices[slot]);
  }
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot start a worker process");
  }
  std::cerr << "[" << plan_.name << "] start " << t.method << " seed " << t.seed << " ("
            << t.run_key << ")\n";
  slot_busy_[slot] = true;
  running_[pid] = {&t, slot};
}

bool TrialScheduler::reap_one() {
  int wstatus = 0;
  const pid_t pid = waitpid(-1, &wstatus, 0);
  if (pid < 0) {
    if (errno != EINTR) return false;
    for (const auto& kv : running_) kill(kv.first, SIGTERM);
    return true;
  }
  auto it = running_.find(pid);
  if (it == running_.end()) return true;
  const Trial* t = it->second.first;
  slot_busy_[it->second.second] = false;
  running_.erase(it);
  auto row = store_.find_run(t->run_key);
  if (row &&
      row->status == results::RunStatus::kRunning) {  // the worker died without recording why
    const std::string why = WIFSIGNALED(wstatus)
                                ? "worker killed by signal " + std::to_string(WTERMSIG(wstatus))
                                : "worker exited with code " + std::to_string(WEXITSTATUS(wstatus));
    store_.finish_run(
        row->id, sweep_signal() ? results::RunStatus::kInterrupted : results::RunStatus::kFailed,
        why);
    row = store_.find_run(t->run_key);
  }
  if (row && row->status == results::RunStatus::kCompleted) {
    ++done;
  } else if (row && row->status == results::RunStatus::kFailed) {
    ++failed;
    std::cerr << "[" << plan_.name << "] FAILED " << t->method << " seed " << t->seed << ": "
              << row->error << "\n";
  }
  progress();
  return true;
}

void TrialScheduler::progress() const {
  const double el =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t finished = done + failed + blocked;
  // Other runners take part of the queue: scale by the share of claims this one won.
  const double share = lost_ ? double(taken_.size()) / double(taken_.size() + lost_) : 1.0;
  const double eta = finished ? el / finished * (share * queued_.size() + running_.size()) : 0;
  std::cerr << "[" << plan_.name << "] " << done << " done, " << failed << " failed, "
            << running_.size() << " running, " << queued_.size() << " waiting"
            << (lost_ ? ", " + std::to_string(lost_) + " taken by other runners" : "")
            << (finished ? ", ETA " + format_duration(eta) : "") << "\n";
}

}  // namespace moe
