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
void summarize(const OpGraph& graph, const Trace& trace, int layers, bool keep_events, VariantResult& out);

// Length of the union of [a, b) intervals minus the union of the `minus` intervals (both lists unsorted).
double exposed_length(std::vector<std::pair<double, double>> cover, std::vector<std::pair<double, double>> minus);

}  // namespace moesim
