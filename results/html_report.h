#pragma once
// moe report: one self-contained HTML file per sweep (no network request, no external
// script): inline SVG plots, the per-method comparison table, trial status, the config
// keys that differ between methods, and the environment. Reads only the database.
#include <string>
#include <vector>

namespace moe::results {

struct ReportOptions {
  std::string db;
  std::vector<std::string> sweeps;  ///< empty = every sweep in the database
  std::string baseline;             ///< empty = compare_methods' default (first dense*)
  std::string out;                  ///< empty = results/report/<sweep>.html
};

/// Writes the report and returns its path. Throws for a missing database, an unknown sweep
/// (listing the known ones) or a database without runs.
std::string write_report(const ReportOptions& options);

/// The escaping rule for everything that comes from a database or a sweep file: & < > " '
/// become entities, so text can never open a tag or leave an attribute.
std::string html_escape(const std::string& text);

/// Makes gnuplot's SVG embeddable in HTML: drops the XML prolog and prefixes every id (and
/// every reference to one) with `prefix`, so several plots can share one page.
std::string inline_svg(const std::string& svg, const std::string& prefix);

}  // namespace moe::results
