// Schedule `dualsparse` (DualSparse-MoE): its options and the per-layer drop decision, exposed for tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "models/variants/variant.hpp"

namespace moesim::models {

enum class DropPolicy { none, one_t, two_t, load_aware };
// How experts use a group of parallelism.etp ranks: none (etp = 1, plain EP), etp (each expert sharded over its
// group: all-to-all + all-gather to dispatch, reduce-scatter + all-to-all to combine), s_etp (the expert
// split into etp sub-experts, one per rank of the group, reached by the all-to-alls alone).
enum class ExpertTp { none, etp, s_etp };

struct DualSparseOptions : ScheduleOptions {
  DropPolicy policy = DropPolicy::none;
  double threshold = 0.0;           // T, on the gate score normalised over the token's top-k, in [0, 1]
  // `thresholds: [...]` (a sweep): the values of T, strictly increasing, 2..64 of them; the entry is expanded
  // into one variant per value (dualsparse_expand) and each has this empty and `threshold` set. Empty: no sweep.
  std::vector<double> thresholds;
  double delta = 0.01;              // 2T-Drop half-width: skip below T - delta, major half up to T + delta
  bool drop_before_dispatch = false;  // the source decides, so dropped pairs are not sent either
  int partition = 1;                // P sub-experts per expert (a power of two dividing expert_ffn)
  ExpertTp expert_tp = ExpertTp::none;  // set when parallelism.etp > 1 (etp unless the variant says s_etp)
};

// Bounds of a `thresholds:` list (a sweep of T): at least two points, at most 64 (each is a simulation).
inline constexpr std::size_t kMinSweepThresholds = 2, kMaxSweepThresholds = 64;

// One variant per value of the entry's `thresholds:` list, in list order: named "<name> T=<value>" (value as
// the shortest text that reads back the same double, e.g. "ds T=0.05"), with that threshold in its options
// and `shown`, and the sweep tag {of: <name>, key: "threshold", value}. Empty when the entry has no list.
std::vector<VariantSpec> dualsparse_expand(const VariantSpec& spec);

// What happens to one token-expert pair.
enum class PairFate { dropped, half, full };
// The fate of a pair of normalised score s under threshold t (already load-scaled) and half-width delta:
// none: full; 1t: dropped below t, else full; 2t and load_aware: dropped below t - delta, half in
// [t - delta, t + delta), full from t + delta.
PairFate pair_fate(DropPolicy p, double s, double t, double delta);

// One MoE layer after dropping.
struct DualSparseLayer {
  std::vector<double> threshold;                // per rank: T, or T x load_r / max load (load_aware)
  std::vector<std::vector<int64_t>> full, half;  // [rank][i]: pairs of the rank's i-th local expert
  std::vector<int64_t> kept_pairs;              // ranks x ranks, row-major: full + half pairs src -> dst
  std::vector<int64_t> received;                // per rank: routed pairs before dropping
  // Only with etp > 1, ranks x ranks: routed pairs src -> dst (the rank of the expert's group the plan sends
  // them to) by fate, for the S-ETP all-to-all, which sends each pair to the sub-experts that compute it.
  std::vector<int64_t> fate_full, fate_half, fate_dropped;
  int64_t routed = 0, dropped = 0, halves = 0;  // routed pairs (after any capacity drop) of the layer
  int64_t shared = 0;                           // shared-expert computations: tokens x shared_experts
};

// The drop decision of `layer` from the plan's per-token records (keep_scores or a trace). Each pair goes to
// the rank that receives it (Placement::dest_of_nth, as the plan's counts) and is judged by that rank's
// threshold. With etp > 1 (groups of etp consecutive ranks sharing their experts) a rank's load for
// load_aware is its group's, since every rank of the group computes on every pair the group receives.
// Throws std::logic_error when the plan has no per-token records.
DualSparseLayer dualsparse_layer(const RoutingPlan& plan, const Architecture& arch, const Placement& placement,
                                 int layer, const DualSparseOptions& o, int etp = 1);

// The sub-expert GEMMs of one rank: (tokens, FFN width) per GEMM. P = 1: each expert's full pairs at
// expert_ffn, and its half pairs at expert_ffn / 2; P >= 2: P sub-experts of expert_ffn / P per expert, the
// first P / 2 (the major half) over full + half pairs, the others over full pairs only.
struct SubExpertGemm {
  int64_t tokens = 0;
  int64_t ffn = 0;
};
std::vector<SubExpertGemm> sub_expert_gemms(const std::vector<int64_t>& full, const std::vector<int64_t>& half,
                                            int64_t expert_ffn, int partition);
// Forward FLOPs of these GEMMs, 2 FLOP per MAC over `matrices` weight matrices of hidden x ffn (3 for SwiGLU:
// gate_up hidden -> 2 ffn and down ffn -> hidden; 2 for gelu/relu).
double sub_expert_flops(const std::vector<SubExpertGemm>& gemms, int64_t hidden, int matrices = 3);

// With etp > 1 (ETP or S-ETP): the rows of each of rank r's GEMMs, one per expert of its group, each of
// expert_ffn / etp neurons: the group's full pairs of that expert, plus its half pairs when r holds the major
// half of the neurons (r mod etp < etp / 2). group_full/group_half: the group's pairs per local expert.
std::vector<int64_t> group_rank_rows(const std::vector<int64_t>& group_full, const std::vector<int64_t>& group_half,
                                     int rank, int etp);

}  // namespace moesim::models
