// Turns an executed op graph (OpGraph + Trace) into the timing figures of a VariantResult.
#pragma once

#include "sim/engine.hpp"
#include "sim/op_graph.hpp"
#include "sim/result.hpp"

namespace moesim {

// Fills step_time_s, per_layer_mean_s, compute_s, comm_s, exposed_comm_s, overlap_ratio, time_by_class_s,
// ops_by_provenance, ops, simgrid_activities and rows (layer, rank, compute_s, comm_s, start_s, end_s; the
// caller adds tokens_received). `layers` = number of model layers simulated (for the per-layer mean).
// When `keep_events`, also fills events.
// Multi-step graphs (ops of steps 0..steps-1): step_time_s is the mean step time (step s ends when its last
// op ends; its time runs from the end of step s-1), and compute_s, comm_s, exposed_comm_s and time_by_class_s
// are per step (totals / steps); rows are per (step, layer, rank); extra.total_time_s is the makespan.
// extra.block_time_s (the `block` speed-up scope) = step_time_s less the mean over ranks (per step) of the time
// step-level ops (is_step_level) run outside every block op of that rank.
void summarize(const OpGraph& graph, const Trace& trace, int layers, bool keep_events, VariantResult& out);

// The MoE-layer figures (ReaLB / EPLB comparisons), added to `out` after summarize:
//  - MoE-layer time of each (step, MoE layer): from the first gate+permute start to the last combine end over
//    the ranks (forward); its mean in extra.moe_layer_time_s and its distribution, with the step times', in
//    step_stats (nearest-rank percentiles);
//  - the slowest rank of each (step, MoE layer) (longest forward expert op) and how often it changes from one
//    MoE layer to the next: extra.slowest_rank_changes, extra.slowest_rank_change_frac;
//  - weight casts: extra.cast_s (mean per rank per step) and extra.cast_hidden_frac (the part of the cast
//    time during which the same rank's dispatch of that layer was in flight);
//  - rows' precision (`model_dtype` unless an expert op carries another) and lowp_share per (layer, rank).
void summarize_moe(const OpGraph& graph, const Trace& trace, const std::string& model_dtype, VariantResult& out);

// Nearest-rank distribution of values (mean, p50, p99, max); all zeros for none.
Distribution distribution(std::vector<double> values);

// Length of the union of [a, b) intervals minus the union of the `minus` intervals (both lists unsorted).
double exposed_length(std::vector<std::pair<double, double>> cover, std::vector<std::pair<double, double>> minus);

}  // namespace moesim
