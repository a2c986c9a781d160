// Schedule `topk`: the EP baseline. Per layer and rank, on one stream (nothing overlaps):
//
//   attention -> gate -> permute -> dispatch(a2a) -> experts -> combine(a2a) -> unpermute [-> shared expert]
//
// Dense layers run attention -> dense MLP. Training adds the backward pass, layers in reverse order, each op
// mirrored: the combine's gradient travels like the dispatch (token owner -> expert owner) and the dispatch's
// gradient like the combine; every backward compute op costs backward_factor x its forward op.
#include "models/variants/schedule_util.hpp"

namespace moesim::models {

// The sequential EP step shared by `topk` and `shared_expert`. With force_shared, every MoE layer ends with a
// shared expert even when the model has none (emit_shared_expert sizes it like one routed expert); otherwise
// the model's own shared experts run, if any.
OpGraph build_sequential(const StepInput& in, bool force_shared) {
  OpGraph g(in.ranks);
  LayerEmitter em(g, in);
  auto shared = [&](int layer, Phase ph) {
    if (force_shared || in.arch.shared_experts > 0) emit_shared_expert(g, in, layer, ph);
  };
  for (int layer : in.layers) {
    em.attention(layer, Phase::forward);
    if (!in.arch.is_moe_layer(layer)) {
      em.dense_mlp(layer, Phase::forward);
      continue;
    }
    em.gate_permute(layer, Phase::forward);
    em.all_to_all(layer, Phase::forward, OpClass::dispatch, Stream::compute);
    em.experts(layer, Phase::forward);
    em.all_to_all(layer, Phase::forward, OpClass::combine, Stream::compute);
    em.unpermute(layer, Phase::forward);
    shared(layer, Phase::forward);
  }
  if (in.mode != Mode::training) return g;
  for (auto it = in.layers.rbegin(); it != in.layers.rend(); ++it) {
    const int layer = *it;
    if (!in.arch.is_moe_layer(layer)) {
      em.dense_mlp(layer, Phase::backward);
      em.attention(layer, Phase::backward);
      continue;
    }
    shared(layer, Phase::backward);
    em.unpermute(layer, Phase::backward);
    em.all_to_all(layer, Phase::backward, OpClass::combine, Stream::compute);
    em.experts(layer, Phase::backward);
    em.all_to_all(layer, Phase::backward, OpClass::dispatch, Stream::compute);
    em.gate_permute(layer, Phase::backward);
    em.attention(layer, Phase::backward);
  }
  return g;
}

OpGraph build_topk(const VariantSpec&, const StepInput& in) { return build_sequential(in, false); }

}  // namespace moesim::models
