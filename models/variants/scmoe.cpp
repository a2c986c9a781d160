// Schedule `scmoe`, and the chunked builder that `scmoe_pipelined.cpp` calls: shortcut-connected expert
// parallelism (Cai et al., "Shortcut-connected Expert Parallelism for Accelerating Mixture-of-Experts"). Top-1 routed experts + a shared expert
// (sized like one routed expert when the model has none, see shared_expert_cost). The routed experts of a
// Block-MoE read an EARLIER representation than the block's own post-attention state, so their gate, permute
// and dispatch can start early and the all-to-alls run on the comm stream while the backbone computes.
//
// ---- Units -------------------------------------------------------------------------------------------------
// The simulated layers are grouped, in order, into
//   pair   = Block-MLP(l) + Block-MoE(l+1): dense block l directly followed by MoE block l+1 (moe_every: 2).
//            Backbone on the compute stream, in order: B1 = attention(l), B2 = dense MLP(l),
//            B3 = attention(l+1), B4 = shared expert(l+1).
//   lone   = a MoE block with no Block-MLP before it (every block MoE, or a MoE block after a MoE block).
//            The window is the block's OWN attention + shared expert: B1 = attention(l), B2 = shared(l).
//   dense  = a dense block not followed by a MoE block: attention -> dense MLP, nothing routed.
//
// ---- Position: which representation the routed experts read (so: which backbone ops precede the gate) -----
//   pair:  position 3 = the Block-MLP's input     -> gate+permute first, before B1         (p = 0)
//          position 2 = the Block-MLP's post-attention state -> gate+permute after B1    (p = 1)
//          position 1 = the Block-MLP's output (= the Block-MoE's input) -> after B2     (p = 2)
//   lone:  positions 1 and 3 = the block's input (the previous block's output) -> before B1 (p = 0);
//          position 2 = the block's post-attention state -> after B1                         (p = 1).
// Gate and permute run as soon as their input exists (right after B_p); unpermute runs as late as possible:
// after B4 (lone: B2), where the block output is summed.
//
// ---- Expert slot: where the expert GEMM E sits on the compute stream ----------------------------------------
//   slot s = E is issued right after backbone op B_s (pair: 1 after attention(l), 2 after the dense MLP,
//   3 after attention(l+1), 4 after the shared expert). Legal slots are s >= max(p, 1): position 1 allows
//   2..4, positions 2 and 3 allow 1..4 (a pinned slot below the gate is raised to the first legal one by
//   `candidates`). In a lone block slots 1-3 mean "after attention" and slot 4 "after the shared expert".
//   The dispatch (comm stream) overlaps B_(p+1)..B_s; the combine overlaps B_(s+1)..B_last; what does not
//   fit is exposed. `expert_slot: auto` simulates every legal slot (one process each) and keeps the fastest.
//   A direct build with slot 0 (no runner) uses pair slot p + 1.
//
// Forward timeline of a pair, position 2, slot 2 (the paper's main setting); G = gate+permute, U = unpermute:
//
//   compute: | attn(l) | G |  mlp(l)  | E | attn(l+1) | shared(l+1) | U |
//   comm   :               | dispatch |   |        combine          |
//   step   =   attn + G + max(mlp, dispatch) + E + max(attn + shared, combine) + U
//
// The other positions / slots of a pair (same notation; an all-to-all longer than the backbone ops beside it
// stretches its window, and the excess is exposed communication):
//
//   pos 3, slot 1:  G + max(attn(l), dispatch) + E + max(mlp(l) + attn(l+1) + shared(l+1), combine) + U
//   pos 3, slot 2:  G + max(attn(l) + mlp(l), dispatch) + E + max(attn(l+1) + shared(l+1), combine) + U
//   pos 2, slot 1:  attn(l) + G + dispatch + E + max(mlp(l) + attn(l+1) + shared(l+1), combine) + U
//   pos 1, slot 3:  attn(l) + mlp(l) + G + max(attn(l+1), dispatch) + E + max(shared(l+1), combine) + U
//   pos 1, slot 4:  attn(l) + mlp(l) + G + max(attn(l+1) + shared(l+1), dispatch) + E + combine + U
//
//   pos 1, slot 3:
//   compute: | attn(l) | mlp(l) | G | attn(l+1) | E | shared(l+1) | U |
//   comm   :                        | dispatch  |   | combine     |
//   (dependencies: dispatch after G; E after dispatch; combine after E; U after combine; backbone in order.)
//   These step formulas hold for symmetric ranks and no interference; tests/variants checks them.
//
// Lone block, position 2, slot 4 (every block MoE):  | attn | G | shared | E | U |  with dispatch || shared.
//
// ---- scmoe_pipelined ---------------------------------------------------------------------------------------
// The same units, with the routed tokens in r chunks (`chunks:`): G0..G(r-1) (gate in chunk 0), dispatches
// d0..d(r-1) then combines c0..c(r-1) on the comm stream, expert chunks E0..E(r-1) together in the slot
// (EI after dI), unpermutes U0..U(r-1) at the end (UI after cI). All dispatches are issued before any
// combine so the window before the slot is used for dispatch alone; when the dispatch outlasts its window,
// E0 starts after d0 instead of after the whole dispatch, and c0 runs while E1.. compute. chunks: 1 is scmoe.
//
// ---- Training -----------------------------------------------------------------------------------------------
// Backward mirrors the forward in reverse unit order, every compute op x backward_factor, the all-to-alls
// reversed (backward combine carries token owner -> expert owner traffic): for a unit with gate after B_p and
// expert after B_s,
//   compute: U' B_last' .. B_(s+1)' E' B_s' .. B_(p+1)' G' B_p' .. B1'
//   comm   :  combine' (after U')      dispatch' (after E')
// so the backward combine overlaps the backbone ops that followed E in the forward pass, and the backward
// dispatch the ones between G and E.
#include <algorithm>

#include "models/variants/schedule_util.hpp"

namespace moesim::models {

namespace {

using Ids = LayerEmitter::Ids;

enum class BackboneKind { attention, dense_mlp, shared_expert };
struct BackboneOp {
  BackboneKind kind;
  int layer;
};

struct Unit {
  int moe = -1;                      // the MoE layer (-1: a plain dense block)
  std::vector<BackboneOp> backbone;  // compute-stream ops of the unit, in forward order
  int gate_after = 0;                // p: backbone ops before gate+permute
  int expert_after = 1;              // s: backbone ops before the expert GEMM (p <= s <= backbone size)
};

// Pair-numbered slot -> backbone ops before E, for a unit with `n` backbone ops and gate after p.
int resolve_slot(bool pair, int p, int n, int slot) {
  int s = slot;
  if (s == 0) s = p + 1;  // no runner: the op right after the gate
  if (!pair) s = s <= 3 ? 1 : 2;  // lone block: after its attention, or (slot 4) after its shared expert
  return std::clamp(s, std::max(p, 1), n);
}

std::vector<Unit> plan_units(const VariantSpec& spec, const StepInput& in) {
  std::vector<Unit> units;
  const auto& L = in.layers;
  for (std::size_t i = 0; i < L.size(); ++i) {
    const int l = L[i];
    Unit u;
    if (!in.arch.is_moe_layer(l)) {
      // A shortcut never crosses a stage boundary (a model built of stages): the two blocks' token counts and
      // widths differ across a patch merge, so a MoE block that starts a stage is a lone block.
      const bool pair = i + 1 < L.size() && L[i + 1] == l + 1 && in.arch.is_moe_layer(l + 1) &&
                        in.stage_of(l) == in.stage_of(l + 1);
      u.backbone = {{BackboneKind::attention, l}, {BackboneKind::dense_mlp, l}};
      if (pair) {
        u.moe = l + 1;
        u.backbone.push_back({BackboneKind::attention, l + 1});
        u.backbone.push_back({BackboneKind::shared_expert, l + 1});
        u.gate_after = spec.position == 3 ? 0 : spec.position == 2 ? 1 : 2;
        ++i;
      }
    } else {
      u.moe = l;
      u.backbone = {{BackboneKind::attention, l}, {BackboneKind::shared_expert, l}};
      u.gate_after = spec.position == 2 ? 1 : 0;
    }
    if (u.moe >= 0) {
      const bool pair = u.backbone.size() == 4;
      u.expert_after = resolve_slot(pair, u.gate_after, static_cast<int>(u.backbone.size()), spec.expert_slot);
    }
    units.push_back(std::move(u));
  }
  return units;
}

class UnitEmitter {
 public:
  UnitEmitter(OpGraph& g, const StepInput& in, int parts) : em_(g, in), r_(parts) {}
  LayerEmitter& emitter() { return em_; }

  void forward(const Unit& u) {
    const int n = static_cast<int>(u.backbone.size());
    if (u.moe < 0) {
      for (int i = 0; i < n; ++i) backbone(u.backbone[i], Phase::forward);
      return;
    }
    const Phase ph = Phase::forward;
    for (int i = 0; i < u.gate_after; ++i) backbone(u.backbone[i], ph);
    std::vector<Ids> gp(r_), d(r_), e(r_), c(r_);
    for (int k = 0; k < r_; ++k) gp[k] = em_.gate_permute(u.moe, ph, {}, k, r_);
    for (int k = 0; k < r_; ++k)
      d[k] = em_.all_to_all(u.moe, ph, OpClass::dispatch, Stream::comm, per_rank_deps({gp[k]}), k, r_);
    for (int i = u.gate_after; i < u.expert_after; ++i) backbone(u.backbone[i], ph);
    for (int k = 0; k < r_; ++k) e[k] = em_.experts(u.moe, ph, per_rank_deps({d[k]}), k, r_);
    for (int k = 0; k < r_; ++k)
      c[k] = em_.all_to_all(u.moe, ph, OpClass::combine, Stream::comm, per_rank_deps({e[k]}), k, r_);
    for (int i = u.expert_after; i < n; ++i) backbone(u.backbone[i], ph);
    for (int k = 0; k < r_; ++k) em_.unpermute(u.moe, ph, per_rank_deps({c[k]}), k, r_);
  }

  void backward(const Unit& u) {
    const int n = static_cast<int>(u.backbone.size());
    const Phase ph = Phase::backward;
    if (u.moe < 0) {
      for (int i = n - 1; i >= 0; --i) backbone(u.backbone[i], ph);
      return;
    }
    std::vector<Ids> up(r_), c(r_), e(r_), d(r_);
    for (int k = 0; k < r_; ++k) up[k] = em_.unpermute(u.moe, ph, {}, k, r_);
    for (int k = 0; k < r_; ++k)
      c[k] = em_.all_to_all(u.moe, ph, OpClass::combine, Stream::comm, per_rank_deps({up[k]}), k, r_);
    for (int i = n - 1; i >= u.expert_after; --i) backbone(u.backbone[i], ph);
    for (int k = 0; k < r_; ++k) e[k] = em_.experts(u.moe, ph, per_rank_deps({c[k]}), k, r_);
    for (int k = 0; k < r_; ++k)
      d[k] = em_.all_to_all(u.moe, ph, OpClass::dispatch, Stream::comm, per_rank_deps({e[k]}), k, r_);
    for (int i = u.expert_after - 1; i >= u.gate_after; --i) backbone(u.backbone[i], ph);
    for (int k = 0; k < r_; ++k) em_.gate_permute(u.moe, ph, per_rank_deps({d[k]}), k, r_);
    for (int i = u.gate_after - 1; i >= 0; --i) backbone(u.backbone[i], ph);
  }

 private:
  void backbone(const BackboneOp& b, Phase ph) {
    switch (b.kind) {
      case BackboneKind::attention: em_.attention(b.layer, ph); break;
      case BackboneKind::dense_mlp: em_.dense_mlp(b.layer, ph); break;
      case BackboneKind::shared_expert:
        // The MoE block's MLP side with in.full_step: its norm before the shared expert, its residual add after
        // (the routed experts read an earlier representation, so the norm does not hold up their gate).
        ph == Phase::forward ? em_.norm(b.layer, ph) : em_.residual(b.layer, ph);
        em_.shared_expert(b.layer, ph);
        ph == Phase::forward ? em_.residual(b.layer, ph) : em_.norm(b.layer, ph);
        break;
    }
  }
  LayerEmitter em_;
  int r_;
};

}  // namespace

OpGraph build_scmoe_chunked(const VariantSpec& spec, const StepInput& in, int parts) {
  OpGraph g(in.ranks);
  UnitEmitter ue(g, in, std::max(1, parts));
  const std::vector<Unit> units = plan_units(spec, in);
  ue.emitter().step_begin();
  // A unit's first block may start a stage: its patch merging runs first (and last in the backward pass).
  auto first_layer = [](const Unit& u) { return u.backbone.front().layer; };
  for (const Unit& u : units) {
    ue.emitter().patch_merge(first_layer(u), Phase::forward);
    ue.forward(u);
  }
  ue.emitter().step_turn();
  if (in.mode == Mode::training)
    for (auto it = units.rbegin(); it != units.rend(); ++it) {
      ue.backward(*it);
      ue.emitter().patch_merge(first_layer(*it), Phase::backward);
    }
  ue.emitter().step_end();
  return g;
}

OpGraph build_scmoe(const VariantSpec& spec, const StepInput& in) { return build_scmoe_chunked(spec, in, 1); }

// Top-1 always; expert_slot auto -> every legal slot of the position (2..4 for position 1, else 1..4); a
// pinned slot below the gate is raised to the first legal one. shown["expert_slot"] = the slot simulated.
std::vector<VariantSpec> scmoe_candidates(const VariantSpec& spec) {
  VariantSpec base = spec;
  base.top_k = 1;
  base.shown["k"] = std::to_string(base.top_k);
  const int lo = spec.position == 1 ? 2 : 1;
  std::vector<VariantSpec> out;
  for (int s = lo; s <= 4; ++s) {
    if (spec.expert_slot != 0 && s != std::max(lo, spec.expert_slot)) continue;
    VariantSpec c = base;
    c.expert_slot = s;
    c.shown["expert_slot"] = std::to_string(s);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace moesim::models
