// Charts of the HTML report: stacked op-class bars, tokens-received heat map, one-layer timeline (inline SVG).
#include "reports/html_charts.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "sim/units.hpp"

namespace moesim::reports::html {
namespace {

// Op classes in the order a layer runs them (then the step around the blocks), each with a fixed colour
// (Tableau 20), so a class has the same colour in every chart and variant.
struct ClassColor {
  const char* cls;
  const char* color;
};
constexpr ClassColor kClassColors[] = {
    {"attention", "#4e79a7"},      {"gate", "#a0cbe8"},         {"permute", "#86bcb6"},
    {"dispatch", "#f28e2b"},       {"expert_all_gather", "#ffbe7d"}, {"expert", "#59a14f"},
    {"shared_expert", "#8cd17d"},  {"dense_mlp", "#b6992d"},     {"expert_reduce_scatter", "#f1ce63"},
    {"combine", "#e15759"},        {"unpermute", "#499894"},     {"cast", "#ff9d9a"},
    {"weight_move", "#79706e"},    {"embedding", "#d37295"},     {"norm", "#fabfd2"},
    {"residual", "#b07aa1"},       {"lm_head", "#d4a6c8"},       {"loss", "#9d7660"},
    {"optimizer", "#d7b5a6"},      {"dp_all_reduce", "#bab0ac"}, {"patch_merge", "#9c755f"},
    {"other", "#cccccc"}};

const char* class_color(const std::string& cls) {
  for (const auto& c : kClassColors)
    if (cls == c.cls) return c.color;
  return "#999999";  // a class this table does not know yet
}

int class_order(const std::string& cls) {
  int i = 0;
  for (const auto& c : kClassColors) {
    if (cls == c.cls) return i;
    ++i;
  }
  return i;  // unknown classes last (alphabetical among themselves, see sorted_classes)
}

std::vector<std::string> sorted_classes(std::set<std::string> classes) {
  std::vector<std::string> out(classes.begin(), classes.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const std::string& a, const std::string& b) { return class_order(a) < class_order(b); });
  return out;
}

std::string svg_open(double w, double h, const char* cls, int font_size) {
  return fmt::format(
      "<svg class=\"{2}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"{3}\">\n",
      w, h, cls, font_size);
}

// A legend of the classes, wrapped into rows of `per_row`; returns the height used (px).
double legend(std::string& s, const std::vector<std::string>& classes, double left, double top, int per_row) {
  constexpr double kItemW = 150, kRowH = 16;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const double x = left + kItemW * static_cast<double>(i % static_cast<std::size_t>(per_row));
    const double y = top + kRowH * static_cast<double>(i / static_cast<std::size_t>(per_row));
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"11\" height=\"11\" fill=\"{}\"/>"
                     "<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                     x, y, class_color(classes[i]), x + 15, y + 10, escape(classes[i]));
  }
  const auto rows = (classes.size() + static_cast<std::size_t>(per_row) - 1) / static_cast<std::size_t>(per_row);
  return kRowH * static_cast<double>(rows);
}

// Round tick step (1, 2, 2.5 or 5 x 10^k) giving about `n` ticks over `span`.
double tick_step(double span, int n) {
  const double raw = span > 0 ? span / n : 1.0, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

}  // namespace

std::string escape(const std::string& s) {
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

std::string op_class_chart(const RunResult& r) {
  std::set<std::string> present;
  double longest = 0;
  for (const auto& v : r.variants) {
    double sum = 0;
    for (const auto& [cls, t] : v.time_by_class_s)
      if (t > 0) present.insert(cls), sum += t;
    longest = std::max(longest, sum);
  }
  if (present.empty()) return {};
  const std::vector<std::string> classes = sorted_classes(present);
  constexpr double kLabelW = 200, kPlotW = 560, kRowH = 30, kBarH = 20;
  const double legend_h = 16.0 * static_cast<double>((classes.size() + 4) / 5);
  const double top = 8 + legend_h + 8;
  const double height = top + kRowH * static_cast<double>(r.variants.size()) + 6;
  std::string s = svg_open(kLabelW + kPlotW + 110, height, "opclass-chart", 12);
  legend(s, classes, 10, 8, 5);
  const double px_per_s = longest > 0 ? kPlotW / longest : 0;
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    const VariantResult& v = r.variants[i];
    const double y = top + kRowH * static_cast<double>(i);
    s += fmt::format("<g class=\"opclass-bar\"><text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                     kLabelW - 8, y + kBarH * 0.7, escape(v.name));
    double x = kLabelW, sum = 0;
    for (const std::string& cls : classes) {
      auto it = v.time_by_class_s.find(cls);
      if (it == v.time_by_class_s.end() || !(it->second > 0)) continue;
      const double w = it->second * px_per_s;
      s += fmt::format("<rect class=\"opclass-seg\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
                       "fill=\"{}\"><title>{}: {} {}</title></rect>\n",
                       x, y, w, kBarH, class_color(cls), escape(v.name), escape(cls), format_seconds(it->second));
      x += w;
      sum += it->second;
    }
    s += fmt::format("<text x=\"{:.2f}\" y=\"{:.1f}\">{}</text></g>\n", x + 6, y + kBarH * 0.7, format_seconds(sum));
  }
  return s + "</svg>\n";
}

std::string tokens_heat_map(const VariantResult& v) {
  // (layer, rank) -> (sum over steps, steps); layers where no rank receives a pair are dense and left out.
  std::map<int, std::map<int, std::pair<double, int>>> acc;
  std::set<int> moe_layers;
  int ranks = 0;
  for (const auto& row : v.rows) {
    auto& a = acc[row.layer][row.rank];
    a.first += static_cast<double>(row.tokens_received);
    ++a.second;
    ranks = std::max(ranks, row.rank + 1);
    if (row.tokens_received > 0) moe_layers.insert(row.layer);
  }
  if (moe_layers.empty() || ranks == 0) return {};
  std::vector<std::vector<double>> grid;  // [moe layer][rank], mean over steps
  double peak = 0;
  for (int layer : moe_layers) {
    std::vector<double> line(static_cast<std::size_t>(ranks), 0.0);
    for (const auto& [rank, a] : acc[layer]) line[static_cast<std::size_t>(rank)] = a.second ? a.first / a.second : 0;
    for (double x : line) peak = std::max(peak, x);
    grid.push_back(std::move(line));
  }
  const double cell_w = std::clamp(720.0 / ranks, 4.0, 26.0), cell_h = 10, left = 50, top = 34;
  const double width = left + cell_w * ranks + 20, height = top + cell_h * static_cast<double>(grid.size()) + 8;
  std::string s = svg_open(std::max(width, 420.0), height, "tokens-map", 10);
  s += fmt::format("<text x=\"{:.1f}\" y=\"11\">colour: ratio to the layer mean, white 1x, red 2x or more, blue "
                   "0x (max {:.0f} pairs)</text>\n",
                   left, peak);
  const int label_every = std::max(1, static_cast<int>(std::ceil(16.0 / cell_w)));
  for (int r = 0; r < ranks; r += label_every)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">r{}</text>\n",
                     left + cell_w * (r + 0.5), top - 6, r);
  std::size_t i = 0;
  for (int layer : moe_layers) {
    const auto& line = grid[i];
    const double y = top + cell_h * static_cast<double>(i);
    double mean = 0;
    for (double x : line) mean += x;
    mean /= ranks;
    if (i % 4 == 0)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">L{}</text>\n", left - 4, y + cell_h - 1,
                       layer);
    for (int r = 0; r < ranks; ++r) {
      // Diverging scale on a fixed range, so maps of different variants compare: ratio 1 white, 2 and above
      // full red (#b2182b), 0 full blue (#2166ac), linear in between.
      const double x = line[static_cast<std::size_t>(r)], ratio = mean > 0 ? x / mean : 1.0;
      const double d = std::clamp(ratio - 1.0, -1.0, 1.0);
      const int c[3] = {d >= 0 ? 178 : 33, d >= 0 ? 24 : 102, d >= 0 ? 43 : 172};
      auto mix = [&](int k) { return static_cast<int>(std::lround(255.0 - (255.0 - c[k]) * std::abs(d))); };
      s += fmt::format("<rect class=\"tokens-cell\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
                       "fill=\"rgb({},{},{})\"><title>layer {} rank {}: {:.1f} pairs received, {:.2f}x the layer "
                       "mean</title></rect>\n",
                       left + cell_w * r, y, cell_w, cell_h, mix(0), mix(1), mix(2), layer, r, x, ratio);
    }
    ++i;
  }
  return s + "</svg>\n";
}

int default_timeline_layer(const RunResult& r) {
  int best = -1;
  for (const auto& v : r.variants)
    for (const auto& e : v.events)
      if (e.step == 0 && e.phase == "fwd" && e.cls == "dispatch" && e.layer >= 0 && (best < 0 || e.layer < best))
        best = e.layer;
  if (best >= 0) return best;
  for (const auto& v : r.variants)  // no MoE layer: the first layer with ops
    for (const auto& e : v.events)
      if (e.step == 0 && e.layer >= 0 && (best < 0 || e.layer < best)) best = e.layer;
  return best;
}

std::string layer_timeline(const VariantResult& v, int layer) {
  std::vector<const TraceEvent*> ops;
  for (const auto& e : v.events)
    if (e.step == 0 && e.phase == "fwd" && e.layer == layer && e.rank < kTimelineRanks) ops.push_back(&e);
  if (ops.empty()) return {};
  double t0 = ops.front()->start_s, t1 = ops.front()->end_s;
  std::set<std::pair<int, int>> lanes;
  std::set<std::string> classes;
  for (const TraceEvent* e : ops) {
    t0 = std::min(t0, e->start_s), t1 = std::max(t1, e->end_s);
    lanes.insert({e->rank, e->stream});
    classes.insert(e->cls);
  }
  const std::vector<std::string> cls_order = sorted_classes(classes);
  constexpr double kLeft = 110, kPlotW = 760, kLaneH = 12, kGapRank = 4;
  const double legend_h = 16.0 * static_cast<double>((cls_order.size() + 4) / 5);
  const double top = 8 + legend_h + 22;
  // Lanes top to bottom in (rank, stream) order, with a small gap between ranks so each rank's streams read as
  // one group.
  std::map<std::pair<int, int>, double> lane_y;
  double bottom = top;
  for (const auto& l : lanes) {
    if (!lane_y.empty() && l.first != std::prev(lane_y.end())->first.first) bottom += kGapRank;
    lane_y[l] = bottom;
    bottom += kLaneH;
  }
  const double span = t1 > t0 ? t1 - t0 : 1e-9;
  const double px_per_s = kPlotW / span;
  std::string s = svg_open(kLeft + kPlotW + 30, bottom + 34, "timeline", 10);
  legend(s, cls_order, 10, 8, 5);
  // Time axis (from the layer's first op start), ticks at a round step.
  const double step = tick_step(span, 6);
  for (int k = 0; k * step <= span * (1 + 1e-9); ++k) {
    const double x = kLeft + k * step * px_per_s;
    s += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>"
                     "<text x=\"{0:.2f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
                     x, top - 4, bottom, bottom + 12, format_seconds(k * step));
  }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">time since the layer's first op starts "
                   "(rank {} at {})</text>\n",
                   kLeft + kPlotW / 2, bottom + 28, ops.front()->rank, format_seconds(t0));
  for (const auto& l : lanes) {
    const char* stream = l.second == 0 ? "compute" : l.second == 1 ? "comm" : l.second == 2 ? "dp" : "stream";
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">r{} {}</text>\n", kLeft - 6,
                     lane_y.at(l) + kLaneH - 3, l.first, stream);
  }
  for (const TraceEvent* e : ops) {
    const double x = kLeft + (e->start_s - t0) * px_per_s, w = std::max(0.0, e->end_s - e->start_s) * px_per_s;
    s += fmt::format("<rect class=\"gantt-op\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
                     "fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>rank {} {}{}: {} to {} ({})</title>"
                     "</rect>\n",
                     x, lane_y.at({e->rank, e->stream}) + 1, w, kLaneH - 2, class_color(e->cls), e->rank,
                     escape(e->cls),
                     e->chunk >= 0 ? fmt::format(" chunk {}", e->chunk) : std::string(),
                     format_seconds(e->start_s - t0), format_seconds(e->end_s - t0),
                     format_seconds(e->end_s - e->start_s));
  }
  return s + "</svg>\n";
}

}  // namespace moesim::reports::html
