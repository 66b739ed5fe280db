// Plots of sweep results: Pareto front, layers, training curves, difficulty.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "results/plot_util.h"
#include "results/report.h"
#include "results/store.h"

namespace moe::results {
using namespace detail;

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

}  // namespace moe::results
