#include "models/variants/schedule_util.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace moesim::models {

LayerEmitter::LayerEmitter(OpGraph& g, const StepInput& in)
    : g_(g), in_(in) {}

const StepCosts& LayerEmitter::costs(int layer) const { return in_.costs_of(layer); }
StepOpCosts LayerEmitter::ops(int layer) const { return StepOpCosts(in_.costs_of(layer).model()); }
int64_t LayerEmitter::tokens(int layer) const { return in_.tokens_of(layer); }
int LayerEmitter::last_layer() const { return in_.arch.layers - 1; }

LayerEmitter::Ids LayerEmitter::patch_merge(int layer, Phase ph, const Deps& deps) {
  // Only at the first block of a stage that merges patches (Architecture::Stage::patch_merge).
  if (!in_.stages) return {};
  const int s = in_.arch.stage_of(layer);
  const Stage& st = in_.arch.stages[static_cast<std::size_t>(s)];
  if (!st.patch_merge || st.first_layer != layer) return {};
  const KernelCost k = patch_merge_cost(costs(layer).model(), tokens(layer), st.merge_in);
  return emit(layer, ph, OpClass::patch_merge, deps, -1, [&](int) { return k; });
}

double LayerEmitter::factor(Phase ph) const { return ph == Phase::backward ? in_.costs.backward_factor() : 1.0; }

KernelCost patch_merge_cost(const CostModel& cost, int64_t rows, int64_t merge_in) {
  if (rows <= 0 || merge_in <= 0) return {0.0, cost.profile().roofline_provenance()};
  // LayerNorm over the concatenated rows (merge_in wide; bytes and FLOPs as StepOpCosts::norm), then the
  // reduction Linear merge_in -> hidden without bias (Swin's PatchMerging), a GEMM at the model dtype.
  const double th = static_cast<double>(rows) * static_cast<double>(merge_in);
  const KernelCost norm =
      cost.roofline(KernelClass::elementwise, DType::bf16, 4.0 * th, (2.0 * th + static_cast<double>(merge_in)) * 2.0);
  const Architecture& a = cost.architecture();
  return norm + cost.gemm("patch_merge", a.dtype, rows, a.hidden, merge_in);
}

LayerEmitter::Ids LayerEmitter::emit(int layer, Phase ph, OpClass cls, const Deps& deps, int chunk,
                                     const std::function<KernelCost(int rank)>& cost, double f) {
  Ids ids(static_cast<std::size_t>(in_.ranks));
  if (f < 0) f = factor(ph);
  for (int r = 0; r < in_.ranks; ++r) {
    const KernelCost k = cost(r);
    std::vector<OpId> d = deps.empty() ? std::vector<OpId>{} : deps[static_cast<std::size_t>(r)];
    ids[static_cast<std::size_t>(r)] =
        g_.add_compute(r, Stream::compute, cls, ph, layer, k.seconds * f, k.prov, std::move(d), chunk);
  }
  return ids;
}

LayerEmitter::Ids LayerEmitter::attention(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = costs(layer).attention(tokens(layer));
  if (!in_.full_step) return emit(layer, ph, OpClass::attention, deps, -1, [&](int) { return k; });
  const bool fwd = ph == Phase::forward;
  fwd ? norm(layer, ph, deps) : residual(layer, ph, deps);
  emit(layer, ph, OpClass::attention, {}, -1, [&](int) { return k; });
  return fwd ? residual(layer, ph) : norm(layer, ph);
}

LayerEmitter::Ids LayerEmitter::dense_mlp(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = costs(layer).dense_mlp(tokens(layer));
  if (!in_.full_step) return emit(layer, ph, OpClass::dense_mlp, deps, -1, [&](int) { return k; });
  const bool fwd = ph == Phase::forward;
  fwd ? norm(layer, ph, deps) : residual(layer, ph, deps);
  emit(layer, ph, OpClass::dense_mlp, {}, -1, [&](int) { return k; });
  return fwd ? residual(layer, ph) : norm(layer, ph);
}

LayerEmitter::Ids LayerEmitter::norm(int layer, Phase ph, const Deps& deps) {
  if (!in_.full_step) return {};
  const KernelCost k = ops(layer).norm(tokens(layer));
  return emit(layer, ph, OpClass::norm, deps, -1, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::residual(int layer, Phase ph, const Deps& deps) {
  if (!in_.full_step) return {};
  // Backward: the gradient of x + f(x) is the sum of the two branches' gradients, one add like the forward.
  const KernelCost k = ops(layer).residual(tokens(layer));
  return emit(layer, ph, OpClass::residual, deps, -1, [&](int) { return k; }, 1.0);
}

void LayerEmitter::step_begin() {
  if (!in_.full_step || in_.arch.vocab_size <= 0) return;
  // The embedding feeds the first block (stage 0's width and tokens).
  const KernelCost k = ops(0).embedding(tokens(0));
  emit(-1, Phase::forward, OpClass::embedding, {}, -1, [&](int) { return k; });
}

void LayerEmitter::step_turn() {
  if (!in_.full_step) return;
  const bool training = in_.mode == Mode::training;
  // The final norm and the LM head read the last block's output (the last stage's width and tokens).
  const int last = last_layer();
  const int64_t tokens_ = tokens(last);
  const StepOpCosts step_ops_ = ops(last);
  const KernelCost n = step_ops_.norm(tokens_);
  emit(-1, Phase::forward, OpClass::norm, {}, -1, [&](int) { return n; });
  if (in_.arch.vocab_size > 0) {
    const int64_t rows = lm_head_rows(training, in_.mode == Mode::decode, tokens_, costs(last).context_tokens());
    const KernelCost head = step_ops_.lm_head(rows);
    emit(-1, Phase::forward, OpClass::lm_head, {}, -1, [&](int) { return head; });
    if (training) {
      const KernelCost loss = step_ops_.loss(rows);
      emit(-1, Phase::forward, OpClass::loss, {}, -1, [&](int) { return loss; });
      // Input and weight gradients: two GEMMs of the forward's shape.
      emit(-1, Phase::backward, OpClass::lm_head, {}, -1, [&](int) { return head; });
    }
  }
  if (training) emit(-1, Phase::backward, OpClass::norm, {}, -1, [&](int) { return n; });
}

void LayerEmitter::step_end() {
  if (!in_.full_step || in_.mode != Mode::training || in_.arch.vocab_size <= 0) return;
  const KernelCost k = ops(0).embedding_backward(tokens(0));
  emit(-1, Phase::backward, OpClass::embedding, {}, -1, [&](int) { return k; }, 1.0);
}

LayerEmitter::Ids LayerEmitter::shared_expert(int layer, Phase ph, const Deps& deps) {
  const KernelCost k = shared_expert_cost(in_, tokens(layer), layer);
  return emit(layer, ph, OpClass::shared_expert, deps, -1, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::gate_permute(int layer, Phase ph, const Deps& deps, int chunk, int parts) {
  if (parts == 1) chunk = -1;
  const int64_t n = tokens(layer), t = chunk < 0 ? n : share(n, parts, chunk);
  // The gate runs once on all tokens (in chunk 0 when chunked); permute moves this chunk's rows.
  const KernelCost k = (chunk <= 0 ? costs(layer).gate(n) : KernelCost{0.0, Provenance::measured}) +
                       costs(layer).permute(t);
  return emit(layer, ph, OpClass::permute, deps, chunk, [&](int) { return k; });
}

LayerEmitter::Ids LayerEmitter::unpermute(int layer, Phase ph, const Deps& deps, int chunk, int parts) {
  if (parts == 1) chunk = -1;
  const int64_t n = tokens(layer), t = chunk < 0 ? n : share(n, parts, chunk);
  const KernelCost k = costs(layer).unpermute(t);
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
    if (!precision_ && in_.arch.vision_experts == 0) return costs(layer).experts(tok);
    return costs(layer).model().expert_group(tok, experts_of(layer, r), precision(layer, r));
  });
  tag(ids, layer);
  return ids;
}

LayerEmitter::Ids LayerEmitter::cast(int layer, Phase ph, const Deps& deps) {
  Ids ids = emit(layer, ph, OpClass::cast, deps, -1, [&](int r) {
    return costs(layer).model().weight_cast(experts_of(layer, r), precision(layer, r));
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
  const double bpt = costs(layer).bytes_per_token();
  // Token owner -> expert owner, or the transpose.
  const bool forward_dir = (cls == OpClass::dispatch) == (ph == Phase::forward);
  const MatrixKey key{layer, chunk, parts, forward_dir, &matrix};
  if (auto it = matrices_.find(key); it != matrices_.end())
    return g_.add_all_to_all(stream, cls, ph, layer, it->second, deps, chunk);
  // Written in order, without zeroing first: at EP 256 a training step holds 122 of these 512 KiB matrices
  // (244 all-to-alls), and zeroing them was 9 % of its time.
  std::vector<double> bytes;
  bytes.reserve(static_cast<std::size_t>(R) * R);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < R; ++j) {
      const int s = forward_dir ? i : j, d = forward_dir ? j : i;
      int64_t pairs = matrix[static_cast<std::size_t>(s) * R + d];
      if (chunk >= 0) pairs = share(pairs, parts, chunk);
      bytes.push_back(static_cast<double>(pairs) * bpt);
    }
  const ByteMatrix& shared = matrices_.emplace(key, ByteMatrix(std::move(bytes))).first->second;
  return g_.add_all_to_all(stream, cls, ph, layer, shared, deps, chunk);
}

LayerEmitter::Ids LayerEmitter::group_collective(int layer, Phase ph, OpKind kind, OpClass cls, Stream stream,
                                                 const std::vector<int64_t>& block_pairs) {
  const int R = in_.ranks, T = in_.etp;
  if (kind != OpKind::all_gather && kind != OpKind::reduce_scatter)
    throw std::invalid_argument("group_collective: all_gather or reduce_scatter");
  if (T < 1 || R % T != 0 || static_cast<int>(block_pairs.size()) != R)
    throw std::invalid_argument("group_collective: ranks must split into groups of etp, one block per rank");
  const double bpt = costs(layer).bytes_per_token();
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

KernelCost shared_expert_cost(const StepInput& in, int64_t tokens, int layer) {
  const Architecture& a = in.arch_of(layer);
  if (a.shared_experts > 0) return in.costs_of(layer).shared_expert(tokens);
  // No shared expert in the model: one FFN the size of a routed expert.
  return in.costs_of(layer).model().ffn(tokens, a.expert_ffn, a.expert_activation);
}

OpGraph build_layered(const StepInput& in, const MoeBlock& moe, const std::function<void(LayerEmitter&)>& setup) {
  OpGraph g(in.ranks);
  LayerEmitter em(g, in);
  if (setup) setup(em);
  em.step_begin();
  for (int layer : in.layers) {
    em.patch_merge(layer, Phase::forward);
    em.attention(layer, Phase::forward);
    if (in.arch.is_moe_layer(layer)) {
      em.norm(layer, Phase::forward);
      moe(em, layer, Phase::forward);
      em.residual(layer, Phase::forward);
    } else {
      em.dense_mlp(layer, Phase::forward);
    }
  }
  em.step_turn();
  if (in.mode != Mode::training) return g;
  for (auto it = in.layers.rbegin(); it != in.layers.rend(); ++it) {
    if (in.arch.is_moe_layer(*it)) {
      em.residual(*it, Phase::backward);
      moe(em, *it, Phase::backward);
      em.norm(*it, Phase::backward);
    } else {
      em.dense_mlp(*it, Phase::backward);
    }
    em.attention(*it, Phase::backward);
    em.patch_merge(*it, Phase::backward);
  }
  em.step_end();
  return g;
}

double pair_time_s(double step_time_s, int simulated_layers) {
  return simulated_layers > 0 ? 2.0 * step_time_s / simulated_layers : 0.0;
}

}  // namespace moesim::models

namespace moesim::models {

namespace {

// A ring all-reduce of `bytes` over `members` (ascending) on the dp stream: a reduce-scatter then an
// all-gather, in each of which member i sends (N - 1) / N x bytes to member i + 1 (mod members). N =
// `ring_members`, the ring's size on the cluster (>= members: representative replicas, see DataParallel). It
// is one library call, so it pays one collective launch (the reduce-scatter's). `ready[r]` is the op after
// which rank r's gradients are ready (kNoOp: none). Returns the all-gather's op ids (per graph rank).
std::vector<OpId> ring_all_reduce(OpGraph& g, const std::vector<int>& members, std::size_t ring_members,
                                  double bytes, const std::vector<OpId>& ready) {
  const std::size_t n = members.size(), N = std::max(n, ring_members);
  if (n < 2 || bytes <= 0) return {};
  // Sparse: n transfers, not an n x n matrix (a bucket over 2,048 ranks would hold 32 MB of zeros).
  std::vector<Transfer> ring;
  ring.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    ring.push_back({static_cast<int32_t>(i), static_cast<int32_t>((i + 1) % n), static_cast<double>(N - 1) / N * bytes});
  std::vector<std::vector<OpId>> deps(static_cast<std::size_t>(g.ranks()));
  for (int r : members)
    if (ready[static_cast<std::size_t>(r)] != kNoOp) deps[static_cast<std::size_t>(r)].push_back(ready[static_cast<std::size_t>(r)]);
  g.add_collective(OpKind::reduce_scatter, members, Stream::dp, OpClass::dp_all_reduce, Phase::backward, -1, ring,
                   deps);
  std::vector<OpId> ids = g.add_collective(OpKind::all_gather, members, Stream::dp, OpClass::dp_all_reduce,
                                           Phase::backward, -1, std::move(ring), {});
  // One all-reduce is one NCCL call: its all-gather half pays no second collective launch.
  g.continue_call(g.op(ids[static_cast<std::size_t>(members.front())]).collective);
  return ids;
}

}  // namespace

OpGraph finish_step(OpGraph g, const StepInput& in, const DataParallel& dp) {
  const int R = in.ranks, D = std::max(1, dp.degree), ring_d = std::max(D, dp.ring_degree);
  if (g.ranks() != R) throw std::invalid_argument("finish_step: the graph must hold one EP group");
  const StepOpCosts costs(in.costs.model());
  const Architecture& a = in.arch;
  // A model built of stages: each block's parameters at its stage's shape (plus the stage's patch merging at
  // its first block); the embedding at the first stage's width, the LM head and final norm at the last's.
  auto block_params = [&](int l) {
    if (!in.stages) return costs.block_params(l);
    double n = StepOpCosts(in.costs_of(l).model()).block_params(l);
    const Stage& st = a.stages[static_cast<std::size_t>(a.stage_of(l))];
    if (st.patch_merge && st.first_layer == l)
      n += static_cast<double>(st.merge_in) * st.hidden + st.merge_in;  // reduction weights + norm weights
    return n;
  };
  auto expert_params = [&](int l, const std::vector<int>& experts) {
    return in.stages ? StepOpCosts(in.costs_of(l).model()).expert_params(experts, in.etp)
                     : costs.expert_params(experts, in.etp);
  };
  const double h_first = in.arch_of(0).hidden, h_last = in.arch_of(a.layers - 1).hidden;
  // Gradient-ready points of one replica in backward order: the op on each rank after which the gradients of
  // `dense` (replicated on every rank) and expert[r] (rank r's routed experts) parameters exist.
  struct Ready {
    std::vector<OpId> op;
    double dense = 0;
    std::vector<double> expert;
  };
  std::vector<Ready> points;
  const bool training = in.mode == Mode::training;
  if (training) {
    auto point = [&](double dense) {
      Ready p;
      p.op.assign(static_cast<std::size_t>(R), kNoOp);
      p.dense = dense;
      p.expert.assign(static_cast<std::size_t>(R), 0.0);
      return p;
    };
    Ready head = point(static_cast<double>(a.vocab_size) * h_last + h_last);  // LM head + final norm
    std::map<int, Ready> blocks;
    for (int l : in.layers) {
      Ready p = point(block_params(l));
      if (a.is_moe_layer(l))
        for (int r = 0; r < R; ++r)
          p.expert[static_cast<std::size_t>(r)] = expert_params(l, in.placement.experts_of_rank(r));
      blocks.emplace(l, std::move(p));
    }
    Ready embed = point(static_cast<double>(a.vocab_size) * h_first);
    for (const Op& op : g.ops()) {
      if (op.phase != Phase::backward || op.kind != OpKind::compute) continue;
      const auto r = static_cast<std::size_t>(op.rank);
      if (op.layer >= 0) {
        if (auto it = blocks.find(op.layer); it != blocks.end()) it->second.op[r] = op.id;  // the block's last
      } else if (op.cls == OpClass::norm) {
        head.op[r] = op.id;  // the final norm's backward follows the LM head's
      } else if (op.cls == OpClass::embedding) {
        embed.op[r] = op.id;
      }
    }
    points.push_back(std::move(head));
    for (auto it = in.layers.rbegin(); it != in.layers.rend(); ++it) points.push_back(std::move(blocks.at(*it)));
    if (a.vocab_size > 0) points.push_back(std::move(embed));
  }
  const auto n_ops = static_cast<OpId>(g.ops().size());
  OpGraph out = D > 1 ? g.replicate(D) : std::move(g);
  if (!training) return out;

  const int N = D * R;
  std::vector<int> all(static_cast<std::size_t>(N));
  for (int r = 0; r < N; ++r) all[static_cast<std::size_t>(r)] = r;
  // ready op of every graph rank at point p (replica d's copy of rank r's op is shifted by d x n_ops).
  auto ready_of = [&](const Ready& p) {
    std::vector<OpId> ready(static_cast<std::size_t>(N), kNoOp);
    for (int d = 0; d < D; ++d)
      for (int r = 0; r < R; ++r) {
        const OpId id = p.op[static_cast<std::size_t>(r)];
        ready[static_cast<std::size_t>(d * R + r)] = id == kNoOp ? kNoOp : id + static_cast<OpId>(d) * n_ops;
      }
    return ready;
  };
  std::vector<OpId> last(static_cast<std::size_t>(N), kNoOp);  // each rank's last dp-stream op
  auto keep_last = [&](const std::vector<OpId>& ids) {
    for (std::size_t r = 0; r < ids.size(); ++r)
      if (ids[r] != kNoOp) last[r] = ids[r];
  };
  double dense_acc = 0;
  std::vector<double> expert_acc(static_cast<std::size_t>(R), 0.0);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const Ready& p = points[i];
    const bool final_point = i + 1 == points.size();
    const std::vector<OpId> ready = ready_of(p);
    dense_acc += p.dense * kGradBytesPerParam;
    if (N > 1 && (dense_acc >= dp.bucket_bytes || final_point) && dense_acc > 0) {
      keep_last(ring_all_reduce(out, all, static_cast<std::size_t>(ring_d) * R, dense_acc, ready));
      dense_acc = 0;
    }
    if (D < 2) continue;
    for (int r = 0; r < R; ++r) {
      double& acc = expert_acc[static_cast<std::size_t>(r)];
      acc += p.expert[static_cast<std::size_t>(r)] * kGradBytesPerParam;
      if ((acc >= dp.bucket_bytes || final_point) && acc > 0) {
        std::vector<int> group;
        for (int d = 0; d < D; ++d) group.push_back(d * R + r);
        keep_last(ring_all_reduce(out, group, static_cast<std::size_t>(ring_d), acc, ready));
        acc = 0;
      }
    }
  }
  // The optimizer step of every rank over all it holds, after its last bucket.
  double dense_params = in.stages ? static_cast<double>(a.vocab_size) * (h_first + h_last) + h_last : costs.outer_params();
  for (int l : in.layers) dense_params += block_params(l);
  int moe_layers = 0;
  for (int l : in.layers) moe_layers += a.is_moe_layer(l) ? 1 : 0;
  for (int rank = 0; rank < N; ++rank) {
    const std::vector<int>& mine = in.placement.experts_of_rank(rank % R);
    double expert = 0;
    if (in.stages) {
      for (int l : in.layers)
        if (a.is_moe_layer(l)) expert += expert_params(l, mine);
    } else {
      expert = moe_layers * costs.expert_params(mine, in.etp);
    }
    const double params = dense_params + expert;
    const KernelCost k = costs.adam(params);
    std::vector<OpId> deps;
    if (last[static_cast<std::size_t>(rank)] != kNoOp) deps.push_back(last[static_cast<std::size_t>(rank)]);
    out.add_compute(rank, Stream::compute, OpClass::optimizer, Phase::backward, -1, k.seconds, k.prov, std::move(deps));
  }
  return out;
}

}  // namespace moesim::models
