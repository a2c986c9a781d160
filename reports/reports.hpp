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

// Parameter sweeps (variants tagged with a SweepPoint, e.g. the points of a dualsparse `thresholds:` list): the
// points sharing `of`, in the order the variants appear (the order the sweep lists its values); sweeps in the
// order of their first point. Empty when no variant belongs to a sweep.
struct Sweep {
  std::string of;   // the sweep's name (the scenario entry it was expanded from)
  std::string key;  // the swept option (e.g. threshold)
  std::vector<const VariantResult*> points;
};
std::vector<Sweep> sweeps_of(const RunResult& r);
// One sweep's table, a row per point: the key's value, step time and its speed-up over the baseline, MoE-layer
// time (gate to end of combine) and its speed-up, drop rate, half rate and ideal speed-up (DualSparse's
// 1 / (1 - drop - half / 2)); "-" where a point lacks the figure (no baseline, another schedule).
SummaryTable sweep_table(const Sweep& s);

// Header block + aligned table + per-variant breakdown lines. show_wall adds host wall time per variant.
std::string console_report(const RunResult& r, bool show_wall = false);

// Schema "moesim-result/1": {"schema", "context", "baseline", "variants"} (+ "sweeps" when a variant is a sweep
// point: [{of, key, points: [{value, variant}]}]); 2-space indent, trailing newline.
// events and wall_s are left out unless asked for (both vary between runs or are large).
std::string json_report(const RunResult& r, bool include_events = false, bool include_wall = false);

// One row per (variant, layer, rank); header "variant,schedule,layer,rank,tokens_received,compute_s,comm_s,
// start_s,end_s" (plus step / precision / vision_share where the run has them); RFC 4180 quoting where
// needed; numbers as {:.9g}; '\n' line ends.
std::string csv_report(const RunResult& r);

// `moesim run --sweep-csv`: one row per sweep point, sweeps in sweeps_of order; header
// "sweep,key,value,variant,step_time_s,step_speedup_vs_baseline,moe_layer_time_s,moe_layer_speedup_vs_baseline,
// drop_frac,half_frac,ideal_speedup" (fractions in [0, 1], speed-ups as ratios); a figure a point lacks is an
// empty field; numbers as {:.9g}. A run without a sweep gives the header alone (the CLI refuses such a run
// before simulating, see sim/main.cpp).
std::string sweep_csv_report(const RunResult& r);

// Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): a process per variant, a thread per
// (rank, stream), one complete ("X") event per TraceEvent with ts/dur in microseconds; flow arrows ("s" -> "f",
// named "dispatch to expert") from each rank's dispatch op to every expert op on a rank it sends a non-zero
// byte count to (at most 200,000 over the trace, the rest counted in otherData.flows_left_out); and, for the 4
// ranks moving the most bytes, a counter ("C", "rank R bytes of collectives in progress", args sent_B and
// received_B) of the payload of the collective ops in progress on that rank (per rank, not per link).
std::string perfetto_trace(const RunResult& r);

// Self-contained HTML (no scripts, no network): SVG bar chart of step time per variant split into
// compute / exposed comm / other, and the summary table; with MoE metrics also their table and, per variant,
// heat maps (MoE layer x rank) of the low-precision share and the vision share; for variants with gate-score
// statistics (dualsparse), a histogram of the normalised gate scores with a strip per layer; with sweeps, a
// "Sweeps" section: per sweep an SVG chart of speed-up against drop rate (simulated MoE-layer speed-up and the
// ideal one, each point labelled with its value) and the sweep's table.
// Also (issue 15 point 4, reports/html_charts.hpp): a stacked bar per variant of op time by class; per variant a
// heat map (MoE layer x rank) of token-expert pairs received; and, when the variants carry events, a timeline per
// variant of the forward ops of one layer in step 0 per (rank, stream): `timeline_layer`, or the first MoE
// layer when it is -1.
std::string html_report(const RunResult& r, int timeline_layer = -1);

}  // namespace moesim::reports
