// moe query | plot | merge: the results layer's commands (no training here).
#include <boost/program_options.hpp>

#include <filesystem>
#include <functional>
#include <iostream>

#include "experiments/cli_args.h"
#include "experiments/commands.h"
#include "results/compare.h"
#include "results/html_report.h"
#include "results/report.h"

namespace po = boost::program_options;

namespace moe {
namespace {

/// --csv / --json / an aligned table.
results::QueryFormat output_format(const po::variables_map& vm) {
  return vm.count("csv")    ? results::QueryFormat::kCsv
         : vm.count("json") ? results::QueryFormat::kJson
                            : results::QueryFormat::kTable;
}

}  // namespace

int query_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe query: run one read-only SQL statement on a results database\n\n"
      "Usage: moe query [--db PATH] \"SQL\" [--csv | --json]\n"
      "Views: final (one row per run), by_method (mean ± std over seeds), pareto (accuracy\n"
      "vs active parameters front), layers (per-layer experts per token); tables: sweeps,\n"
      "runs, metrics, layer_stats (see results/README.md).\n\nOptions");
  std::string db, sql;
  desc.add_options()("help,h", "show this help")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "sql", po::value(&sql), "the statement")("csv", "CSV output")("json", "JSON output");
  po::positional_options_description pos;
  pos.add("sql", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "sql"); rc >= 0) return rc;
  const auto format = output_format(vm);
  results::run_query(db, sql, format, std::cout);
  return 0;
}

int plot_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe plot: draw figures from a results database with gnuplot (PNG and SVG)\n\n"
      "Usage: moe plot pareto|layers|load|routing|curves|valid|difficulty|experts|reevals|"
      "trainable|all\n"
      "                [--db PATH] [--sweep NAME] [--out DIR]\n\n"
      "  pareto      mean test accuracy vs mean non-embedding active parameters per method,\n"
      "              95% CI bars over seeds, and the Pareto front (--x, --error below);\n"
      "              sweeps with [tune] axes: each method at its chosen value\n"
      "  layers      mean experts per token per MoE layer, and a layer x experts-used heatmap\n"
      "  load        per-expert routing load per method and layer (heatmap; 0 = dead expert)\n"
      "  routing     per-expert load at every validation evaluation (method x layer x expert\n"
      "              heatmap over training; 0 = dead) and the routing fluctuation over training\n"
      "  curves      training loss against step for every run\n"
      "  valid       validation loss against training tokens per method, mean and 95% CI\n"
      "              band over seeds (tuned methods at their chosen value)\n"
      "  difficulty  test accuracy per difficulty level for every method\n"
      "  experts     experts per token during training (methods whose count changes)\n"
      "  reevals     accuracy and eval latency of re-evaluated models vs the option value\n"
      "  trainable   test accuracy vs trainable-parameter percentage (fine-tuning sweeps)\n"
      "  all         every plot that the database has data for\n\n"
      "pareto's x-axis (--x): nonembed_active_params (default: active parameters per token\n"
      "without the embedding tables, Kaplan et al.), active_params, flops_per_token; its\n"
      "error bars (--error): ci95 (default, Student t over seeds) or std.\n\nOptions");
  std::string kind, db, sweep, out, x, error;
  desc.add_options()("help,h", "show this help")("kind", po::value(&kind), "plot kind")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "sweep", po::value(&sweep)->default_value(""), "only this sweep (default: all)")(
      "out", po::value(&out)->default_value("results/plots"), "output directory")(
      "x", po::value(&x)->default_value("nonembed_active_params"),
      "pareto x-axis: nonembed_active_params | active_params | flops_per_token")(
      "error", po::value(&error)->default_value("ci95"), "pareto error bars: ci95 | std");
  po::positional_options_description pos;
  pos.add("kind", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "kind"); rc >= 0) return rc;
  using Plot =
      std::function<std::string(const std::string&, const std::string&, const std::string&)>;
  auto pareto = [&](const std::string& d, const std::string& s, const std::string& o) {
    return results::plot_pareto(d, s, o, x, error);
  };
  const std::vector<std::pair<std::string, Plot>> plots = {
      {"pareto", pareto},
      {"layers", &results::plot_layers},
      {"load", &results::plot_load},
      {"routing", &results::plot_routing},
      {"curves", &results::plot_curves},
      {"valid", &results::plot_valid_curves},
      {"difficulty", &results::plot_difficulty},
      {"experts", &results::plot_experts},
      {"reevals", &results::plot_reevals},
      {"trainable", &results::plot_trainable}};
  bool found = false;
  for (const auto& [name, fn] : plots) {
    if (kind != name && kind != "all") continue;
    found = true;
    try {
      const auto png = fn(db, sweep, out);  // a plot that throws prints no "wrote"
      std::cout << "wrote " << png << " (and .svg)\n";
    } catch (const std::runtime_error& e) {
      if (kind != "all") throw;
      std::cout << "skipped " << name << ": " << e.what() << "\n";
    }
  }
  if (!found) {
    throw std::invalid_argument(
        "unknown plot '" + kind +
        "'; known: [pareto, layers, load, routing, curves, valid, difficulty, experts, reevals, "
        "trainable, all]");
  }
  return 0;
}

int compare_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe compare: per-method mean and 95% CI over seeds, and paired comparisons against a\n"
      "baseline method (same seed = same data order and initialisation)\n\n"
      "Usage: moe compare [--db PATH] [--sweep NAME] [--baseline METHOD]\n"
      "                   [--metric NAME | --layer-metric NAME [--layer L | --layer-reduce R]\n"
      "                   [--split S]] [--csv | --json]\n\n"
      "Per method: n runs, mean, 95% CI (Student t); against the baseline over the seeds both\n"
      "have: the mean paired difference (method - baseline), its 95% CI, the two-sided paired\n"
      "t-test p, and p adjusted over all methods compared (Holm). verdict: better / worse\n"
      "(adjusted p < 0.05, in the metric's direction: loss, perplexity, seconds and steps are\n"
      "lower-is-better) or n.s. Reads completed runs' final metrics only.\n\n"
      "A method is the sweep's method axis (preset). Other grid axes make contexts (e.g.\n"
      "task.name=mod_sum): each context is compared to its own baseline row, Holm within it;\n"
      "a context without the baseline (e.g. a [pretrain] trial) is left out and named.\n"
      "Sweeps with [tune] axes compare each method at its chosen value (the best mean\n"
      "validation metric over seeds, recorded by `moe sweep run` in table selections): see\n"
      "columns tuned and tuned_score.\n\n"
      "--layer-metric compares a per-MoE-layer routing statistic instead (table layer_stats:\n"
      "load_max_over_mean, load_cv, load_top20_share, dead_experts, mean_experts,\n"
      "experts_p90, entropy, saturation, dropped_fraction, ...) at each run's last evaluation\n"
      "of --split, at one layer (--layer, 0-based among MoE layers) or reduced over the\n"
      "layers (--layer-reduce mean | max), with the same pairing, CIs and Holm. load_*,\n"
      "dead_experts and dropped_fraction are lower-is-better (--direction to change);\n"
      "methods without MoE layers are left out and named (choose a MoE --baseline).\n\nOptions");
  std::string db, sweep, baseline, metric, direction, layer_metric, split, reduce;
  int64_t layer = -1;
  desc.add_options()("help,h", "show this help")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "sweep", po::value(&sweep)->default_value(""),
      "sweep name (default: the database's only sweep)")(
      "baseline", po::value(&baseline)->default_value(""),
      "method to compare against (default: the first 'dense*' method, else the first)")(
      "metric", po::value(&metric)->default_value("test_accuracy"),
      "final metric: test_accuracy, test_loss, test_perplexity, valid_accuracy, ...")(
      "direction", po::value(&direction)->default_value("auto"),
      "auto | higher | lower: which way is better")(
      "layer-metric", po::value(&layer_metric)->default_value(""),
      "compare this per-layer statistic instead of a final metric")(
      "layer", po::value(&layer)->default_value(-1),
      "with --layer-metric: this MoE layer (0-based); -1 = reduce over layers")(
      "layer-reduce", po::value(&reduce)->default_value("mean"),
      "with --layer-metric and no --layer: mean | max over the MoE layers")(
      "split", po::value(&split)->default_value("test"),
      "with --layer-metric: the evaluation split (test | valid)")("csv", "CSV output")(
      "json", "JSON output");
  po::positional_options_description pos;
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, ""); rc >= 0) return rc;
  const auto format = output_format(vm);
  if (layer_metric.empty()) {
    for (const char* only : {"layer", "layer-reduce", "split"}) {
      if (!vm[only].defaulted()) {
        throw std::invalid_argument(std::string("--") + only + " needs --layer-metric NAME");
      }
    }
  } else if (!vm["metric"].defaulted()) {
    throw std::invalid_argument("give --metric or --layer-metric, not both");
  }
  if (!vm["layer"].defaulted() && !vm["layer-reduce"].defaulted()) {
    throw std::invalid_argument("give --layer L or --layer-reduce mean|max, not both");
  }
  if (layer < -1)
    throw std::invalid_argument("--layer: expected >= 0, got " + std::to_string(layer));
  results::LayerMetric lm{layer_metric, split, layer, reduce};
  const auto c = results::compare_methods(db, sweep, baseline, metric, direction,
                                          layer_metric.empty() ? nullptr : &lm);
  results::print_comparison(c, format, std::cout);
  return 0;
}

int report_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe report: write one self-contained HTML page per sweep (opens offline, fetches\n"
      "nothing): trial status with failure messages, the per-method table (mean, 95% CI,\n"
      "paired difference against the baseline, p and Holm-adjusted p), inline SVG plots\n"
      "(Pareto, layers, load, curves, difficulty, ...), the configuration keys that differ\n"
      "between methods, and the environment. Reads only the database.\n\n"
      "Usage: moe report [--db PATH] [--sweep NAME ...] [--baseline METHOD] [--out "
      "FILE]\n\nOptions");
  std::string db, baseline, out;
  std::vector<std::string> sweeps;
  desc.add_options()("help,h", "show this help")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "sweep", po::value(&sweeps)->multitoken(), "sweep(s) to report (default: every sweep)")(
      "baseline", po::value(&baseline)->default_value(""),
      "method to compare against (default: the first 'dense*' method, else the first)")(
      "out", po::value(&out)->default_value(""),
      "output file (default: results/report/<sweep>.html)");
  po::positional_options_description pos;
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, ""); rc >= 0) return rc;
  const auto path = results::write_report({db, sweeps, baseline, out});
  std::cout << "wrote " << path << " (" << std::filesystem::file_size(path) / 1024
            << " KiB; open it in any browser, no network needed)\n";
  return 0;
}

int merge_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe merge: join shard databases into one (completed beats failed, no duplicates)\n\n"
      "Usage: moe merge OUT.sqlite IN.sqlite...\n\nOptions");
  std::vector<std::string> files;
  desc.add_options()("help,h", "show this help")("files", po::value(&files), "OUT then inputs");
  po::positional_options_description pos;
  pos.add("files", -1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "files"); rc >= 0) return rc;
  if (files.size() < 2) {
    std::cout << desc;
    return 2;
  }
  const std::vector<std::string> inputs(files.begin() + 1, files.end());
  const auto n = results::merge_databases(files[0], inputs);
  std::cout << "merged " << inputs.size() << " database(s) into " << files[0] << ": " << n
            << " run(s) copied\n";
  return 0;
}

}  // namespace moe
