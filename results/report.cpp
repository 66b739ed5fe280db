#include "results/report.h"

#include "results/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "results/compare.h"
#include "results/plot_util.h"
#include "results/schema.sql.h"
#include "results/store.h"

namespace moe::results {
namespace {

std::string cell(const Stmt& s, int i) {
  switch (s.type(i)) {
    case SQLITE_NULL:
      return "NULL";
    case SQLITE_INTEGER:
      return std::to_string(s.get_int(i));
    case SQLITE_FLOAT: {
      std::ostringstream o;
      o << std::setprecision(6) << s.get_double(i);
      return o.str();
    }
    default:
      return s.get_text(i);
  }
}

std::string csv_quote(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string json_quote(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// Display width in characters (UTF-8 aware, for "±").
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

namespace detail {

void require_gnuplot() {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    throw std::runtime_error("gnuplot not found; install it with: apt-get install gnuplot-nox");
  }
}

/// Writes <base>.gp drawing `body` (plot commands) to <base>.png and <base>.svg, runs it.
void run_gnuplot(const std::string& base, const std::string& body) {
  {
    std::ofstream gp(base + ".gp");
    for (const auto& [term, ext] :
         {std::pair<std::string, std::string>{"pngcairo noenhanced size 900,600", "png"},
          {"svg noenhanced size 900,600", "svg"}}) {  // labels print as written (a_b)
      // reset: the second terminal's pass must not inherit the first pass's settings.
      gp << "reset\nset terminal " << term << "\nset output '" << base << "." << ext << "'\n"
         << body << "\nunset multiplot\n";
    }
  }
  const std::string cmd = "gnuplot '" + base + ".gp' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string output;
  char buf[256];
  while (p && fgets(buf, sizeof(buf), p)) output += buf;
  const int rc = p ? pclose(p) : -1;
  if (rc != 0) throw std::runtime_error("gnuplot failed on " + base + ".gp: " + output);
}

std::string sanitize(std::string label) {
  for (auto& c : label) c = (c == ' ' || c == '"' || c == '\'') ? '_' : c;
  return label;
}

void bring_to_current_schema(const std::string& path) {
  int64_t version = 0;
  {
    Db check(path, true);
    auto v = check.prepare("PRAGMA user_version");
    v.step();
    version = v.get_int(0);
  }
  if (version >= kSchemaVersion) return;
  if (version < 1) {
    throw DbError("database '" + path + "' is no moe-lab results database (schema version 0)");
  }
  try {
    Store migrate(path);
  } catch (const DbError& e) {
    throw DbError("database '" + path + "' has schema version " + std::to_string(version) + " of " +
                  std::to_string(kSchemaVersion) + " and could not be migrated here (" + e.what() +
                  "); copy it somewhere writable");
  }
  std::cerr << "moe: migrated database '" << path << "' from schema version " << version << " to "
            << kSchemaVersion << " (its data kept; results/README.md)\n";
}

Db open_for_plot(const std::string& db_path, const std::string& out_dir) {
  require_gnuplot();
  if (!std::filesystem::exists(db_path)) throw DbError("database '" + db_path + "': no such file");
  std::filesystem::create_directories(out_dir);
  bring_to_current_schema(db_path);
  return Db(db_path, true);  // Db is neither copyable nor movable
}

std::string sweep_title(const std::string& sweep) {
  return sweep.empty() ? "all sweeps" : "sweep " + sweep;
}

}  // namespace detail

void run_query(const std::string& db_path, const std::string& sql, QueryFormat format,
               std::ostream& out) {
  if (!std::filesystem::exists(db_path)) {
    throw DbError("database '" + db_path + "': no such file (run a sweep first)");
  }
  detail::bring_to_current_schema(db_path);
  Db db(db_path, /*read_only=*/true);
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &raw, &tail) != SQLITE_OK) {
    db.fail("cannot run query");
  }
  Stmt stmt(db, raw);
  if (!raw) throw DbError("empty statement");
  for (const char* p = tail; p && *p; ++p) {
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') {
      throw DbError("one statement at a time, got more after '" +
                    sql.substr(0, tail - sql.c_str()) + "'");
    }
  }
  if (!stmt.read_only()) {
    throw DbError(
        "refusing a statement that writes to the database; queries are "
        "read-only (use the sqlite3 shell to change a database by hand)");
  }
  std::vector<std::string> header;
  for (int i = 0; i < stmt.columns(); ++i) header.push_back(stmt.column_name(i));
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<int>> types;
  while (stmt.step()) {
    std::vector<std::string> r;
    std::vector<int> t;
    for (int i = 0; i < stmt.columns(); ++i) {
      r.push_back(cell(stmt, i));
      t.push_back(stmt.type(i));
    }
    rows.push_back(r);
    types.push_back(t);
  }
  print_rows(header, rows, types, format, out);
}

void print_rows(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows,
                const std::vector<std::vector<int>>& types, QueryFormat format, std::ostream& out) {
  if (format == QueryFormat::kCsv) {
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << csv_quote(header[i]);
    out << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i)
        out << (i ? "," : "") << (r[i] == "NULL" ? "" : csv_quote(r[i]));
      out << "\n";
    }
  } else if (format == QueryFormat::kJson) {
    out << "[";
    for (size_t k = 0; k < rows.size(); ++k) {
      out << (k ? ",\n " : "\n ") << "{";
      for (size_t i = 0; i < header.size(); ++i) {
        const int t = types[k][i];
        const std::string v = t == SQLITE_NULL                             ? "null"
                              : (t == SQLITE_INTEGER || t == SQLITE_FLOAT) ? rows[k][i]
                                                                           : json_quote(rows[k][i]);
        out << (i ? ", " : "") << json_quote(header[i]) << ": " << v;
      }
      out << "}";
    }
    out << (rows.empty() ? "]\n" : "\n]\n");
  } else {
    std::vector<size_t> w(header.size());
    for (size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], width(r[i]));
    }
    auto line = [&](const std::vector<std::string>& r) {
      for (size_t i = 0; i < r.size(); ++i) {
        out << (i ? "  " : "") << r[i] << std::string(w[i] - width(r[i]), ' ');
      }
      out << "\n";
    };
    line(header);
    std::vector<std::string> rule;
    for (size_t x : w) rule.push_back(std::string(x, '-'));
    line(rule);
    for (const auto& r : rows) line(r);
    out << "(" << rows.size() << " row" << (rows.size() == 1 ? "" : "s") << ")\n";
  }
}

int64_t merge_databases(const std::string& out, const std::vector<std::string>& inputs) {
  Store target(out);  // creates and migrates
  auto& db = target.db();
  int64_t copied = 0;
  for (const auto& in : inputs) {
    if (!std::filesystem::exists(in)) throw DbError("merge: input '" + in + "' does not exist");
    int64_t version = 0;
    {
      Db src(in, true);
      auto v = src.prepare("PRAGMA user_version");
      v.step();
      version = v.get_int(0);
      // Versions 1..current share the tables (version 3 added the rows' attempt).
      if (v.get_int(0) < 1 || v.get_int(0) > kSchemaVersion) {
        throw DbError("merge: '" + in + "' has schema version " + std::to_string(v.get_int(0)) +
                      ", expected 1.." + std::to_string(kSchemaVersion));
      }
    }
    db.prepare("ATTACH DATABASE ?1 AS src").bind(1, in).step();
    try {
      Transaction tx(db);
      const bool v5 = version >= 5;  // labels in parts, tune metric
      db.exec(std::string("INSERT OR IGNORE INTO sweeps(name, spec, spec_hash, created_at") +
              (v5 ? ", tune_metric" : "") + ") SELECT name, spec, spec_hash, created_at" +
              (v5 ? ", tune_metric" : "") + " FROM src.sweeps");
      // Runs to take: absent here, or here but not completed while the input's is.
      db.exec(
          "CREATE TEMP TABLE take AS SELECT s.id AS src_id, s.run_key FROM src.runs s "
          "LEFT JOIN main.runs m ON m.run_key = s.run_key "
          "WHERE m.id IS NULL OR (m.status != 'completed' AND s.status = 'completed')");
      db.exec("DELETE FROM main.runs WHERE run_key IN (SELECT run_key FROM take)");
      db.exec(
          "INSERT INTO main.runs(run_key, sweep, method, seed, config, status, error, attempts, "
          "heartbeat, started_at, finished_at, wall_seconds, host, pid, device, libtorch, "
          "code_version" +
          std::string(v5 ? ", preset, context, tune" : "") +
          ") SELECT run_key, sweep, method, seed, config, status, error, attempts, heartbeat, "
          "started_at, finished_at, wall_seconds, host, pid, device, libtorch, code_version" +
          (v5 ? ", preset, context, tune" : "") +
          " FROM src.runs WHERE id IN (SELECT src_id FROM take)");
      // Only the rows of each run's current attempt (before version 3: all of them).
      const std::string current = version >= 3 ? " AND x.attempt = s.attempts" : "";
      // The series columns (version 6); older rows are normalised below.
      const std::string keys = version >= 6 ? ", item, level, option, option_value" : "";
      const std::string x_keys = version >= 6 ? ", x.item, x.level, x.option, x.option_value" : "";
      db.exec("INSERT INTO main.metrics(run_id, step, split, name, value, value_text, attempt" +
              keys + ") SELECT m.id, x.step, x.split, x.name, x.value, x.value_text, m.attempts" +
              x_keys +
              " FROM src.metrics x JOIN src.runs s ON s.id = x.run_id JOIN main.runs m ON "
              "m.run_key = s.run_key WHERE x.run_id IN (SELECT src_id FROM take)" +
              current);
      db.exec(
          "INSERT INTO main.layer_stats(run_id, step, split, layer, name, value, value_text, "
          "attempt" +
          keys + ") SELECT m.id, x.step, x.split, x.layer, x.name, x.value, x.value_text, " +
          "m.attempts" + x_keys +
          " FROM src.layer_stats x JOIN src.runs s ON s.id = x.run_id JOIN main.runs m ON "
          "m.run_key = s.run_key WHERE x.run_id IN (SELECT src_id FROM take)" +
          current);
      if (version < 6) db.exec(kNormalizeV6);
      {
        auto n = db.prepare("SELECT count(*) FROM take");
        n.step();
        copied += n.get_int(0);
      }  // finalized before the table is dropped
      db.exec("DROP TABLE take");
      tx.commit();
    } catch (...) {
      db.exec("DETACH DATABASE src");
      throw;
    }
    db.exec("DETACH DATABASE src");
  }
  // Shards each saw part of a tuned sweep: choose again over the merged runs.
  std::vector<std::string> tuned;
  {
    auto s = db.prepare("SELECT name FROM sweeps WHERE tune_metric IS NOT NULL");
    while (s.step()) tuned.push_back(s.get_text(0));
  }
  for (const auto& sweep : tuned) record_selections(db, sweep);
  return copied;
}

}  // namespace moe::results
