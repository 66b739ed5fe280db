#pragma once
// Helpers shared by the plot files (internal to moe_results).
#include <string>

#include "results/sqlite.h"

namespace moe::results::detail {

/// Throws with the apt-get line when gnuplot is not installed.
void require_gnuplot();
/// Writes <base>.gp drawing `body` (plot commands) to <base>.png and <base>.svg, runs it.
void run_gnuplot(const std::string& base, const std::string& body);
/// A label gnuplot can use as a column header (spaces and quotes -> '_').
std::string sanitize(std::string label);
/// Throws, saying how to migrate, when a database opened read-only is older than this
/// moe-lab's schema (readers never migrate).
void require_current_schema(Db& db);
/// Checks gnuplot and the database, creates out_dir, opens the database read-only.
Db open_for_plot(const std::string& db_path, const std::string& out_dir);
/// "sweep NAME", or "all sweeps" for an empty name.
std::string sweep_title(const std::string& sweep);

}  // namespace moe::results::detail
