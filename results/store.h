#pragma once
// The results store: one SQLite file (WAL) holding sweeps, runs, per-step metrics and
// per-layer statistics. Schema and views: results/README.md. No LibTorch dependency.
//
// Concurrency: WAL, synchronous=NORMAL, a 30 s busy timeout, and BEGIN IMMEDIATE for every
// write transaction. Metric rows are buffered and written 200 per transaction.
// Non-finite values: SQLite stores NaN as NULL, so `value` is NULL and `value_text` holds
// 'nan', 'inf' or '-inf'.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "results/sqlite.h"

namespace moe::results {

constexpr int kSchemaVersion = 2;

struct RunSpec {
  std::string run_key, sweep, method, config_json;
  int64_t seed = 0;
};

struct RunRow {
  int64_t id = 0;
  std::string run_key, sweep, method, status, error, config_json, host;
  int64_t seed = 0, attempts = 0, pid = 0;
  double heartbeat = 0;  ///< unix seconds of the last sign of life
};

/// Seconds without a heartbeat after which a 'running' run counts as dead.
constexpr double kStaleSeconds = 90;

double now_seconds();

class Store {
 public:
  /// Opens (creating) the database and migrates it to kSchemaVersion. Throws if the file
  /// was written by a newer schema.
  explicit Store(const std::string& path);
  ~Store();

  void upsert_sweep(const std::string& name, const std::string& spec_text);
  /// Inserts the run as 'queued' unless its key exists; never touches an existing row.
  void ensure_run(const RunSpec& run);
  std::optional<RunRow> find_run(const std::string& run_key);
  std::vector<RunRow> runs(const std::string& sweep);

  /// Marks the run running (attempts + 1, heartbeat now, host/pid/device/versions); clears its
  /// metrics from any earlier attempt. Returns the run id.
  int64_t start_run(const std::string& run_key, const std::string& host, int64_t pid,
                    const std::string& device, const std::string& libtorch,
                    const std::string& code_version);
  void heartbeat(int64_t run_id);
  /// status: completed | failed | interrupted. Flushes buffered metrics first.
  void finish_run(int64_t run_id, const std::string& status, const std::string& error);

  void add_metric(int64_t run_id, int64_t step, const std::string& split,
                  const std::string& name, double value);
  void add_layer_stat(int64_t run_id, int64_t step, const std::string& split, int64_t layer,
                      const std::string& name, double value);
  void flush();
  /// Whether the run has any metric in this split (e.g. a re-evaluation "test@threshold=0.2").
  bool has_split(int64_t run_id, const std::string& split);

  Db& db() { return *db_; }

 private:
  void migrate();
  std::unique_ptr<Db> db_;
  struct Row {
    int64_t run_id, step, layer;
    std::string split, name;
    double value;
  };
  std::vector<Row> metric_buffer_, layer_buffer_;
};

/// Reads a metric value back: NULL + value_text -> NaN / +-inf.
double decode_value(const Stmt& stmt, int value_col, int text_col);

}  // namespace moe::results
