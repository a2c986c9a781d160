// Console report: a header that says what was simulated and how, then one aligned table row per variant.
#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "reports/reports.hpp"
#include "sim/units.hpp"

namespace moesim::reports {
namespace {

// "datasheet 412, measured 40": how many compute ops took their cost from each source.
std::string provenance_text(const VariantResult& v) {
  std::string s;
  for (const auto& [src, n] : v.ops_by_provenance) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", src, n);
  return s.empty() ? "-" : s;
}

}  // namespace

std::string settings_text(const RunContext& c) {
  std::string s;
  for (const auto& [k, v] : c.simgrid_settings) s += fmt::format("{}{}={}", s.empty() ? "" : " ", k, v);
  return s.empty() ? "(defaults)" : s;
}

std::string class_times_text(const VariantResult& v) {
  std::string s;
  for (const auto& [k, sec] : v.time_by_class_s)
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ", k, format_seconds(sec));
  return s;
}

SummaryTable summary_table(const RunResult& r) {
  SummaryTable t;
  const bool with_speedup = !r.baseline.empty();
  auto col = [&](const char* h, bool right) { t.headers.emplace_back(h); t.right_aligned.push_back(right); };
  col("variant", false);
  col("schedule", false);
  col("step time", true);
  col("per layer", true);
  col("compute", true);
  col("comm", true);
  col("exposed comm", true);
  col("overlap", true);
  col("imbalance (max/mean)", true);
  if (with_speedup) col("speedup", true);
  col("costs", false);
  for (const auto& v : r.variants) {
    std::vector<std::string> row{
        v.name, v.schedule, format_seconds(v.step_time_s), format_seconds(v.per_layer_mean_s),
        format_seconds(v.compute_s), format_seconds(v.comm_s), format_seconds(v.exposed_comm_s),
        fmt::format("{:.1f}%", 100.0 * v.overlap_ratio),
        fmt::format("{:.3f} (worst {:.3f})", v.load_imbalance, v.load_imbalance_max)};
    if (with_speedup)
      // As computed by the simulator (baseline step / this step); 0 means "not available".
      row.push_back(v.speedup_vs_baseline > 0 ? fmt::format("{:.3f}x", v.speedup_vs_baseline) : "-");
    row.push_back(provenance_text(v));
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string console_report(const RunResult& r, bool show_wall) {
  const RunContext& c = r.context;
  std::string out;
  auto kv = [&](const char* key, const std::string& val) { out += fmt::format("{:<10} {}\n", key, val); };
  kv("moesim", fmt::format("{} (git {})", c.moesim_version, c.git_sha));
  kv("scenario", fmt::format("{} ({}, sha256 {})", c.scenario_name, c.scenario_file,
                             c.scenario_sha256.substr(0, 12)));
  kv("model", fmt::format("{} on {} ({} GPUs), {} EP ranks", c.model, c.cluster, c.gpus, c.ep_ranks));
  kv("mode", fmt::format("{}, {} tokens per rank, seed {}", c.mode, c.tokens_per_rank, c.seed));
  kv("fidelity", fmt::format("{} (requested {})", c.fidelity, c.fidelity_requested));
  kv("simgrid", fmt::format("{}: {}", c.simgrid_version, settings_text(c)));
  std::string profiles;
  for (const auto& p : c.profiles) profiles += fmt::format("{}{} ({}{})", profiles.empty() ? "" : ", ", p.id, p.kind,
                            p.overlap_interference != 1.0
                                ? fmt::format(", overlap interference x{:g}", p.overlap_interference)
                                : std::string());
  kv("profiles", profiles.empty() ? "(none)" : profiles);
  if (!r.baseline.empty()) kv("baseline", r.baseline);
  out += '\n';

  // Table: widths from the widest cell; every line (header, rule, rows) padded to the same length.
  const SummaryTable t = summary_table(r);
  std::vector<std::size_t> w(t.headers.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i] = t.headers[i].size();
    for (const auto& row : t.rows) w[i] = std::max(w[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) s += "  ";
      s += t.right_aligned[i] ? fmt::format("{:>{}}", cells[i], w[i]) : fmt::format("{:<{}}", cells[i], w[i]);
    }
    return s + '\n';
  };
  out += line(t.headers);
  std::vector<std::string> rule;
  for (auto n : w) rule.emplace_back(n, '-');
  out += line(rule);
  for (const auto& row : t.rows) out += line(row);
  out += '\n';

  // Per-variant breakdown: time by op class, options, counters, variant-specific metrics.
  for (const auto& v : r.variants) {
    std::vector<std::string> parts;
    if (!v.options.empty()) {
      std::string o = "options:";
      for (const auto& [k, val] : v.options) o += fmt::format(" {}={}", k, val);
      parts.push_back(o);
    }
    const std::string classes = class_times_text(v);
    parts.push_back("by class: " + (classes.empty() ? std::string("-") : classes));
    parts.push_back(fmt::format("ops {}, simgrid activities {}, dropped tokens {}", v.ops, v.simgrid_activities,
                                v.dropped_tokens));
    if (!v.extra.empty()) {
      std::string ex;
      for (const auto& [k, val] : v.extra) ex += fmt::format("{}{}={:.6g}", ex.empty() ? "" : ", ", k, val);
      parts.push_back(ex);
    }
    if (show_wall) parts.push_back("wall " + format_seconds(v.wall_s));
    out += fmt::format("{}: {}\n", v.name, fmt::join(parts, " | "));
  }
  return out;
}

}  // namespace moesim::reports
