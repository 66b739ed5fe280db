#include "results/compare.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include "results/plot_util.h"
#include "results/store.h"

namespace moe::results {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return "[" + out + "]";
}

std::string num(double v, int digits = 6) {
  if (std::isnan(v)) return "NULL";
  std::ostringstream o;
  o << std::setprecision(digits) << v;
  return o.str();
}

/// p-values: 3 significant digits; tiny ones in scientific notation.
std::string pval(double p) {
  if (std::isnan(p)) return "NULL";
  std::ostringstream o;
  o << std::setprecision(3) << p;
  return o.str();
}

}  // namespace

bool metric_higher_is_better(const std::string& m) {
  for (const char* low : {"loss", "perplexity", "seconds", "steps_to_target"}) {
    if (m.find(low) != std::string::npos) return false;
  }
  return true;
}

Comparison compare_methods(const std::string& db_path, const std::string& sweep_in,
                           const std::string& baseline_in, const std::string& metric,
                           const std::string& direction) {
  if (!std::filesystem::exists(db_path)) {
    throw DbError("database '" + db_path + "': no such file (run a sweep first)");
  }
  if (direction != "auto" && direction != "higher" && direction != "lower") {
    throw std::invalid_argument("--direction: expected one of [auto, higher, lower], got '" +
                                direction + "'");
  }
  Db db(db_path, true);
  detail::require_current_schema(db);
  Comparison c;
  c.metric = metric;
  c.higher_is_better =
      direction == "auto" ? metric_higher_is_better(metric) : direction == "higher";
  {
    std::vector<std::string> sweeps;
    auto s = db.prepare(
        "SELECT DISTINCT coalesce(sweep, '') FROM runs WHERE status = 'completed' ORDER BY 1");
    while (s.step()) sweeps.push_back(s.get_text(0));
    if (sweeps.empty()) throw DbError("database '" + db_path + "': no completed runs");
    if (sweep_in.empty() && sweeps.size() > 1) {
      throw std::invalid_argument(
          "database '" + db_path +
          "' holds several sweeps; choose one with --sweep; known: " + join(sweeps));
    }
    c.sweep = sweep_in.empty() ? sweeps[0] : sweep_in;
    if (std::find(sweeps.begin(), sweeps.end(), c.sweep) == sweeps.end()) {
      throw std::invalid_argument("--sweep '" + c.sweep + "': no completed runs in '" + db_path +
                                  "'; known: " + join(sweeps));
    }
  }
  // method -> seed -> (metric, nonembed active, flops)
  std::map<std::string, std::map<int64_t, std::array<double, 3>>> runs;
  std::set<std::string> names;
  {
    auto s = db.prepare(
        "SELECT r.method, r.seed, m.name, m.value, m.value_text FROM runs r "
        "JOIN metrics m ON m.run_id = r.id AND m.attempt = r.attempts AND m.split = 'final' "
        "WHERE r.status = 'completed' AND coalesce(r.sweep, '') = ?1");
    s.bind(1, c.sweep);
    while (s.step()) {
      const std::string name = s.get_text(2);
      names.insert(name);
      const int slot = name == metric                     ? 0
                       : name == "nonembed_active_params" ? 1
                       : name == "flops_per_token"        ? 2
                                                          : -1;
      if (slot < 0) continue;
      auto& row = runs[s.get_text(0)]
                      .try_emplace(s.get_int(1), std::array<double, 3>{NAN, NAN, NAN})
                      .first->second;
      row[slot] = decode_value(s, 3, 4);
    }
  }
  if (!names.count(metric)) {
    throw std::invalid_argument("--metric '" + metric + "': no completed run of sweep '" + c.sweep +
                                "' has it; known: " + join({names.begin(), names.end()}));
  }
  std::vector<std::string> methods;
  for (const auto& kv : runs) methods.push_back(kv.first);
  c.baseline = baseline_in;
  if (c.baseline.empty()) {
    auto it = std::find_if(methods.begin(), methods.end(),
                           [](const std::string& m) { return m.rfind("dense", 0) == 0; });
    c.baseline = it != methods.end() ? *it : methods.front();
  }
  if (!runs.count(c.baseline)) {
    throw std::invalid_argument("--baseline '" + c.baseline +
                                "': no completed runs of that method in sweep '" + c.sweep +
                                "'; known: " + join(methods));
  }
  std::vector<double> ps;
  const auto& base = runs[c.baseline];
  for (const auto& m : methods) {
    CompareRow row;
    row.method = m;
    row.baseline = m == c.baseline;
    std::vector<double> values, a, b, nonembed, flops;
    for (const auto& [seed, v] : runs[m]) {
      if (std::isnan(v[0])) continue;  // a run that lacks the metric (or NaN) is left out
      values.push_back(v[0]);
      row.seeds.push_back(seed);
      if (!std::isnan(v[1])) nonembed.push_back(v[1]);
      if (!std::isnan(v[2])) flops.push_back(v[2]);
      auto it = base.find(seed);
      if (!row.baseline && it != base.end() && !std::isnan(it->second[0])) {
        a.push_back(v[0]);
        b.push_back(it->second[0]);
      }
    }
    row.value = mean_ci95(values);
    row.nonembed_active_params = mean_ci95(nonembed).mean;
    row.flops_per_token = mean_ci95(flops).mean;
    if (!row.baseline) {
      row.pairs = a.size();
      row.test = paired_t_test(a, b);
      ps.push_back(row.test.p);
    }
    c.rows.push_back(row);
  }
  const auto adjusted = holm_adjust(ps);
  size_t k = 0;
  for (auto& row : c.rows) {
    if (row.baseline) {
      row.p_holm = NAN;
      row.verdict = "baseline";
      continue;
    }
    row.p_holm = adjusted[k++];
    const bool sig = !std::isnan(row.p_holm) && row.p_holm < 0.05;
    const bool up = row.test.diff.mean > 0;
    row.verdict = std::isnan(row.p_holm)       ? "too few pairs"
                  : !sig                       ? "n.s."
                  : (up == c.higher_is_better) ? "better"
                                               : "worse";
  }
  std::stable_partition(c.rows.begin(), c.rows.end(),
                        [](const CompareRow& r) { return r.baseline; });
  return c;
}

void print_comparison(const Comparison& c, QueryFormat format, std::ostream& out) {
  const std::vector<std::string> header = {"method",
                                           "n",
                                           "mean",
                                           "ci95_lo",
                                           "ci95_hi",
                                           "pairs",
                                           "diff",
                                           "diff_ci95_lo",
                                           "diff_ci95_hi",
                                           "p",
                                           "p_holm",
                                           "verdict",
                                           "nonembed_active_params",
                                           "flops_per_token"};
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<int>> types;
  for (const auto& r : c.rows) {
    const bool b = r.baseline;
    const double nan = NAN;
    std::vector<std::string> cells = {r.method,
                                      std::to_string(r.value.n),
                                      num(r.value.mean),
                                      num(r.value.lo),
                                      num(r.value.hi),
                                      b ? "NULL" : std::to_string(r.pairs),
                                      num(b ? nan : r.test.diff.mean),
                                      num(b ? nan : r.test.diff.lo),
                                      num(b ? nan : r.test.diff.hi),
                                      pval(b ? nan : r.test.p),
                                      pval(r.p_holm),
                                      r.verdict,
                                      num(r.nonembed_active_params, 7),
                                      num(r.flops_per_token, 7)};
    std::vector<int> t;
    for (size_t i = 0; i < cells.size(); ++i) {
      t.push_back(cells[i] == "NULL"    ? SQLITE_NULL
                  : (i == 0 || i == 11) ? SQLITE_TEXT
                                        : SQLITE_FLOAT);
    }
    rows.push_back(cells);
    types.push_back(t);
  }
  if (format == QueryFormat::kTable) {
    out << "sweep '" << c.sweep << "', metric " << c.metric << " ("
        << (c.higher_is_better ? "higher" : "lower") << " is better), baseline '" << c.baseline
        << "'; 95% CIs from Student's t; diff = method - baseline over shared seeds (paired "
           "t-test); p_holm = Holm-adjusted over "
        << (c.rows.empty() ? 0 : c.rows.size() - 1) << " comparison(s)\n";
  }
  print_rows(header, rows, types, format, out);
}

}  // namespace moe::results
