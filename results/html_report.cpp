#include "results/html_report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "core/text.h"
#include "results/compare.h"
#include "results/plot_util.h"
#include "results/report.h"
#include "results/store.h"

namespace moe::results {
namespace {

std::string num(double v, int digits = 4) {
  if (std::isnan(v)) return "";
  std::ostringstream o;
  o << std::setprecision(digits) << v;
  return o.str();
}

/// Fixed decimals for accuracies and differences.
std::string fixed(double v, int decimals) {
  if (std::isnan(v)) return "";
  std::ostringstream o;
  o << std::fixed << std::setprecision(decimals) << v;
  return o.str();
}

std::string utc(double seconds) {
  if (!(seconds > 0)) return "";
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s)
    out +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out.empty() ? "report" : out;
}

/// A cell: escaped text, optional numeric sort key.
struct Cell {
  std::string text;
  double sort = NAN;
};

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<Cell>>& rows, const std::string& cls = "sortable") {
  std::ostringstream o;
  o << "<div class=\"scroll\"><table class=\"" << cls << "\"><thead><tr>";
  for (const auto& h : header) o << "<th>" << html_escape(h) << "</th>";
  o << "</tr></thead><tbody>\n";
  for (const auto& r : rows) {
    o << "<tr>";
    for (const auto& c : r) {
      o << "<td";
      if (c.text.size() > 40) o << " class=\"wrap\"";
      if (!std::isnan(c.sort)) o << " data-v=\"" << std::setprecision(17) << c.sort << "\"";
      o << ">" << html_escape(c.text) << "</td>";
    }
    o << "</tr>\n";
  }
  o << "</tbody></table></div>\n";
  return o.str();
}

void flatten(const nlohmann::json& j, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

std::string comparison_section(const std::string& db, const std::string& sweep,
                               const std::string& baseline, const std::string& metric) {
  Comparison c;
  try {
    c = compare_methods(db, sweep, baseline, metric);
  } catch (const std::exception& e) {
    return "<p class=\"note\">No comparison on " + html_escape(metric) + ": " +
           html_escape(e.what()) + "</p>\n";
  }
  const int d = metric.find("accuracy") != std::string::npos ? 4 : 3;
  std::vector<std::vector<Cell>> rows;
  for (const auto& r : c.rows) {
    const std::string ci =
        r.value.n > 1 ? "[" + fixed(r.value.lo, d) + ", " + fixed(r.value.hi, d) + "]" : "";
    std::vector<Cell> row = {{r.method},
                             {std::to_string(r.value.n), double(r.value.n)},
                             {fixed(r.value.mean, d), r.value.mean},
                             {ci, r.value.lo}};
    if (r.baseline) {
      row.insert(row.end(), {{"baseline"}, {""}, {""}, {""}, {"baseline"}});
    } else {
      const auto& t = r.test;
      const std::string sign = t.diff.mean > 0 ? "+" : "";
      row.push_back(
          {r.pairs ? sign + fixed(t.diff.mean, d) + " (" + std::to_string(r.pairs) + " pairs)" : "",
           t.diff.mean});
      row.push_back(
          {r.pairs > 1 ? "[" + fixed(t.diff.lo, d) + ", " + fixed(t.diff.hi, d) + "]" : "",
           t.diff.lo});
      row.push_back({num(t.p, 3), t.p});
      row.push_back({num(r.p_holm, 3), r.p_holm});
      row.push_back({r.verdict});
    }
    row.push_back({num(r.nonembed_active_params, 6), r.nonembed_active_params});
    row.push_back({num(r.flops_per_token, 6), r.flops_per_token});
    rows.push_back(row);
  }
  std::ostringstream o;
  o << "<h3>" << html_escape(metric) << " (" << (c.higher_is_better ? "higher" : "lower")
    << " is better; baseline " << html_escape(c.baseline) << ")</h3>\n"
    << table({"method", "n", "mean", "95% CI", "diff vs baseline", "diff 95% CI", "p", "p (Holm)",
              "verdict", "non-embedding active params", "FLOPs/token"},
             rows);
  return o.str();
}

using PlotFn = std::string (*)(const std::string&, const std::string&, const std::string&);

/// Non-embedding active parameters; runs recorded before moe-lab stored them fall back to
/// active parameters (embeddings included), and the axis label says so.
std::string pareto_default(const std::string& d, const std::string& s, const std::string& o) {
  try {
    return plot_pareto(d, s, o);
  } catch (const std::runtime_error&) {
    return plot_pareto(d, s, o, "active_params");
  }
}

std::string plots_section(const std::string& db, const std::string& sweep, const std::string& tmp,
                          int& plot_id) {
  const std::vector<std::tuple<std::string, std::string, PlotFn>> plots = {
      {"pareto",
       "Accuracy against active parameters per token (95% CI over seeds; the x-axis names the "
       "count)",
       &pareto_default},
      {"layers", "Experts per token by MoE layer", &plot_layers},
      {"load", "Routing load per expert", &plot_load},
      {"valid", "Validation loss against training tokens (95% CI over seeds)", &plot_valid_curves},
      {"curves", "Training loss", &plot_curves},
      {"difficulty", "Accuracy by difficulty level", &plot_difficulty},
      {"experts", "Experts per token during training", &plot_experts},
      {"reevals", "Re-evaluations at router inference settings", &plot_reevals},
      {"trainable", "Accuracy against trainable parameters", &plot_trainable}};
  std::ostringstream o, skipped;
  for (const auto& [name, caption, fn] : plots) {
    try {
      fn(db, sweep, tmp);
      std::ifstream in(std::filesystem::path(tmp) / (name + ".svg"));
      const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      o << "<figure id=\"plot-" << name << "\">"
        << inline_svg(svg, "p" + std::to_string(plot_id++) + "_") << "<figcaption>"
        << html_escape(caption) << "</figcaption></figure>\n";
    } catch (const std::exception& e) {
      skipped << "<li>" << html_escape(name) << ": " << html_escape(e.what()) << "</li>";
    }
  }
  if (!skipped.str().empty())
    o << "<details><summary>plots not drawn</summary><ul>" << skipped.str() << "</ul></details>\n";
  return o.str();
}

std::string status_section(Db& db, const std::string& sweep) {
  std::ostringstream o;
  std::vector<std::vector<Cell>> rows;
  auto s = db.prepare(
      "SELECT status, count(*) FROM runs WHERE coalesce(sweep, '') = ?1 GROUP BY status ORDER BY "
      "status");
  s.bind(1, sweep);
  while (s.step())
    rows.push_back({{s.get_text(0)}, {std::to_string(s.get_int(1)), double(s.get_int(1))}});
  o << table({"status", "trials"}, rows, "plain");
  auto f = db.prepare(
      "SELECT method, seed, status, coalesce(error, '') FROM runs WHERE coalesce(sweep, '') = ?1 "
      "AND status IN ('failed', 'interrupted') ORDER BY method, seed");
  f.bind(1, sweep);
  std::vector<std::vector<Cell>> bad;
  while (f.step())
    bad.push_back({{f.get_text(0)},
                   {std::to_string(f.get_int(1)), double(f.get_int(1))},
                   {f.get_text(2)},
                   {f.get_text(3)}});
  if (!bad.empty()) o << table({"method", "seed", "status", "message"}, bad);
  return o.str();
}

std::string config_section(Db& db, const std::string& sweep) {
  std::map<std::string, std::map<std::string, std::string>> by_method;  // method -> key -> value
  auto s = db.prepare(
      "SELECT method, config FROM runs WHERE coalesce(sweep, '') = ?1 "
      "ORDER BY method, status != 'completed', seed");
  s.bind(1, sweep);
  while (s.step()) {
    const std::string method = s.get_text(0);
    if (by_method.count(method)) continue;
    auto& flat = by_method[method];
    try {
      flatten(nlohmann::json::parse(s.get_text(1)), "", flat);
    } catch (const std::exception&) {
      flat["(config)"] = "unreadable JSON";
    }
    flat.erase("seed");
  }
  std::set<std::string> keys;
  for (const auto& [m, flat] : by_method)
    for (const auto& kv : flat) keys.insert(kv.first);
  std::vector<std::string> header = {"key"};
  for (const auto& kv : by_method) header.push_back(kv.first);
  std::vector<std::vector<Cell>> rows;
  for (const auto& k : keys) {
    std::set<std::string> values;
    std::vector<Cell> row = {{k}};
    for (const auto& [m, flat] : by_method) {
      auto it = flat.find(k);
      const std::string v = it == flat.end() ? "(unset)" : it->second;
      values.insert(v);
      row.push_back({v});
    }
    if (values.size() > 1) rows.push_back(row);
  }
  std::ostringstream o;
  if (rows.empty()) {
    o << "<p class=\"note\">All methods share one configuration (apart from the seed).</p>\n";
  } else {
    o << "<p>Configuration keys whose values differ between methods (" << rows.size() << " of "
      << keys.size() << " keys; the rest are shared).</p>\n"
      << table(header, rows);
  }
  return o.str();
}

std::string environment_section(Db& db, const std::string& sweep) {
  std::ostringstream o;
  std::vector<std::vector<Cell>> rows;
  auto s = db.prepare(
      "SELECT coalesce(host, ''), coalesce(device, ''), coalesce(libtorch, ''), "
      "coalesce(code_version, ''), count(*), min(started_at), max(finished_at), sum(wall_seconds) "
      "FROM runs WHERE coalesce(sweep, '') = ?1 AND attempts > 0 GROUP BY 1, 2, 3, 4 ORDER BY 1, "
      "2, 3, 4");
  s.bind(1, sweep);
  while (s.step()) {
    rows.push_back({{s.get_text(0)},
                    {s.get_text(1)},
                    {s.get_text(2)},
                    {s.get_text(3)},
                    {std::to_string(s.get_int(4)), double(s.get_int(4))},
                    {utc(s.get_double(5))},
                    {utc(s.get_double(6))},
                    {num(s.get_double(7) / 60, 3), s.get_double(7)}});
  }
  if (rows.empty()) return "<p class=\"note\">No trial has started yet.</p>\n";
  o << table({"host", "device", "LibTorch", "code version", "runs", "first start", "last finish",
              "run minutes (sum)"},
             rows, "plain");
  return o.str();
}

constexpr const char* kStyle = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #1b6ca8;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef3f8}table.sortable th{cursor:pointer}table.sortable th:hover{background:#dde8f2}
td{white-space:nowrap}td.wrap{white-space:normal;min-width:20em;max-width:50em;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}.note{color:#666}nav a{margin-right:1em}
)CSS";

// Sortable tables (click a header; numbers by their data-v), and the self-check a browser
// test reads back from the DOM: errors seen, resources fetched (must be 0), milliseconds
// from navigation to the end of this script (parsed, laid out, sortable), and with
// #selftest in the URL, a sort of the first table.
constexpr const char* kScript = R"JS(
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null) return parseFloat(v);
    return td.textContent.toLowerCase();
  }
  function sortBy(table, col) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = !(table.getAttribute('data-col') === String(col) && table.getAttribute('data-dir') === 'asc');
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.setAttribute('data-col', String(col));
    table.setAttribute('data-dir', asc ? 'asc' : 'desc');
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (t) {
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, i) {
      th.title = 'sort';
      th.addEventListener('click', function () { sortBy(t, i); });
    });
  });
  var root = document.documentElement;
  if (location.hash === '#selftest' && tables.length) {
    sortBy(tables[0], 1);
    sortBy(tables[0], 1);
    root.setAttribute('data-selftest', tables[0].getAttribute('data-dir'));
  }
  root.setAttribute('data-errors', String(window.moeErrors || 0));
  root.setAttribute('data-resources', String(performance.getEntriesByType('resource').length));
  root.setAttribute('data-ready-ms', String(Math.round(performance.now())));
})();
)JS";

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string inline_svg(const std::string& svg, const std::string& prefix) {
  const auto start = svg.find("<svg");
  if (start == std::string::npos) throw std::runtime_error("not an SVG document");
  std::string s = svg.substr(start);
  // Every id and reference to one gets the prefix: id='x' id="x" href='#x' href="#x" url(#x).
  for (const std::string pat : {"id='", "id=\"", "href='#", "href=\"#", "url(#"}) {
    std::string out;
    size_t at = 0;
    for (size_t p; (p = s.find(pat, at)) != std::string::npos; at = p + pat.size()) {
      // Only a whole attribute name: "id=" not preceded by a letter (e.g. "grid=").
      const bool attr =
          pat[0] != 'i' || p == 0 || !std::isalnum(static_cast<unsigned char>(s[p - 1]));
      out.append(s, at, p - at).append(pat);
      if (attr) out += prefix;
    }
    out.append(s, at, std::string::npos);
    s = out;
  }
  return s;
}

std::string write_report(const ReportOptions& opt) {
  if (!std::filesystem::exists(opt.db)) {
    throw DbError("database '" + opt.db + "': no such file (run a sweep first)");
  }
  detail::bring_to_current_schema(opt.db);
  Db db(opt.db, true);
  std::vector<std::string> known;
  {
    auto s = db.prepare("SELECT DISTINCT coalesce(sweep, '') FROM runs ORDER BY 1");
    while (s.step()) known.push_back(s.get_text(0));
  }
  if (known.empty()) throw DbError("database '" + opt.db + "': no runs to report");
  std::vector<std::string> sweeps = opt.sweeps.empty() ? known : opt.sweeps;
  for (const auto& sw : sweeps) {
    if (std::find(known.begin(), known.end(), sw) == known.end()) {
      throw std::invalid_argument("--sweep '" + sw + "': not in '" + opt.db +
                                  "'; known: " + list_of(known));
    }
  }
  std::string out = opt.out;
  if (out.empty()) {
    std::string name;
    for (const auto& sw : sweeps) name += (name.empty() ? "" : "+") + sw;
    if (sweeps.size() > 3) name = std::filesystem::path(opt.db).stem().string();
    out = "results/report/" + file_safe(name) + ".html";
  }
  const auto tmp =
      std::filesystem::temp_directory_path() / ("moe_report_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  std::ostringstream body, nav;
  int plot_id = 0;
  try {
    for (const auto& sw : sweeps) {
      const std::string anchor = "sweep-" + file_safe(sw);
      nav << "<a href=\"#" << html_escape(anchor) << "\">"
          << html_escape(sw.empty() ? "(no sweep)" : sw) << "</a>";
      body << "<section id=\"" << html_escape(anchor) << "\"><h2>Sweep " << html_escape(sw)
           << "</h2>\n"
           << "<h3>Trials</h3>\n"
           << status_section(db, sw) << "<h3>Methods</h3>\n"
           << "<p>Per method: mean over its completed runs and the Student-t 95% confidence "
              "interval. "
              "Against the baseline: the mean paired difference over the seeds both have (same "
              "seed = "
              "same data order and initialisation), its 95% CI, the two-sided paired t-test p, and "
              "p "
              "adjusted over all methods compared (Holm). Verdict at adjusted p &lt; 0.05.</p>\n"
           << comparison_section(opt.db, sw, opt.baseline, "test_accuracy");
      {
        auto p = db.prepare(
            "SELECT 1 FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts "
            "WHERE m.split = 'final' AND m.name = 'test_perplexity' AND coalesce(r.sweep, '') = ?1 "
            "LIMIT 1");
        p.bind(1, sw);
        if (p.step()) body << comparison_section(opt.db, sw, opt.baseline, "test_perplexity");
      }
      body << "<h3>Plots</h3>\n"
           << plots_section(opt.db, sw, tmp.string(), plot_id)
           << "<h3>Configuration differences</h3>\n"
           << config_section(db, sw) << "<h3>Environment</h3>\n"
           << environment_section(db, sw) << "</section>\n";
    }
  } catch (...) {
    std::filesystem::remove_all(tmp);
    throw;
  }
  std::filesystem::remove_all(tmp);
  if (auto dir = std::filesystem::path(out).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir);
  }
  std::ofstream f(out);
  if (!f) throw std::runtime_error("--out '" + out + "': cannot write the file");
  const std::string title = join(sweeps);
  f << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>moe-lab report: " << html_escape(title) << "</title>\n"
    << "<script>window.moeErrors = 0; window.addEventListener('error', function () { "
       "window.moeErrors++; document.documentElement.setAttribute('data-errors', "
       "String(window.moeErrors)); });</script>\n"
    << "<style>" << kStyle << "</style></head>\n<body>\n"
    << "<h1>moe-lab report: " << html_escape(title) << "</h1>\n"
    << "<p class=\"note\">From " << html_escape(opt.db) << ", written "
    << html_escape(utc(now_seconds()))
    << ". Self-contained: opens offline, fetches nothing. Click a table header to sort.</p>\n"
    << "<nav>" << nav.str() << "</nav>\n"
    << body.str() << "<script>" << kScript << "</script>\n</body></html>\n";
  f.close();
  if (!f) throw std::runtime_error("--out '" + out + "': write failed");
  return out;
}

}  // namespace moe::results
