#pragma once
// The trial scheduler of `moe sweep run` (experiments/sweep_command.cpp holds the commands):
// one worker process per trial (`moe sweep worker`), at most --workers at a time, each
// claimed atomically in the store so several runners can share one database. A worker
// killed outright leaves 'running' behind: the scheduler marks it failed (interrupted
// after a signal), and if the runner itself was killed, the stale heartbeat tells the next
// run to continue it.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "experiments/sweep_spec.h"
#include "results/store.h"

namespace moe {

/// What `moe sweep run` was asked for (its command line).
struct RunOptions {
  std::string file, db, shard, checkpoint_dir;
  double max_memory = 0;             ///< bytes; 0 = this machine's
  std::vector<std::string> devices;  ///< one per worker slot; empty = the configs' device
  int64_t workers = 1, max_trials = kDefaultMaxTrials;
  bool retry_failed = false, keep_checkpoints = false;
};

/// The cores this runner may use: a Slurm task's allocation (SLURM_CPUS_PER_TASK), else
/// the CPUs this process may run on (its affinity mask: taskset, cgroups), else all.
int64_t usable_cores();

enum class Need { kDone, kRun, kWait };

/// What a run needs: nothing (completed, or failed without --retry-failed), a run, or to
/// be waited for (a live worker, possibly of another sweep process, holds it).
Need need_of(const results::RunRow& r, bool retry_failed);

/// The trial scheduler of one `moe sweep run`: a queue of the trials that need a run, at
/// most `workers` worker processes at a time (spawn), and their exits (reap). Claims are
/// atomic in the store, so several runners can share one database.
class TrialScheduler {
 public:
  TrialScheduler(const SweepPlan& plan, const std::vector<Trial>& trials, results::Store& store,
                 const RunOptions& o);

  /// Runs until every trial is done here or elsewhere, or a signal arrives.
  void run();

  size_t to_run() const { return todo_.size(); }
  bool claimed(const std::string& key) const { return taken_.count(key) > 0; }

  int64_t skipped = 0;  ///< already done (or failed) before this invocation
  int64_t waiting = 0;  ///< held by a live worker of another process, at the last look
  int64_t done = 0, failed = 0;
  int64_t blocked = 0;  ///< not run: their pretraining run failed

 private:
  bool claimable(const results::RunRow& r) const;

  /// Queues trials that need a run and that this invocation has neither claimed nor
  /// queued; counts those a live worker elsewhere holds. Claims happen at spawn.
  void collect();

  /// Starts queued trials while a worker slot is free.
  void spawn_ready();

  void spawn(const Trial& t, int64_t attempt);

  /// Waits for one worker to exit and records its outcome; false when there is none.
  bool reap_one();

  void progress() const;

  const SweepPlan& plan_;
  const std::vector<Trial>& trials_;
  results::Store& store_;
  const RunOptions& o_;
  std::vector<const Trial*> todo_;
  size_t next_ = 0;
  std::set<std::string> taken_;   // run keys this invocation claimed (each at most once)
  std::set<std::string> queued_;  // run keys in todo_[next_..], not claimed yet
  int64_t lost_ = 0;              // claims another runner won
  std::map<pid_t, std::pair<const Trial*, int64_t>> running_;  // pid -> trial, slot
  std::vector<bool> slot_busy_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace moe
