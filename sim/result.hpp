// The single result model of a moesim run (google/benchmark style): one RunResult with a self-describing
// context block, rendered by several reporters (console table, JSON, CSV, Perfetto trace) in reports/.
// All times are seconds, all sizes bytes; key names in JSON/CSV carry the unit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moesim {

// Everything needed to reproduce and interpret a result (DESIGN "Outputs").
struct RunContext {
  std::string moesim_version;
  std::string git_sha;
  std::string scenario_file;
  std::string scenario_sha256;  // hash of the scenario file's bytes
  std::string scenario_name;
  uint64_t seed = 0;
  std::string simgrid_version;
  std::vector<std::pair<std::string, std::string>> simgrid_settings;  // of the requested fidelity
  std::string fidelity;           // exact | fast (after resolving auto)
  std::string fidelity_requested; // auto | exact | fast
  std::string model;              // architecture name
  std::string cluster;            // cluster name
  int gpus = 0;                   // GPUs in the cluster
  int ep_ranks = 0;  // ranks (GPUs) = EP degree x etp
  int etp = 1;       // expert tensor-parallel degree (parallelism.etp)
  int dp = 1;        // data-parallel replicas of the EP group (parallelism.dp); the run has dp x ep_ranks ranks
  // Replicas the engine simulated (simulation.dp_replicas; fewer than dp: representative replicas, named in
  // `approximations`), and with dp > 1 and all simulated under auto, why no fewer could be ("" otherwise).
  int dp_simulated = 1;
  std::string dp_all_reason;
  std::string mode;               // inference_prefill | decode | training
  int64_t tokens_per_rank = 0;
  struct ProfileInfo {
    std::string id, kind, gpu, confidence;
    double overlap_interference = 1.0;  // compute slow-down while a comm kernel runs on the GPU (>= 1)
    std::vector<std::string> sources;
    // Issue 13 figures, after `sources` so that the aggregate initialisers of the fields above keep their
    // meaning (a brace list {id, kind, gpu, confidence, interference, {sources...}} must not fill a new field).
    // A figure's provenance: kind (measured | derived | datasheet | reference) and where it comes from.
    struct Cited {
      std::string kind, source;
    };
    Cited overlap_interference_from{};
    double collective_launch_s = 0;  // fixed time per collective call
    Cited collective_launch_from{};
    double comm_sms = 0;  // SMs a communication kernel holds
    Cited comm_sms_from{};
    // GEMM costing of roofline GEMMs: "tiled" (shape model, models/gemm_efficiency.hpp) or "flat".
    std::string gemm_model{};
    int gemm_tile_m = 0, gemm_tile_n = 0, gemm_tile_k = 0;
    double gemm_k_overhead = -1;  // < 0: derived per dtype (out_bytes * peak / (2 * bw))
    double gemm_k_overhead_bf16 = 0;  // the value used for bf16 GEMMs
    int64_t gemm_reference = 0;
    std::string gemm_shape_source{};
  };
  std::vector<ProfileInfo> profiles;
  // Each approximation this run makes for speed, named with where its measured error is stated (issue 14
  // point 5): e.g. routing counts sampled per (rank, expert) instead of per token.
  std::vector<std::string> approximations;
};

// Per (layer, rank) figures of one variant, for the CSV and detailed views.
struct LayerRankRow {
  int layer = 0;
  int rank = 0;
  int64_t tokens_received = 0;  // token-expert pairs this rank's experts compute in this layer (forward)
  double compute_s = 0;         // sum of this rank's compute op durations in this layer (fwd + bwd)
  double comm_s = 0;            // sum of this rank's all-to-all op durations in this layer (fwd + bwd)
  double start_s = 0;           // first op start of this layer on this rank
  double end_s = 0;             // last op end of this layer on this rank
  int step = 0;                 // workload step (multi-step runs)
  std::string precision;        // MoE-metric runs: the expert GEMMs' precision (bf16 | fp8 | fp4); "" otherwise
  double vision_share = -1;     // multimodal: vision pairs / pairs received (forward); -1 otherwise
};

// Distribution of a figure over steps (or MoE layers): mean and nearest-rank percentiles.
struct Distribution {
  double mean = 0, p50 = 0, p99 = 0, max = 0;
  int64_t count = 0;
};

// The distribution of the normalised gate scores (over each token's top-k, in [0, 1]) of the routed
// token-expert pairs, for schedules that read per-token scores (dualsparse). bins == 0: not reported.
struct GateScoreLayer {
  int layer = 0;                // model layer
  std::vector<int64_t> counts;  // pairs per bin: bin i holds scores in [i / bins, (i + 1) / bins) (the last also 1)
  int64_t pairs = 0;
  double mean = 0, p50 = 0;     // of the layer's scores; p50 nearest rank
};
struct GateScoreStats {
  std::string scores;           // how they were made: uniform | softmax | trace (routing.gate.scores)
  bool norm_topk_prob = false;  // the model's flag: whether its gate weight is the normalised score itself
  int bins = 0;                 // bins of width 1 / bins over [0, 1]
  int64_t pairs = 0;            // over all layers (and steps)
  double mean = 0, p50 = 0;
  double topk_mass_mean = -1;   // softmax: mean over tokens of the summed gate probability of the top-k; -1 else
  std::vector<GateScoreLayer> layers;  // simulated MoE layers, ascending; counts summed over steps
};

// One op of the trace, for the Perfetto/Chrome reporter (only kept when asked for).
struct TraceEvent {
  int rank = 0;
  int stream = 0;  // 0 compute, 1 comm
  std::string name;
  std::string cls;
  int layer = -1;
  int chunk = -1;
  std::string phase;  // fwd | bwd
  double start_s = 0, end_s = 0;
  // For the trace's flows and byte counters and the HTML timeline (events are kept in op order, so an event's
  // index is its op id):
  int step = 0;                 // workload step
  int collective = -1;          // collective ops: the collective's index (members share it); -1 for compute
  std::vector<uint32_t> deps;   // indices of the events this op waits for (stream predecessor included)
  std::vector<int> sends_to;    // collective ops: ranks this rank's op sends a non-zero byte count to, ascending
  double bytes_sent = 0;        // collective ops: bytes this rank sends to the other members, B
  double bytes_received = 0;    // collective ops: bytes this rank receives from the other members, B
};

// Where a variant sits in a parameter sweep: one scenario entry (`of`, its name) expanded into one variant per
// value of `key` (e.g. dualsparse `thresholds:` -> key "threshold"). Set on the VariantSpec when the scenario is
// loaded and copied into the VariantResult by the runner; reporters group the points of a sweep by `of`, in
// the order of the variants. Empty `of`: the variant is not part of a sweep (and reports leave the tag out).
struct SweepPoint {
  std::string of;    // the sweep: the name of the scenario entry the point was expanded from
  std::string key;   // the swept option, as written in the scenario (e.g. "threshold")
  double value = 0;  // its value at this point (unit: the option's own)
  bool empty() const { return of.empty(); }
};

struct VariantResult {
  std::string name;      // as named in the scenario
  std::string schedule;  // topk, shared_expert, pipelined, scmoe, ...
  std::string routing_sampler;  // tokens | counts: how this variant's routing plans were drawn
  std::map<std::string, std::string> options;  // schedule options as resolved (e.g. expert_slot chosen)
  double step_time_s = 0;          // makespan of the simulated step
  double per_layer_mean_s = 0;     // step_time_s / layers simulated
  double compute_s = 0;            // mean over ranks of the summed compute op durations
  double comm_s = 0;               // mean over ranks of the summed all-to-all op durations
  double exposed_comm_s = 0;       // mean over ranks of time with communication but no computation running
  double overlap_ratio = 0;        // 1 - exposed / comm (0 when there is no communication)
  double load_imbalance = 0;       // mean over MoE layers of max/mean tokens received per rank
  double load_imbalance_max = 0;   // max over MoE layers
  int64_t dropped_tokens = 0;      // token-expert pairs dropped by the capacity factor
  double speedup_vs_baseline = 0;  // baseline time / this time, times of RunResult::speedup_scope (0 when no baseline)
  std::map<std::string, double> time_by_class_s;       // mean over ranks, per op class
  std::map<std::string, int64_t> ops_by_provenance;    // compute ops per cost provenance
  std::map<std::string, double> extra;                 // variant-specific metrics (units in names)
  std::size_t ops = 0;                                 // ops simulated
  std::size_t simgrid_activities = 0;
  double wall_s = 0;                                   // host time to build and simulate (not in golden files)
  std::vector<LayerRankRow> rows;
  std::vector<TraceEvent> events;  // filled only when a trace output is requested
  // Multi-step and MoE-metric runs (empty otherwise, and then left out of every report):
  int steps = 1;                                   // workload steps simulated
  std::map<std::string, Distribution> step_stats;  // step_time_s over steps, moe_layer_time_s over (step, layer)
  std::vector<double> step_times_s;                // per step
  std::vector<int> map_layers;                     // MoE layers of lowp_share, ascending
  std::vector<std::vector<double>> lowp_share;     // [layer][rank]: share of steps in a low precision
  GateScoreStats gate_scores;                      // schedules that read per-token scores (bins > 0), else empty
  SweepPoint sweep;                                // the variant's place in a sweep (empty: not part of one)
};

struct RunResult {
  static constexpr const char* kSchema = "moesim-result/1";
  RunContext context;
  std::string baseline;  // variant name the speedups refer to ("" if none)
  std::string speedup_scope = "block";  // the time speedup_vs_baseline compares: moe_layer | block | step
  std::vector<VariantResult> variants;
};

}  // namespace moesim
