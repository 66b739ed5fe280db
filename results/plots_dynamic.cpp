// Plots of dynamic routing: experts per token during training, routing (load and
// fluctuation) over training, re-evaluations.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "results/plot_util.h"
#include "results/report.h"
#include "results/store.h"

namespace moe::results {
using namespace detail;

namespace {

/// Writes one gnuplot data block per series: "label" then x y rows.
void write_series(const std::string& path,
                  const std::map<std::string, std::vector<std::pair<double, double>>>& series) {
  std::ofstream dat(path);
  for (const auto& [label, pts] : series) {
    dat << "\"" << sanitize(label) << "\"\n";
    for (const auto& [x, y] : pts) dat << x << "\t" << y << "\n";
    dat << "\n\n";
  }
}

}  // namespace

std::string plot_experts(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "experts").string();
  auto s = db.prepare(
      "SELECT r.method, l.step, avg(l.value) FROM layer_stats l JOIN runs r ON r.id = l.run_id AND "
      "l.attempt = r.attempts "
      "WHERE l.split = 'train' AND l.name = 'mean_experts' AND r.status = 'completed' "
      "AND (?1 = '' OR r.sweep = ?1) GROUP BY r.method, l.step ORDER BY r.method, l.step");
  s.bind(1, sweep);
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  while (s.step()) series[s.get_text(0)].emplace_back(s.get_double(1), s.get_double(2));
  // Fixed-k methods (top-1, top-2) are flat lines that hide the dynamic ones: keep those
  // whose count moved during training.
  for (auto it = series.begin(); it != series.end();) {
    double lo = 1e300, hi = -1e300;
    for (const auto& p : it->second) lo = std::min(lo, p.second), hi = std::max(hi, p.second);
    it = hi - lo < 1e-9 ? series.erase(it) : std::next(it);
  }
  if (series.empty())
    throw std::runtime_error("no method with a changing expert count in " + db_path);
  write_series(base + ".dat", series);
  std::ostringstream body;
  body << "set title 'Experts per token during training (" << sweep_title(sweep)
       << "), mean over MoE layers and seeds'\n"
       << "set xlabel 'training step'\nset ylabel 'experts per token'\nset grid\nset key outside "
          "right\n"
       << "plot for [i=0:" << series.size() - 1 << "] '" << base
       << ".dat' index i using 1:2 with lines lw 2 title columnheader(1)\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_routing(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "routing").string();
  // Load share per (method, layer, expert) at each validation evaluation, mean over seeds.
  auto h = db.prepare(
      "SELECT r.method, l.layer, l.item AS e, l.step, avg(l.value) "
      "FROM layer_stats l JOIN runs r ON r.id = l.run_id AND l.attempt = r.attempts "
      "WHERE l.split = 'valid' AND l.name = 'load' AND r.status = 'completed' "
      "AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.method, l.layer, e, l.step ORDER BY r.method, l.layer, e, l.step");
  h.bind(1, sweep);
  struct Row {
    std::string method;
    int64_t layer = 0, expert = 0;
    std::map<int64_t, double> by_step;
  };
  std::vector<Row> rows;
  std::map<std::pair<std::string, int64_t>, int64_t> experts;  // (method, layer) -> E
  std::set<int64_t> steps;
  while (h.step()) {
    const std::string method = h.get_text(0);
    const int64_t layer = h.get_int(1), e = h.get_int(2), step = h.get_int(3);
    if (rows.empty() || rows.back().method != method || rows.back().layer != layer ||
        rows.back().expert != e) {
      rows.push_back({method, layer, e, {}});
    }
    rows.back().by_step[step] = h.get_double(4);
    auto& n = experts[{method, layer}];
    n = std::max(n, e + 1);
    steps.insert(step);
  }
  if (rows.empty()) {
    throw std::runtime_error("no validation load per expert (MoE runs) in " + db_path +
                             (sweep.empty() ? "" : " for sweep '" + sweep + "'"));
  }
  const std::vector<int64_t> step_list(steps.begin(), steps.end());
  {
    std::ofstream dat(base + ".dat");
    for (size_t r = 0; r < rows.size(); ++r) {
      const double e = static_cast<double>(experts[{rows[r].method, rows[r].layer}]);
      for (size_t c = 0; c < step_list.size(); ++c) {
        auto it = rows[r].by_step.find(step_list[c]);
        dat << c << "\t" << r << "\t";
        if (it == rows[r].by_step.end()) {
          dat << "NaN\n";
        } else {
          dat << it->second * e << "\n";
        }
      }
      dat << "\n";
    }
  }
  // One y tic per (method, layer), in the middle of its experts' rows; a line between.
  std::ostringstream ytics, xtics, lines;
  for (size_t r = 0; r < rows.size();) {
    size_t end = r;
    while (end < rows.size() && rows[end].method == rows[r].method &&
           rows[end].layer == rows[r].layer) {
      ++end;
    }
    ytics << (ytics.tellp() > 0 ? ", " : "") << "'"
          << tic_label(sanitize(rows[r].method) + "/L" + std::to_string(rows[r].layer)) << "' "
          << (r + end - 1) / 2.0;
    if (end < rows.size()) {
      lines << "set arrow from graph 0, first " << end - 0.5 << " to graph 1, first " << end - 0.5
            << " nohead lc rgb 'black' lw 1 front\n";
    }
    r = end;
  }
  const size_t every = std::max<size_t>(1, step_list.size() / 8);
  for (size_t c = 0; c < step_list.size(); c += every) {
    xtics << (xtics.tellp() > 0 ? ", " : "") << "'" << step_list[c] << "' " << c;
  }
  // Fluctuation per method: mean over layers and seeds at each evaluation.
  auto f = db.prepare(
      "SELECT r.method, l.step, avg(l.value) FROM layer_stats l JOIN runs r ON r.id = l.run_id "
      "AND l.attempt = r.attempts WHERE l.split = 'valid' AND l.name = 'fluctuation' "
      "AND r.status = 'completed' AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.method, l.step ORDER BY r.method, l.step");
  f.bind(1, sweep);
  std::map<std::string, std::vector<std::pair<double, double>>> fluctuation;
  while (f.step()) fluctuation[f.get_text(0)].emplace_back(f.get_double(1), f.get_double(2));
  if (!fluctuation.empty()) write_series(base + "_fluctuation.dat", fluctuation);

  std::ostringstream body;
  body << "set multiplot\n"
       << "set origin 0," << (fluctuation.empty() ? "0" : "0.35") << "\nset size 1,"
       << (fluctuation.empty() ? "1" : "0.65") << "\n"
       << "set title 'Expert load over training (" << sweep_title(sweep)
       << ", valid split, mean over seeds); 1 = uniform share, 0 = dead (dark red)'\n"
       << "set xlabel 'training step (evaluations)'\nset ytics (" << ytics.str()
       << ") font ',8'\nset xtics (" << xtics.str() << ")\nset yrange [" << rows.size() - 0.5
       << ":-0.5]\n"  // the first row on top
       << lines.str() << "set cblabel 'load / uniform load'\nset cbrange [0:2]\n"
       << "set palette defined (0 '#67001f', 0.05 '#d6604d', 1 'white', 2 '#2166ac')\n"
       << "plot '" << base << ".dat' using 1:2:3 with image pixels notitle\n";
  if (!fluctuation.empty()) {
    body << "unset arrow\nunset ytics\nset ytics auto\nset yrange [*:*]\nset xtics auto\n"
         << "set origin 0,0\nset size 1,0.35\n"
         << "set title 'Routing fluctuation: share of probe tokens whose top-1 expert changed "
            "since the previous evaluation'\n"
         << "set xlabel 'training step'\nset ylabel 'fluctuation'\nset grid\n"
         << "set key outside right\nunset colorbox\n"
         << "plot for [i=0:" << fluctuation.size() - 1 << "] '" << base
         << "_fluctuation.dat' index i using 1:2 with linespoints lw 2 title columnheader(1)\n";
  }
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_reevals(const std::string& db_path, const std::string& sweep,
                         const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "reevals").string();
  auto s = db.prepare(
      "SELECT r.method, m.option, m.option_value, "
      "max(CASE WHEN m.name = 'accuracy' THEN m.value END), "
      "max(CASE WHEN m.name = 'tokens_per_s' THEN m.value END) "
      "FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts "
      "WHERE m.split = 'reeval' AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY m.run_id, m.option, m.option_value ORDER BY m.run_id, m.option_value");
  s.bind(1, sweep);
  std::map<std::string, std::map<double, std::pair<double, int>>> acc, tps;
  std::string option;
  while (s.step()) {
    option = s.get_text(1);
    auto& a = acc[s.get_text(0)][s.get_double(2)];
    a.first += s.get_double(3), a.second += 1;
    auto& t = tps[s.get_text(0)][s.get_double(2)];  // latency: ms per 1000 tokens
    t.first += s.get_double(4) > 0 ? 1e6 / s.get_double(4) : 0.0, t.second += 1;
  }
  if (acc.empty()) throw std::runtime_error("no re-evaluations (moe sweep eval) in " + db_path);
  auto means = [](const std::map<std::string, std::map<double, std::pair<double, int>>>& in) {
    std::map<std::string, std::vector<std::pair<double, double>>> out;
    for (const auto& [m, pts] : in) {
      for (const auto& [x, v] : pts) out[m].emplace_back(x, v.first / v.second);
    }
    return out;
  };
  // Accuracy as the change from each method's first value, in points: methods (tasks)
  // of very different accuracy then share one axis; the label keeps the level.
  std::map<std::string, std::vector<std::pair<double, double>>> delta;
  for (auto& [m, pts] : means(acc)) {
    std::ostringstream label;
    label << m << " (" << std::fixed << std::setprecision(4) << pts.front().second << " at "
          << option << "=" << std::defaultfloat << pts.front().first << ")";
    for (const auto& [x, y] : pts)
      delta[label.str()].emplace_back(x, 100 * (y - pts.front().second));
  }
  write_series(base + "_accuracy.dat", delta);
  write_series(base + "_latency.dat", means(tps));
  std::ostringstream body;
  body << "set multiplot layout 1,2 title 'Trained models re-evaluated at " << option << " ("
       << sweep_title(sweep) << "), mean over seeds'\n"
       << "set xlabel '" << option << " at evaluation'\nset grid\nset key top left font ',8'\n"
       << "set ylabel 'test accuracy change from the first value (points)'\n"
       << "plot for [i=0:" << acc.size() - 1 << "] '" << base
       << "_accuracy.dat' index i using 1:2 with linespoints pt 7 title columnheader(1)\n"
       << "set ylabel 'evaluation latency, ms per 1000 tokens'\nunset key\n"
       << "plot for [i=0:" << acc.size() - 1 << "] '" << base
       << "_latency.dat' index i using 1:2 with linespoints pt 7 title columnheader(1)\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

}  // namespace moe::results
