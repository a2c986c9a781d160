// Parameter sweeps in the reports: grouping the points of each sweep and the per-point table shared by the
// console and HTML reports. Generic over the swept key: the figures are the step's and the MoE layer's
// speed-ups plus DualSparse's drop figures where a point has them ("-" otherwise).
#include <algorithm>

#include <fmt/format.h>

#include "reports/reports.hpp"
#include "sim/units.hpp"

namespace moesim::reports {

std::vector<Sweep> sweeps_of(const RunResult& r) {
  std::vector<Sweep> out;
  for (const auto& v : r.variants) {
    if (v.sweep.empty()) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const Sweep& s) { return s.of == v.sweep.of; });
    if (it == out.end()) it = out.insert(out.end(), Sweep{v.sweep.of, v.sweep.key, {}});
    it->points.push_back(&v);
  }
  return out;
}

namespace {

// A figure of `extra` as "12.5%" (percent, from a fraction) or "1.234x"; "-" when absent.
std::string extra_cell(const VariantResult& v, const char* key, bool percent) {
  auto it = v.extra.find(key);
  if (it == v.extra.end()) return "-";
  return percent ? fmt::format("{:.1f}%", 100.0 * it->second) : fmt::format("{:.3f}x", it->second);
}

}  // namespace

SummaryTable sweep_table(const Sweep& s) {
  SummaryTable t;
  auto col = [&](const std::string& h, bool right) { t.headers.push_back(h); t.right_aligned.push_back(right); };
  col(s.key, true);
  col("step time", true);
  col("speedup", true);  // of the run's speedup_scope (baseline.scope)
  col("MoE layer", true);
  col("MoE speedup", true);
  col("dropped", true);
  col("half", true);
  col("ideal speedup", true);
  for (const VariantResult* v : s.points) {
    auto moe = v->extra.find("moe_layer_time_s");
    t.rows.push_back({fmt::format("{}", v->sweep.value), format_seconds(v->step_time_s),
                      // 0 means "no baseline" (as in the summary table).
                      v->speedup_vs_baseline > 0 ? fmt::format("{:.3f}x", v->speedup_vs_baseline) : "-",
                      moe == v->extra.end() ? std::string("-") : format_seconds(moe->second),
                      extra_cell(*v, "moe_layer_speedup_vs_baseline", false), extra_cell(*v, "ds_drop_rate", true),
                      extra_cell(*v, "ds_half_rate", true), extra_cell(*v, "ds_ideal_speedup", false)});
  }
  return t;
}

}  // namespace moesim::reports
