#include "results/store.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <sstream>

#include "results/schema.sql.h"

namespace moe::results {

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
  db_->exec("PRAGMA journal_mode=WAL");
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
  if (version < 1) db_->exec(kSchemaV1);
  if (version < 2) db_->exec(kSchemaV2);
  if (version < kSchemaVersion) {
    db_->exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
  }
  tx.commit();
}

void Store::upsert_sweep(const std::string& name, const std::string& spec_text) {
  Transaction tx(*db_);
  db_->prepare(
         "INSERT INTO sweeps(name, spec, spec_hash, created_at) VALUES (?1, ?2, ?3, ?4) "
         "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash")
      .bind(1, name)
      .bind(2, spec_text)
      .bind(3, hash_hex(spec_text))
      .bind(4, now_seconds())
      .step();
  tx.commit();
}

void Store::ensure_run(const RunSpec& run) {
  Transaction tx(*db_);
  auto s = db_->prepare(
      "INSERT INTO runs(run_key, sweep, method, seed, config, status) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 'queued') ON CONFLICT(run_key) DO NOTHING");
  s.bind(1, run.run_key).bind(3, run.method).bind(4, run.seed).bind(5, run.config_json);
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
  r.status = s.get_text(4);
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

int64_t Store::start_run(const std::string& run_key, const std::string& host, int64_t pid,
                         const std::string& device, const std::string& libtorch,
                         const std::string& code_version) {
  Transaction tx(*db_);
  auto find = db_->prepare("SELECT id FROM runs WHERE run_key = ?1");
  find.bind(1, run_key);
  if (!find.step()) throw DbError("database '" + db_->path() + "': no run '" + run_key + "'");
  const int64_t id = find.get_int(0);
  db_->prepare("DELETE FROM metrics WHERE run_id = ?1").bind(1, id).step();
  db_->prepare("DELETE FROM layer_stats WHERE run_id = ?1").bind(1, id).step();
  const double now = now_seconds();
  db_->prepare(
         "UPDATE runs SET status = 'running', error = NULL, attempts = attempts + 1, "
         "heartbeat = ?2, started_at = ?2, finished_at = NULL, wall_seconds = NULL, host = ?3, "
         "device = ?4, libtorch = ?5, code_version = ?6, pid = ?7 WHERE id = ?1")
      .bind(1, id)
      .bind(2, now)
      .bind(3, host)
      .bind(4, device)
      .bind(5, libtorch)
      .bind(6, code_version)
      .bind(7, pid)
      .step();
  tx.commit();
  return id;
}

void Store::heartbeat(int64_t run_id) {
  Transaction tx(*db_);
  db_->prepare("UPDATE runs SET heartbeat = ?2 WHERE id = ?1")
      .bind(1, run_id)
      .bind(2, now_seconds())
      .step();
  tx.commit();
}

void Store::finish_run(int64_t run_id, const std::string& status, const std::string& error) {
  flush();
  Transaction tx(*db_);
  const double now = now_seconds();
  auto s = db_->prepare(
      "UPDATE runs SET status = ?2, error = ?3, heartbeat = ?4, finished_at = ?4, "
      "wall_seconds = ?4 - started_at WHERE id = ?1");
  s.bind(1, run_id).bind(2, status).bind(4, now);
  if (error.empty()) {
    s.bind_null(3);
  } else {
    s.bind(3, error);
  }
  s.step();
  tx.commit();
}

void Store::add_metric(int64_t run_id, int64_t step, const std::string& split,
                       const std::string& name, double value) {
  metric_buffer_.push_back({run_id, step, -1, split, name, value});
  if (metric_buffer_.size() + layer_buffer_.size() >= 200) flush();
}

void Store::add_layer_stat(int64_t run_id, int64_t step, const std::string& split, int64_t layer,
                           const std::string& name, double value) {
  layer_buffer_.push_back({run_id, step, layer, split, name, value});
  if (metric_buffer_.size() + layer_buffer_.size() >= 200) flush();
}

bool Store::has_split(int64_t run_id, const std::string& split) {
  flush();
  auto s = db_->prepare("SELECT 1 FROM metrics WHERE run_id = ?1 AND split = ?2 LIMIT 1");
  s.bind(1, run_id).bind(2, split);
  return s.step();
}

void Store::flush() {
  if (metric_buffer_.empty() && layer_buffer_.empty()) return;
  Transaction tx(*db_);
  auto m = db_->prepare(
      "INSERT INTO metrics(run_id, step, split, name, value, value_text) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (const auto& r : metric_buffer_) {
    m.bind(1, r.run_id).bind(2, r.step).bind(3, r.split).bind(4, r.name);
    bind_value(m, 5, r.value);
    m.step();
    m.reset();
  }
  auto l = db_->prepare(
      "INSERT INTO layer_stats(run_id, step, split, layer, name, value, value_text) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  for (const auto& r : layer_buffer_) {
    l.bind(1, r.run_id).bind(2, r.step).bind(3, r.split).bind(4, r.layer).bind(5, r.name);
    bind_value(l, 6, r.value);
    l.step();
    l.reset();
  }
  tx.commit();
  metric_buffer_.clear();
  layer_buffer_.clear();
}

}  // namespace moe::results
