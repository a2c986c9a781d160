// Self-contained HTML report: inline CSS and SVG only (no scripts, no network), so it opens offline.
#include <algorithm>

#include <fmt/format.h>

#include "reports/reports.hpp"
#include "sim/units.hpp"

namespace moesim::reports {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

// Horizontal bars, one per variant: compute, exposed comm, and the rest of the step (waiting, bubbles).
// Lengths in SVG px, scaled so the longest bar fills the plot width.
std::string step_chart(const RunResult& r) {
  constexpr double kLabelW = 200, kPlotW = 520, kRowH = 30, kBarH = 20, kTop = 30;
  double longest = 0;
  for (const auto& v : r.variants) longest = std::max({longest, v.step_time_s, v.compute_s + v.exposed_comm_s});
  const double px_per_s = longest > 0 ? kPlotW / longest : 0;
  const double height = kTop + kRowH * static_cast<double>(r.variants.size()) + 10;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      kLabelW + kPlotW + 110, height);
  // Legend.
  const char* names[] = {"compute", "exposed comm", "other (idle, waiting)"};
  const char* colors[] = {"#4e79a7", "#f28e2b", "#bab0ac"};
  for (int i = 0; i < 3; ++i)
    s += fmt::format("<rect x=\"{:.1f}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/>"
                     "<text x=\"{:.1f}\" y=\"16\">{}</text>\n",
                     kLabelW + 170.0 * i, colors[i], kLabelW + 170.0 * i + 16, names[i]);
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    const VariantResult& v = r.variants[i];
    const double y = kTop + kRowH * static_cast<double>(i);
    const double other = std::max(0.0, v.step_time_s - v.compute_s - v.exposed_comm_s);
    const double parts[] = {v.compute_s, v.exposed_comm_s, other};
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLabelW - 8,
                     y + kBarH * 0.7, esc(v.name));
    double x = kLabelW;
    for (int k = 0; k < 3; ++k) {
      const double w = parts[k] * px_per_s;
      s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\">"
                       "<title>{}: {} {}</title></rect>\n",
                       x, y, w, kBarH, colors[k], esc(v.name), names[k], format_seconds(parts[k]));
      x += w;
    }
    s += fmt::format("<text x=\"{:.2f}\" y=\"{:.1f}\">{}</text>\n", x + 6, y + kBarH * 0.7,
                     format_seconds(v.step_time_s));
  }
  return s + "</svg>\n";
}

}  // namespace

std::string html_report(const RunResult& r) {
  const RunContext& c = r.context;
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>moesim: " + esc(c.scenario_name) + "</title>\n"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "th,td{border:1px solid #ccc;padding:3px 8px}td.num{text-align:right}th{background:#eee}"
      "dt{font-weight:bold;float:left;width:8em}dd{margin-left:9em}</style>\n</head>\n<body>\n";
  s += "<h1>" + esc(c.scenario_name) + "</h1>\n<dl>\n";
  auto item = [&](const char* k, const std::string& v) { s += fmt::format("<dt>{}</dt><dd>{}</dd>\n", k, esc(v)); };
  item("moesim", fmt::format("{} (git {})", c.moesim_version, c.git_sha));
  item("scenario", fmt::format("{} (sha256 {})", c.scenario_file, c.scenario_sha256));
  item("model", fmt::format("{} on {} ({} GPUs), {} EP ranks", c.model, c.cluster, c.gpus, c.ep_ranks));
  item("mode", fmt::format("{}, {} tokens per rank, seed {}", c.mode, c.tokens_per_rank, c.seed));
  item("fidelity", fmt::format("{} (requested {})", c.fidelity, c.fidelity_requested));
  item("simgrid", fmt::format("{}: {}", c.simgrid_version, settings_text(c)));
  std::string profiles;
  for (const auto& p : c.profiles)
    profiles += fmt::format("{}{} ({}, {}, confidence {})", profiles.empty() ? "" : "; ", p.id, p.kind, p.gpu,
                            p.confidence);
  item("profiles", profiles.empty() ? "(none)" : profiles);
  if (!r.baseline.empty()) item("baseline", r.baseline);
  s += "</dl>\n<h2>Step time</h2>\n" + step_chart(r) + "<h2>Variants</h2>\n<table>\n<tr>";
  const SummaryTable t = summary_table(r);
  for (const auto& h : t.headers) s += "<th>" + esc(h) + "</th>";
  s += "</tr>\n";
  for (const auto& row : t.rows) {
    s += "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i)
      s += (t.right_aligned[i] ? "<td class=\"num\">" : "<td>") + esc(row[i]) + "</td>";
    s += "</tr>\n";
  }
  s += "</table>\n<h2>Time by op class</h2>\n<ul>\n";
  for (const auto& v : r.variants) {
    std::string classes = class_times_text(v);
    for (const auto& [k, val] : v.extra) classes += fmt::format("{}{}={:.6g}", classes.empty() ? "" : "; ", k, val);
    s += "<li><b>" + esc(v.name) + "</b>: " + esc(classes.empty() ? "-" : classes) + "</li>\n";
  }
  return s + "</ul>\n</body>\n</html>\n";
}

}  // namespace moesim::reports
