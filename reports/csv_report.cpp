// CSV report: one row per (variant, layer, rank); units in the header names (seconds, token-expert pairs).
#include <fmt/format.h>

#include "reports/reports.hpp"
#include "sim/csv_field.hpp"

namespace moesim::reports {

// Columns step, precision and vision_share are added only when some variant has them (multi-step runs,
// precision-switching schedules, multimodal workloads), so existing CSVs keep their bytes. A variant without
// a column's value leaves it empty.
std::string csv_report(const RunResult& r) {
  bool has_step = false, has_precision = false, has_vision = false;
  for (const auto& v : r.variants) {
    has_step = has_step || v.steps > 1;
    for (const auto& row : v.rows) {
      has_precision = has_precision || !row.precision.empty();
      has_vision = has_vision || row.vision_share >= 0;
    }
  }
  std::string out = "variant,schedule,";
  if (has_step) out += "step,";
  out += "layer,rank,tokens_received,compute_s,comm_s,start_s,end_s";
  if (has_precision) out += ",precision";
  if (has_vision) out += ",vision_share";
  out += '\n';
  for (const auto& v : r.variants) {
    const std::string prefix = csv_field(v.name) + ',' + csv_field(v.schedule);
    for (const auto& row : v.rows) {
      out += prefix + ',';
      if (has_step) out += fmt::format("{},", row.step);
      out += fmt::format("{},{},{},{:.9g},{:.9g},{:.9g},{:.9g}", row.layer, row.rank, row.tokens_received,
                         row.compute_s, row.comm_s, row.start_s, row.end_s);
      if (has_precision) out += ',' + row.precision;
      if (has_vision) out += row.vision_share >= 0 ? fmt::format(",{:.6g}", row.vision_share) : std::string(",");
      out += '\n';
    }
  }
  return out;
}

// One row per sweep point. The figures are those of the sweep table (reports.hpp), unformatted: a point
// without one (no baseline, a schedule that does not drop) leaves its field empty.
std::string sweep_csv_report(const RunResult& r) {
  std::string out =
      "sweep,key,value,variant,step_time_s,speedup_vs_baseline,moe_layer_time_s,"
      "moe_layer_speedup_vs_baseline,drop_frac,half_frac,ideal_speedup\n";
  auto extra = [](const VariantResult& v, const char* key) {
    auto it = v.extra.find(key);
    return it == v.extra.end() ? std::string() : fmt::format("{:.9g}", it->second);
  };
  for (const Sweep& s : sweeps_of(r))
    for (const VariantResult* v : s.points)
      out += fmt::format("{},{},{:.9g},{},{:.9g},{},{},{},{},{},{}\n", csv_field(s.of), csv_field(s.key),
                         v->sweep.value, csv_field(v->name), v->step_time_s,
                         v->speedup_vs_baseline > 0 ? fmt::format("{:.9g}", v->speedup_vs_baseline) : std::string(),
                         extra(*v, "moe_layer_time_s"), extra(*v, "moe_layer_speedup_vs_baseline"),
                         extra(*v, "ds_drop_rate"), extra(*v, "ds_half_rate"), extra(*v, "ds_ideal_speedup"));
  return out;
}

}  // namespace moesim::reports
