#include "results/report.h"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "results/store.h"

namespace moe::results {
namespace {

std::string cell(const Stmt& s, int i) {
  switch (s.type(i)) {
    case SQLITE_NULL: return "NULL";
    case SQLITE_INTEGER: return std::to_string(s.get_int(i));
    case SQLITE_FLOAT: {
      std::ostringstream o;
      o << std::setprecision(6) << s.get_double(i);
      return o.str();
    }
    default: return s.get_text(i);
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
         {std::pair<std::string, std::string>{"pngcairo size 900,600", "png"},
          {"svg size 900,600", "svg"}}) {
      gp << "set terminal " << term << "\nset output '" << base << "." << ext << "'\n" << body
         << "\nunset multiplot\n";
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

Db open_for_plot(const std::string& db_path, const std::string& out_dir) {
  require_gnuplot();
  if (!std::filesystem::exists(db_path)) throw DbError("database '" + db_path + "': no such file");
  std::filesystem::create_directories(out_dir);
  return Db(db_path, true);
}

std::string sweep_title(const std::string& sweep) {
  return sweep.empty() ? "all sweeps" : "sweep " + sweep;
}

}  // namespace

void run_query(const std::string& db_path, const std::string& sql, QueryFormat format,
               std::ostream& out) {
  if (!std::filesystem::exists(db_path)) {
    throw DbError("database '" + db_path + "': no such file (run a sweep first)");
  }
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
      throw DbError("one statement at a time, got more after '" + sql.substr(0, tail - sql.c_str()) + "'");
    }
  }
  if (!stmt.read_only()) {
    throw DbError("refusing a statement that writes to the database; queries are "
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
  if (format == QueryFormat::kCsv) {
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << csv_quote(header[i]);
    out << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) out << (i ? "," : "") << (r[i] == "NULL" ? "" : csv_quote(r[i]));
      out << "\n";
    }
  } else if (format == QueryFormat::kJson) {
    out << "[";
    for (size_t k = 0; k < rows.size(); ++k) {
      out << (k ? ",\n " : "\n ") << "{";
      for (size_t i = 0; i < header.size(); ++i) {
        const int t = types[k][i];
        const std::string v = t == SQLITE_NULL ? "null"
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

std::string plot_pareto(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "pareto").string();
  auto s = db.prepare(
      "SELECT method, n, active_params, test_accuracy, test_accuracy_std "
      "FROM by_method WHERE (?1 = '' OR sweep = ?1) ORDER BY active_params");
  s.bind(1, sweep);
  std::ofstream dat(base + ".dat");
  dat << "# method\tactive_params\ttest_accuracy\tstd\tn\n";
  int64_t points = 0;
  while (s.step()) {
    dat << "\"" << sanitize(s.get_text(0)) << "\"\t" << s.get_double(2) << "\t" << s.get_double(3)
        << "\t" << s.get_double(4) << "\t" << s.get_int(1) << "\n";
    ++points;
  }
  dat.close();
  if (points == 0) {
    throw std::runtime_error("no completed runs" + (sweep.empty() ? "" : " in sweep '" + sweep + "'") +
                             " in " + db_path);
  }
  auto f = db.prepare(
      "SELECT active_params, test_accuracy FROM pareto WHERE (?1 = '' OR sweep = ?1) "
      "ORDER BY active_params");
  f.bind(1, sweep);
  std::ofstream front(base + "_front.dat");
  while (f.step()) front << f.get_double(0) << "\t" << f.get_double(1) << "\n";
  front.close();
  std::ostringstream body;
  body << "set title 'Accuracy vs active parameters (" << sweep_title(sweep)
       << "); error bars: std over seeds'\n"
       << "set xlabel 'active parameters per token'\nset ylabel 'test accuracy'\n"
       << "set format x '%.3s%c'\nset grid\nset key bottom right\n"
       << "set offsets graph 0.08, graph 0.08, graph 0.1, graph 0.1\n"
       << "plot '" << base << "_front.dat' using 1:2 with lines dt 2 lc rgb '#888888' title 'Pareto front', \\\n"
       << "     '" << base << ".dat' using 2:3:4 with yerrorbars pt 7 ps 1.3 title 'method (mean ± std)', \\\n"
       << "     '" << base << ".dat' using 2:3:1 with labels offset 0,1.2 notitle\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_layers(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "layers").string();
  // Mean experts per token per (method, layer), averaged over seeds.
  auto s = db.prepare(
      "SELECT method, layer, avg(mean_experts) FROM layers WHERE (?1 = '' OR sweep = ?1) "
      "GROUP BY method, layer ORDER BY method, layer");
  s.bind(1, sweep);
  std::map<std::string, std::vector<std::pair<int64_t, double>>> lines;
  while (s.step()) lines[s.get_text(0)].emplace_back(s.get_int(1), s.get_double(2));
  if (lines.empty()) {
    throw std::runtime_error("no per-layer statistics (MoE runs) in " + db_path +
                             (sweep.empty() ? "" : " for sweep '" + sweep + "'"));
  }
  std::ofstream dat(base + ".dat");
  for (const auto& [method, pts] : lines) {
    dat << "\"" << sanitize(method) << "\"\n";
    for (const auto& [layer, k] : pts) dat << layer << "\t" << k << "\n";
    dat << "\n\n";
  }
  dat.close();
  // Heatmap rows: method/layer; columns: share of tokens using n experts.
  auto h = db.prepare(
      "SELECT r.method, l.layer, CAST(substr(l.name, 14) AS INTEGER) AS n, avg(l.value) "
      "FROM layer_stats l JOIN runs r ON r.id = l.run_id "
      "WHERE l.split = 'test' AND l.name LIKE 'experts_hist/%' AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.method, l.layer, n ORDER BY r.method, l.layer, n");
  h.bind(1, sweep);
  // `with image` needs a full grid: every row gets every column, 0 where absent.
  std::vector<std::string> row_labels;
  std::map<std::string, std::map<int64_t, double>> cells;
  int64_t max_n = 0;
  while (h.step()) {
    const std::string label = sanitize(h.get_text(0)) + "/L" + std::to_string(h.get_int(1));
    if (row_labels.empty() || row_labels.back() != label) row_labels.push_back(label);
    cells[label][h.get_int(2)] = h.get_double(3);
    max_n = std::max(max_n, h.get_int(2));
  }
  std::ofstream hist(base + "_hist.dat");
  for (size_t row = 0; row < row_labels.size(); ++row) {
    for (int64_t n = 0; n <= max_n; ++n) {
      const auto& r = cells[row_labels[row]];
      hist << n << "\t" << row << "\t" << (r.count(n) ? r.at(n) : 0.0) << "\n";
    }
    hist << "\n";
  }
  hist.close();
  std::ostringstream ytics;
  for (size_t i = 0; i < row_labels.size(); ++i) {
    ytics << (i ? ", " : "") << "'" << row_labels[i] << "' " << i;
  }
  std::ostringstream body;
  body << "set multiplot layout 1,2 title 'Experts per token by layer (" << sweep_title(sweep)
       << ", test split)'\n"
       << "set xlabel 'MoE layer'\nset ylabel 'mean experts per token'\nset grid\n"
       << "set key top right\nset xtics 1\n"
       << "plot for [i=0:" << lines.size() - 1 << "] '" << base
       << ".dat' index i using 1:2 with linespoints pt 7 title columnheader(1)\n"
       << "unset grid\nset xlabel 'experts used by a token'\nset ylabel ''\n"
       << "set ytics (" << ytics.str() << ")\nset cblabel 'share of tokens'\n"
       << "set cbrange [0:1]\nset palette defined (0 'white', 1 '#1b6ca8')\n"
       << "plot '" << base << "_hist.dat' using 1:2:3 with image notitle\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_curves(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "curves").string();
  auto s = db.prepare(
      "SELECT r.method || ' seed ' || r.seed, m.step, m.value FROM metrics m "
      "JOIN runs r ON r.id = m.run_id WHERE m.split = 'train' AND m.name = 'loss' "
      "AND (?1 = '' OR r.sweep = ?1) ORDER BY r.method, r.seed, m.step");
  s.bind(1, sweep);
  std::ofstream dat(base + ".dat");
  std::string current;
  int64_t blocks = 0;
  while (s.step()) {
    if (s.get_text(0) != current) {
      if (blocks) dat << "\n\n";
      current = s.get_text(0);
      dat << "\"" << sanitize(current) << "\"\n";
      ++blocks;
    }
    dat << s.get_int(1) << "\t" << s.get_double(2) << "\n";
  }
  dat.close();
  if (!blocks) throw std::runtime_error("no training curves in " + db_path);
  std::ostringstream body;
  body << "set title 'Training loss (" << sweep_title(sweep) << ")'\n"
       << "set xlabel 'step'\nset ylabel 'training loss'\nset logscale y\nset grid\n"
       << "set key top right\n"
       << "plot for [i=0:" << blocks - 1 << "] '" << base
       << ".dat' index i using 1:2 with lines lw 1.5 title columnheader(1)\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_difficulty(const std::string& db_path, const std::string& sweep,
                            const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "difficulty").string();
  // Test accuracy per difficulty level, mean over the seeds of each method; levels keep
  // the task's order (first appearance).
  auto s = db.prepare(
      "SELECT r.method, substr(m.name, 10) AS level, avg(m.value), min(m.rowid) AS o "
      "FROM metrics m JOIN runs r ON r.id = m.run_id "
      "WHERE m.split = 'test' AND m.name LIKE 'accuracy/%' AND r.status = 'completed' "
      "AND (?1 = '' OR r.sweep = ?1) GROUP BY r.method, level ORDER BY r.method, o");
  s.bind(1, sweep);
  std::map<std::string, std::vector<std::pair<std::string, double>>> per_method;
  std::vector<std::string> levels;
  while (s.step()) {
    const auto level = s.get_text(1);
    if (std::find(levels.begin(), levels.end(), level) == levels.end()) levels.push_back(level);
    per_method[s.get_text(0)].emplace_back(level, s.get_double(2));
  }
  if (per_method.empty()) throw std::runtime_error("no per-difficulty accuracy in " + db_path);
  std::ofstream dat(base + ".dat");
  for (const auto& [method, pts] : per_method) {
    dat << "\"" << sanitize(method) << "\"\n";
    for (const auto& [level, acc] : pts) {
      const auto x = std::find(levels.begin(), levels.end(), level) - levels.begin();
      dat << x << "\t" << acc << "\n";
    }
    dat << "\n\n";
  }
  dat.close();
  std::ostringstream xtics;
  for (size_t i = 0; i < levels.size(); ++i) xtics << (i ? ", " : "") << "'" << levels[i] << "' " << i;
  std::ostringstream body;
  body << "set title 'Test accuracy by difficulty level (" << sweep_title(sweep)
       << "), mean over seeds'\n"
       << "set xlabel 'difficulty level'\nset ylabel 'test accuracy'\nset grid\n"
       << "set key bottom left\nset xtics (" << xtics.str() << ")\n"
       << "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n"
       << "plot for [i=0:" << per_method.size() - 1 << "] '" << base
       << ".dat' index i using 1:2 with linespoints pt 7 title columnheader(1)\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

int64_t merge_databases(const std::string& out, const std::vector<std::string>& inputs) {
  Store target(out);  // creates and migrates
  auto& db = target.db();
  int64_t copied = 0;
  for (const auto& in : inputs) {
    if (!std::filesystem::exists(in)) throw DbError("merge: input '" + in + "' does not exist");
    {
      Db src(in, true);
      auto v = src.prepare("PRAGMA user_version");
      v.step();
      // Versions 1..current share the tables (later versions only add views).
      if (v.get_int(0) < 1 || v.get_int(0) > kSchemaVersion) {
        throw DbError("merge: '" + in + "' has schema version " + std::to_string(v.get_int(0)) +
                      ", expected 1.." + std::to_string(kSchemaVersion));
      }
    }
    db.prepare("ATTACH DATABASE ?1 AS src").bind(1, in).step();
    try {
      Transaction tx(db);
      db.exec("INSERT OR IGNORE INTO sweeps SELECT * FROM src.sweeps");
      // Runs to take: absent here, or here but not completed while the input's is.
      db.exec(
          "CREATE TEMP TABLE take AS SELECT s.id AS src_id, s.run_key FROM src.runs s "
          "LEFT JOIN main.runs m ON m.run_key = s.run_key "
          "WHERE m.id IS NULL OR (m.status != 'completed' AND s.status = 'completed')");
      db.exec("DELETE FROM main.runs WHERE run_key IN (SELECT run_key FROM take)");
      db.exec(
          "INSERT INTO main.runs(run_key, sweep, method, seed, config, status, error, attempts, "
          "heartbeat, started_at, finished_at, wall_seconds, host, pid, device, libtorch, "
          "code_version) "
          "SELECT run_key, sweep, method, seed, config, status, error, attempts, heartbeat, "
          "started_at, finished_at, wall_seconds, host, pid, device, libtorch, code_version "
          "FROM src.runs WHERE id IN (SELECT src_id FROM take)");
      db.exec(
          "INSERT INTO main.metrics SELECT m.id, x.step, x.split, x.name, x.value, x.value_text "
          "FROM src.metrics x JOIN src.runs s ON s.id = x.run_id JOIN main.runs m ON m.run_key = s.run_key "
          "WHERE x.run_id IN (SELECT src_id FROM take)");
      db.exec(
          "INSERT INTO main.layer_stats SELECT m.id, x.step, x.split, x.layer, x.name, x.value, x.value_text "
          "FROM src.layer_stats x JOIN src.runs s ON s.id = x.run_id JOIN main.runs m ON m.run_key = s.run_key "
          "WHERE x.run_id IN (SELECT src_id FROM take)");
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
  return copied;
}

}  // namespace moe::results
