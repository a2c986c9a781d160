// Building blocks shared by the schedules: emit one kind of op for every rank of a layer, with its cost from
// StepCosts and its provenance. Ops go to the compute stream unless a stream is given; the OpGraph chains
// each (rank, stream) in issue order, so the order of calls is the order on the GPU.
#pragma once

#include <map>
#include <vector>

#include "models/step_ops.hpp"
#include "models/variants/variant.hpp"

namespace moesim::models {

class LayerEmitter {
 public:
  LayerEmitter(OpGraph& g, const StepInput& in);

  // Each returns the per-rank op ids it added. `deps[r]` (optional) adds explicit deps for rank r.
  // chunk/parts: the op handles share `chunk` of `parts` of the rank's tokens (parts = 1: all of them, and the
  // op carries no chunk whatever `chunk` says).
  using Ids = std::vector<OpId>;
  using Deps = std::vector<std::vector<OpId>>;
  // With in.full_step, attention and dense_mlp are whole sublayers: norm, the op, residual add (backward:
  // residual, op, norm); deps go to the first op and the ids returned are the last op's.
  Ids attention(int layer, Phase ph, const Deps& deps = {});
  Ids dense_mlp(int layer, Phase ph, const Deps& deps = {});
  // A block's RMSNorm / residual add (OpClass::norm / residual; models/step_ops.hpp) on the rank's tokens;
  // nothing (empty ids) unless in.full_step. Schedules call them around a MoE block's MLP side.
  Ids norm(int layer, Phase ph, const Deps& deps = {});
  Ids residual(int layer, Phase ph, const Deps& deps = {});
  // The ops around the blocks, with in.full_step (nothing otherwise), on the compute stream (layer -1):
  //   step_begin: embedding lookup (before the first block's forward);
  //   step_turn:  final norm, LM head (lm_head_rows), then in training the loss and the LM head and final
  //               norm backward (between the last forward and the first backward block);
  //   step_end:   training: embedding backward (after the last backward block).
  // The embedding, LM head and loss are left out when the model has no vocab_size.
  void step_begin();
  void step_turn();
  void step_end();
  // A model built of stages: the patch-merging op (OpClass::patch_merge, patch_merge_cost) before the first
  // block of a stage with patch_merge (forward; backward after that block's backward); nothing otherwise.
  Ids patch_merge(int layer, Phase ph, const Deps& deps = {});
  Ids gate_permute(int layer, Phase ph, const Deps& deps = {}, int chunk = -1, int parts = 1);
  Ids experts(int layer, Phase ph, const Deps& deps = {}, int chunk = -1, int parts = 1);
  Ids unpermute(int layer, Phase ph, const Deps& deps = {}, int chunk = -1, int parts = 1);
  // The shared expert, costed by shared_expert_cost: a model without one gets one sized like a routed expert,
  // so the caller decides whether the schedule has it.
  Ids shared_expert(int layer, Phase ph, const Deps& deps = {});
  // The BF16 -> low-precision cast of each rank's local expert weights for this layer (OpClass::cast), at the
  // rank's precision (see set_precision); a rank computing at the model dtype gets a zero-length op.
  Ids cast(int layer, Phase ph, const Deps& deps = {});
  // Per-rank precision of the expert GEMMs: f(layer, rank). Unset: the model dtype everywhere. Expert and cast
  // ops of a rank whose precision differs from the model dtype carry it as their OpPrecision tag.
  void set_precision(std::function<DType(int layer, int rank)> f) { precision_ = std::move(f); }
  DType precision(int layer, int rank) const;
  // Schedules that change a layer's expert work or all-to-all traffic (DualSparse's dropping). Unset: the
  // routing plan's. expert_cost(layer, rank) is the forward cost of the rank's whole expert GEMM op (used for
  // unchunked expert ops only); pairs(layer) gives the ranks x ranks token-expert pairs src -> dst the
  // all-to-alls carry (row-major, like LayerRouting::rank_tokens), or null for the plan's.
  void set_expert_cost(std::function<KernelCost(int layer, int rank)> f) { expert_cost_ = std::move(f); }
  void set_pairs(std::function<const std::vector<int64_t>*(int layer)> f) { pairs_ = std::move(f); }
  // An all-to-all of the layer's routed tokens (or chunk of them). Forward dispatch and backward combine
  // carry token owner -> expert owner traffic; forward combine and backward dispatch the transpose.
  Ids all_to_all(int layer, Phase ph, OpClass cls, Stream stream, const Deps& deps = {}, int chunk = -1,
                 int parts = 1);

  // A collective of `kind` (all_gather or reduce_scatter) within each group of in.etp consecutive ranks (one
  // collective per group, so groups never wait for each other). block_pairs[r] = the token-expert pairs of
  // rank r's block: an all-gather sends rank r's block to every other member; a reduce-scatter leaves rank r
  // with its block reduced, receiving block_pairs[r] partial rows from every other member. Bytes are pairs x
  // StepCosts::bytes_per_token. Returns one op id per rank.
  Ids group_collective(int layer, Phase ph, OpKind kind, OpClass cls, Stream stream,
                       const std::vector<int64_t>& block_pairs);

  // Durations (seconds) the next calls would use, for schedules that reason about them.
  double factor(Phase ph) const;

 private:
  // `f` scales the cost (negative: factor(ph)).
  Ids emit(int layer, Phase ph, OpClass cls, const Deps& deps, int chunk,
           const std::function<KernelCost(int rank)>& cost, double f = -1.0);
  // Tokens per local expert of every rank in a layer: computed once per layer, reused by every chunk and by
  // the backward pass.
  const std::vector<int64_t>& expert_tokens_of(int layer, int rank);
  void tag(const Ids& ids, int layer);
  // The experts rank `rank` holds in `layer` (the plan's per-layer slots after RoutingPlan::assign, else the
  // placement's).
  const std::vector<int>& experts_of(int layer, int rank) const;
  // Layer `layer`'s costs, step ops and tokens per rank (its stage's; StepInput::costs_of / tokens_of).
  const StepCosts& costs(int layer) const;
  StepOpCosts ops(int layer) const;
  int64_t tokens(int layer) const;
  int last_layer() const;
  OpGraph& g_;
  const StepInput& in_;
  std::function<DType(int, int)> precision_;
  std::function<KernelCost(int, int)> expert_cost_;
  std::function<const std::vector<int64_t>*(int)> pairs_;
  std::map<int, std::vector<std::vector<int64_t>>> expert_tokens_;
  // All-to-all matrices made so far, by (layer, chunk, parts, token owner -> expert owner), with the pair
  // counts they were made from: a training layer's backward pass moves its forward bytes the other way round,
  // so the backward dispatch reuses the forward combine's matrix and the backward combine the forward
  // dispatch's (sim/op_graph.hpp, ByteMatrix).
  struct MatrixKey {
    int layer, chunk, parts;
    bool forward_dir;
    const std::vector<int64_t>* pairs;
    auto operator<=>(const MatrixKey&) const = default;
  };
  std::map<MatrixKey, ByteMatrix> matrices_;
};

OpPrecision op_precision(DType d);

// Per-rank deps {ids[r]} for each rank r (one event per rank), or the union of several such lists.
LayerEmitter::Deps per_rank_deps(const std::vector<LayerEmitter::Ids>& lists);

// The cost (seconds, forward) of the shared expert on `tokens` tokens. A model without shared experts gets a
// shared expert sized like ONE routed expert (an FFN of expert_ffn): the shared_expert and scmoe schedules
// are "top-1 routed + shared expert" whatever the model declares.
// `layer`: the block it is for (its stage's shape).
KernelCost shared_expert_cost(const StepInput& in, int64_t tokens, int layer);

// Swin's patch merging (Liu et al., Swin Transformer, ICCV 2021, sec. 3.1 and its PatchMerging module):
// `rows` output tokens, each the concatenation of merge_in / previous-hidden neighbours (merge_in wide),
// a LayerNorm over the merge_in-wide rows (as StepOpCosts::norm: (2 rows merge_in + merge_in) x 2 B, 4 FLOP
// per element) then a Linear merge_in -> cost.architecture().hidden without bias: a GEMM (rows x merge_in) .
// (merge_in x hidden) at the model dtype (table kernel `patch_merge`). The gather of the neighbours is
// folded into the norm's read. Backward: backward_factor times this, as the other ops.
KernelCost patch_merge_cost(const CostModel& cost, int64_t rows, int64_t merge_in);

// The layer-by-layer step of topk, shared_expert and pipelined. Forward, for each of in.layers: attention,
// then the dense MLP (dense layer) or moe(em, layer, Phase::forward). Training adds the backward pass in
// reverse layer order: the dense MLP or moe(em, layer, Phase::backward), then attention.
using MoeBlock = std::function<void(LayerEmitter& em, int layer, Phase ph)>;
// `setup` (optional) prepares the emitter first (e.g. set_precision).
// With in.full_step the step is framed by LayerEmitter::step_begin / step_turn / step_end, and each MoE block's
// MLP side by norm / residual.
OpGraph build_layered(const StepInput& in, const MoeBlock& moe,
                      const std::function<void(LayerEmitter&)>& setup = {});

// Data-parallel settings of a training step (parallelism.dp, dp_bucket).
struct DataParallel {
  int degree = 1;             // replicas of the EP group in the graph (the simulated ones)
  double bucket_bytes = 0;    // gradient bucket (bytes); see finish_step
  // Replicas on the cluster (parallelism.dp), >= degree: the gradient rings carry the bytes of rings over
  // ring_degree replicas (Scenario::dp_simulated: representative replicas). 0 = degree.
  int ring_degree = 0;
};

// Completes a full step graph built for one EP group (in.ranks ranks, in.full_step) for the whole cluster:
//  - dp.degree > 1: the graph is replicated (OpGraph::replicate): replica d's rank r is rank d * in.ranks + r.
//    Every replica runs the same routing plan (this group's).
//  - training: the gradient all-reduce and the optimizer step. Gradients become ready, in backward order, at
//    the LM head's backward (LM head and final norm), at the end of each block's backward on a rank (the block's
//    dense weights and the rank's routed experts) and at the embedding's backward. They fill buckets of
//    dp.bucket_bytes (bf16 gradients, kGradBytesPerParam); a bucket closes at the first ready point where it
//    reaches the size (one block's gradients are not split), the last one at the end of the backward pass.
//    Each bucket is a ring all-reduce on the rank's dp stream, overlapping the rest of the backward pass:
//    the dense (non-expert) weights are replicated on every rank (each EP rank runs attention on its own
//    tokens), so their buckets reduce over all dp x in.ranks ranks; a routed expert's weights are replicated
//    only across the DP group (the same EP rank in every replica: ranks r, r + in.ranks, ...), so with
//    dp.degree > 1 their buckets reduce over each DP group. A ring all-reduce of S bytes over N members is
//    given as a reduce-scatter then an all-gather in which each member sends (N - 1) / N x S to the next member
//    of the ring (rank order): 2 (N - 1) / N x S / B on links of bandwidth B, the ring's bandwidth term (its
//    2 (N - 1) per-hop latencies are one route latency per half here). With dp.ring_degree > dp.degree (the
//    graph holds representative replicas) N counts the ring's members on the cluster (ring_degree x in.ranks
//    for dense buckets, ring_degree for expert buckets) while the ring runs over the graph's replicas: every
//    member still sends and receives (N - 1) / N x S once per half, over the same kinds of links. Then each rank's optimizer step (Adam,
//    StepOpCosts::adam over every parameter it holds) runs once its last bucket is reduced.
OpGraph finish_step(OpGraph g, const StepInput& in, const DataParallel& dp);

// The sequential EP step of topk, shared_expert, eplb and dualsparse (topk.cpp): gate, permute, dispatch,
// experts, combine, unpermute [, shared expert] on one stream. force_shared: a shared expert in every MoE layer
// even when the model has none. `setup` (optional) prepares the emitter, as in build_layered. `before_experts`
// / `after_experts` (optional) emit ops right before and after the expert op in both passes (ETP's group
// all-gather and reduce-scatter: the backward of one is the other, so the order holds in either pass).
OpGraph build_sequential(const StepInput& in, bool force_shared,
                         const std::function<void(LayerEmitter&)>& setup = {},
                         const MoeBlock& before_experts = {}, const MoeBlock& after_experts = {});

// Time per Block-MLP + Block-MoE pair (seconds): 2 x step_time_s / simulated layers. With every other block
// MoE this is step time / pairs; with every block MoE it is the per-layer time x 2 (two blocks' worth, so
// the figure compares across the two block structures). 0 when no layer was simulated.
double pair_time_s(double step_time_s, int simulated_layers);

}  // namespace moesim::models
