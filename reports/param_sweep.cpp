// Generic sweeps in JSON and HTML (reports/param_sweep.hpp).
#include "reports/param_sweep.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "reports/html_charts.hpp"
#include "sim/units.hpp"

namespace moesim::reports {
namespace {

// HTML text and attribute values: the one escaper of the reports (html_charts.hpp).
std::string esc(const std::string& s) { return html::escape(s); }

// The whole text as a finite number, or nullopt.
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool numeric_column(const std::string& c) {
  return c == "point" || (c != "variant" && c != "schedule" && c != "fidelity" &&
                          std::find(kSweepFixedColumns.begin(), kSweepFixedColumns.end(), c) != kSweepFixedColumns.end());
}

std::size_t column(const SweepTable& t, const std::string& name) {
  return static_cast<std::size_t>(std::find(t.columns.begin(), t.columns.end(), name) - t.columns.begin());
}

struct Metric {
  const char* column;
  const char* title;  // with the unit
  double scale;       // display value = value x scale
};
const Metric kMetrics[] = {
    {"step_time_s", "step time (ms)", 1e3},
    {"speedup_vs_baseline", "step speed-up vs baseline (x)", 1},
    {"moe_layer_time_s", "MoE layer time, gate to end of combine (ms)", 1e3},
    {"compute_s", "compute per rank (ms)", 1e3},
    {"comm_s", "all-to-all time per rank (ms)", 1e3},
    {"exposed_comm_s", "exposed communication per rank (ms)", 1e3},
    {"overlap_ratio", "overlap ratio (1 - exposed / comm)", 1},
    {"load_imbalance", "load imbalance (max / mean tokens received)", 1},
    {"dropped_pairs", "dropped token-expert pairs", 1},
};

const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

double round_step(double span) {
  const double raw = span > 0 ? span / 5 : 0.2, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

double axis_px(double v, double lo, double hi, double a, double b) {
  return hi > lo ? a + (b - a) * (v - lo) / (hi - lo) : (a + b) / 2;
}

// How the first key's values map to x: numbers (plain, or quantities of one dimension in SI units) or, failing
// that, positions 0..n-1 in the order the values first appear.
struct XAxis {
  bool numeric = false;
  std::string unit;                 // "" for plain numbers
  std::vector<std::string> labels;  // distinct values in sweep order
  std::map<std::string, double> x;  // value as written -> x
};

XAxis x_axis(const SweepTable& t) {
  XAxis a;
  const std::size_t kc = 1;  // the first swept key's column
  for (const auto& r : t.rows)
    if (std::find(a.labels.begin(), a.labels.end(), r[kc]) == a.labels.end()) a.labels.push_back(r[kc]);
  bool plain = true;
  for (const auto& l : a.labels) plain = plain && number(l).has_value();
  if (plain) {
    a.numeric = true;
    for (const auto& l : a.labels) a.x[l] = *number(l);
    return a;
  }
  const std::pair<Dim, const char*> dims[] = {
      {Dim::bytes, "B"}, {Dim::seconds, "s"}, {Dim::bandwidth, "B/s"}, {Dim::flop_rate, "FLOP/s"}};
  for (const auto& [dim, unit] : dims) {
    bool all = !a.labels.empty();
    for (const auto& l : a.labels) all = all && parse_quantity(l, dim).has_value();
    if (!all) continue;
    a.numeric = true;
    a.unit = unit;
    for (const auto& l : a.labels) a.x[l] = *parse_quantity(l, dim);
    return a;
  }
  for (std::size_t i = 0; i < a.labels.size(); ++i) a.x[a.labels[i]] = static_cast<double>(i);
  return a;
}

// One metric's chart: a polyline per series (variant + the other keys' values), a circle per point with its
// figures as a tooltip; legend on the right.
std::string line_chart(const SweepTable& t, const Metric& m, const XAxis& xa) {
  const std::size_t mc = column(t, m.column), vc = column(t, "variant");
  struct Pt {
    double x, y;
    std::string tip;
  };
  std::vector<std::pair<std::string, std::vector<Pt>>> series;
  for (const auto& r : t.rows) {
    const auto y = number(r[mc]);
    if (!y) continue;
    std::string name = r[vc];
    for (std::size_t k = 1; k < t.keys.size(); ++k) name += fmt::format(", {}={}", t.keys[k], r[1 + k]);
    auto it = std::find_if(series.begin(), series.end(), [&](const auto& s) { return s.first == name; });
    if (it == series.end()) it = series.insert(series.end(), {name, {}});
    it->second.push_back({xa.x.at(r[1]), *y * m.scale,
                          fmt::format("{}, {}={}: {:.6g}", name, t.keys[0], r[1], *y * m.scale)});
  }
  if (series.empty()) return "";
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  bool first = true;
  for (const auto& [n, pts] : series)
    for (const auto& p : pts) {
      if (first) x_lo = x_hi = p.x, y_hi = p.y, first = false;
      x_lo = std::min(x_lo, p.x), x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y), y_hi = std::max(y_hi, p.y);
    }
  // y from 0 (or the lowest value when negative) to a whole tick of a round step above the highest.
  const double y_step = round_step(y_hi - y_lo > 0 ? (y_hi - y_lo) * 1.05 : std::max(1.0, std::abs(y_hi)));
  y_lo = std::floor(y_lo / y_step) * y_step;
  y_hi = std::max(y_lo + y_step, std::ceil(y_hi * 1.05 / y_step) * y_step);
  constexpr double kLeft = 70, kPlotW = 480, kTop = 20, kPlotH = 240, kBottom = 50, kRight = 260;
  const double pad = xa.numeric ? 0 : 0.5;  // categories sit half a step in from the ends
  const double xl = x_lo - pad, xh = x_hi + pad;
  auto px = [&](double x) { return axis_px(x, xl, xh, kLeft + 10, kLeft + kPlotW - 10); };
  auto py = [&](double y) { return axis_px(y, y_lo, y_hi, kTop + kPlotH, kTop); };
  const double width = kLeft + kPlotW + kRight;
  const double height = kTop + std::max(kPlotH, 18.0 * static_cast<double>(series.size())) + kBottom;
  std::string s = fmt::format(
      "<svg class=\"sweep-line-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"11\">\n",
      width, height);
  const long y_ticks = std::lround((y_hi - y_lo) / y_step);
  for (long i = 0; i <= y_ticks; ++i) {
    const double yv = y_lo + static_cast<double>(i) * y_step;
    s += fmt::format("<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#eee\"/>"
                     "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:.6g}</text>\n",
                     kLeft + 1, py(yv), kLeft + kPlotW, kLeft - 5, py(yv) + 4, yv);
  }
  // x ticks: every value of the key as written (a numeric axis places them at their values).
  for (const auto& l : xa.labels)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(xa.x.at(l)),
                     kTop + kPlotH + 14, esc(l));
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>\n"
                   "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#333\"/>\n",
                   kLeft, kTop + kPlotH, kLeft + kPlotW, kTop);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}{}</text>\n", kLeft + kPlotW / 2,
                   kTop + kPlotH + 34, esc(t.keys[0]),
                   xa.numeric ? (xa.unit.empty() ? std::string() : fmt::format(" ({} on a linear axis)", xa.unit))
                              : std::string(" (as written, in sweep order)"));
  s += fmt::format("<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   kTop + kPlotH / 2, esc(m.title));
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& [name, pts] = series[i];
    const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    std::string line;
    for (const auto& p : pts) line += fmt::format("{}{:.2f},{:.2f}", line.empty() ? "" : " ", px(p.x), py(p.y));
    if (pts.size() > 1)
      s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", line, color);
    for (const auto& p : pts)
      s += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\"><title>{}</title></circle>\n",
                       px(p.x), py(p.y), color, esc(p.tip));
    const double ly = kTop + 8 + 18.0 * static_cast<double>(i), lx = kLeft + kPlotW + 14;
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/><text x=\"{:.1f}\" y=\"{:.1f}\">{}"
                     "</text>\n",
                     lx + 4, ly, color, lx + 14, ly + 4, esc(name));
  }
  return s + "</svg>\n";
}

}  // namespace

std::string sweep_json(const SweepTable& t) {
  nlohmann::ordered_json j;
  j["schema"] = SweepTable::kSchema;
  j["scenario"] = {{"file", t.scenario_file}, {"name", t.scenario_name}};
  j["points"] = t.points;
  j["keys"] = t.keys;
  j["columns"] = t.columns;
  j["rows"] = nlohmann::ordered_json::array();
  for (const auto& r : t.rows) {
    nlohmann::ordered_json o;
    for (std::size_t c = 0; c < t.columns.size() && c < r.size(); ++c) {
      const bool key = c >= 1 && c <= t.keys.size();
      if (r[c].empty()) o[t.columns[c]] = nullptr;
      else if (!key && numeric_column(t.columns[c]) && number(r[c])) o[t.columns[c]] = *number(r[c]);
      else o[t.columns[c]] = r[c];
    }
    j["rows"].push_back(std::move(o));
  }
  return j.dump(2) + "\n";
}

std::string sweep_html(const SweepTable& t) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>moesim sweep: " +
      esc(t.scenario_name) +
      "</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "th,td{border:1px solid #ccc;padding:3px 8px}td.num{text-align:right}th{background:#eee}</style>\n"
      "</head>\n<body>\n";
  s += "<h1>Sweep: " + esc(t.scenario_name) + "</h1>\n";
  std::string keys;
  for (const auto& k : t.keys) keys += (keys.empty() ? "" : ", ") + esc(k);
  s += fmt::format("<p>scenario {}; {} points over {}; {} rows (point x variant).</p>\n", esc(t.scenario_file),
                   t.points, keys, t.rows.size());
  if (!t.rows.empty() && !t.keys.empty()) {
    const XAxis xa = x_axis(t);
    for (const Metric& m : kMetrics) {
      const std::string chart = line_chart(t, m, xa);
      if (chart.empty()) continue;
      s += "<h2>" + esc(m.title) + "</h2>\n" + chart;
    }
  }
  s += "<h2>Rows</h2>\n<table>\n<tr>";
  for (const auto& c : t.columns) s += "<th>" + esc(c) + "</th>";
  s += "</tr>\n";
  for (const auto& r : t.rows) {
    s += "<tr>";
    for (std::size_t c = 0; c < r.size(); ++c)
      s += fmt::format("<td{}>{}</td>", numeric_column(t.columns[c]) ? " class=\"num\"" : "", esc(r[c]));
    s += "</tr>\n";
  }
  return s + "</table>\n</body>\n</html>\n";
}

}  // namespace moesim::reports
