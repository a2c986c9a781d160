// Schedule `shared_expert`: top-1 routed experts plus a shared expert, everything on the compute stream
// (nothing overlaps). Per MoE layer and rank:
//
//   compute: attention -> gate -> permute -> dispatch(a2a) -> experts -> combine(a2a) -> unpermute -> shared
//
// This is ScMoE's sequential comparator: the same work as `scmoe` (top-1 routed + one shared expert) without
// the shortcut, so the difference between the two is the overlap alone.
//
// The shared expert is the model's own (shared_experts x shared_expert_ffn) when it has one. When the model
// has NO shared expert, this schedule adds one sized like ONE routed expert (an FFN of expert_ffn), as the
// ScMoE paper's top-1 + shared-expert baseline does; the summary in the registry says so.
//
// Top-1 is forced through `candidates` (the runner routes with the spec's top_k), so `k` is not a key here.
// Dense blocks run attention -> dense MLP. Training mirrors the forward pass in reverse layer order: the
// all-to-alls are reversed (the combine's gradient travels token owner -> expert owner) and every backward
// compute op costs backward_factor x its forward op.
#include "models/variants/schedule_util.hpp"

namespace moesim::models {

OpGraph build_shared_expert(const VariantSpec&, const StepInput& in) { return build_sequential(in, true); }

// One candidate: the entry with top_k forced to 1 (the runner generates routing from spec.top_k).
std::vector<VariantSpec> shared_expert_candidates(const VariantSpec& spec) {
  VariantSpec s = spec;
  s.top_k = 1;
  s.shown["k"] = std::to_string(s.top_k);
  return {s};
}

}  // namespace moesim::models
