#pragma once
// The results store: one SQLite file (WAL) holding sweeps, runs, per-step metrics and
// per-layer statistics. Schema and views: results/README.md. No LibTorch dependency.
//
// Concurrency: WAL, synchronous=NORMAL, a 30 s busy timeout, and BEGIN IMMEDIATE for every
// write transaction. Metric rows are buffered and written 200 per transaction.
// Non-finite values: SQLite stores NaN as NULL, so `value` is NULL and `value_text` holds
// 'nan', 'inf' or '-inf'.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "results/sqlite.h"

namespace moe::results {

constexpr int kSchemaVersion = 6;

/// Where a metric or layer-statistic row sits beyond (split, name), in columns: `item`, the
/// index within an indexed series (the expert of 'load', the experts-used count of
/// 'experts_hist'); `level`, the difficulty level ('level_accuracy', 'level_mean_experts');
/// for split 'reeval', the inference option and its value. Empty = NULL.
struct MetricKey {
  std::optional<int64_t> item;
  std::string level;
  std::string option;
  double option_value = 0;
};

struct RunSpec {
  std::string run_key, sweep, method, config_json;
  int64_t seed = 0;
  /// The label's parts (runs.preset / context / tune): method axis value, other axes,
  /// [tune] axes. preset "" = the label is the method.
  std::string preset, context, tune;
};

/// A run's state (runs.status, stored as its name): queued (planned, never started),
/// running (claimed by a worker), completed, failed (`error` says why; rerun only with
/// --retry-failed) or interrupted (a signal stopped it; the next run continues it).
enum class RunStatus { kQueued, kRunning, kCompleted, kFailed, kInterrupted };

/// "queued", "running", "completed", "failed", "interrupted".
const std::string& status_name(RunStatus s);
/// The status named `name`; DbError for a name no schema version wrote.
RunStatus parse_status(const std::string& name);

struct RunRow {
  int64_t id = 0;
  std::string run_key, sweep, method, error, config_json, host;
  RunStatus status = RunStatus::kQueued;
  int64_t seed = 0, attempts = 0, pid = 0;
  double heartbeat = 0;  ///< unix seconds of the last sign of life
};

/// Seconds without a heartbeat after which a 'running' run counts as dead.
constexpr double kStaleSeconds = 90;

double now_seconds();

/// Thrown to a worker whose attempt is no longer the run's current one (another process
/// claimed the run since): what it buffered is dropped, nothing it would write lands.
struct Superseded : DbError {
  using DbError::DbError;
};

/// Claims and attempts. A run is started only through claim_run: one BEGIN IMMEDIATE
/// transaction that checks the run is claimable, moves it to 'running' as attempt n + 1
/// of this host/pid, and deletes every row an earlier attempt wrote. Every metric and
/// layer-statistic row is tagged with the attempt that wrote it, and a flush first checks,
/// in its transaction, that the attempt is still the run's current one: two processes can
/// never both write into one run, and a completed run's rows come from one attempt.
class Store {
 public:
  /// Opens (creating) the database and migrates it to kSchemaVersion. Throws if the file
  /// was written by a newer schema.
  explicit Store(const std::string& path);
  ~Store();

  void upsert_sweep(const std::string& name, const std::string& spec_text,
                    const std::string& tune_metric = "");
  /// Inserts the run as 'queued' unless its key exists; for an existing run of the same
  /// sweep only the label (method, preset, context, tune) is brought up to date.
  void ensure_run(const RunSpec& run);
  std::optional<RunRow> find_run(const std::string& run_key);
  std::vector<RunRow> runs(const std::string& sweep);

  struct Claim {
    int64_t run_id = 0, attempt = 0;
  };
  /// Atomically claims the run if `claimable(current row)` holds: status 'running',
  /// attempts + 1, host/pid/heartbeat set. The earlier attempts' rows stay until the
  /// worker says which of them its continuation keeps (keep_rows_through). Returns
  /// nothing when the run is not claimable or another process claimed it first.
  std::optional<Claim> claim_run(const std::string& run_key, const std::string& host, int64_t pid,
                                 const std::function<bool(const RunRow&)>& claimable);
  /// The worker of a claimed attempt takes it over: records its pid, device and versions
  /// and restarts the clock. Throws Superseded if `attempt` is no longer the run's current
  /// running attempt. Returns the run id; later writes of this Store carry `attempt`.
  int64_t start_attempt(const std::string& run_key, int64_t attempt, const std::string& host,
                        int64_t pid, const std::string& device, const std::string& libtorch,
                        const std::string& code_version);
  /// The rows a continuation of the run keeps, in one transaction of the current attempt:
  /// those up to `step` (a checkpoint's) are kept and become this attempt's; the later ones
  /// are deleted, and at step < 0 (a fresh start) all of them. Rows of split 'resume' at
  /// `step` (an earlier continuation's record of the same checkpoint) go too. final_step:
  /// `step` is the last training step, so the evaluations written after the checkpoint at
  /// that step (every split but 'train') are deleted as well. Throws Superseded if the
  /// attempt is no longer current.
  void keep_rows_through(int64_t run_id, int64_t step, bool final_step);
  /// claim_run (unconditionally) + start_attempt + a fresh start: for single-process use
  /// and tests.
  int64_t start_run(const std::string& run_key, const std::string& host, int64_t pid,
                    const std::string& device, const std::string& libtorch,
                    const std::string& code_version);
  /// The process ids recorded by runs of any sweep in this database that are 'running' on
  /// `host` (a killed process leaves its row 'running' until someone notices).
  std::vector<int64_t> running_on_host(const std::string& host);
  /// False when the attempt is no longer current (nothing written).
  bool heartbeat(int64_t run_id, int64_t attempt);
  /// status: completed, failed or interrupted. Flushes buffered metrics first (throwing
  /// Superseded if the attempt is no longer current). Applies only while the run is still
  /// 'running' at this Store's attempt; returns whether it did.
  bool finish_run(int64_t run_id, RunStatus status, const std::string& error);
  /// The attempt this Store writes for the run: the one it claimed or started, else the
  /// run's current attempt (re-evaluations of a completed run).
  int64_t attempt_of(int64_t run_id);

  void add_metric(int64_t run_id, int64_t step, const std::string& split, const std::string& name,
                  double value, const MetricKey& key = {});
  void add_layer_stat(int64_t run_id, int64_t step, const std::string& split, int64_t layer,
                      const std::string& name, double value, const MetricKey& key = {});
  void flush();
  /// Whether the run's current attempt was re-evaluated at option = value (split 'reeval').
  bool has_reeval(int64_t run_id, const std::string& option, double value);

  Db& db() { return *db_; }

 private:
  void migrate();
  std::unique_ptr<Db> db_;
  struct Row {
    int64_t run_id, step, layer;
    std::string split, name;
    double value;
    MetricKey key;
  };
  std::vector<Row> metric_buffer_, layer_buffer_;
  std::map<int64_t, int64_t> attempt_;  ///< run id -> the attempt this Store writes
};

/// Reads a metric value back: NULL + value_text -> NaN / +-inf.
double decode_value(const Stmt& stmt, int value_col, int text_col);

}  // namespace moe::results
