#pragma once
// Helpers shared by the plot files (internal to moe_results).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "results/sqlite.h"

namespace moe::results::detail {

/// Throws with the apt-get line when gnuplot is not installed.
void require_gnuplot();
/// Writes <base>.gp drawing `body` (plot commands) to <base>.png and <base>.svg, runs it.
void run_gnuplot(const std::string& base, const std::string& body);
/// A label gnuplot can use as a column header (spaces and quotes -> '_').
std::string sanitize(std::string label);
/// Migrates the database at path when it is older than this moe-lab's schema (in one
/// transaction, keeping its data; a note on stderr), so every reader opens databases of
/// earlier versions. Throws when it is no moe-lab database or cannot be written.
void bring_to_current_schema(const std::string& path);
/// Checks gnuplot and the database, creates out_dir, opens the database read-only.
Db open_for_plot(const std::string& db_path, const std::string& out_dir);
/// A tic label for `set xtics ('label' pos)`: gnuplot reads it as a format (% -> %%) in
/// single quotes (' -> '').
std::string tic_label(const std::string& label);
/// A heatmap over rows "method/L<layer>" (in query order) and integer columns.
struct Heatmap {
  std::vector<std::string> rows;
  std::map<std::string, std::map<int64_t, double>> cells;  ///< row -> column -> value
  int64_t max_col = 0;
};
/// Reads rows of (method, layer, column, value), ordered by method and layer.
Heatmap read_heatmap(Stmt& s);
/// Writes the full grid (`with image` needs every cell): x, row index, cell(row's values,
/// column). Returns the gnuplot ytics list naming the rows.
std::string write_heatmap(
    const std::string& path, const Heatmap& h,
    const std::function<std::string(const std::map<int64_t, double>&, int64_t)>& cell);
/// "sweep NAME", or "all sweeps" for an empty name.
std::string sweep_title(const std::string& sweep);

}  // namespace moe::results::detail
