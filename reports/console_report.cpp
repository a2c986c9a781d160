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

// A variant-specific metric as "12.5%" (percent = true, from a fraction) or "1.234x"; "-" when absent.
std::string extra_or_dash(const VariantResult& v, const char* key, bool percent, int digits) {
  auto it = v.extra.find(key);
  if (it == v.extra.end()) return "-";
  return percent ? fmt::format("{:.{}f}%", 100.0 * it->second, digits) : fmt::format("{:.{}f}x", it->second, digits);
}

}  // namespace

SummaryTable moe_table(const RunResult& r) {
  SummaryTable t;
  bool any = false;
  for (const auto& v : r.variants) any = any || !v.step_stats.empty();
  if (!any) return t;
  auto col = [&](const char* h, bool right) { t.headers.emplace_back(h); t.right_aligned.push_back(right); };
  col("variant", false);
  col("MoE layer (mean)", true);
  col("MoE speedup", true);
  col("step p50", true);
  col("step p99", true);
  col("step max", true);
  col("low-prec pairs", true);
  col("cast (hidden)", true);
  col("slowest rank changes", true);
  col("EPLB extra mem/rank", true);
  // DualSparse columns only when a variant dropped computations, so other runs print as before.
  bool drops = false;
  for (const auto& v : r.variants) drops = drops || v.extra.count("ds_drop_rate") > 0;
  if (drops) {
    col("dropped (half)", true);
    col("ideal speedup", true);
  }
  for (const auto& v : r.variants) {
    auto stat = [&](const char* name, double Distribution::*f) {
      auto it = v.step_stats.find(name);
      return it == v.step_stats.end() ? std::string("-") : format_seconds(it->second.*f);
    };
    std::string cast = "-";
    if (auto it = v.extra.find("cast_s"); it != v.extra.end())
      cast = fmt::format("{} ({})", format_seconds(it->second), extra_or_dash(v, "cast_hidden_frac", true, 0));
    std::string changes = extra_or_dash(v, "slowest_rank_change_frac", true, 0);
    const auto mem = v.extra.find("eplb_extra_weight_bytes_per_rank");
    t.rows.push_back({v.name, stat("moe_layer_time_s", &Distribution::mean),
                      extra_or_dash(v, "moe_layer_speedup_vs_baseline", false, 3),
                      stat("step_time_s", &Distribution::p50), stat("step_time_s", &Distribution::p99),
                      stat("step_time_s", &Distribution::max), extra_or_dash(v, "lowp_pair_frac", true, 1), cast,
                      changes, mem == v.extra.end() ? std::string("-") : format_bytes(mem->second)});
    if (drops) {
      const bool ds = v.extra.count("ds_drop_rate") > 0;
      t.rows.back().push_back(ds ? fmt::format("{} ({})", extra_or_dash(v, "ds_drop_rate", true, 1),
                                               extra_or_dash(v, "ds_half_rate", true, 1))
                                 : std::string("-"));
      t.rows.back().push_back(extra_or_dash(v, "ds_ideal_speedup", false, 3));
    }
  }
  return t;
}

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
  auto col = [&](const std::string& h, bool right) { t.headers.push_back(h); t.right_aligned.push_back(right); };
  col("variant", false);
  col("schedule", false);
  col("step time", true);
  col("per layer", true);
  col("compute", true);
  col("comm", true);
  col("exposed comm", true);
  col("overlap", true);
  col("imbalance (max/mean)", true);
  if (with_speedup) col(fmt::format("speedup ({})", r.speedup_scope), true);
  col("costs", false);
  for (const auto& v : r.variants) {
    std::vector<std::string> row{
        v.name, v.schedule, format_seconds(v.step_time_s), format_seconds(v.per_layer_mean_s),
        format_seconds(v.compute_s), format_seconds(v.comm_s), format_seconds(v.exposed_comm_s),
        fmt::format("{:.1f}%", 100.0 * v.overlap_ratio),
        fmt::format("{:.3f} (worst {:.3f})", v.load_imbalance, v.load_imbalance_max)};
    if (with_speedup)
      // As computed by the simulator (baseline time / this time, of the scope); 0 means "not available".
      row.push_back(v.speedup_vs_baseline > 0 ? fmt::format("{:.3f}x", v.speedup_vs_baseline) : "-");
    row.push_back(provenance_text(v));
    t.rows.push_back(std::move(row));
  }
  return t;
}

// Widths from the widest cell; every line (header, rule, rows) padded to the same length.
std::string table_text(const SummaryTable& t) {
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
  std::string out = line(t.headers);
  std::vector<std::string> rule;
  for (auto n : w) rule.emplace_back(n, '-');
  out += line(rule);
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::string console_report(const RunResult& r, bool show_wall) {
  const RunContext& c = r.context;
  std::string out;
  auto kv = [&](const char* key, const std::string& val) { out += fmt::format("{:<10} {}\n", key, val); };
  kv("moesim", fmt::format("{} (git {})", c.moesim_version, c.git_sha));
  kv("scenario", fmt::format("{} ({}, sha256 {})", c.scenario_name, c.scenario_file,
                             c.scenario_sha256.substr(0, 12)));
  kv("model", fmt::format("{} on {} ({} GPUs), {}", c.model, c.cluster, c.gpus, c.etp > 1 ? fmt::format("{} ranks (EP {} x ETP {})", c.ep_ranks, c.ep_ranks / c.etp, c.etp) : fmt::format("{} EP ranks", c.ep_ranks)) +
                 (c.dp > 1 ? fmt::format(", x DP {} replicas = {} ranks{}", c.dp, c.dp * c.ep_ranks,
                                         c.dp_simulated < c.dp ? fmt::format(" ({} replicas simulated)", c.dp_simulated)
                                                               : std::string())
                           : std::string()));
  kv("mode", fmt::format("{}, {} tokens per rank, seed {}", c.mode, c.tokens_per_rank, c.seed));
  kv("fidelity", fmt::format("{} (requested {})", c.fidelity, c.fidelity_requested));
  kv("simgrid", fmt::format("{}: {}", c.simgrid_version, settings_text(c)));
  std::string profiles;
  for (const auto& p : c.profiles) {
    // "id (kind[, overlap interference xF (from)][, collective launch L us (from)][, GEMMs tiled|flat])": each
    // figure only when the run context carries it (a context built by hand may leave them out).
    std::string figures;
    if (p.overlap_interference != 1.0)
      figures += p.overlap_interference_from.kind.empty()
                     ? fmt::format(", overlap interference x{:.4g}", p.overlap_interference)
                     : fmt::format(", overlap interference x{:.4g} ({})", p.overlap_interference,
                                   p.overlap_interference_from.kind);
    if (!p.collective_launch_from.kind.empty())
      figures += fmt::format(", collective launch {:g} us ({})", p.collective_launch_s * 1e6, p.collective_launch_from.kind);
    if (p.gemm_model == "tiled")
      figures += fmt::format(", GEMMs tiled, k_overhead {:.4g} (bf16)", p.gemm_k_overhead_bf16);
    else if (!p.gemm_model.empty())
      figures += fmt::format(", GEMMs {}", p.gemm_model);
    profiles += fmt::format("{}{} ({}{})", profiles.empty() ? "" : ", ", p.id, p.kind, figures);
  }
  kv("profiles", profiles.empty() ? "(none)" : profiles);
  for (const std::string& a : c.approximations) kv("approx", a);
  if (!r.baseline.empty())
    kv("baseline", fmt::format("{} (speed-ups compare {} time: {})", r.baseline, r.speedup_scope,
                               r.speedup_scope == "step"        ? "the whole step"
                               : r.speedup_scope == "moe_layer" ? "gate to end of combine of the MoE layers"
                                                                : "the transformer blocks, without embedding, LM head, "
                                                                  "loss, optimizer and DP all-reduce"));
  if (!r.variants.empty() && r.variants.front().steps > 1)
    kv("steps", fmt::format("{} consecutive batches; the table's times are means per step", r.variants.front().steps));
  out += '\n';
  out += table_text(summary_table(r));
  out += '\n';
  if (const SummaryTable m = moe_table(r); !m.rows.empty()) {
    out += "MoE metrics: MoE layer = gate to end of combine, mean over steps and MoE layers; low-prec pairs = share "
           "of routed token-expert computations done in low precision; slowest rank changes = share of consecutive "
           "MoE layers whose slowest rank differs\n";
    out += table_text(m);
    out += '\n';
  }

  for (const Sweep& sw : sweeps_of(r)) {
    out += fmt::format("Sweep {} over {} ({} points): speed-ups against the baseline; MoE layer = gate to end of "
                       "combine; ideal speedup = 1 / (1 - dropped - half / 2), the expert work saved if every "
                       "computation cost the same\n",
                       sw.of, sw.key, sw.points.size());
    out += table_text(sweep_table(sw));
    out += '\n';
  }

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
