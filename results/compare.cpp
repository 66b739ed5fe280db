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

#include "core/text.h"
#include "results/plot_util.h"
#include "results/sqlite.h"
#include "results/store.h"

namespace moe::results {
namespace {

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
  for (const char* low :
       {"loss", "perplexity", "seconds", "steps_to_target", "load_cv", "load_max_over_mean",
        "load_top20_share", "dead_experts", "dropped_fraction"}) {
    if (m.find(low) != std::string::npos) return false;
  }
  return true;
}

namespace {

/// One completed run's final numbers.
struct RunValues {
  int64_t id = 0;  ///< runs.id
  std::string preset, context, tune;
  int64_t seed = 0;
  double value = NAN, tune_value = NAN, nonembed = NAN, flops = NAN;
};

std::vector<RunValues> read_runs(Db& db, const std::string& sweep, const std::string& metric,
                                 const std::string& tune_metric, std::set<std::string>* names) {
  std::map<int64_t, RunValues> runs;
  auto s = db.prepare(
      "SELECT r.id, coalesce(r.preset, r.method), coalesce(r.context, ''), coalesce(r.tune, ''), "
      "r.seed, m.name, m.value, m.value_text FROM runs r "
      "JOIN metrics m ON m.run_id = r.id AND m.attempt = r.attempts AND m.split = 'final' "
      "WHERE r.status = 'completed' AND coalesce(r.sweep, '') = ?1");
  s.bind(1, sweep);
  while (s.step()) {
    auto& r = runs[s.get_int(0)];
    r.preset = s.get_text(1);
    r.context = s.get_text(2);
    r.tune = s.get_text(3);
    r.seed = s.get_int(4);
    const std::string name = s.get_text(5);
    if (names) names->insert(name);
    const double v = decode_value(s, 6, 7);
    if (name == metric) r.value = v;
    if (name == tune_metric) r.tune_value = v;
    if (name == "nonembed_active_params") r.nonembed = v;
    if (name == "flops_per_token") r.flops = v;
  }
  std::vector<RunValues> out;
  for (auto& kv : runs) {
    kv.second.id = kv.first;
    out.push_back(std::move(kv.second));
  }
  return out;
}

/// Replaces each run's value by its per-layer statistic (NaN when it has none); the
/// statistic names the sweep's runs have in that split go to `names`. Only scalar
/// statistics (one value per layer): indexed series ('load' per expert, 'experts_hist'
/// per count, 'level_mean_experts' per level) have item or level set.
void read_layer_values(Db& db, const std::string& sweep, const LayerMetric& lm,
                       std::vector<RunValues>& runs, std::set<std::string>& names,
                       std::set<int64_t>& layers) {
  {
    auto s = db.prepare(
        "SELECT DISTINCT l.name, l.layer FROM layer_stats l JOIN runs r ON r.id = l.run_id AND "
        "l.attempt = r.attempts WHERE r.status = 'completed' AND coalesce(r.sweep, '') = ?1 AND "
        "l.split = ?2 AND l.item IS NULL AND l.level IS NULL");
    s.bind(1, sweep).bind(2, lm.split);
    while (s.step()) {
      names.insert(s.get_text(0));
      if (s.get_text(0) == lm.name) layers.insert(s.get_int(1));
    }
  }
  std::map<int64_t, RunValues*> by_id;
  for (auto& r : runs) {
    r.value = NAN;
    by_id[r.id] = &r;
  }
  // Each run's rows at the last step it evaluated that split.
  auto s = db.prepare(
      "SELECT l.run_id, l.layer, l.value, l.value_text FROM layer_stats l JOIN runs r ON r.id = "
      "l.run_id AND "
      "l.attempt = r.attempts WHERE r.status = 'completed' AND coalesce(r.sweep, '') = ?1 AND "
      "l.split = ?2 AND l.name = ?3 AND l.item IS NULL AND l.level IS NULL AND "
      "l.step = (SELECT max(l2.step) FROM layer_stats l2 WHERE "
      "l2.run_id = l.run_id AND l2.attempt = l.attempt AND l2.split = l.split AND l2.name = "
      "l.name) ORDER BY l.run_id, l.layer");
  s.bind(1, sweep).bind(2, lm.split).bind(3, lm.name);
  std::map<int64_t, std::vector<std::pair<int64_t, double>>> per_run;
  while (s.step()) {
    per_run[s.get_int(0)].emplace_back(s.get_int(1), decode_value(s, 2, 3));
  }
  for (const auto& [id, values] : per_run) {
    auto it = by_id.find(id);
    if (it == by_id.end()) continue;
    double v = NAN;
    if (lm.layer >= 0) {
      for (const auto& [layer, x] : values) {
        if (layer == lm.layer) v = x;
      }
    } else {
      double sum = 0, mx = -INFINITY;
      for (const auto& lv : values) sum += lv.second, mx = std::max(mx, lv.second);
      v = lm.reduce == "max" ? mx : sum / static_cast<double>(values.size());
    }
    it->second->value = v;
  }
}

std::string sweep_tune_metric(Db& db, const std::string& sweep) {
  auto s = db.prepare("SELECT coalesce(tune_metric, '') FROM sweeps WHERE name = ?1");
  s.bind(1, sweep);
  return s.step() ? s.get_text(0) : "";
}

std::vector<TunedChoice> choose(const std::vector<RunValues>& runs, const std::string& metric) {
  // (context, preset) -> tune -> values of the metric
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::vector<double>>> g;
  for (const auto& r : runs) {
    if (r.tune.empty()) continue;
    auto& v = g[{r.context, r.preset}][r.tune];
    if (std::isfinite(r.tune_value)) v.push_back(r.tune_value);
  }
  const bool higher = metric_higher_is_better(metric);
  std::vector<TunedChoice> out;
  for (const auto& [cp, cands] : g) {
    TunedChoice best;
    best.context = cp.first;
    best.preset = cp.second;
    best.metric = metric;
    best.candidates = static_cast<int64_t>(cands.size());
    bool have = false;
    for (const auto& [tune, values] : cands) {
      if (values.empty()) continue;
      const double score = mean_ci95(values).mean;
      const auto n = static_cast<int64_t>(values.size());
      // More completed seeds first (a value that diverged on some seeds is not chosen on
      // the survivors), then the better mean.
      const bool better = !have || n > best.n ||
                          (n == best.n && (higher ? score > best.score : score < best.score));
      if (better) {
        best.tune = tune;
        best.score = score;
        best.n = n;
        have = true;
      }
    }
    if (have) out.push_back(best);
  }
  return out;
}

}  // namespace

std::vector<TunedChoice> choose_tuned(Db& db, const std::string& sweep) {
  const std::string metric = sweep_tune_metric(db, sweep);
  if (metric.empty()) return {};
  return choose(read_runs(db, sweep, "", metric, nullptr), metric);
}

std::vector<TunedChoice> record_selections(Db& db, const std::string& sweep) {
  auto chosen = choose_tuned(db, sweep);
  Transaction tx(db);
  db.prepare("DELETE FROM selections WHERE sweep = ?1").bind(1, sweep).step();
  for (const auto& c : chosen) {
    db.prepare(
          "INSERT INTO selections(sweep, context, preset, tune, metric, score, n, candidates, "
          "chosen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        .bind(1, sweep)
        .bind(2, c.context)
        .bind(3, c.preset)
        .bind(4, c.tune)
        .bind(5, c.metric)
        .bind(6, c.score)
        .bind(7, c.n)
        .bind(8, c.candidates)
        .bind(9, now_seconds())
        .step();
  }
  tx.commit();
  return chosen;
}

Comparison compare_methods(const std::string& db_path, const std::string& sweep_in,
                           const std::string& baseline_in, const std::string& metric,
                           const std::string& direction, const LayerMetric* layer) {
  if (!std::filesystem::exists(db_path)) {
    throw DbError("database '" + db_path + "': no such file (run a sweep first)");
  }
  if (direction != "auto" && direction != "higher" && direction != "lower") {
    throw std::invalid_argument("--direction: expected one of [auto, higher, lower], got '" +
                                direction + "'");
  }
  detail::bring_to_current_schema(db_path);
  Db db(db_path, true);
  if (layer && layer->reduce != "mean" && layer->reduce != "max") {
    throw std::invalid_argument("--layer-reduce: expected one of [mean, max], got '" +
                                layer->reduce + "'");
  }
  Comparison c;
  c.metric = layer ? layer->label() : metric;
  c.higher_is_better = direction == "auto" ? metric_higher_is_better(layer ? layer->name : metric)
                                           : direction == "higher";
  {
    std::vector<std::string> sweeps;
    auto s = db.prepare(
        "SELECT DISTINCT coalesce(sweep, '') FROM runs WHERE status = 'completed' ORDER BY 1");
    while (s.step()) sweeps.push_back(s.get_text(0));
    if (sweeps.empty()) throw DbError("database '" + db_path + "': no completed runs");
    if (sweep_in.empty() && sweeps.size() > 1) {
      throw std::invalid_argument(
          "database '" + db_path +
          "' holds several sweeps; choose one with --sweep; known: " + list_of(sweeps));
    }
    c.sweep = sweep_in.empty() ? sweeps[0] : sweep_in;
    if (std::find(sweeps.begin(), sweeps.end(), c.sweep) == sweeps.end()) {
      throw std::invalid_argument("--sweep '" + c.sweep + "': no completed runs in '" + db_path +
                                  "'; known: " + list_of(sweeps));
    }
  }
  c.tune_metric = sweep_tune_metric(db, c.sweep);
  std::set<std::string> names;
  auto all = read_runs(db, c.sweep, layer ? "" : metric, c.tune_metric, &names);
  if (layer) {
    std::set<std::string> layer_names;
    std::set<int64_t> layers;
    read_layer_values(db, c.sweep, *layer, all, layer_names, layers);
    if (!layer_names.count(layer->name)) {
      throw std::invalid_argument("--layer-metric '" + layer->name +
                                  "': no completed run of sweep '" + c.sweep +
                                  "' has it in split '" + layer->split +
                                  "'; known: " + list_of({layer_names.begin(), layer_names.end()}));
    }
    if (layer->layer >= 0 && !layers.count(layer->layer)) {
      std::vector<std::string> known;
      for (auto l : layers) known.push_back(std::to_string(l));
      throw std::invalid_argument("--layer " + std::to_string(layer->layer) + ": sweep '" +
                                  c.sweep + "' has '" + layer->name + "' at MoE layers " +
                                  list_of(known) + " (0-based)");
    }
  } else if (!names.count(metric)) {
    throw std::invalid_argument("--metric '" + metric + "': no completed run of sweep '" + c.sweep +
                                "' has it; known: " + list_of({names.begin(), names.end()}));
  }
  // Tuned sweeps: each (context, method) keeps the runs of its chosen tune value.
  std::map<std::pair<std::string, std::string>, TunedChoice> chosen;
  for (const auto& t : choose(all, c.tune_metric)) chosen[{t.context, t.preset}] = t;
  // context -> method -> seed -> run
  std::map<std::string, std::map<std::string, std::map<int64_t, const RunValues*>>> runs;
  for (const auto& r : all) {
    if (!r.tune.empty()) {
      auto it = chosen.find({r.context, r.preset});
      if (it == chosen.end() || it->second.tune != r.tune) continue;
    }
    runs[r.context][r.preset][r.seed] = &r;
  }
  std::set<std::string> all_methods;
  for (const auto& [ctx, methods] : runs) {
    for (const auto& kv : methods) all_methods.insert(kv.first);
  }
  c.baseline = baseline_in;
  if (c.baseline.empty()) {
    auto it = std::find_if(all_methods.begin(), all_methods.end(),
                           [](const std::string& m) { return m.rfind("dense", 0) == 0; });
    c.baseline = it != all_methods.end() ? *it : *all_methods.begin();
  }
  // A context without the baseline (e.g. a sweep's [pretrain] trial, which is no method of
  // the grid) is left out and named; no context with it at all is an error.
  bool any = false;
  for (const auto& [ctx, methods] : runs) {
    if (methods.count(c.baseline)) {
      any = true;
      continue;
    }
    std::vector<std::string> here;
    for (const auto& kv : methods) here.push_back(kv.first);
    c.skipped.push_back((ctx.empty() ? std::string("(no context)") : ctx) + ": " + list_of(here));
  }
  if (!any) {
    throw std::invalid_argument("--baseline '" + c.baseline +
                                "': no completed runs of that method in sweep '" + c.sweep +
                                "'; known: " + list_of({all_methods.begin(), all_methods.end()}));
  }
  for (const auto& [ctx, methods] : runs) {
    if (!methods.count(c.baseline)) continue;
    std::vector<CompareRow> rows;
    std::vector<double> ps;
    const auto& base = methods.at(c.baseline);
    for (const auto& [m, seeds] : methods) {
      // A per-layer statistic: a method without MoE layers (dense) has nothing to compare.
      if (layer && std::none_of(seeds.begin(), seeds.end(),
                                [](const auto& kv) { return !std::isnan(kv.second->value); })) {
        if (m == c.baseline) {
          throw std::invalid_argument("--baseline '" + m + "' has no '" + layer->name +
                                      "' rows in split '" + layer->split +
                                      "' (a dense model has no MoE layer): choose a MoE method "
                                      "as --baseline");
        }
        if (std::find(c.without_layer_metric.begin(), c.without_layer_metric.end(), m) ==
            c.without_layer_metric.end()) {
          c.without_layer_metric.push_back(m);
        }
        continue;
      }
      CompareRow row;
      row.method = m;
      row.context = ctx;
      row.baseline = m == c.baseline;
      if (auto it = chosen.find({ctx, m}); it != chosen.end()) row.tuned = it->second;
      std::vector<double> values, a, b, nonembed, flops;
      for (const auto& [seed, r] : seeds) {
        if (std::isnan(r->value)) continue;  // a run that lacks the metric (or NaN) is left out
        values.push_back(r->value);
        row.seeds.push_back(seed);
        if (!std::isnan(r->nonembed)) nonembed.push_back(r->nonembed);
        if (!std::isnan(r->flops)) flops.push_back(r->flops);
        auto it = base.find(seed);
        if (!row.baseline && it != base.end() && !std::isnan(it->second->value)) {
          a.push_back(r->value);
          b.push_back(it->second->value);
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
      rows.push_back(row);
    }
    // Holm over the comparisons of this context: each context is its own question.
    const auto adjusted = holm_adjust(ps);
    size_t k = 0;
    for (auto& row : rows) {
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
    std::stable_partition(rows.begin(), rows.end(), [](const CompareRow& r) { return r.baseline; });
    c.rows.insert(c.rows.end(), rows.begin(), rows.end());
  }
  return c;
}

std::string LayerMetric::label() const {
  return "layer " + name + " (" + split + ", " +
         (layer >= 0 ? "layer " + std::to_string(layer) : reduce + " over layers") + ")";
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
                                           "flops_per_token",
                                           "context",
                                           "tuned",
                                           "tuned_score"};
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
                                      num(r.flops_per_token, 7),
                                      r.context,
                                      r.tuned.tune,
                                      r.tuned.tune.empty() ? "NULL" : num(r.tuned.score)};
    std::vector<int> t;
    for (size_t i = 0; i < cells.size(); ++i) {
      t.push_back(cells[i] == "NULL"                          ? SQLITE_NULL
                  : (i == 0 || i == 11 || i == 14 || i == 15) ? SQLITE_TEXT
                                                              : SQLITE_FLOAT);
    }
    rows.push_back(cells);
    types.push_back(t);
  }
  if (format == QueryFormat::kTable) {
    std::set<std::string> ctxs;
    for (const auto& r : c.rows) ctxs.insert(r.context);
    const size_t contexts = ctxs.size();
    out << "sweep '" << c.sweep << "', metric " << c.metric << " ("
        << (c.higher_is_better ? "higher" : "lower") << " is better), baseline '" << c.baseline
        << "'; 95% CIs from Student's t; diff = method - baseline over shared seeds (paired "
           "t-test); p_holm = Holm-adjusted over "
        << (c.rows.empty() ? 0 : c.rows.size() - contexts) << " comparison(s)"
        << (contexts > 1 ? ", within each of the " + std::to_string(contexts) +
                               " contexts (values of the sweep's other axes)"
                         : "");
    if (!c.tune_metric.empty()) {
      out << "; tuned: each method's [tune] value chosen by the best mean " << c.tune_metric
          << " over seeds (table selections)";
    }
    out << "\n";
    if (!c.skipped.empty()) {
      out << "not compared (no '" << c.baseline << "' runs there): " << list_of(c.skipped) << "\n";
    }
    if (!c.without_layer_metric.empty()) {
      out << "not compared (no rows of the layer metric, e.g. no MoE layers): "
          << list_of(c.without_layer_metric) << "\n";
    }
  }
  print_rows(header, rows, types, format, out);
}

}  // namespace moe::results
