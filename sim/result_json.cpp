#include "sim/result_json.hpp"

namespace moesim {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LayerRankRow, step, layer, rank, tokens_received, compute_s, comm_s, start_s,
                                   end_s, precision, vision_share)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Distribution, mean, p50, p99, max, count)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(GateScoreLayer, layer, counts, pairs, mean, p50)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(GateScoreStats, scores, norm_topk_prob, bins, pairs, mean, p50, topk_mass_mean,
                                   layers)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SweepPoint, of, key, value)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TraceEvent, rank, stream, name, cls, layer, chunk, phase, start_s, end_s, step,
                                   collective, deps, sends_to, bytes_sent, bytes_received)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(VariantResult, name, schedule, routing_sampler, options, step_time_s, per_layer_mean_s,
                                   compute_s, comm_s, exposed_comm_s, overlap_ratio, load_imbalance,
                                   load_imbalance_max, dropped_tokens, speedup_vs_baseline, time_by_class_s,
                                   ops_by_provenance, extra, ops, simgrid_activities, wall_s, rows, events,
                                   steps, step_stats, step_times_s, map_layers, lowp_share, gate_scores, sweep)

}  // namespace moesim

namespace moesim {
nlohmann::json variant_to_json(const VariantResult& v) { return nlohmann::json(v); }
VariantResult variant_from_json(const nlohmann::json& j) { return j.get<VariantResult>(); }
}  // namespace moesim
