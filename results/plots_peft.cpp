// Plot of fine-tuning sweeps: quality against the share of trainable parameters.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "results/plot_util.h"
#include "results/report.h"

namespace moe::results {
using namespace detail;

std::string plot_trainable(const std::string& db_path, const std::string& sweep,
                           const std::string& out_dir) {
  Db db = open_for_plot(db_path, out_dir);
  const std::string base = (std::filesystem::path(out_dir) / "trainable").string();
  auto s = db.prepare(
      "SELECT r.method, max(CASE WHEN m.name = 'test_accuracy' THEN m.value END), "
      "max(CASE WHEN m.name = 'trainable_percent' THEN m.value END) "
      "FROM runs r JOIN metrics m ON m.run_id = r.id AND m.attempt = r.attempts AND m.split = "
      "'final' "
      "WHERE r.status = 'completed' AND r.method != 'pretrain' AND (?1 = '' OR r.sweep = ?1) "
      "GROUP BY r.id");
  s.bind(1, sweep);
  // panel (the label after the method name, e.g. "task=brown_pos") -> method -> runs
  std::map<std::string, std::map<std::string, std::vector<std::pair<double, double>>>> runs;
  while (s.step()) {
    if (s.type(1) == SQLITE_NULL || s.type(2) == SQLITE_NULL) continue;
    const auto label = s.get_text(0);
    const auto cut = label.find(' ');
    const auto panel = cut == std::string::npos ? std::string() : label.substr(cut + 1);
    runs[panel][label.substr(0, cut)].emplace_back(s.get_double(2), s.get_double(1));
  }
  if (runs.empty()) {
    throw std::runtime_error("no completed runs with trainable_percent in " + db_path);
  }
  bool frozen = false;  // a sweep where everything trains has nothing to show here
  for (const auto& [panel, methods] : runs)
    for (const auto& [method, pts] : methods)
      for (const auto& pt : pts) frozen |= pt.first < 100;
  if (!frozen) {
    throw std::runtime_error("no fine-tuning runs (every run trains all its parameters)" +
                             (sweep.empty() ? "" : " in sweep '" + sweep + "'"));
  }
  std::ofstream dat(base + ".dat");
  for (const auto& [panel, methods] : runs) {
    dat << "# " << panel << "\n";
    for (const auto& [method, pts] : methods) {
      double pct = 0, acc = 0, sq = 0;
      for (const auto& [p, a] : pts) pct += p, acc += a;
      pct /= pts.size(), acc /= pts.size();
      for (const auto& pa : pts) sq += (pa.second - acc) * (pa.second - acc);
      const double sd = pts.size() > 1 ? std::sqrt(sq / (pts.size() - 1)) : 0.0;
      dat << "\"" << sanitize(method) << "\"\t" << pct << "\t" << acc << "\t" << sd << "\n";
    }
    dat << "\n\n";
  }
  dat.close();
  std::ostringstream body;
  body << "set multiplot layout 1," << runs.size() << " title 'Test accuracy vs trainable "
       << "parameters (" << sweep_title(sweep) << "); error bars: std over seeds'\n"
       << "set logscale x\nset grid\nset xlabel 'trainable parameters, % of the model'\n"
       << "set ylabel 'test accuracy'\nset offsets graph 0.1, graph 0.15, graph 0.1, graph 0.1\n";
  int64_t i = 0;
  for (const auto& kv : runs) {
    body << "set title '" << sanitize(kv.first) << "'\n"
         << "plot '" << base << ".dat' index " << i
         << " using 2:3:4 with yerrorbars pt 7 notitle, \\\n"
         << "     '' index " << i << " using 2:3:1 with labels offset 0,1 font ',8' notitle\n";
    ++i;
  }
  run_gnuplot(base, body.str());
  return base + ".png";
}

}  // namespace moe::results
