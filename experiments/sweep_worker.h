#pragma once
// The worker side of `moe sweep run` and what the runner shares with it.
#include <string>
#include <vector>

namespace moe {

/// moe sweep worker --db PATH --run-key KEY [--device D] [--threads N] [--save-model PATH]
/// [--keep-checkpoint] [--checkpoint-dir DIR]: trains one planned trial (its config is read from
/// the database), continuing from its checkpoint when there is one, and records its end.
int sweep_worker_command(const std::vector<std::string>& args);

/// Where a sweep trial's checkpoint lives: DIR/RUN_KEY.pt with `moe sweep run
/// --checkpoint-dir DIR` (shared storage when the database is node-local: Slurm), else
/// DB-checkpoints/RUN_KEY.pt beside the database.
std::string checkpoint_path(const std::string& db, const std::string& run_key,
                            const std::string& dir = "");
/// Minutes of training between a sweep trial's periodic checkpoints when its config sets
/// neither train.checkpoint_every nor train.checkpoint_minutes (the trainer also spaces
/// them >= 100 x a save's duration apart: at most 1% of training).
inline constexpr double kCheckpointMinutes = 10;

/// The last SIGINT / SIGTERM this process received (0 = none), once handlers are installed.
int sweep_signal();
/// Records SIGINT and SIGTERM instead of dying, so runs can be marked interrupted.
void install_sweep_signal_handlers();
/// Whether process `pid` of this host is alive: it exists and is not a zombie (a killed
/// worker whose parent died too stays a zombie where PID 1 does not reap, e.g. in
/// containers). pid <= 0: false.
bool process_alive(int64_t pid);
/// This machine's host name (runs record it to tell live local workers from dead ones).
std::string host_name();

}  // namespace moe
