// Plots of sweep results: Pareto front, layers, training curves, difficulty.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "results/plot_util.h"
#include "results/report.h"
#include "results/stats.h"
#include "results/store.h"

namespace moe::results {
using namespace detail;

namespace detail {

std::string tic_label(const std::string& label) {
  std::string out;
  for (char c : label)
    out += c == '%' ? std::string("%%") : c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

Heatmap read_heatmap(Stmt& s) {
  Heatmap h;
  while (s.step()) {
    const std::string label = sanitize(s.get_text(0)) + "/L" + std::to_string(s.get_int(1));
    if (h.rows.empty() || h.rows.back() != label) h.rows.push_back(label);
    h.cells[label][s.get_int(2)] = s.get_double(3);
    h.max_col = std::max(h.max_col, s.get_int(2));
  }
  return h;
}

std::string write_heatmap(
    const std::string& path, const Heatmap& h,
    const std::function<std::string(const std::map<int64_t, double>&, int64_t)>& cell) {
  std::ofstream dat(path);
  static const std::map<int64_t, double> kEmpty;
  for (size_t row = 0; row < h.rows.size(); ++row) {
    auto it = h.cells.find(h.rows[row]);
    const auto& r = it == h.cells.end() ? kEmpty : it->second;
    for (int64_t c = 0; c <= h.max_col; ++c) dat << c << "\t" << row << "\t" << cell(r, c) << "\n";
    dat << "\n";
  }
  std::ostringstream ytics;
  for (size_t i = 0; i < h.rows.size(); ++i)
    ytics << (i ? ", " : "") << "'" << tic_label(h.rows[i]) << "' " << i;
  return ytics.str();
}

}  // namespace detail

namespace {
/// SQL over `runs r`: a run's method label, its preset and the other grid axes' values.
constexpr const char* kMethodLabel =
    "CASE WHEN r.preset IS NULL THEN r.method ELSE r.preset || CASE WHEN coalesce(r.context, "
    "'') = '' THEN '' ELSE ' ' || r.context END END";
/// SQL over `runs r`: the run is at the value its sweep chose for its [tune] axes.
constexpr const char* kIsChosenTune =
    "EXISTS (SELECT 1 FROM selections c WHERE c.sweep = r.sweep AND c.context = "
    "coalesce(r.context, '') AND c.preset = coalesce(r.preset, r.method) AND c.tune = r.tune)";
}  // namespace

const std::vector<std::string>& pareto_x_choices() {
  static const std::vector<std::string> k = {"nonembed_active_params", "active_params",
                                             "flops_per_token"};
  return k;
}

std::string plot_pareto(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir, const std::string& x,
                        const std::string& error) {
  const auto& xs = pareto_x_choices();
  if (std::find(xs.begin(), xs.end(), x) == xs.end()) {
    throw std::invalid_argument("--x '" + x +
                                "': expected one of [nonembed_active_params, active_params, "
                                "flops_per_token]");
  }
  if (error != "ci95" && error != "std") {
    throw std::invalid_argument("--error '" + error + "': expected one of [ci95, std]");
  }
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "pareto").string();
  // x is one of three column names checked above, never user text.
  // Tuned sweeps: each method at its chosen [tune] value only (table selections).
  auto s = db.prepare("SELECT coalesce(f.sweep, ''), " + std::string(kMethodLabel) +
                      ", f.test_accuracy, f." + x +
                      " FROM final f JOIN runs r ON r.id = f.run_id WHERE f.status = "
                      "'completed' AND f.test_accuracy IS NOT NULL AND f." +
                      x +
                      " IS NOT NULL AND (?1 = '' OR f.sweep = ?1) AND (coalesce(r.tune, '') = "
                      "'' OR " +
                      kIsChosenTune + ")");
  s.bind(1, sweep);
  std::map<std::pair<std::string, std::string>, std::pair<std::vector<double>, std::vector<double>>>
      runs;
  std::set<std::string> sweeps;
  while (s.step()) {
    auto& r = runs[{s.get_text(0), s.get_text(1)}];
    r.first.push_back(s.get_double(2));
    r.second.push_back(s.get_double(3));
    sweeps.insert(s.get_text(0));
  }
  if (runs.empty()) {
    throw std::runtime_error("no completed runs with " + x +
                             (sweep.empty() ? "" : " in sweep '" + sweep + "'") + " in " + db_path +
                             (x == "nonembed_active_params"
                                  ? " (runs before moe-lab recorded it: use --x active_params)"
                                  : ""));
  }
  struct Point {
    std::string label;
    double x, y, err;
    size_t n;
  };
  std::vector<Point> pts;
  for (const auto& [key, v] : runs) {
    const auto acc = mean_ci95(v.first);
    const double err = error == "std" ? acc.sd : (acc.n > 1 ? acc.hi - acc.mean : 0.0);
    pts.push_back({sweeps.size() > 1 ? key.first + "/" + key.second : key.second,
                   mean_ci95(v.second).mean, acc.mean, err, acc.n});
  }
  std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
  std::ofstream dat(base + ".dat");
  dat << "# method\t" << x << "\ttest_accuracy\t" << error << "\tn\n";
  for (const auto& p : pts) {
    dat << "\"" << sanitize(p.label) << "\"\t" << p.x << "\t" << p.y << "\t" << p.err << "\t" << p.n
        << "\n";
  }
  dat.close();
  // The front: methods no other method beats on both axes (ties on x keep the best).
  std::ofstream front(base + "_front.dat");
  double best = -INFINITY;
  for (size_t i = 0; i < pts.size(); ++i) {
    bool dominated = pts[i].y <= best;
    for (size_t j = i + 1; j < pts.size() && pts[j].x == pts[i].x; ++j)
      dominated |= pts[j].y > pts[i].y;
    if (!dominated) {
      front << pts[i].x << "\t" << pts[i].y << "\n";
      best = pts[i].y;
    }
  }
  front.close();
  const std::string xlabel =
      x == "nonembed_active_params" ? "non-embedding active parameters per token"
      : x == "active_params"        ? "active parameters per token (embeddings included)"
                                    : "forward FLOPs per token";
  const std::string bars = error == "std" ? "std over seeds" : "95% CI over seeds (Student t)";
  std::ostringstream body;
  body << "set title 'Accuracy vs " << (x == "flops_per_token" ? "compute" : "active parameters")
       << " (" << sweep_title(sweep) << "); error bars: " << bars << "'\n"
       << "set xlabel '" << xlabel << "'\nset ylabel 'test accuracy'\n"
       << "set format x '%.0s%c'\nset grid\nset key bottom right\n"
       << "set offsets graph 0.08, graph 0.08, graph 0.1, graph 0.1\n"
       << "plot '" << base
       << "_front.dat' using 1:2 with lines dt 2 lc rgb '#888888' title 'Pareto front', \\\n"
       << "     '" << base << ".dat' using 2:3:4 with yerrorbars pt 7 ps 1.3 title 'method (mean, "
       << (error == "std" ? "± std" : "95% CI") << ")', \\\n"
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
      "SELECT r.method, l.layer, l.item AS n, avg(l.value) "
      "FROM layer_stats l JOIN runs r ON r.id = l.run_id AND l.attempt = r.attempts "
      "WHERE l.split = 'test' AND l.name = 'experts_hist' AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.method, l.layer, n ORDER BY r.method, l.layer, n");
  h.bind(1, sweep);
  const auto grid = read_heatmap(h);
  const std::string ytics =
      write_heatmap(base + "_hist.dat", grid, [](const std::map<int64_t, double>& r, int64_t n) {
        return std::to_string(r.count(n) ? r.at(n) : 0.0);  // 0 where absent
      });
  std::ostringstream body;
  body << "set multiplot layout 1,2 title 'Experts per token by layer (" << sweep_title(sweep)
       << ", test split)'\n"
       << "set xlabel 'MoE layer'\nset ylabel 'mean experts per token'\nset grid\n"
       << "set key top right\nset xtics 1\n"
       << "plot for [i=0:" << lines.size() - 1 << "] '" << base
       << ".dat' index i using 1:2 with linespoints pt 7 title columnheader(1)\n"
       << "unset grid\nset xlabel 'experts used by a token'\nset ylabel ''\n"
       << "set ytics (" << ytics << ")\nset cblabel 'share of tokens'\n"
       << "set cbrange [0:1]\nset palette defined (0 'white', 1 '#1b6ca8')\n"
       << "plot '" << base << "_hist.dat' using 1:2:3 with image pixels notitle\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_load(const std::string& db_path, const std::string& sweep,
                      const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "load").string();
  // Share of selected slots per expert at the test evaluation, mean over seeds.
  auto h = db.prepare(
      "SELECT r.method, l.layer, l.item AS e, avg(l.value) "
      "FROM layer_stats l JOIN runs r ON r.id = l.run_id AND l.attempt = r.attempts "
      "WHERE l.split = 'test' AND l.name = 'load' AND r.status = 'completed' "
      "AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.method, l.layer, e ORDER BY r.method, l.layer, e");
  h.bind(1, sweep);
  const auto grid = read_heatmap(h);
  if (grid.rows.empty()) {
    throw std::runtime_error("no per-expert load (MoE runs) in " + db_path +
                             (sweep.empty() ? "" : " for sweep '" + sweep + "'"));
  }
  // Relative to a uniform share (1 = balanced, 0 = dead); NaN (blank) past a method's own
  // expert count.
  const std::string ytics =
      write_heatmap(base + ".dat", grid, [](const std::map<int64_t, double>& r, int64_t e) {
        const double experts = static_cast<double>(r.empty() ? 1 : r.rbegin()->first + 1);
        return r.count(e) ? std::to_string(r.at(e) * experts) : std::string("NaN");
      });
  std::ostringstream body;
  body << "set title 'Routing load per expert (" << sweep_title(sweep)
       << ", test split, mean over seeds); 1 = uniform share, 0 = dead'\n"
       << "set xlabel 'expert'\nset ytics (" << ytics << ")\nset xtics 1\n"
       << "set cblabel 'load / uniform load (2+ = dark)'\nset cbrange [0:2]\n"
       << "set palette defined (0 '#b2182b', 1 'white', 2 '#2166ac')\n"
       << "plot '" << base << ".dat' using 1:2:3 with image pixels notitle\n";
  run_gnuplot(base, body.str());
  return base + ".png";
}

std::string plot_curves(const std::string& db_path, const std::string& sweep,
                        const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "curves").string();
  auto s = db.prepare(
      "SELECT r.method || ' seed ' || r.seed, m.step, m.value FROM metrics m "
      "JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts WHERE m.split = 'train' AND "
      "m.name = 'loss' "
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

std::string plot_valid_curves(const std::string& db_path, const std::string& sweep,
                              const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "valid").string();
  // Tuned sweeps: each method at its chosen [tune] value only (table selections); before the
  // sweep has chosen (still running), every value as its own line. Training tokens = step x
  // train.batch_size x task.seq_len when the run's config names both. With train.eval_batches
  // the evaluations during training see the split's first batches and the final one all of
  // it: the final point is left out so that a curve never mixes the two.
  const std::string unchosen = "NOT EXISTS (SELECT 1 FROM selections c WHERE c.sweep = r.sweep)";
  auto s = db.prepare(
      "SELECT " + std::string(kMethodLabel) + " || CASE WHEN coalesce(r.tune, '') != '' AND " +
      unchosen +
      " THEN ' ' || r.tune ELSE '' END, m.step, m.value, json_extract(r.config, "
      "'$.train.batch_size') * json_extract(r.config, '$.task.seq_len') FROM metrics m JOIN "
      "runs r ON r.id = m.run_id AND m.attempt = r.attempts WHERE m.split = 'valid' AND m.name = "
      "'loss' AND r.status = 'completed' AND (?1 = '' OR r.sweep = ?1) AND (coalesce(r.tune, '') "
      "= '' OR " +
      kIsChosenTune + " OR " + unchosen +
      ") AND NOT (coalesce(json_extract(r.config, '$.train.eval_batches'), 0) > 0 AND m.step = "
      "json_extract(r.config, '$.train.steps')) ORDER BY 1, m.step");
  s.bind(1, sweep);
  // method -> step -> (values over runs, tokens per step of each)
  std::map<std::string, std::map<int64_t, std::vector<double>>> values;
  std::map<std::string, double> tokens_per_step;
  bool all_tokens = true;
  while (s.step()) {
    values[s.get_text(0)][s.get_int(1)].push_back(s.get_double(2));
    if (s.is_null(3)) {
      all_tokens = false;
    } else {
      tokens_per_step[s.get_text(0)] = s.get_double(3);
    }
  }
  if (values.empty()) {
    throw std::runtime_error("no validation losses of completed runs in " + db_path +
                             " (train.eval_every sets how often runs evaluate)");
  }
  std::ofstream dat(base + ".dat");
  std::ostringstream plot;
  int block = 0;
  for (const auto& [method, by_step] : values) {
    dat << "# " << sanitize(method) << ": x, mean, lo, hi, n\n";
    size_t n_max = 0;
    for (const auto& [step, v] : by_step) {
      const auto ci = mean_ci95(v);
      n_max = std::max(n_max, ci.n);
      const double x = all_tokens ? static_cast<double>(step) * tokens_per_step[method]
                                  : static_cast<double>(step);
      dat << x << "\t" << ci.mean << "\t" << (ci.n > 1 ? ci.lo : ci.mean) << "\t"
          << (ci.n > 1 ? ci.hi : ci.mean) << "\t" << ci.n << "\n";
    }
    dat << "\n\n";
    const std::string idx = std::to_string(block);
    const std::string color = std::to_string(block + 1);
    plot << (block ? ", \\\n  " : "plot ") << "'" << base << ".dat' index " << idx
         << " using 1:3:4 with filledcurves lc " << color << " fs transparent solid 0.2 notitle, "
         << "'' index " << idx << " using 1:2 with lines lw 2 lc " << color << " title '"
         << tic_label(sanitize(method)) << " (n=" << n_max << ")'";
    ++block;
  }
  dat.close();
  std::ostringstream body;
  body << "set title 'Validation loss (" << sweep_title(sweep)
       << "; mean and 95% CI over seeds, tuned methods at their chosen value)'\n"
       << "set xlabel '" << (all_tokens ? "training tokens" : "step") << "'\n"
       << "set ylabel 'validation loss'\nset grid\nset key top right\n"
       << plot.str() << "\n";
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
      "SELECT r.method, m.level, avg(m.value), min(m.rowid) AS o "
      "FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts "
      "WHERE m.split = 'test' AND m.name = 'level_accuracy' AND r.status = 'completed' "
      "AND (?1 = '' OR r.sweep = ?1) GROUP BY r.method, m.level ORDER BY r.method, o");
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
  for (size_t i = 0; i < levels.size(); ++i)
    xtics << (i ? ", " : "") << "'" << tic_label(levels[i]) << "' " << i;
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
