#include "models/variants/schedule_util.hpp"

#include <map>
#include <stdexcept>

namespace moesim::models {

LayerEmitter::LayerEmitter(OpGraph& g, const StepInput& in) : g_(g), in_(in), tokens_(in.tokens_per_rank) {}

double LayerEmitter::factor(Phase ph) const { return ph == Phase::backward ? in_.costs.backward_factor() : 1.0; }

LayerEmitter::Ids LayerEmitter::emit(int layer, Phase ph, OpClass cls, const Deps& deps, int chunk,
                                     const std::function<KernelCost(int rank)>& cost) {
  Ids ids(static_cast<std::size_t>(in_.ranks));
  const double f = factor(ph);
  for (int r = 0; r < in_.ranks; ++r) {
    const KernelCost k = cost(r);
    std::vector<OpId> d = deps.empty() ? std::vector<OpId>{} : deps[static_cast<std::size_t>(r)];
    ids[static_cast<std::size_t>(r)] =
        g_.add_compute(r, Stream::compute, cls, ph, layer, k.seconds * f, k.prov, std::move(d), chunk);
  }
  return ids;
}

LayerEmitter::Ids LayerEmitter::attention(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = in_.costs.attention(tokens_);
  return emit(layer, ph, OpClass::attention, deps, -1, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::dense_mlp(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = in_.costs.dense_mlp(tokens_);
  return emit(layer, ph, OpClass::dense_mlp, deps, -1, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::shared_expert(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = shared_expert_cost(in_, tokens_);
  return emit(layer, ph, OpClass::shared_expert, deps, -1, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::gate_permute(int layer, Phase ph, const Deps& deps, int chunk, int parts) {
  if (parts == 1) chunk = -1;
  const int64_t t = chunk < 0 ? tokens_ : share(tokens_, parts, chunk);
  // The gate runs once on all tokens (in chunk 0 when chunked); permute moves this chunk's rows.
  const KernelCost k = (chunk <= 0 ? in_.costs.gate(tokens_) : KernelCost{0.0, Provenance::measured}) +
                       in_.costs.permute(t);
  return emit(layer, ph, OpClass::permute, deps, chunk, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::unpermute(int layer, Phase ph, const Deps& deps, int chunk, int parts) {
  if (parts == 1) chunk = -1;
  const int64_t t = chunk < 0 ? tokens_ : share(tokens_, parts, chunk);
  const KernelCost k = in_.costs.unpermute(t);
  return emit(layer, ph, OpClass::unpermute, deps, chunk, [&](int) { return k; });
}

const std::vector<int64_t>& LayerEmitter::expert_tokens_of(int layer, int rank) {
  auto [it, fresh] = expert_tokens_.try_emplace(layer);
  if (fresh)
    for (int r = 0; r < in_.ranks; ++r) it->second.push_back(expert_tokens(in_.routing, in_.placement, layer, r));
  return it->second[static_cast<std::size_t>(rank)];
}

OpPrecision op_precision(DType d) {
  return d == DType::fp8 ? OpPrecision::fp8 : d == DType::fp4 ? OpPrecision::fp4 : OpPrecision::bf16;
}

const std::vector<int>& LayerEmitter::experts_of(int layer, int rank) const {
  const LayerRouting& lr = in_.routing.layer(layer);
  if (!lr.slot_experts.empty()) return lr.slot_experts.at(static_cast<std::size_t>(rank));
  return in_.placement.experts_of_rank(rank);
}

DType LayerEmitter::precision(int layer, int rank) const {
  return precision_ ? precision_(layer, rank) : in_.arch.dtype;
}

void LayerEmitter::tag(const Ids& ids, int layer) {
  if (!precision_) return;
  for (int r = 0; r < in_.ranks; ++r) {
    const DType d = precision(layer, r);
    if (d != in_.arch.dtype) g_.set_precision(ids[static_cast<std::size_t>(r)], op_precision(d));
  }
}

LayerEmitter::Ids LayerEmitter::experts(int layer, Phase ph, const Deps& deps, int chunk, int parts) {
  if (parts == 1) chunk = -1;
  Ids ids = emit(layer, ph, OpClass::expert, deps, chunk, [&](int r) {
    if (chunk < 0 && expert_cost_) return expert_cost_(layer, r);
    std::vector<int64_t> tok = expert_tokens_of(layer, r);
    if (chunk >= 0)
      for (auto& t : tok) t = share(t, parts, chunk);
    if (!precision_ && in_.arch.vision_experts == 0) return in_.costs.experts(tok);
    return in_.costs.model().expert_group(tok, experts_of(layer, r), precision(layer, r));
  });
  tag(ids, layer);
  return ids;
}

LayerEmitter::Ids LayerEmitter::cast(int layer, Phase ph, const Deps& deps) {
  Ids ids = emit(layer, ph, OpClass::cast, deps, -1, [&](int r) {
    return in_.costs.model().weight_cast(experts_of(layer, r), precision(layer, r));
  });
  tag(ids, layer);
  return ids;
}

LayerEmitter::Ids LayerEmitter::all_to_all(int layer, Phase ph, OpClass cls, Stream stream, const Deps& deps,
                                           int chunk, int parts) {
  if (parts == 1) chunk = -1;
  const LayerRouting& lr = in_.routing.layer(layer);
  const std::vector<int64_t>* own = pairs_ ? pairs_(layer) : nullptr;
  // capacity_mode pad: whole buffers travel, full or not.
  const std::vector<int64_t>& matrix = own ? *own : lr.padded_rank_tokens.empty() ? lr.rank_tokens : lr.padded_rank_tokens;
  const int R = in_.ranks;
  const double bpt = in_.costs.bytes_per_token();
  // Token owner -> expert owner, or the transpose.
  const bool forward_dir = (cls == OpClass::dispatch) == (ph == Phase::forward);
  std::vector<double> bytes(static_cast<std::size_t>(R) * R, 0.0);
  for (int s = 0; s < R; ++s)
    for (int d = 0; d < R; ++d) {
      int64_t pairs = matrix[static_cast<std::size_t>(s) * R + d];
      if (chunk >= 0) pairs = share(pairs, parts, chunk);
      const std::size_t at = forward_dir ? static_cast<std::size_t>(s) * R + d : static_cast<std::size_t>(d) * R + s;
      bytes[at] = static_cast<double>(pairs) * bpt;
    }
  return g_.add_all_to_all(stream, cls, ph, layer, std::move(bytes), deps, chunk);
}

LayerEmitter::Ids LayerEmitter::group_collective(int layer, Phase ph, OpKind kind, OpClass cls, Stream stream,
                                                 const std::vector<int64_t>& block_pairs) {
  const int R = in_.ranks, T = in_.etp;
  if (kind != OpKind::all_gather && kind != OpKind::reduce_scatter)
    throw std::invalid_argument("group_collective: all_gather or reduce_scatter");
  if (T < 1 || R % T != 0 || static_cast<int>(block_pairs.size()) != R)
    throw std::invalid_argument("group_collective: ranks must split into groups of etp, one block per rank");
  const double bpt = in_.costs.bytes_per_token();
  Ids ids(static_cast<std::size_t>(R), kNoOp);
  const auto M = static_cast<std::size_t>(T);
  for (int base = 0; base < R; base += T) {
    std::vector<double> bytes(M * M, 0.0);
    std::vector<int> members;
    for (std::size_t i = 0; i < M; ++i) {
      members.push_back(base + static_cast<int>(i));
      for (std::size_t j = 0; j < M; ++j) {
        if (i == j) continue;
        // All-gather: i sends its block to j. Reduce-scatter: i receives its block's partials from j.
        bytes[kind == OpKind::all_gather ? i * M + j : j * M + i] =
            static_cast<double>(block_pairs[static_cast<std::size_t>(base) + i]) * bpt;
      }
    }
    const Ids got = g_.add_collective(kind, members, stream, cls, ph, layer, std::move(bytes), {});
    for (int i = base; i < base + T; ++i) ids[static_cast<std::size_t>(i)] = got[static_cast<std::size_t>(i)];
  }
  return ids;
}

LayerEmitter::Deps per_rank_deps(const std::vector<LayerEmitter::Ids>& lists) {
  std::size_t ranks = 0;
  for (const auto& l : lists)
    if (l.size() > ranks) ranks = l.size();
  LayerEmitter::Deps out(ranks);
  for (const auto& l : lists)
    for (std::size_t r = 0; r < l.size(); ++r) out[r].push_back(l[r]);
  return out;
}

KernelCost shared_expert_cost(const StepInput& in, int64_t tokens) {
  if (in.arch.shared_experts > 0) return in.costs.shared_expert(tokens);
  // No shared expert in the model: one FFN the size of a routed expert.
  return in.costs.model().ffn(tokens, in.arch.expert_ffn, in.arch.expert_activation);
}

OpGraph build_layered(const StepInput& in, const MoeBlock& moe, const std::function<void(LayerEmitter&)>& setup) {
  OpGraph g(in.ranks);
  LayerEmitter em(g, in);
  if (setup) setup(em);
  for (int layer : in.layers) {
    em.attention(layer, Phase::forward);
    if (in.arch.is_moe_layer(layer)) moe(em, layer, Phase::forward);
    else em.dense_mlp(layer, Phase::forward);
  }
  if (in.mode != Mode::training) return g;
  for (auto it = in.layers.rbegin(); it != in.layers.rend(); ++it) {
    if (in.arch.is_moe_layer(*it)) moe(em, *it, Phase::backward);
    else em.dense_mlp(*it, Phase::backward);
    em.attention(*it, Phase::backward);
  }
  return g;
}

double pair_time_s(double step_time_s, int simulated_layers) {
  return simulated_layers > 0 ? 2.0 * step_time_s / simulated_layers : 0.0;
}

}  // namespace moesim::models
