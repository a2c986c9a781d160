// Schedule `topk`: the EP baseline. Per layer and rank, on one stream (nothing overlaps):
//
//   attention -> gate -> permute -> dispatch(a2a) -> experts -> combine(a2a) -> unpermute [-> shared expert]
//
// Dense layers run attention -> dense MLP. Training adds the backward pass, layers in reverse order, each op
// mirrored: the combine's gradient travels like the dispatch (token owner -> expert owner) and the dispatch's
// gradient like the combine; every backward compute op costs backward_factor x its forward op.
#include "models/variants/schedule_util.hpp"

namespace moesim::models {

OpGraph build_topk(const VariantSpec&, const StepInput& in) {
  OpGraph g(in.ranks);
  LayerEmitter em(g, in);
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
    if (in.arch.shared_experts > 0) em.shared_expert(layer, Phase::forward);
  }
  if (in.mode != Mode::training) return g;
  for (auto it = in.layers.rbegin(); it != in.layers.rend(); ++it) {
    const int layer = *it;
    if (!in.arch.is_moe_layer(layer)) {
      em.dense_mlp(layer, Phase::backward);
      em.attention(layer, Phase::backward);
      continue;
    }
    if (in.arch.shared_experts > 0) em.shared_expert(layer, Phase::backward);
    em.unpermute(layer, Phase::backward);
    em.all_to_all(layer, Phase::backward, OpClass::combine, Stream::compute);
    em.experts(layer, Phase::backward);
    em.all_to_all(layer, Phase::backward, OpClass::dispatch, Stream::compute);
    em.gate_permute(layer, Phase::backward);
    em.attention(layer, Phase::backward);
  }
  return g;
}

}  // namespace moesim::models
