// Token routing: which experts each token of each EP rank picks, per MoE layer.
//
// Determinism (DESIGN rule 7): our own PRNG (xoshiro256**, seeded through splitmix64) and our own samplers;
// no std:: distributions. Each (layer, source rank) has its own stream seeded from (seed, layer, rank), so a
// layer's routing does not depend on how many layers or ranks came before it.
//
// Each token picks top_k DISTINCT experts in proportion to per-layer expert popularity weights w_e (uniform:
// all equal; zipf: 1/rank^s; hot: hot_share spread over the hot experts, the rest over the others). How the
// picks and their gate scores are made depends on routing.gate.scores:
//   uniform (default): the picks are sampled without replacement by w; each pick gets a synthetic raw score
//     u ~ U(0,1], normalised over the token's k picks (an assumption, not a measured distribution).
//   softmax: the router is modelled. Per token, logits l_e = log(w_e) + noise * G_e with G_e standard Gumbel
//     noise; the picks are the k largest logits; gate probabilities p_e = softmax(l / temperature) over all
//     experts; a pick's normalised score is p_j / (sum of the k picked p). With noise = 1 the picks are
//     exactly sampling without replacement by w (the Gumbel-top-k trick), i.e. the uniform mode's pick
//     distribution (not its draws); noise n gives sampling by w^(1/n).
// Normalised scores are kept per token only with keep_scores: true or from a trace (use a trace for real
// scores); as a histogram per destination rank when the runner asks for it.
//
// Capacity (optional): capacity_factor c gives each (source rank, expert) pair a budget of
// ceil(c * T * k / E) token-expert pairs (Switch/GShard-style local capacity); later tokens of the rank
// beyond it are dropped (counted, not sent). capacity_mode: drop (default) sends and computes only the
// pairs kept; pad (GShard, Tutel, DeepSpeed's fixed-capacity dispatch) sizes every (source rank, expert)
// buffer at the capacity whether full or not, so the all-to-alls carry and the expert GEMMs compute the
// padded rows (LayerRouting::pad_rows, padded_rank_tokens); counts, drops and reports keep the real pairs.
//
// Trace files (distribution: trace) are CSV, '#' starts a comment line, a header line is required:
//     layer,rank,token,experts,scores
//     1,0,0,3;17,0.62;0.38
// layer: model layer index (a MoE layer) or '*' (rows used for every MoE layer that has no rows of its own);
// rank: source EP rank in [0, ranks); token: token index within the rank (informational); experts: top_k
// distinct expert ids separated by ';'; scores (optional column, may be empty): top_k non-negative gate
// scores separated by ';', normalised per token on load (missing scores count as equal).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/architecture.hpp"
#include "models/placement.hpp"
#include "sim/result.hpp"
#include "sim/yaml_view.hpp"

namespace moesim::models {

// xoshiro256** (Blackman & Vigna), seeded with splitmix64. Identical output on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform integer in [0, n) by multiply-high on 32 random bits (bias < n / 2^32, negligible for n <= 2^16).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// splitmix64 step, also used to derive per-(layer, rank) seeds.
uint64_t splitmix64(uint64_t& state);
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b);

enum class RoutingDistribution { uniform, zipf, hot, trace };

// How generated routing makes its gate scores (routing.gate; see the header comment). Traces carry their own.
enum class GateScores { uniform, softmax };
struct Gate {
  GateScores scores = GateScores::uniform;
  double temperature = 1.0;  // softmax: > 0, divides the logits before the softmax (dimensionless)
  double noise = 1.0;        // softmax: > 0, scale of the per-token Gumbel noise on the log-popularity logits
};
const char* gate_scores_name(GateScores g);

// One token of the softmax gate, exposed for tests: log_w[e] (log popularity; -infinity = never picked, as
// a zero weight) plus noise * gumbel[e] are the logits of the E experts; writes the k experts with the
// largest logits to pick[0..k) in descending logit order (ties: lower id first) and their normalised scores
// (softmax(logits / temperature) restricted to the picks, summing to 1) to score[0..k). Returns the top-k
// mass: the sum of the k picked gate probabilities of the softmax over all E experts, in (0, 1]. Needs at
// least k finite log_w.
double softmax_gate_token(const double* log_w, const double* gumbel, int E, int k, double temperature, double noise,
                          uint32_t* pick, double* score);

// One trace row: a token's experts and normalised scores (k each).
struct TraceToken {
  int layer = -1;  // -1: '*'
  int rank = 0;
  int64_t token = 0;
  std::vector<int> experts;
  std::vector<float> scores;
};

// How the popularity ranking of zipf/hot routing moves from one workload step to the next.
//   none:   the same ranking every step (the token draws are still fresh per step);
//   redraw: at each step, round(fraction * n) experts of the ranking (n = experts in the range), drawn at
//           random, exchange their positions by a random permutation among themselves (fraction 1 = a fresh
//           ranking each step). Step s's ranking is step s-1's redrawn with a stream of its own (steps before
//           0, the EPLB warm-up, run the chain backwards from step 0), so step 0 is the ranking of a one-step run.
enum class DriftKind { none, redraw };
struct Drift {
  DriftKind kind = DriftKind::none;
  double fraction = 0.0;  // redraw: in (0, 1]
};

// Multimodal batches (workload.modalities): each rank's tokens are requests of `text_tokens` text tokens
// followed by `images` images of `tokens_per_image` vision tokens each, images drawn uniformly from
// [images_min, images_max] per request, requests filling the rank's tokens (the last one cut short). So the
// vision share follows from the request shape and differs per rank and step.
struct RequestShape {
  int64_t text_tokens = 0;
  int images_min = 0, images_max = 0;
  int64_t tokens_per_image = 0;
};

// How a generated layer is drawn (routing.sampler): per token (every token's k picks; needed for traces,
// per-token records, gate-score histograms, the softmax gate and capacity in multimodal batches) or per
// (source rank, expert) count (models/routing_counts.hpp: O(ranks x experts) per layer, same generative model;
// top_k > 1 is an approximation whose measured error is in ARCHITECTURE.md). automatic: counts when nothing
// needs per-token records, else tokens.
enum class Sampler { tokens, counts, automatic };
const char* sampler_name(Sampler s);

struct RoutingSpec {
  RoutingDistribution distribution = RoutingDistribution::uniform;
  double zipf_s = 1.0;                 // zipf exponent, >= 0 (0 = uniform)
  int hot_count = 0;                   // hot: number of hot experts (when no explicit list)
  std::vector<int> hot_experts;        // hot: explicit ids (same on every layer)
  double hot_share = 0.5;              // hot: probability mass on the hot experts, in [0, 1]
  bool rotate_hot = true;              // zipf/hot: a fresh per-layer choice of which experts are hot
  std::optional<double> capacity_factor;  // > 0; none = no dropping
  bool capacity_pad = false;           // capacity_mode: pad (needs capacity_factor; see the header comment)
  bool keep_scores = false;            // keep per-token experts and scores in the plan
  int histogram_bins = 64;             // bins over [0, 1] of the normalised gate-score histograms
  Gate gate;                           // routing.gate: how generated picks and gate scores are made
  Sampler sampler = Sampler::automatic;  // routing.sampler (workload-wide for multimodal batches)
  // Not a scenario key: whether the plan carries score_hist. The runner turns it off for schedules that do
  // not read gate scores; expert picks and counts are the same either way (scores are drawn regardless).
  bool score_histograms = true;
  std::string trace_file;              // resolved path
  std::shared_ptr<const std::vector<TraceToken>> trace;  // rows, file order
  // A trace per step: the file named with "{step}" replaced by 0, 1, ...; step s uses step_traces[s mod n]
  // (steps before 0, the EPLB warm-up, count from the end). Empty: `trace` for every step.
  std::vector<std::shared_ptr<const std::vector<TraceToken>>> step_traces;
  Drift drift;                         // workload.drift (zipf / hot with a count)
  // Multimodal workloads: the request shape and the vision tokens' own routing (this spec routes the text
  // tokens). Both set or both unset.
  std::optional<RequestShape> requests;
  std::shared_ptr<const RoutingSpec> vision;
};

// Decodes workload.modalities ({request: {text_tokens, images, tokens_per_image}, text: routing, vision:
// routing}) into `text` (its requests and vision set; `text` keeps the workload routing's keys unless
// modalities.text is given). Problems become diagnostics.
void decode_modalities(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir,
                       RoutingSpec& text);
// Decodes workload.drift ({kind: none|redraw, fraction}); undefined v = none.
Drift decode_drift(const YamlView& v);
// Loads the trace files of steps 1..steps-1 of a per-step trace (s.trace_file contains "{step}"; s.trace is
// step 0's) into s.step_traces. Problems become diagnostics at file_at.
void load_step_traces(const YamlView& file_at, const Architecture& arch, int ranks, int steps, RoutingSpec& s);

// The seed of workload step `step` (step 0: the scenario seed itself, so one-step runs are unchanged).
uint64_t step_seed(uint64_t seed, int step);

// Vision tokens of each source rank at `step` under `shape` (T tokens per rank), in request order as runs of
// (tokens, is_vision). Deterministic in (seed, step, rank).
std::vector<std::pair<int64_t, bool>> request_runs(const RequestShape& shape, int64_t T, uint64_t seed, int step,
                                                   int rank);

// Decodes the scenario's routing mapping (undefined v = all defaults). `ranks` is the EP degree (trace rows
// are checked against it), `base_dir` resolves a relative trace path. Problems become diagnostics in v's sink.
RoutingSpec decode_routing(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir);

// Per-token record (keep_scores or trace): experts[t*k + j], scores[t*k + j], kept[t*k + j] (0 = dropped).
struct TokenRoutes {
  std::vector<int32_t> experts;
  std::vector<float> scores;
  std::vector<uint8_t> kept;
};

struct LayerRouting {
  int layer = 0;                     // model layer index
  std::vector<int64_t> src_tokens;   // tokens per source rank
  std::vector<int64_t> counts;       // ranks x experts, row-major: token-expert pairs src -> expert, after drops
  std::vector<int64_t> rank_tokens;  // ranks x ranks, row-major: pairs src -> dst rank (diagonal = local)
  int64_t dropped = 0;               // token-expert pairs dropped by capacity
  // capacity_mode pad only (else empty): per source rank, the rows of each of its (source, expert) buffers
  // (its capacity ceil(c T k / E)); and ranks x ranks, the rows src sends dst: pad_rows[src] for every expert
  // dst holds (padded buffers travel whole, full or not).
  std::vector<int64_t> pad_rows;
  std::vector<int64_t> padded_rank_tokens;
  std::vector<uint32_t> score_hist;  // ranks x bins: normalised gate scores of pairs received per dst rank
                                     // (empty when RoutingSpec::score_histograms is false)
  std::vector<TokenRoutes> tokens;   // per source rank; empty unless keep_scores or trace
  // Softmax gate only (else empty): per source rank, the summed top-k mass (sum of the k picked gate
  // probabilities) of its softmax-scored tokens, and how many tokens that is. Per source, so sums do not
  // depend on the thread split.
  std::vector<double> topk_mass_sum;
  std::vector<int64_t> topk_mass_tokens;
  // Multimodal workloads only (else empty): the pairs of vision tokens among `counts` (ranks x experts), and
  // among rank_tokens (ranks x ranks).
  std::vector<int64_t> vision_counts;
  std::vector<int64_t> rank_vision_tokens;
  // Set by RoutingPlan::assign (EPLB): tokens per local expert slot of each rank, in the order of that
  // placement's experts_of_rank(r). Empty: derive from counts and the generating placement.
  std::vector<std::vector<int64_t>> slot_tokens;
  std::vector<std::vector<int>> slot_experts;  // the expert ids of those slots
};

class RoutingPlan {
 public:
  int ranks() const { return ranks_; }
  int experts() const { return experts_; }
  int histogram_bins() const { return bins_; }
  const std::vector<LayerRouting>& layers() const { return layers_; }  // MoE layers, ascending
  // The routing of model layer `layer`; throws std::out_of_range for a dense or unknown layer.
  const LayerRouting& layer(int layer) const;

  int64_t count(int layer, int src, int expert) const;
  // Tokens (token-expert pairs) each rank receives: sum over its experts (replicas share per distribute()).
  std::vector<int64_t> tokens_per_rank_received(int layer) const;
  // ranks x ranks row-major bytes[src * ranks + dst] = pairs src -> dst * bytes_per_token (diagonal local).
  std::vector<double> traffic_bytes(int layer, double bytes_per_token) const;
  // max / mean of tokens received per rank (1.0 = perfectly balanced; 0 when nothing is received).
  double load_imbalance(int layer) const;
  int64_t dropped(int layer) const { return this->layer(layer).dropped; }
  // Multimodal: vision pairs each rank receives (zeros when the workload has no modalities).
  std::vector<int64_t> vision_per_rank_received(int layer) const;
  bool multimodal() const { return multimodal_; }
  int step() const { return step_; }
  // The sampler that drew this plan: Sampler::tokens (also for traces) or Sampler::counts.
  Sampler sampler() const { return sampler_; }
  // Vision tokens of each source rank (multimodal; same in every layer).
  const std::vector<int64_t>& src_vision_tokens() const { return src_vision_; }

  // Re-routes every layer's pairs to the ranks of another placement per layer (same experts), with
  // `split(layer, src, expert, pairs, per_rank)` adding each (src, expert) count to per_rank (size ranks) as
  // that layer's replicas share it; rank_tokens, rank_vision_tokens (vision pairs split in proportion),
  // slot_tokens and slot_experts are rebuilt. Used by EPLB, whose placement changes per layer and step.
  using Split = std::function<void(int layer, int src, int expert, int64_t pairs, int64_t* per_rank)>;
  void assign(const std::function<const Placement&(int layer)>& placement_of, const Split& split);

 private:
  friend RoutingPlan generate_routing_step(const RoutingSpec&, const Architecture&, const Placement&, int64_t,
                                          uint64_t, int, int);
  int ranks_ = 0, experts_ = 0, bins_ = 64, step_ = 0;
  bool multimodal_ = false;
  Sampler sampler_ = Sampler::tokens;
  std::vector<int64_t> src_vision_;
  std::vector<LayerRouting> layers_;
  std::vector<int> index_;  // model layer -> position in layers_, -1 for dense layers
};

// The distribution of the normalised gate scores of the routed pairs (kept by the capacity factor; before
// any schedule drops them) of `layers` (model layers; dense ones skipped) over the plans of `plans`, read from
// the plans' per-token records (keep_scores or trace; plans without them contribute nothing). Bins over
// [0, 1] as the plans' histogram_bins, a score s in bin min(bins - 1, floor(s * bins)); mean and p50 (nearest
// rank: the ceil(n / 2)-th smallest) per layer and overall; the top-k mass mean over softmax-scored tokens.
// `scores` names how the scores were made and norm_topk_prob is the model's flag; both only travel to reports.
GateScoreStats gate_score_stats(const std::vector<const RoutingPlan*>& plans, const std::vector<int>& layers,
                                const std::string& scores, bool norm_topk_prob);
// How the scores of a routing spec are made, for reports: "trace", "uniform", "softmax" or, when the text and
// vision tokens of a multimodal workload differ, "text: X, vision: Y".
std::string gate_scores_label(const RoutingSpec& spec);

// Threads generate_routing uses by default: the machine's hardware threads, at most 8.
int routing_threads();

// Why `spec` needs the per-token sampler (a sentence for an error message), or "" when counts can draw it.
std::string needs_token_sampler(const RoutingSpec& spec);
// The sampler generate_routing uses for `spec`: tokens or counts (throws std::invalid_argument when the spec
// asks for counts but needs per-token records).
Sampler resolve_sampler(const RoutingSpec& spec);

// Generates the plan for every MoE layer. tokens_per_rank (T) must be > 0 (throws std::invalid_argument);
// ignored for traces, whose rows define the tokens. placement.experts() must equal arch.routed_experts.
// Synthetic routing is sampled on `threads` threads (source ranks split among them); the plan does not
// depend on the thread count (each (layer, rank) has its own random stream).
RoutingPlan generate_routing(const RoutingSpec& spec, const Architecture& arch, const Placement& placement,
                             int64_t tokens_per_rank, uint64_t seed, int threads = routing_threads());
// The plan of workload step `step` (0 = generate_routing): token draws from step_seed(seed, step), the
// zipf/hot ranking of the step under spec.drift, the step's trace file, the step's request shapes.
RoutingPlan generate_routing_step(const RoutingSpec& spec, const Architecture& arch, const Placement& placement,
                                  int64_t tokens_per_rank, uint64_t seed, int step, int threads = routing_threads());

}  // namespace moesim::models
