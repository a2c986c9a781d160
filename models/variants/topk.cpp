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
// shared expert even when the model has none (shared_expert_cost sizes it like one routed expert); otherwise
// the model's own shared experts run, if any.
OpGraph build_sequential(const StepInput& in, bool force_shared, const std::function<void(LayerEmitter&)>& setup,
                         const MoeBlock& before_experts, const MoeBlock& after_experts) {
  const bool shared = force_shared || in.arch.shared_experts > 0;
  auto experts = [&](LayerEmitter& em, int layer, Phase ph) {
    if (before_experts) before_experts(em, layer, ph);
    em.experts(layer, ph);
    if (after_experts) after_experts(em, layer, ph);
  };
  return build_layered(in, [&](LayerEmitter& em, int layer, Phase ph) {
    if (ph == Phase::forward) {
      em.gate_permute(layer, ph);
      em.all_to_all(layer, ph, OpClass::dispatch, Stream::compute);
      experts(em, layer, ph);
      em.all_to_all(layer, ph, OpClass::combine, Stream::compute);
      em.unpermute(layer, ph);
      if (shared) em.shared_expert(layer, ph);
      return;
    }
    if (shared) em.shared_expert(layer, ph);
    em.unpermute(layer, ph);
    em.all_to_all(layer, ph, OpClass::combine, Stream::compute);
    experts(em, layer, ph);
    em.all_to_all(layer, ph, OpClass::dispatch, Stream::compute);
    em.gate_permute(layer, ph);
  }, setup);
}

OpGraph build_topk(const VariantSpec&, const StepInput& in) { return build_sequential(in, false); }

}  // namespace moesim::models
