// Self-contained HTML report: inline CSS and SVG only (no scripts, no network), so it opens offline.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "reports/html_charts.hpp"
#include "reports/reports.hpp"
#include "sim/units.hpp"

namespace moesim::reports {
namespace {

// HTML text and attribute values: the one escaper of the reports (html_charts.hpp).
std::string esc(const std::string& s) { return html::escape(s); }

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

std::string table_html(const SummaryTable& t) {
  std::string s = "<table>\n<tr>";
  for (const auto& h : t.headers) s += "<th>" + esc(h) + "</th>";
  s += "</tr>\n";
  for (const auto& row : t.rows) {
    s += "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i)
      s += (t.right_aligned[i] ? "<td class=\"num\">" : "<td>") + esc(row[i]) + "</td>";
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

// Heat map, MoE layers down, ranks across; cell colour from white (0) to `rgb` (1). Each cell's tooltip gives
// the layer, rank and value. grid[i][r] is the value of layers[i], rank r, in [0, 1].
std::string heat_map(const std::vector<int>& layers, const std::vector<std::vector<double>>& grid, const char* what,
                     int rgb_r, int rgb_g, int rgb_b) {
  if (layers.empty() || grid.empty()) return {};
  const std::size_t ranks = grid.front().size();
  constexpr double kCellW = 26, kCellH = 9, kLeft = 60, kTop = 22;
  const double w = kLeft + kCellW * static_cast<double>(ranks) + 10;
  const double h = kTop + kCellH * static_cast<double>(layers.size()) + 10;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"10\">\n",
      w, h);
  for (std::size_t r = 0; r < ranks; ++r)
    s += fmt::format("<text x=\"{:.1f}\" y=\"14\" text-anchor=\"middle\">r{}</text>\n",
                     kLeft + kCellW * (static_cast<double>(r) + 0.5), r);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const double y = kTop + kCellH * static_cast<double>(i);
    if (i % 4 == 0)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">L{}</text>\n", kLeft - 4, y + kCellH,
                       layers[i]);
    for (std::size_t r = 0; r < ranks && r < grid[i].size(); ++r) {
      const double v = std::clamp(grid[i][r], 0.0, 1.0);
      auto mix = [&](int c) { return static_cast<int>(255.0 - (255.0 - c) * v + 0.5); };
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                       "fill=\"rgb({},{},{})\" stroke=\"#eee\"><title>layer {} rank {}: {} {:.1f}%</title></rect>\n",
                       kLeft + kCellW * static_cast<double>(r), y, kCellW, kCellH, mix(rgb_r), mix(rgb_g), mix(rgb_b),
                       layers[i], r, what, 100.0 * grid[i][r]);
    }
  }
  return s + "</svg>\n";
}

// Mean over steps of each (MoE layer, rank)'s vision share, from the rows (multimodal runs only).
void vision_grid(const VariantResult& v, std::vector<int>& layers, std::vector<std::vector<double>>& grid) {
  std::map<int, std::map<int, std::pair<double, int>>> acc;  // layer -> rank -> (sum, count)
  for (const auto& row : v.rows)
    if (row.vision_share >= 0) {
      auto& a = acc[row.layer][row.rank];
      a.first += row.vision_share;
      ++a.second;
    }
  for (const auto& [layer, ranks] : acc) {
    layers.push_back(layer);
    std::vector<double> line;
    for (const auto& [rank, a] : ranks) line.push_back(a.second ? a.first / a.second : 0.0);
    grid.push_back(std::move(line));
  }
}

// The distribution of a variant's normalised gate scores: a histogram of all layers' routed pairs (bar height =
// share of pairs in the bin, the fullest bin filling the plot; dashed line = mean, solid = p50), and under
// it one strip per layer with the bins coloured from white (empty) to the fullest bin of that layer.
std::string gate_score_chart(const GateScoreStats& g) {
  if (g.bins <= 0 || g.layers.empty()) return {};
  constexpr double kLeft = 60, kPlotW = 512, kPlotH = 140, kTop = 10, kStripH = 9, kGap = 28;
  const auto bins = static_cast<std::size_t>(g.bins);
  const double bin_w = kPlotW / static_cast<double>(g.bins);
  std::vector<int64_t> total(bins, 0);
  for (const auto& l : g.layers)
    for (std::size_t b = 0; b < bins && b < l.counts.size(); ++b) total[b] += l.counts[b];
  const int64_t peak = std::max<int64_t>(1, *std::max_element(total.begin(), total.end()));
  const double strips_top = kTop + kPlotH + kGap;
  const double height = strips_top + kStripH * static_cast<double>(g.layers.size()) + 10;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"10\">\n",
      kLeft + kPlotW + 20, height);
  for (std::size_t b = 0; b < bins; ++b) {
    const double h = kPlotH * static_cast<double>(total[b]) / static_cast<double>(peak);
    const double share = g.pairs > 0 ? 100.0 * static_cast<double>(total[b]) / static_cast<double>(g.pairs) : 0.0;
    s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"#59a14f\">"
                     "<title>[{:.4g}, {:.4g}): {} pairs ({:.2f}%)</title></rect>\n",
                     kLeft + bin_w * static_cast<double>(b), kTop + kPlotH - h, bin_w, h,
                     static_cast<double>(b) / g.bins, static_cast<double>(b + 1) / g.bins, total[b], share);
  }
  // Axis with ticks every 0.25, then the mean and p50 markers.
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>\n", kLeft, kTop + kPlotH,
                   kLeft + kPlotW);
  for (int t = 0; t <= 4; ++t)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n", kLeft + kPlotW * t / 4.0,
                     kTop + kPlotH + 12, t / 4.0);
  auto marker = [&](double x, const char* dash, const char* what) {
    s += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" y2=\"{2}\" stroke=\"#e15759\"{3}>"
                     "<title>{4} {5:.4f}</title></line>\n",
                     kLeft + kPlotW * std::clamp(x, 0.0, 1.0), kTop, kTop + kPlotH, dash, what, x);
  };
  marker(g.mean, " stroke-dasharray=\"4 3\"", "mean");
  marker(g.p50, "", "p50");
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">per layer (each row scaled to its fullest bin)</text>\n", kLeft,
                   strips_top - 4);
  for (std::size_t i = 0; i < g.layers.size(); ++i) {
    const GateScoreLayer& l = g.layers[i];
    const double y = strips_top + kStripH * static_cast<double>(i);
    if (i % 4 == 0)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">L{}</text>\n", kLeft - 4, y + kStripH,
                       l.layer);
    int64_t top = 1;
    for (int64_t c : l.counts) top = std::max(top, c);
    for (std::size_t b = 0; b < bins && b < l.counts.size(); ++b) {
      const double v = static_cast<double>(l.counts[b]) / static_cast<double>(top);
      auto mix = [&](int c) { return static_cast<int>(255.0 - (255.0 - c) * v + 0.5); };
      s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"rgb({},{},{})\">"
                       "<title>layer {} [{:.4g}, {:.4g}): {} pairs</title></rect>\n",
                       kLeft + bin_w * static_cast<double>(b), y, bin_w, kStripH, mix(89), mix(161), mix(79), l.layer,
                       static_cast<double>(b) / g.bins, static_cast<double>(b + 1) / g.bins, l.counts[b]);
    }
  }
  return s + "</svg>\n";
}

// A value's position on a linear axis from lo to hi drawn over [a, b] px (b < a for an upward y axis).
double axis_px(double v, double lo, double hi, double a, double b) {
  return hi > lo ? a + (b - a) * (v - lo) / (hi - lo) : a;
}

// One sweep's chart: speed-up (y, ratio to the baseline) against the drop rate (x, % of the expert
// computations, DualSparse's ds_drop_rate), or against the swept value when a point has no drop rate. Two series:
// the simulated MoE-layer speed-up (circles, class "sweep-sim") and the ideal one, 1 / (1 - drop - half / 2)
// (squares, class "sweep-ideal"); a series a point lacks is left out at that point. Each marker is labelled
// with the point's value of the key; a dashed line marks the baseline (1x); light grid lines at the y ticks.
std::string sweep_chart(const Sweep& sw) {
  constexpr double kLeft = 70, kPlotW = 480, kTop = 20, kPlotH = 260, kBottom = 50, kRight = 210;
  bool by_drop = true;
  for (const VariantResult* v : sw.points) by_drop = by_drop && v->extra.count("ds_drop_rate") > 0;
  auto x_of = [&](const VariantResult& v) { return by_drop ? 100.0 * v.extra.at("ds_drop_rate") : v.sweep.value; };
  auto figure = [](const VariantResult& v, const char* key) -> std::optional<double> {
    auto it = v.extra.find(key);
    if (it == v.extra.end() || !(it->second > 0)) return std::nullopt;  // 0: undefined (nothing left to compute)
    return it->second;
  };
  // Axes from 0 (x) and around 1x (y), padded so markers and their labels stay inside the plot, then widened to
  // whole ticks of a round step (1, 2, 2.5 or 5 x 10^k, about five per axis).
  double x_hi = 0, y_lo = 1, y_hi = 1;
  for (const VariantResult* v : sw.points) {
    x_hi = std::max(x_hi, x_of(*v));
    for (const char* k : {"moe_layer_speedup_vs_baseline", "ds_ideal_speedup"})
      if (auto y = figure(*v, k)) y_lo = std::min(y_lo, *y), y_hi = std::max(y_hi, *y);
  }
  auto round_step = [](double span) {
    const double raw = span > 0 ? span / 5 : 0.2, mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 2.5, 5.0})
      if (m * mag >= raw) return m * mag;
    return 10 * mag;
  };
  const double x_step = round_step(x_hi * 1.05);
  x_hi = std::max(1.0, std::ceil(x_hi * 1.05 / x_step)) * x_step;
  const double pad = std::max(0.02, 0.05 * (y_hi - y_lo));
  const double y_step = round_step(y_hi - y_lo + 2 * pad);
  y_lo = std::max(0.0, std::floor((y_lo - pad) / y_step) * y_step);
  y_hi = std::ceil((y_hi + pad) / y_step) * y_step;
  auto px = [&](double x) { return axis_px(x, 0.0, x_hi, kLeft, kLeft + kPlotW); };
  auto py = [&](double y) { return axis_px(y, y_lo, y_hi, kTop + kPlotH, kTop); };
  const double width = kLeft + kPlotW + kRight, height = kTop + kPlotH + kBottom;
  std::string s = fmt::format(
      "<svg class=\"sweep-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"11\">\n",
      width, height);
  // Ticks and grid lines first; tick values as i x step (not accumulated sums), at most 6 significant digits.
  const long x_ticks = std::lround(x_hi / x_step), y_ticks = std::lround((y_hi - y_lo) / y_step);
  for (long i = 0; i <= x_ticks; ++i)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.6g}</text>\n", px(i * x_step),
                     kTop + kPlotH + 14, i * x_step);
  for (long i = 0; i <= y_ticks; ++i) {
    const double yv = y_lo + i * y_step;
    s += fmt::format("<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#eee\"/>"
                     "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:.6g}</text>\n",
                     kLeft + 1, py(yv), kLeft + kPlotW, kLeft - 5, py(yv) + 4, yv);
  }
  // The axes, over the grid lines, and their labels (with units).
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>\n"
                   "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#333\"/>\n",
                   kLeft, kTop + kPlotH, kLeft + kPlotW, kTop);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", kLeft + kPlotW / 2,
                   kTop + kPlotH + 34,
                   by_drop ? std::string("drop rate (% of expert computations)") : esc(sw.key) + " (as written)");
  s += fmt::format("<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\">speed-up vs "
                   "baseline (x)</text>\n",
                   kTop + kPlotH / 2);
  s += fmt::format("<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#999\" "
                   "stroke-dasharray=\"4 3\"><title>baseline (1x)</title></line>\n",
                   kLeft, py(1.0), kLeft + kPlotW);
  struct Series {
    const char* key;
    const char* cls;
    const char* name;
    const char* color;
    bool square;
    double label_dy;  // label above (< 0) or below the marker, px
  };
  const Series series[] = {
      {"moe_layer_speedup_vs_baseline", "sweep-sim", "simulated MoE-layer speed-up", "#4e79a7", false, 16},
      {"ds_ideal_speedup", "sweep-ideal", "ideal 1 / (1 - drop - half / 2)", "#e15759", true, -8}};
  for (std::size_t k = 0; k < 2; ++k) {
    const Series& se = series[k];
    const double ly = kTop + 10 + 18.0 * static_cast<double>(k), lx = kLeft + kPlotW + 14;
    s += se.square ? fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"8\" height=\"8\" fill=\"{}\"/>", lx,
                                 ly - 4, se.color)
                   : fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>", lx + 4, ly, se.color);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 14, ly + 4, esc(se.name));
    std::string line, marks;  // the line is drawn first, under the markers
    for (const VariantResult* v : sw.points) {
      const auto y = figure(*v, se.key);
      if (!y) continue;
      const double cx = px(x_of(*v)), cy = py(*y);
      line += fmt::format("{}{:.2f},{:.2f}", line.empty() ? "" : " ", cx, cy);
      const std::string tip = fmt::format("{} {} = {}: {:.3f}x{}", esc(v->name), esc(sw.key), v->sweep.value, *y,
                                          by_drop ? fmt::format(" at {:.2f}% dropped", x_of(*v)) : std::string());
      marks += se.square ? fmt::format("<rect class=\"{}\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"8\" height=\"8\" "
                                   "fill=\"{}\"><title>{}</title></rect>\n",
                                   se.cls, cx - 4, cy - 4, se.color, tip)
                     : fmt::format("<circle class=\"{}\" cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"4\" fill=\"{}\">"
                                   "<title>{}</title></circle>\n",
                                   se.cls, cx, cy, se.color, tip);
      marks += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\" font-size=\"9\" fill=\"{}\">{}</text>\n",
                       cx, cy + se.label_dy, se.color, v->sweep.value);
    }
    if (!line.empty())
      s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", line,
                       se.color);
    s += marks;
  }
  return s + "</svg>\n";
}

// Issue 15 point 4: op time by class (stacked), tokens received per (MoE layer, rank), and a timeline of one
// layer per variant (the layer asked for, or the first MoE layer; only when the run kept its events).
std::string html_charts_section(const RunResult& r, int timeline_layer) {
  std::string s;
  if (std::string bars = html::op_class_chart(r); !bars.empty())
    s += "<h2>Op time by class</h2>\n<p>Per variant, the time of each op class (mean over ranks, per step). Ops that "
         "overlap (communication under computation) both count, so a bar can be longer than the step.</p>\n" +
         bars;
  std::string maps;
  for (const auto& v : r.variants)
    if (std::string m = html::tokens_heat_map(v); !m.empty()) maps += "<h3>" + esc(v.name) + "</h3>\n" + m;
  if (!maps.empty())
    s += "<h2>Tokens received per MoE layer and rank</h2>\n<p>Token-expert pairs each rank's experts compute "
         "(forward, mean over steps), coloured by the ratio to the layer's mean: a red column is a rank that "
         "receives more than the others (load skew), a blue one less; each cell's tooltip gives the count and the "
         "ratio.</p>\n" +
         maps;
  const int layer = timeline_layer >= 0 ? timeline_layer : html::default_timeline_layer(r);
  if (layer < 0) {
    bool events = false;
    for (const auto& v : r.variants) events = events || !v.events.empty();
    if (!events) return s;  // a report built without events (e.g. from a JSON result) has no timeline
  }
  s += fmt::format("<h2>Timeline of layer {}</h2>\n<p>Forward ops of layer {} in step 0{}, per rank and stream "
                   "(at most the first {} ranks), coloured by op class: where a comm bar lies under a compute bar "
                   "of the same rank, the communication is hidden. Choose the layer with <code>--html-layer N</code> "
                   "(default: the first MoE layer).</p>\n",
                   layer, layer, timeline_layer >= 0 ? "" : " (the first MoE layer)", html::kTimelineRanks);
  for (const auto& v : r.variants) {
    std::string t = html::layer_timeline(v, layer);
    s += "<h3>" + esc(v.name) + "</h3>\n" +
         (t.empty() ? fmt::format("<p>No forward op of layer {} in step 0 in this variant.</p>\n", layer) : t);
  }
  return s;
}

}  // namespace

std::string html_report(const RunResult& r, int timeline_layer) {
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
  item("model", fmt::format("{} on {} ({} GPUs), {}", c.model, c.cluster, c.gpus, c.etp > 1 ? fmt::format("{} ranks (EP {} x ETP {})", c.ep_ranks, c.ep_ranks / c.etp, c.etp) : fmt::format("{} EP ranks", c.ep_ranks)));
  item("mode", fmt::format("{}, {} tokens per rank, seed {}", c.mode, c.tokens_per_rank, c.seed));
  item("fidelity", fmt::format("{} (requested {})", c.fidelity, c.fidelity_requested));
  item("simgrid", fmt::format("{}: {}", c.simgrid_version, settings_text(c)));
  std::string profiles;
  for (const auto& p : c.profiles)
    profiles += fmt::format("{}{} ({}, {}, confidence {})", profiles.empty() ? "" : "; ", p.id, p.kind, p.gpu,
                            p.confidence);
  item("profiles", profiles.empty() ? "(none)" : profiles);
  for (const std::string& a : c.approximations) item("approximation", a);
  if (!r.baseline.empty()) item("baseline", fmt::format("{} (speed-ups compare {} time)", r.baseline, r.speedup_scope));
  s += "</dl>\n<h2>Step time</h2>\n" + step_chart(r) + "<h2>Variants</h2>\n" + table_html(summary_table(r));
  s += html_charts_section(r, timeline_layer);
  if (const SummaryTable m = moe_table(r); !m.rows.empty())
    s += "<h2>MoE metrics</h2>\n<p>MoE layer = gate to end of combine (mean over steps and MoE layers); low-prec "
         "pairs = share of routed token-expert computations done in low precision; slowest rank changes = share of "
         "consecutive MoE layers whose slowest rank differs.</p>\n" +
         table_html(m);
  for (const auto& v : r.variants) {
    std::vector<int> vl;
    std::vector<std::vector<double>> vg;
    vision_grid(v, vl, vg);
    if (v.map_layers.empty() && vl.empty()) continue;
    s += "<h3>" + esc(v.name) + ": per MoE layer and rank</h3>\n<div style=\"display:flex;gap:2em\">\n";
    if (!v.map_layers.empty())
      s += "<div><p>share of steps in low precision</p>\n" +
           heat_map(v.map_layers, v.lowp_share, "low precision in", 214, 39, 40) + "</div>\n";
    if (!vl.empty())
      s += "<div><p>vision share of pairs received (mean over steps)</p>\n" +
           heat_map(vl, vg, "vision share", 78, 121, 167) + "</div>\n";
    s += "</div>\n";
  }
  for (const auto& v : r.variants) {
    const GateScoreStats& g = v.gate_scores;
    if (g.bins <= 0 || g.layers.empty()) continue;
    const char* weight =
        g.norm_topk_prob ? "this normalised score (norm_topk_prob: true)"
                         : "the raw probability, i.e. this score times the token's top-k mass (norm_topk_prob: false)";
    std::string about =
        fmt::format("{} routed pairs, scores {}, mean {:.4f}, p50 {:.4f}; the model's gate weight is {}", g.pairs,
                    g.scores, g.mean, g.p50, weight);
    if (g.topk_mass_mean >= 0) about += fmt::format("; mean top-k mass {:.4f}", g.topk_mass_mean);
    s += "<h3>" + esc(v.name) + ": gate scores normalised over the top-k</h3>\n<p>" + esc(about) + "</p>\n" +
         gate_score_chart(g);
  }
  if (const std::vector<Sweep> sw = sweeps_of(r); !sw.empty()) {
    s += "<h2>Sweeps</h2>\n<p>Per sweep, the speed-up over the baseline against the drop rate: the simulated "
         "MoE layer (gate to end of combine) and the ideal 1 / (1 - drop - half / 2), the expert work saved if every "
         "computation cost the same; each point is labelled with its value.</p>\n";
    for (const Sweep& one : sw)
      s += "<h3>" + esc(one.of) + " over " + esc(one.key) + "</h3>\n" + sweep_chart(one) + table_html(sweep_table(one));
  }
  s += "<h2>Time by op class</h2>\n<ul>\n";
  for (const auto& v : r.variants) {
    std::string classes = class_times_text(v);
    for (const auto& [k, val] : v.extra) classes += fmt::format("{}{}={:.6g}", classes.empty() ? "" : "; ", k, val);
    s += "<li><b>" + esc(v.name) + "</b>: " + esc(classes.empty() ? "-" : classes) + "</li>\n";
  }
  return s + "</ul>\n</body>\n</html>\n";
}

}  // namespace moesim::reports
