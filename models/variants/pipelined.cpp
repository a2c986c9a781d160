// Schedule `pipelined` (Tutel-style): top-k EP whose routed tokens are split into r chunks (`chunks:`) so
// that the all-to-alls of one chunk overlap the expert GEMMs of another. Compute ops on the compute stream,
// all-to-alls on the comm stream, joined by per-rank events (explicit deps). One MoE layer, r = 3:
//
//   compute: attn  gp0 gp1 gp2  e0  e1  e2  u0 u1 u2          gpI = gate (chunk 0 only) + permute of chunk I
//   comm   :           d0  d1  c0  d2  c1  c2                 eI = experts on chunk I, uI = unpermute
//                      ^^ exposed           ^^ exposed
//   deps   : dI after gpI; eI after dI; cI after eI; uI after cI.
//
// The comm stream issues d0, d1, c0, d2, c1, ..., d(r-1), c(r-2), c(r-1): while chunk I's experts run, the
// comm stream carries chunk I-1's combine and then chunk I+1's dispatch (Tutel's overlap). The first
// dispatch (d0) and the last combine (c(r-1)) have no expert GEMM to hide behind; only the remaining permute
// and unpermute chunks overlap them. The gate runs once on all tokens (charged to chunk 0); chunk I carries
// share(tokens, r, I) of every (source, expert) pair count. chunks: 1 is the topk schedule with its two
// all-to-alls moved to the comm stream (same timeline, since each still waits for its neighbours).
//
// Dense blocks: attention -> dense MLP. A model's shared expert runs after the unpermutes, as in topk.
// Training mirrors in reverse layer order with backward_factor x compute: uI' first, then the backward
// combines (token owner -> expert owner traffic) interleaved with the backward dispatches the same way,
// eI' after cI', gpI' after dI':
//
//   compute: u0' u1' u2'  e0' e1' e2'  gp0' gp1' gp2'  attn'
//   comm   :  c0'  c1'  d0'  c2'  d1'  d2'
#include <algorithm>

#include "models/variants/schedule_util.hpp"

namespace moesim::models {

namespace {

using Ids = LayerEmitter::Ids;

// Emits the chunked expert GEMMs with the two all-to-alls around them in Tutel's interleaved order.
// `first` is the all-to-all before the experts (forward dispatch, backward combine) and `second` the one after.
// `ready[i]` = the per-rank ops chunk i's first all-to-all waits for. Returns the second all-to-all's ids.
std::vector<Ids> emit_expert_pipeline(LayerEmitter& em, int layer, Phase ph, OpClass first,
                                      OpClass second, const std::vector<Ids>& ready, int parts) {
  const int r = parts;
  std::vector<Ids> a(static_cast<std::size_t>(r)), e(a.size()), b(a.size());
  auto first_a2a = [&](int i) {
    a[i] = em.all_to_all(layer, ph, first, Stream::comm, per_rank_deps({ready[i]}), i, r);
  };
  auto experts_and_second = [&](int i) {
    e[i] = em.experts(layer, ph, per_rank_deps({a[i]}), i, r);
    b[i] = em.all_to_all(layer, ph, second, Stream::comm, per_rank_deps({e[i]}), i, r);
  };
  // Issue order on the comm stream: a0, a1, b0, a2, b1, ..., a(r-1), b(r-2), b(r-1). Adding e(i) right before
  // b(i) keeps every dep pointing at an op already added.
  first_a2a(0);
  for (int i = 1; i < r; ++i) {
    first_a2a(i);
    experts_and_second(i - 1);
  }
  experts_and_second(r - 1);
  return b;
}

}  // namespace

OpGraph build_pipelined(const VariantSpec& spec, const StepInput& in) {
  const int r = std::max(1, spec.chunks);
  return build_layered(in, [&](LayerEmitter& em, int layer, Phase ph) {
    if (ph == Phase::forward) {
      std::vector<Ids> gp;
      for (int i = 0; i < r; ++i) gp.push_back(em.gate_permute(layer, ph, {}, i, r));
      std::vector<Ids> comb = emit_expert_pipeline(em, layer, ph, OpClass::dispatch, OpClass::combine, gp, r);
      for (int i = 0; i < r; ++i) em.unpermute(layer, ph, per_rank_deps({comb[i]}), i, r);
      if (in.arch.shared_experts > 0) em.shared_expert(layer, ph);
      return;
    }
    if (in.arch.shared_experts > 0) em.shared_expert(layer, ph);
    std::vector<Ids> up;
    for (int i = 0; i < r; ++i) up.push_back(em.unpermute(layer, ph, {}, i, r));
    std::vector<Ids> disp = emit_expert_pipeline(em, layer, ph, OpClass::combine, OpClass::dispatch, up, r);
    for (int i = 0; i < r; ++i) em.gate_permute(layer, ph, per_rank_deps({disp[i]}), i, r);
  });
}

}  // namespace moesim::models
