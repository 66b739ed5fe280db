#pragma once
// The worker side of `moe sweep run` and what the runner shares with it.
#include <string>
#include <vector>

namespace moe {

/// moe sweep worker --db PATH --run-key KEY [--device D] [--threads N] [--save-model PATH]:
/// trains one planned trial (its config is read from the database) and records its end.
int sweep_worker_command(const std::vector<std::string>& args);

/// The last SIGINT / SIGTERM this process received (0 = none), once handlers are installed.
int sweep_signal();
/// Records SIGINT and SIGTERM instead of dying, so runs can be marked interrupted.
void install_sweep_signal_handlers();
/// This machine's host name (runs record it to tell live local workers from dead ones).
std::string host_name();

}  // namespace moe
