#pragma once
// Read-only queries, plots and merging over results databases (no LibTorch).
#include <iosfwd>
#include <string>
#include <vector>

namespace moe::results {

enum class QueryFormat { kTable, kCsv, kJson };

/// Runs one read-only SQL statement on a read-only connection and prints the rows.
/// A statement that would write is refused with a message saying so.
void run_query(const std::string& db_path, const std::string& sql, QueryFormat format,
               std::ostream& out);

/// Prints rows as an aligned table, CSV or JSON. types[r][c] is an SQLite type code
/// (SQLITE_NULL / INTEGER / FLOAT / TEXT): numbers are bare in JSON, NULL is null / empty.
void print_rows(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows,
                const std::vector<std::vector<int>>& types, QueryFormat format, std::ostream& out);

/// Writes <out_dir>/pareto.{png,svg} (+ the .gp script and .dat data beside them):
/// mean test accuracy vs the mean of `x` per method (nonembed_active_params | active_params
/// | flops_per_token), error bars `error` (ci95: Student-t 95% CI over seeds | std), and
/// the Pareto front. sweep empty = every sweep. Throws when gnuplot is missing, for an
/// unknown x or error, or when no completed run has x. Returns the PNG path.
std::string plot_pareto(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir, const std::string& x = "nonembed_active_params",
                        const std::string& error = "ci95");
const std::vector<std::string>& pareto_x_choices();

/// <out_dir>/layers.{png,svg}: mean experts per token per MoE layer for each method, and a
/// (method/layer x experts used) heatmap of the share of tokens, at the test evaluation.
std::string plot_layers(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir);

/// <out_dir>/load.{png,svg}: per (method, MoE layer) the share of selected slots each
/// expert received at the test evaluation, relative to a uniform share (heatmap).
std::string plot_load(const std::string& db_path, const std::string& sweep,
                      const std::string& out_dir);

/// <out_dir>/valid.{png,svg}: validation loss against training tokens (step when a run's
/// config lacks train.batch_size or task.seq_len), one line per method with its 95% CI band
/// over seeds; tuned methods at their chosen value (each value while none is chosen yet).
std::string plot_valid_curves(const std::string& db_path, const std::string& sweep,
                              const std::string& out_dir);

/// <out_dir>/curves.{png,svg}: training loss against step, one line per run.
std::string plot_curves(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir);

/// <out_dir>/difficulty.{png,svg}: test accuracy per difficulty level, one line per method.
std::string plot_difficulty(const std::string& db_path, const std::string& sweep,
                            const std::string& out_dir);

/// <out_dir>/experts.{png,svg}: mean experts per token (mean over MoE layers and seeds)
/// against training step, one line per method with a dynamic expert count.
std::string plot_experts(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir);

/// <out_dir>/routing.{png,svg}: routing over training: per method, MoE layer and expert,
/// the load (share of slots, relative to uniform; 0 = dead) at every validation
/// evaluation as a heatmap (top), and the routing fluctuation between consecutive
/// evaluations, mean over layers and seeds (bottom, when runs evaluated more than once).
std::string plot_routing(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir);

/// <out_dir>/reevals.{png,svg}: re-evaluations of trained models (view reevals) against
/// the inference option's value, mean over seeds: test accuracy change from the first
/// value (left) and evaluation latency (right), one line per method.
std::string plot_reevals(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir);

/// <out_dir>/trainable.{png,svg}: mean test accuracy (± std over seeds) against the mean
/// trainable-parameter percentage per method (log x), one panel per non-method label
/// (e.g. task=...); the pretraining run is left out.
std::string plot_trainable(const std::string& db_path, const std::string& sweep,
                           const std::string& out_dir);

/// Joins shard databases into out (created if needed): per run key a completed run beats
/// a failed or unfinished one; never duplicates; schema versions must match.
/// Returns the number of runs copied.
int64_t merge_databases(const std::string& out, const std::vector<std::string>& inputs);

}  // namespace moe::results
