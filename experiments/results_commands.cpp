// moe query | plot | merge: the results layer's commands (no training here).
#include <boost/program_options.hpp>

#include <iostream>

#include "experiments/cli_args.h"
#include "experiments/commands.h"
#include "results/report.h"

namespace po = boost::program_options;

namespace moe {

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
  const auto format = vm.count("csv")    ? results::QueryFormat::kCsv
                      : vm.count("json") ? results::QueryFormat::kJson
                                         : results::QueryFormat::kTable;
  results::run_query(db, sql, format, std::cout);
  return 0;
}

int plot_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe plot: draw figures from a results database with gnuplot (PNG and SVG)\n\n"
      "Usage: moe plot pareto|layers|curves|difficulty|experts|reevals|trainable|all\n"
      "                [--db PATH] [--sweep NAME] [--out DIR]\n\n"
      "  pareto      mean test accuracy vs mean active parameters per method, error bars over\n"
      "              seeds, and the Pareto front\n"
      "  layers      mean experts per token per MoE layer, and a layer x experts-used heatmap\n"
      "  curves      training loss against step for every run\n"
      "  difficulty  test accuracy per difficulty level for every method\n"
      "  experts     experts per token during training (methods whose count changes)\n"
      "  reevals     accuracy and eval latency of re-evaluated models vs the option value\n"
      "  trainable   test accuracy vs trainable-parameter percentage (fine-tuning sweeps)\n"
      "  all         every plot that the database has data for\n\nOptions");
  std::string kind, db, sweep, out;
  desc.add_options()("help,h", "show this help")("kind", po::value(&kind), "plot kind")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "sweep", po::value(&sweep)->default_value(""), "only this sweep (default: all)")(
      "out", po::value(&out)->default_value("results/plots"), "output directory");
  po::positional_options_description pos;
  pos.add("kind", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "kind"); rc >= 0) return rc;
  using Plot = std::string (*)(const std::string&, const std::string&, const std::string&);
  const std::vector<std::pair<std::string, Plot>> plots = {
      {"pareto", &results::plot_pareto},      {"layers", &results::plot_layers},
      {"curves", &results::plot_curves},      {"difficulty", &results::plot_difficulty},
      {"experts", &results::plot_experts},    {"reevals", &results::plot_reevals},
      {"trainable", &results::plot_trainable}};
  bool found = false;
  for (const auto& [name, fn] : plots) {
    if (kind != name && kind != "all") continue;
    found = true;
    try {
      std::cout << "wrote " << fn(db, sweep, out) << " (and .svg)\n";
    } catch (const std::runtime_error& e) {
      if (kind != "all") throw;
      std::cout << "skipped " << name << ": " << e.what() << "\n";
    }
  }
  if (!found) {
    throw std::invalid_argument(
        "unknown plot '" + kind +
        "'; known: [pareto, layers, curves, difficulty, experts, reevals, trainable, all]");
  }
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
