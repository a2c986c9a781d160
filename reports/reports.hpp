// Reporters: render one RunResult (sim/result.hpp) for people (console, HTML) and for scripts (JSON, CSV,
// Perfetto/Chrome trace). All are pure functions of their input, so identical results give identical bytes;
// host wall time appears only when explicitly asked for.
#pragma once

#include <string>
#include <vector>

#include "sim/result.hpp"

namespace moesim::reports {

// The per-variant summary table shared by the console and HTML reports (cells already formatted).
struct SummaryTable {
  std::vector<std::string> headers;
  std::vector<bool> right_aligned;  // numbers right, text left
  std::vector<std::vector<std::string>> rows;
};
SummaryTable summary_table(const RunResult& r);
// Header row, rule and rows with widths from the widest cell (console layout).
std::string table_text(const SummaryTable& t);
// The MoE-metrics table (multi-step or precision/replica schedules): per variant the MoE-layer time (gate to
// end of combine) and its speed-up, step-time percentiles over steps, low-precision share of routed
// computations, cast time and hidden fraction, slowest-rank changes, EPLB's extra memory. No rows when no
// variant has MoE metrics.
SummaryTable moe_table(const RunResult& r);
// Also shared by the console and HTML reports: the requested SimGrid settings as "k=v k=v" ("(defaults)" when
// there are none), and a variant's mean time per op class as "attention 9.1 ms, combine 6.4 ms" ("" when none).
std::string settings_text(const RunContext& c);
std::string class_times_text(const VariantResult& v);

// Header block + aligned table + per-variant breakdown lines. show_wall adds host wall time per variant.
std::string console_report(const RunResult& r, bool show_wall = false);

// Schema "moesim-result/1": {"schema", "context", "baseline", "variants"}; 2-space indent, trailing newline.
// events and wall_s are left out unless asked for (both vary between runs or are large).
std::string json_report(const RunResult& r, bool include_events = false, bool include_wall = false);

// One row per (variant, layer, rank); header "variant,schedule,layer,rank,tokens_received,compute_s,comm_s,
// start_s,end_s" (plus step / precision / vision_share where the run has them); RFC 4180 quoting where
// needed; numbers as {:.9g}; '\n' line ends.
std::string csv_report(const RunResult& r);

// Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): a process per variant, a thread per
// (rank, stream), one complete ("X") event per TraceEvent with ts/dur in microseconds.
std::string perfetto_trace(const RunResult& r);

// Self-contained HTML (no scripts, no network): SVG bar chart of step time per variant split into
// compute / exposed comm / other, and the summary table; with MoE metrics also their table and, per variant,
// heat maps (MoE layer x rank) of the low-precision share and the vision share; for variants with gate-score
// statistics (dualsparse), a histogram of the normalised gate scores with a strip per layer.
std::string html_report(const RunResult& r);

}  // namespace moesim::reports
