#pragma once
// Minimal RAII over the SQLite C API (results layer only; no LibTorch here).
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace moe::results {

/// Thrown for every SQLite failure, with the database path and statement in the message.
struct DbError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Stmt;

class Db {
 public:
  /// read_only opens with SQLITE_OPEN_READONLY; otherwise creates the file if needed.
  Db(const std::string& path, bool read_only);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql);
  /// exec, retried for up to the busy timeout (30 s) while SQLite answers SQLITE_BUSY
  /// without consulting its busy handler: a `PRAGMA journal_mode=WAL` racing another
  /// connection that opens or converts the same new database does.
  void exec_retrying_busy(const std::string& sql);
  Stmt prepare(const std::string& sql);
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  ~Stmt() { sqlite3_finalize(stmt_); }

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);  ///< NaN binds as NULL (SQLite's rule): store non-finite
                                ///< values as Store::add_metric does (value_text)
  Stmt& bind(int i, const std::string& v);
  Stmt& bind_null(int i);
  /// true while a row is available.
  bool step();
  void reset();
  int columns() const { return sqlite3_column_count(stmt_); }
  std::string column_name(int i) const { return sqlite3_column_name(stmt_, i); }
  int type(int i) const { return sqlite3_column_type(stmt_, i); }
  int64_t get_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double get_double(int i) const { return sqlite3_column_double(stmt_, i); }
  bool is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string get_text(int i) const;
  bool read_only() const { return sqlite3_stmt_readonly(stmt_) != 0; }

 private:
  Db* db_;
  sqlite3_stmt* stmt_;
};

/// BEGIN IMMEDIATE ... COMMIT (rolled back when destroyed without commit()).
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace moe::results
