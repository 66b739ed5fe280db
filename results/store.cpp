#include "results/store.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <sstream>

#include "results/schema.sql.h"

namespace moe::results {

const std::string& status_name(RunStatus s) {
  static const std::string names[] = {"queued", "running", "completed", "failed", "interrupted"};
  return names[static_cast<size_t>(s)];
}

RunStatus parse_status(const std::string& name) {
  for (auto s : {RunStatus::kQueued, RunStatus::kRunning, RunStatus::kCompleted, RunStatus::kFailed,
                 RunStatus::kInterrupted}) {
    if (status_name(s) == name) return s;
  }
  throw DbError("unknown run status '" + name +
                "' (known: queued, running, completed, failed, interrupted)");
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

void bind_value(Stmt& s, int value_col, double v) {
  if (std::isfinite(v)) {
    s.bind(value_col, v).bind_null(value_col + 1);
  } else {
    s.bind_null(value_col).bind(value_col + 1,
                                std::string(std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")));
  }
}

/// item, level, option, option_value at columns col .. col + 3 (NULL where unset).
void bind_key(Stmt& s, int col, const MetricKey& key) {
  if (key.item) {
    s.bind(col, *key.item);
  } else {
    s.bind_null(col);
  }
  if (key.level.empty()) {
    s.bind_null(col + 1);
  } else {
    s.bind(col + 1, key.level);
  }
  if (key.option.empty()) {
    s.bind_null(col + 2).bind_null(col + 3);
  } else {
    s.bind(col + 2, key.option).bind(col + 3, key.option_value);
  }
}

std::string hash_hex(const std::string& text) {
  std::ostringstream out;
  out << std::hex << std::hash<std::string>{}(text);
  return out.str();
}

}  // namespace

double decode_value(const Stmt& stmt, int value_col, int text_col) {
  if (stmt.type(value_col) != SQLITE_NULL) return stmt.get_double(value_col);
  const auto t = stmt.get_text(text_col);
  if (t == "inf") return INFINITY;
  if (t == "-inf") return -INFINITY;
  return NAN;
}

Store::Store(const std::string& path) : db_(std::make_unique<Db>(path, false)) {
  // Two runners creating one new database at once: the loser's switch to WAL is answered
  // "database is locked" at once, without the busy timeout (seen in 2 of 12 runs of
  // SweepRun.TwoRunnersOnOneDatabaseRunEachTrialOnce).
  db_->exec_retrying_busy("PRAGMA journal_mode=WAL");
  db_->exec("PRAGMA synchronous=NORMAL");
  db_->exec("PRAGMA foreign_keys=ON");
  migrate();
}

Store::~Store() {
  try {
    flush();
  } catch (...) {  // never throw from a destructor; the run's status says what happened
  }
}

void Store::migrate() {
  Transaction tx(*db_);
  auto v = db_->prepare("PRAGMA user_version");
  v.step();
  const int64_t version = v.get_int(0);
  if (version > kSchemaVersion) {
    throw DbError("database '" + db_->path() + "': schema version " + std::to_string(version) +
                  " is newer than this moe-lab's " + std::to_string(kSchemaVersion) +
                  "; use a newer moe");
  }
  if (version < 1) db_->exec(kTablesV1);
  if (version < 3) db_->exec(kMigrateV3);
  if (version < 5) db_->exec(kMigrateV5);
  if (version < 6) {
    db_->exec(kMigrateV6);
    db_->exec(kNormalizeV6);
  }
  if (version < kSchemaVersion) {
    db_->exec(kViews);
    db_->exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
  }
  tx.commit();
}

void Store::upsert_sweep(const std::string& name, const std::string& spec_text,
                         const std::string& tune_metric) {
  Transaction tx(*db_);
  auto s = db_->prepare(
      "INSERT INTO sweeps(name, spec, spec_hash, created_at, tune_metric) "
      "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
      "spec_hash = excluded.spec_hash, tune_metric = excluded.tune_metric");
  s.bind(1, name).bind(2, spec_text).bind(3, hash_hex(spec_text)).bind(4, now_seconds());
  if (tune_metric.empty()) {
    s.bind_null(5);
  } else {
    s.bind(5, tune_metric);
  }
  s.step();
  tx.commit();
}

void Store::ensure_run(const RunSpec& run) {
  Transaction tx(*db_);
  auto s = db_->prepare(
      "INSERT INTO runs(run_key, sweep, method, seed, config, status, preset, context, tune) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8) ON CONFLICT(run_key) DO UPDATE SET "
      "method = excluded.method, preset = excluded.preset, context = excluded.context, "
      "tune = excluded.tune WHERE sweep IS excluded.sweep");
  s.bind(1, run.run_key).bind(3, run.method).bind(4, run.seed).bind(5, run.config_json);
  if (run.preset.empty()) {
    s.bind_null(6);
  } else {
    s.bind(6, run.preset);
  }
  s.bind(7, run.context).bind(8, run.tune);
  if (run.sweep.empty()) {
    s.bind_null(2);
  } else {
    s.bind(2, run.sweep);
  }
  s.step();
  tx.commit();
}

namespace {
constexpr const char* kRunColumns =
    "SELECT id, run_key, coalesce(sweep, ''), method, status, coalesce(error, ''), config, "
    "seed, attempts, coalesce(heartbeat, 0), coalesce(host, ''), coalesce(pid, 0) FROM runs ";

RunRow read_run(const Stmt& s) {
  RunRow r;
  r.id = s.get_int(0);
  r.run_key = s.get_text(1);
  r.sweep = s.get_text(2);
  r.method = s.get_text(3);
  r.status = parse_status(s.get_text(4));
  r.error = s.get_text(5);
  r.config_json = s.get_text(6);
  r.seed = s.get_int(7);
  r.attempts = s.get_int(8);
  r.heartbeat = s.get_double(9);
  r.host = s.get_text(10);
  r.pid = s.get_int(11);
  return r;
}
}  // namespace

std::optional<RunRow> Store::find_run(const std::string& run_key) {
  auto s = db_->prepare(std::string(kRunColumns) + "WHERE run_key = ?1");
  s.bind(1, run_key);
  if (!s.step()) return std::nullopt;
  return read_run(s);
}

std::vector<RunRow> Store::runs(const std::string& sweep) {
  auto s = db_->prepare(std::string(kRunColumns) + "WHERE sweep IS ?1 ORDER BY id");
  s.bind(1, sweep);
  std::vector<RunRow> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

std::optional<Store::Claim> Store::claim_run(const std::string& run_key, const std::string& host,
                                             int64_t pid,
                                             const std::function<bool(const RunRow&)>& claimable) {
  flush();
  Transaction tx(*db_);  // BEGIN IMMEDIATE: no other writer between the read and the update
  auto row = find_run(run_key);
  if (!row) throw DbError("database '" + db_->path() + "': no run '" + run_key + "'");
  if (!claimable(*row)) return std::nullopt;
  const double now = now_seconds();
  auto up = db_->prepare(
      "UPDATE runs SET status = 'running', error = NULL, attempts = attempts + 1, "
      "heartbeat = ?3, started_at = ?3, finished_at = NULL, wall_seconds = NULL, host = ?4, "
      "pid = ?5 WHERE id = ?1 AND attempts = ?2 AND status = ?6");
  up.bind(1, row->id)
      .bind(2, row->attempts)
      .bind(3, now)
      .bind(4, host)
      .bind(5, pid)
      .bind(6, status_name(row->status));
  up.step();
  if (sqlite3_changes(db_->handle()) != 1) return std::nullopt;  // someone else's claim won
  tx.commit();
  attempt_[row->id] = row->attempts + 1;
  return Claim{row->id, row->attempts + 1};
}

int64_t Store::start_attempt(const std::string& run_key, int64_t attempt, const std::string& host,
                             int64_t pid, const std::string& device, const std::string& libtorch,
                             const std::string& code_version) {
  Transaction tx(*db_);
  auto row = find_run(run_key);
  if (!row) throw DbError("database '" + db_->path() + "': no run '" + run_key + "'");
  if (row->attempts != attempt || row->status != RunStatus::kRunning) {
    throw Superseded("run " + run_key + ": attempt " + std::to_string(attempt) +
                     " is not current (the run is " + status_name(row->status) + " at attempt " +
                     std::to_string(row->attempts) + "); another process took it over");
  }
  const double now = now_seconds();
  db_->prepare(
         "UPDATE runs SET heartbeat = ?2, started_at = ?2, host = ?3, device = ?4, "
         "libtorch = ?5, code_version = ?6, pid = ?7 WHERE id = ?1")
      .bind(1, row->id)
      .bind(2, now)
      .bind(3, host)
      .bind(4, device)
      .bind(5, libtorch)
      .bind(6, code_version)
      .bind(7, pid)
      .step();
  tx.commit();
  attempt_[row->id] = attempt;
  return row->id;
}

void Store::keep_rows_through(int64_t run_id, int64_t step, bool final_step) {
  flush();
  const int64_t attempt = attempt_of(run_id);
  Transaction tx(*db_);
  auto c = db_->prepare("SELECT attempts, status FROM runs WHERE id = ?1");
  c.bind(1, run_id);
  if (!c.step() || c.get_int(0) != attempt || parse_status(c.get_text(1)) != RunStatus::kRunning) {
    throw Superseded("database '" + db_->path() + "': run id " + std::to_string(run_id) +
                     " attempt " + std::to_string(attempt) +
                     " is no longer current; another process took the run over");
  }
  for (const char* table : {"metrics", "layer_stats"}) {
    const std::string t = table;
    db_->prepare("DELETE FROM " + t +
                 " WHERE run_id = ?1 AND (?2 < 0 OR step > ?2 OR (step = ?2 AND (split = "
                 "'resume' OR (?3 AND split != 'train'))))")
        .bind(1, run_id)
        .bind(2, step)
        .bind(3, static_cast<int64_t>(final_step))
        .step();
    db_->prepare("UPDATE " + t + " SET attempt = ?2 WHERE run_id = ?1")
        .bind(1, run_id)
        .bind(2, attempt)
        .step();
  }
  tx.commit();
}

int64_t Store::start_run(const std::string& run_key, const std::string& host, int64_t pid,
                         const std::string& device, const std::string& libtorch,
                         const std::string& code_version) {
  const auto claim = claim_run(run_key, host, pid, [](const RunRow&) { return true; });
  if (!claim)
    throw DbError("database '" + db_->path() + "': run '" + run_key + "' was claimed concurrently");
  const int64_t id =
      start_attempt(run_key, claim->attempt, host, pid, device, libtorch, code_version);
  keep_rows_through(id, -1, false);
  return id;
}

int64_t Store::attempt_of(int64_t run_id) {
  auto it = attempt_.find(run_id);
  if (it != attempt_.end()) return it->second;
  auto s = db_->prepare("SELECT attempts FROM runs WHERE id = ?1");
  s.bind(1, run_id);
  if (!s.step())
    throw DbError("database '" + db_->path() + "': no run with id " + std::to_string(run_id));
  return attempt_[run_id] = s.get_int(0);
}

std::vector<int64_t> Store::running_on_host(const std::string& host) {
  auto s = db_->prepare("SELECT pid FROM runs WHERE status = 'running' AND host = ?1");
  s.bind(1, host);
  std::vector<int64_t> pids;
  while (s.step()) pids.push_back(s.get_int(0));
  return pids;
}

bool Store::heartbeat(int64_t run_id, int64_t attempt) {
  Transaction tx(*db_);
  db_->prepare(
         "UPDATE runs SET heartbeat = ?2 WHERE id = ?1 AND attempts = ?3 AND status = 'running'")
      .bind(1, run_id)
      .bind(2, now_seconds())
      .bind(3, attempt)
      .step();
  const bool ok = sqlite3_changes(db_->handle()) == 1;
  tx.commit();
  return ok;
}

bool Store::finish_run(int64_t run_id, RunStatus status, const std::string& error) {
  if (status == RunStatus::kQueued || status == RunStatus::kRunning) {
    throw std::logic_error("finish_run: '" + status_name(status) + "' is not an end state");
  }
  flush();
  const int64_t attempt = attempt_of(run_id);
  Transaction tx(*db_);
  const double now = now_seconds();
  auto s = db_->prepare(
      "UPDATE runs SET status = ?2, error = ?3, heartbeat = ?4, finished_at = ?4, "
      "wall_seconds = ?4 - started_at WHERE id = ?1 AND attempts = ?5 AND status = 'running'");
  s.bind(1, run_id).bind(2, status_name(status)).bind(4, now).bind(5, attempt);
  if (error.empty()) {
    s.bind_null(3);
  } else {
    s.bind(3, error);
  }
  s.step();
  const bool ok = sqlite3_changes(db_->handle()) == 1;
  tx.commit();
  return ok;
}

void Store::add_metric(int64_t run_id, int64_t step, const std::string& split,
                       const std::string& name, double value, const MetricKey& key) {
  metric_buffer_.push_back({run_id, step, -1, split, name, value, key});
  if (metric_buffer_.size() + layer_buffer_.size() >= 200) flush();
}

void Store::add_layer_stat(int64_t run_id, int64_t step, const std::string& split, int64_t layer,
                           const std::string& name, double value, const MetricKey& key) {
  layer_buffer_.push_back({run_id, step, layer, split, name, value, key});
  if (metric_buffer_.size() + layer_buffer_.size() >= 200) flush();
}

bool Store::has_reeval(int64_t run_id, const std::string& option, double value) {
  flush();
  auto s = db_->prepare(
      "SELECT 1 FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts "
      "WHERE m.run_id = ?1 AND m.split = 'reeval' AND m.option = ?2 AND m.option_value = ?3 "
      "LIMIT 1");
  s.bind(1, run_id).bind(2, option).bind(3, value);
  return s.step();
}

void Store::flush() {
  if (metric_buffer_.empty() && layer_buffer_.empty()) return;
  std::map<int64_t, int64_t> attempts;  // run id -> attempt these rows belong to
  for (const auto* buf : {&metric_buffer_, &layer_buffer_}) {
    for (const auto& r : *buf) attempts.emplace(r.run_id, attempt_of(r.run_id));
  }
  Transaction tx(*db_);
  for (const auto& [run_id, attempt] : attempts) {
    auto c = db_->prepare("SELECT attempts FROM runs WHERE id = ?1");
    c.bind(1, run_id);
    if (!c.step() || c.get_int(0) != attempt) {
      metric_buffer_.clear();
      layer_buffer_.clear();
      throw Superseded("database '" + db_->path() + "': run id " + std::to_string(run_id) +
                       " attempt " + std::to_string(attempt) +
                       " is no longer current; another process took the run over");
    }
  }
  auto m = db_->prepare(
      "INSERT INTO metrics(run_id, step, split, name, value, value_text, attempt, item, level, "
      "option, option_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  for (const auto& r : metric_buffer_) {
    m.bind(1, r.run_id)
        .bind(2, r.step)
        .bind(3, r.split)
        .bind(4, r.name)
        .bind(7, attempts[r.run_id]);
    bind_value(m, 5, r.value);
    bind_key(m, 8, r.key);
    m.step();
    m.reset();
  }
  auto l = db_->prepare(
      "INSERT INTO layer_stats(run_id, step, split, layer, name, value, value_text, attempt, "
      "item, level, option, option_value) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
  for (const auto& r : layer_buffer_) {
    l.bind(1, r.run_id)
        .bind(2, r.step)
        .bind(3, r.split)
        .bind(4, r.layer)
        .bind(5, r.name)
        .bind(8, attempts[r.run_id]);
    bind_value(l, 6, r.value);
    bind_key(l, 9, r.key);
    l.step();
    l.reset();
  }
  tx.commit();
  metric_buffer_.clear();
  layer_buffer_.clear();
}

}  // namespace moe::results
