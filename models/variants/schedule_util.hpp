// Building blocks shared by the schedules: emit one kind of op for every rank of a layer, with its cost from
// StepCosts and its provenance. Ops go to the compute stream unless a stream is given; the OpGraph chains
// each (rank, stream) in issue order, so the order of calls is the order on the GPU.
#pragma once

#include <map>
#include <vector>

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
  Ids attention(int layer, Phase ph, const Deps& deps = {});
  Ids dense_mlp(int layer, Phase ph, const Deps& deps = {});
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
  Ids emit(int layer, Phase ph, OpClass cls, const Deps& deps, int chunk,
           const std::function<KernelCost(int rank)>& cost);
  // Tokens per local expert of every rank in a layer: computed once per layer, reused by every chunk and by
  // the backward pass.
  const std::vector<int64_t>& expert_tokens_of(int layer, int rank);
  void tag(const Ids& ids, int layer);
  // The experts rank `rank` holds in `layer` (the plan's per-layer slots after RoutingPlan::assign, else the
  // placement's).
  const std::vector<int>& experts_of(int layer, int rank) const;
  OpGraph& g_;
  const StepInput& in_;
  std::function<DType(int, int)> precision_;
  std::function<KernelCost(int, int)> expert_cost_;
  std::function<const std::vector<int64_t>*(int)> pairs_;
  int64_t tokens_;
  std::map<int, std::vector<std::vector<int64_t>>> expert_tokens_;
};

OpPrecision op_precision(DType d);

// Per-rank deps {ids[r]} for each rank r (one event per rank), or the union of several such lists.
LayerEmitter::Deps per_rank_deps(const std::vector<LayerEmitter::Ids>& lists);

// The cost (seconds, forward) of the shared expert on `tokens` tokens. A model without shared experts gets a
// shared expert sized like ONE routed expert (an FFN of expert_ffn): the shared_expert and scmoe schedules
// are "top-1 routed + shared expert" whatever the model declares.
KernelCost shared_expert_cost(const StepInput& in, int64_t tokens);

// The layer-by-layer step of topk, shared_expert and pipelined. Forward, for each of in.layers: attention,
// then the dense MLP (dense layer) or moe(em, layer, Phase::forward). Training adds the backward pass in
// reverse layer order: the dense MLP or moe(em, layer, Phase::backward), then attention.
using MoeBlock = std::function<void(LayerEmitter& em, int layer, Phase ph)>;
// `setup` (optional) prepares the emitter first (e.g. set_precision).
OpGraph build_layered(const StepInput& in, const MoeBlock& moe,
                      const std::function<void(LayerEmitter&)>& setup = {});

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
