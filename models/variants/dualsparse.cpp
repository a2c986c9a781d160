// Schedule `dualsparse`: DualSparse-MoE's drop policies and expert partitioning on the sequential EP step.
//
// Partitioning (P): after training, each expert's FFN neurons are split into P sub-experts of expert_ffn / P
// (top-k becomes top-k x P, mathematically unchanged). The P sub-experts of an expert are picked together and
// live on its rank, so the all-to-all bytes per token are unchanged; the expert GEMMs become P GEMMs of
// ffn / P over the same tokens (the same FLOPs, possibly more time: smaller shapes, more launches).
//
// Dropping, per token-expert pair of normalised gate score s (over the token's top-k):
//   1t          s < T: dropped (not computed), else full
//   2t          s < T - delta: dropped; T - delta <= s < T + delta: the major half only (ffn / 2 neurons);
//               s >= T + delta: full
//   load_aware  2t with a threshold per receiving rank r: T_r = T x load_r / max_r' load_r'
//               (load = routed pairs the rank receives in the layer), so the most loaded rank keeps T and
//               drops most; delta = 0 makes it load-aware 1t
// Shared experts are never dropped. Dropped pairs are still dispatched and combined (the decision is made at
// the expert) unless drop_before_dispatch: then the source decides and only full and half pairs travel.
//
// Op graph per MoE layer (as topk, one stream): gate -> permute -> dispatch -> experts -> combine ->
// unpermute [-> shared expert]. The expert op of rank r costs, per local expert with f full and h half pairs:
//   P = 1:  grouped GEMMs of f rows at expert_ffn, then (if any h) grouped GEMMs of h rows at expert_ffn / 2
//   P >= 2: P sub-expert GEMMs of expert_ffn / P: the first P / 2 over f + h rows, the others over f rows
// With nothing dropped and P = 1 this is exactly topk's expert op.
//
// Expert tensor parallelism (parallelism.etp = T > 1; ranks = ep x T, group g = ranks [gT, gT + T), every rank
// a token source). The plan sends each pair to one rank of its expert's group (the placement lists the expert
// on every rank of the group, so Placement splits a source's pairs evenly over them, a local one taking all).
//   etp    each rank holds expert_ffn / T neurons of every expert of its group. Dispatch = that all-to-all,
//          then an all-gather(v) in each group (rank d's block: the pairs it received), so every rank of the
//          group has all of the group's pairs; experts; combine = a reduce-scatter(v) of the partial outputs
//          (rank d gets its block back, reduced), then the all-to-all back. Dropped pairs travel as in plain EP
//          (all the way unless drop_before_dispatch); half pairs travel to every rank (an all-gather cannot
//          skip ranks).
//   s_etp  the expert is split into T sub-experts (partition = T) placed one per rank of the group: plain EP
//          over ep x T ranks. Dispatch = one all-to-all sending each pair to every sub-expert that computes
//          it: all T for full pairs, the major half (ranks T/2 first) for half pairs, none for dropped pairs
//          when drop_before_dispatch (else all T: the decision is made at the expert); combine = its transpose
//          (the T partial outputs summed at the source, in unpermute).
// Both compute the same GEMMs: rank r runs, per expert of its group, expert_ffn / T neurons over the group's
// full pairs, plus its half pairs when r mod T < T / 2. On a non-blocking switch the two move the same bytes
// without dropping (T copies of each pair); S-ETP saves the half pairs' minor-half copies, the dropped pairs
// with drop_before_dispatch, and one collective step; ETP keeps the all-gather inside the group.
#include "models/variants/dualsparse.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <stdexcept>

#include "models/variants/schedule_util.hpp"

namespace moesim::models {

PairFate pair_fate(DropPolicy p, double s, double t, double delta) {
  switch (p) {
    case DropPolicy::none: return PairFate::full;
    case DropPolicy::one_t: return s < t ? PairFate::dropped : PairFate::full;
    case DropPolicy::two_t:
    case DropPolicy::load_aware:
      return s < t - delta ? PairFate::dropped : s < t + delta ? PairFate::half : PairFate::full;
  }
  return PairFate::full;
}

DualSparseLayer dualsparse_layer(const RoutingPlan& plan, const Architecture& arch, const Placement& placement,
                                 int layer, const DualSparseOptions& o, int etp) {
  const LayerRouting& L = plan.layer(layer);
  const int R = plan.ranks(), E = plan.experts();
  if (static_cast<int>(L.tokens.size()) != R)
    throw std::logic_error("dualsparse: the routing plan has no per-token gate scores (keep_scores)");
  DualSparseLayer out;
  if (etp < 1 || R % etp != 0) throw std::invalid_argument("dualsparse: ranks must split into groups of etp");
  out.received = plan.tokens_per_rank_received(layer);
  // A rank's load: its own received pairs, or its group's (etp > 1: the group computes them together).
  std::vector<int64_t> load(static_cast<std::size_t>(R), 0);
  for (int r = 0; r < R; ++r)
    load[static_cast<std::size_t>(r / etp * etp)] += out.received[static_cast<std::size_t>(r)];
  for (int r = 0; r < R; ++r) load[static_cast<std::size_t>(r)] = load[static_cast<std::size_t>(r / etp * etp)];
  const int64_t max_load = load.empty() ? 0 : *std::max_element(load.begin(), load.end());
  out.threshold.assign(static_cast<std::size_t>(R), o.threshold);
  if (o.policy == DropPolicy::load_aware && max_load > 0)
    for (int r = 0; r < R; ++r)
      out.threshold[static_cast<std::size_t>(r)] =
          o.threshold * static_cast<double>(load[static_cast<std::size_t>(r)]) / static_cast<double>(max_load);
  if (etp > 1) {
    out.fate_full.assign(static_cast<std::size_t>(R) * R, 0);
    out.fate_half.assign(static_cast<std::size_t>(R) * R, 0);
    out.fate_dropped.assign(static_cast<std::size_t>(R) * R, 0);
  }
  // Position of expert e among rank r's local experts (-1: not there).
  std::vector<std::vector<int>> pos(static_cast<std::size_t>(R), std::vector<int>(static_cast<std::size_t>(E), -1));
  out.full.resize(static_cast<std::size_t>(R));
  out.half.resize(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) {
    const auto& mine = placement.experts_of_rank(r);
    for (std::size_t i = 0; i < mine.size(); ++i) pos[static_cast<std::size_t>(r)][static_cast<std::size_t>(mine[i])] = static_cast<int>(i);
    out.full[static_cast<std::size_t>(r)].assign(mine.size(), 0);
    out.half[static_cast<std::size_t>(r)].assign(mine.size(), 0);
  }
  out.kept_pairs.assign(static_cast<std::size_t>(R) * R, 0);
  std::vector<int64_t> nth(static_cast<std::size_t>(E));
  for (int src = 0; src < R; ++src) {
    const TokenRoutes& tr = L.tokens[static_cast<std::size_t>(src)];
    out.shared += L.src_tokens[static_cast<std::size_t>(src)] * arch.shared_experts;
    std::fill(nth.begin(), nth.end(), 0);
    for (std::size_t j = 0; j < tr.experts.size(); ++j) {
      if (!tr.kept[j]) continue;  // dropped by the capacity factor: never sent, never computed
      const int e = tr.experts[j];
      const int dst = placement.dest_of_nth(src, e, nth[static_cast<std::size_t>(e)]++);
      const auto d = static_cast<std::size_t>(dst);
      ++out.routed;
      const PairFate f = pair_fate(o.policy, tr.scores[j], out.threshold[d], o.delta);
      if (etp > 1) {
        const std::size_t at = static_cast<std::size_t>(src) * R + d;
        ++(f == PairFate::full ? out.fate_full : f == PairFate::half ? out.fate_half : out.fate_dropped)[at];
      }
      if (f == PairFate::dropped) {
        ++out.dropped;
        continue;
      }
      const auto i = static_cast<std::size_t>(pos[d][static_cast<std::size_t>(e)]);
      (f == PairFate::half ? out.half : out.full)[d][i] += 1;
      if (f == PairFate::half) ++out.halves;
      ++out.kept_pairs[static_cast<std::size_t>(src) * R + d];
    }
  }
  return out;
}

std::vector<SubExpertGemm> sub_expert_gemms(const std::vector<int64_t>& full, const std::vector<int64_t>& half,
                                            int64_t expert_ffn, int partition) {
  std::vector<SubExpertGemm> out;
  if (partition == 1) {
    for (int64_t f : full) out.push_back({f, expert_ffn});
    for (int64_t h : half) out.push_back({h, expert_ffn / 2});
    return out;
  }
  for (std::size_t i = 0; i < full.size(); ++i)
    for (int j = 0; j < partition; ++j)
      out.push_back({full[i] + (j < partition / 2 ? half[i] : 0), expert_ffn / partition});
  return out;
}

std::vector<int64_t> group_rank_rows(const std::vector<int64_t>& group_full, const std::vector<int64_t>& group_half,
                                     int rank, int etp) {
  const bool major = rank % etp < etp / 2;
  std::vector<int64_t> rows(group_full.size());
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = group_full[i] + (major ? group_half[i] : 0);
  return rows;
}

double sub_expert_flops(const std::vector<SubExpertGemm>& gemms, int64_t hidden, int matrices) {
  double flops = 0;
  for (const auto& g : gemms)
    flops += 2.0 * matrices * static_cast<double>(g.tokens) * static_cast<double>(hidden) * static_cast<double>(g.ffn);
  return flops;
}

namespace {

// Notes the figures dualsparse_metrics turns into rates (summed over layers, then over steps by append()).
struct DropTally {
  double routed = 0, shared = 0, dropped = 0, halves = 0, flops = 0, max_before = 0, max_after = 0;
  std::vector<double> before, after;  // per rank: expert work (full-width pair equivalents) before/after
  explicit DropTally(std::size_t ranks) : before(ranks, 0.0), after(ranks, 0.0) {}
  void add_layer(const DualSparseLayer& d) {
    routed += static_cast<double>(d.routed);
    shared += static_cast<double>(d.shared);
    dropped += static_cast<double>(d.dropped);
    halves += static_cast<double>(d.halves);
  }
  void note(OpGraph& g) const {
    g.note_sum("ds_routed_pairs", routed);
    g.note_sum("ds_shared_pairs", shared);
    g.note_sum("ds_dropped_pairs", dropped);
    g.note_sum("ds_half_pairs", halves);
    g.note_sum("ds_expert_gemm_flops", flops);
    g.note_sum("ds_max_rank_work_before_pairs", max_before);
    g.note_sum("ds_max_rank_work_after_pairs", max_after);
    for (std::size_t r = 0; r < before.size(); ++r) {
      g.note_sum(fmt::format("ds_rank{}_work_before_pairs", r), before[r]);
      g.note_sum(fmt::format("ds_rank{}_work_after_pairs", r), after[r]);
    }
  }
};

// ETP and S-ETP (in.etp > 1), as described at the top of this file.
OpGraph build_dualsparse_tp(const DualSparseOptions& o, const StepInput& in) {
  const int T = in.etp;
  const auto R = static_cast<std::size_t>(in.ranks);
  const auto TT = static_cast<std::size_t>(T);
  const bool s_etp = o.expert_tp == ExpertTp::s_etp;
  DropTally tally(R);
  std::map<int, std::vector<KernelCost>> cost;   // [layer][rank]: forward cost of the rank's expert op
  std::map<int, std::vector<int64_t>> a2a;       // [layer]: ranks x ranks pairs the dispatch all-to-all carries
  std::map<int, std::vector<int64_t>> block;     // [layer][rank]: pairs of the rank's all-gather block (etp)
  std::map<int, OpGraph::Received> computed;     // [layer]: pairs each rank computes on (its group's)
  for (int l : in.layers) {
    if (!in.arch.is_moe_layer(l)) continue;
    const Architecture& la = in.arch_of(l);  // the layer's stage's shape
    const int64_t ffn = la.expert_ffn / T;
    const DualSparseLayer d = dualsparse_layer(in.routing, in.arch, in.placement, l, o, T);
    tally.add_layer(d);
    const LayerRouting& lr = in.routing.layer(l);
    const std::vector<int64_t> vision = in.routing.multimodal() ? in.routing.vision_per_rank_received(l)
                                                                : std::vector<int64_t>{};
    OpGraph::Received rx;
    rx.pairs.assign(R, 0);
    if (!vision.empty()) rx.vision.assign(R, 0);
    std::vector<KernelCost> layer_cost(R);
    double mb = 0, ma = 0;
    for (std::size_t base = 0; base < R; base += TT) {
      const std::size_t n = d.full[base].size();  // every rank of a group holds the group's experts
      std::vector<int64_t> gf(n, 0), gh(n, 0);
      int64_t recv = 0, vis = 0;
      for (std::size_t r = base; r < base + TT; ++r) {
        for (std::size_t i = 0; i < n; ++i) gf[i] += d.full[r][i], gh[i] += d.half[r][i];
        recv += d.received[r];
        if (!vision.empty()) vis += vision[r];
      }
      for (std::size_t r = base; r < base + TT; ++r) {
        rx.pairs[r] = recv;
        if (!vision.empty()) rx.vision[r] = vis;
        const std::vector<int64_t> rows = group_rank_rows(gf, gh, static_cast<int>(r), T);
        std::vector<SubExpertGemm> gemms;
        double w = 0;  // full-width pair equivalents: each rank computes 1 / T of the neurons
        for (int64_t x : rows) {
          gemms.push_back({x, ffn});
          w += static_cast<double>(x) / T;
        }
        tally.flops += sub_expert_flops(gemms, la.hidden, ffn_matrices(la.expert_activation));
        layer_cost[r] = in.costs_of(l).model().grouped_experts(rows, T);
        const double b = static_cast<double>(recv) / T;
        tally.before[r] += b;
        tally.after[r] += w;
        mb = std::max(mb, b);
        ma = std::max(ma, w);
      }
    }
    tally.max_before += mb;
    tally.max_after += ma;
    cost.emplace(l, std::move(layer_cost));
    computed.emplace(l, std::move(rx));
    std::vector<int64_t> m(R * R, 0);
    if (!s_etp) {
      // As plain EP: the plan's pairs, or only the kept ones when the source decides.
      m = o.drop_before_dispatch ? d.kept_pairs : lr.rank_tokens;
      std::vector<int64_t> blk(R, 0);
      for (std::size_t src = 0; src < R; ++src)
        for (std::size_t dst = 0; dst < R; ++dst) blk[dst] += m[src * R + dst];
      block.emplace(l, std::move(blk));
    } else {
      // Each pair to the sub-experts that compute it (all T, the major half, or none); see the top of the file.
      for (std::size_t src = 0; src < R; ++src)
        for (std::size_t dst = 0; dst < R; ++dst) {
          const std::size_t at = src * R + dst, base = dst / TT * TT;
          const int64_t all = d.fate_full[at] + (o.drop_before_dispatch ? 0 : d.fate_half[at] + d.fate_dropped[at]);
          const int64_t major = o.drop_before_dispatch ? d.fate_half[at] : 0;
          for (std::size_t j = 0; j < TT; ++j) m[src * R + base + j] += all + (j < TT / 2 ? major : 0);
        }
    }
    a2a.emplace(l, std::move(m));
  }
  auto setup = [&](LayerEmitter& em) {
    em.set_expert_cost([&](int l, int r) { return cost.at(l)[static_cast<std::size_t>(r)]; });
    em.set_pairs([&](int l) -> const std::vector<int64_t>* { return &a2a.at(l); });
  };
  // ETP: the group all-gather right before the experts and the reduce-scatter right after, in both passes.
  auto group = [&](OpKind kind, OpClass cls) -> MoeBlock {
    if (s_etp) return {};
    return [&, kind, cls](LayerEmitter& em, int l, Phase ph) {
      em.group_collective(l, ph, kind, cls, Stream::compute, block.at(l));
    };
  };
  OpGraph g = build_sequential(in, false, setup, group(OpKind::all_gather, OpClass::expert_all_gather),
                               group(OpKind::reduce_scatter, OpClass::expert_reduce_scatter));
  for (auto& [l, rx] : computed) g.set_received(l, std::move(rx));
  tally.note(g);
  return g;
}

}  // namespace

OpGraph build_dualsparse(const VariantSpec& spec, const StepInput& in) {
  const auto& o = spec.options_as<DualSparseOptions>();
  if (o.expert_tp != ExpertTp::none) return build_dualsparse_tp(o, in);
  std::map<int, DualSparseLayer> layers;
  const auto R = static_cast<std::size_t>(in.ranks);
  DropTally tally(R);
  // P = 1: the full pairs as topk's expert op, then (if any) the half pairs as a grouped GEMM at ffn / 2;
  // P >= 2: the sub-expert GEMMs of ffn / P.
  auto expert_op_cost = [&](const StepCosts& costs, const std::vector<int64_t>& full, const std::vector<int64_t>& half,
                            const std::vector<SubExpertGemm>& gemms) {
    if (o.partition == 1) {
      KernelCost c = costs.experts(full);
      if (std::any_of(half.begin(), half.end(), [](int64_t h) { return h > 0; }))
        c += costs.model().grouped_experts(half, 2);
      return c;
    }
    std::vector<int64_t> rows;
    for (const auto& g : gemms) rows.push_back(g.tokens);
    return costs.model().grouped_experts(rows, o.partition);
  };
  std::map<int, std::vector<KernelCost>> cost;  // [layer][rank]: forward cost of the rank's expert op
  for (int l : in.layers) {
    if (!in.arch.is_moe_layer(l)) continue;
    DualSparseLayer d = dualsparse_layer(in.routing, in.arch, in.placement, l, o);
    const Architecture& la = in.arch_of(l);  // the layer's stage's shape
    tally.add_layer(d);
    double mb = 0, ma = 0;
    std::vector<KernelCost> layer_cost;
    for (std::size_t r = 0; r < R; ++r) {
      // Expert work in full-width pair equivalents: a half pair computes half the neurons.
      double w = 0;
      for (int64_t x : d.full[r]) w += static_cast<double>(x);
      for (int64_t x : d.half[r]) w += 0.5 * static_cast<double>(x);
      tally.before[r] += static_cast<double>(d.received[r]);
      tally.after[r] += w;
      mb = std::max(mb, static_cast<double>(d.received[r]));
      ma = std::max(ma, w);
      // The rank's GEMMs, once: their FLOPs and the forward cost of its expert op (every phase reads it).
      const auto gemms = sub_expert_gemms(d.full[r], d.half[r], la.expert_ffn, o.partition);
      tally.flops += sub_expert_flops(gemms, la.hidden, ffn_matrices(la.expert_activation));
      layer_cost.push_back(expert_op_cost(in.costs_of(l), d.full[r], d.half[r], gemms));
    }
    cost.emplace(l, std::move(layer_cost));
    tally.max_before += mb;
    tally.max_after += ma;
    layers.emplace(l, std::move(d));
  }
  auto expert_cost = [&](int l, int r) { return cost.at(l)[static_cast<std::size_t>(r)]; };
  OpGraph g = build_sequential(in, false, [&](LayerEmitter& em) {
    em.set_expert_cost(expert_cost);
    if (o.drop_before_dispatch)
      em.set_pairs([&](int l) -> const std::vector<int64_t>* { return &layers.at(l).kept_pairs; });
  });
  tally.note(g);
  return g;
}

void dualsparse_metrics(std::map<std::string, double>& x) {
  const double all = x["ds_routed_pairs"] + x["ds_shared_pairs"];
  const double drop = all > 0 ? x["ds_dropped_pairs"] / all : 0.0;
  const double half = all > 0 ? x["ds_half_pairs"] / all : 0.0;
  x["ds_drop_rate"] = drop;
  x["ds_half_rate"] = half;
  // The expert work left if every computation cost the same: a half pair counts half (1t: 1 / (1 - drop)).
  // 0 (undefined) when nothing is left to compute (T = 1 drops every pair of a top-k > 1 model).
  const double left = 1.0 - drop - 0.5 * half;
  x["ds_ideal_speedup"] = left > 0 ? 1.0 / left : 0.0;
  const double ma = x["ds_max_rank_work_after_pairs"];
  x["ds_max_rank_ideal_speedup"] = ma > 0 ? x["ds_max_rank_work_before_pairs"] / ma : 0.0;
}

namespace {

// A `thresholds:` list: 2..64 numbers in [0, 1], strictly increasing (so every point is a different run and
// the sweep's table and chart read in order). Problems become diagnostics at the list or the offending value;
// then the list is returned empty, so the entry is not expanded (no follow-on errors from its points).
std::vector<double> decode_thresholds(const YamlView& list) {
  const std::size_t before = list.diagnostic_count();
  const std::vector<YamlView> items = list.items();
  if (list.diagnostic_count() != before) return {};
  if (items.size() < kMinSweepThresholds || items.size() > kMaxSweepThresholds) {
    list.error(fmt::format("must list {} to {} thresholds (one simulation each)", kMinSweepThresholds,
                           kMaxSweepThresholds),
               fmt::format("a list of {}", items.size()));
    return {};
  }
  std::vector<double> out;
  bool ok = true;
  for (const YamlView& item : items) {
    const std::size_t n = list.diagnostic_count();
    const double t = item.as_number(Range::between(0, 1));
    if (list.diagnostic_count() != n) {
      ok = false;
      continue;
    }
    if (!out.empty() && !(t > out.back())) {
      item.error(fmt::format("must be greater than the value before it ({}): thresholds increase strictly",
                             out.back()),
                 item.shown());
      ok = false;
    }
    out.push_back(t);
  }
  return ok ? out : std::vector<double>{};
}

}  // namespace

std::vector<VariantSpec> dualsparse_expand(const VariantSpec& spec) {
  const auto* o = dynamic_cast<const DualSparseOptions*>(spec.options.get());
  if (!o || o->thresholds.empty()) return {};
  std::vector<VariantSpec> out;
  for (double t : o->thresholds) {
    VariantSpec p = spec;
    auto po = std::make_shared<DualSparseOptions>(*o);
    po->threshold = t;
    po->thresholds.clear();
    p.options = std::move(po);
    // "{}" prints the shortest text that reads back as t, so names and `shown` say exactly what was simulated.
    p.name = fmt::format("{} T={}", spec.name, t);
    p.shown.erase("thresholds");
    p.shown["threshold"] = fmt::format("{}", t);
    p.sweep = SweepPoint{spec.name, "threshold", t};
    out.push_back(std::move(p));
  }
  return out;
}

std::shared_ptr<const ScheduleOptions> decode_dualsparse(const YamlView& v, const DecodeContext& ctx,
                                                         std::map<std::string, std::string>& shown) {
  auto o = std::make_shared<DualSparseOptions>();
  const std::string p = v.choice_or("policy", {"none", "1t", "2t", "load_aware"}, "none");
  o->policy = p == "1t" ? DropPolicy::one_t : p == "2t" ? DropPolicy::two_t
            : p == "load_aware" ? DropPolicy::load_aware : DropPolicy::none;
  // A dropping policy without a threshold would silently drop nothing. `thresholds:` (a sweep) stands in for
  // `threshold` and needs a dropping policy (under `none` every point would be the same run).
  if (v.has("thresholds")) {
    if (v.has("threshold"))
      v.at("thresholds").error("cannot be given together with threshold (threshold: one value; thresholds: a list "
                               "of values to sweep)", v.at("thresholds").shown());
    else if (o->policy == DropPolicy::none)
      v.at("thresholds").error("needs a dropping policy (policy: 1t, 2t or load_aware)", v.at("thresholds").shown());
    else
      o->thresholds = decode_thresholds(v.at("thresholds"));
    if (!o->thresholds.empty()) o->threshold = o->thresholds.front();
  } else if (o->policy == DropPolicy::none) {
    o->threshold = v.number_or("threshold", 0.0, Range::between(0, 1));
  } else {
    o->threshold = v.number("threshold", Range::between(0, 1));
  }
  o->delta = v.number_or("delta", 0.01, Range::between(0, 1));
  o->drop_before_dispatch = v.boolean_or("drop_before_dispatch", false);
  const int64_t ffn = ctx.arch.expert_ffn;
  std::string tp = "none";
  if (ctx.etp > 1) {
    tp = v.choice_or("expert_tp", {"etp", "s_etp"}, "etp");
    o->expert_tp = tp == "s_etp" ? ExpertTp::s_etp : ExpertTp::etp;
  } else if (v.has("expert_tp")) {
    v.at("expert_tp").error("needs expert tensor parallelism (parallelism.etp > 1)", v.at("expert_tp").shown());
  }
  // S-ETP's sub-experts are the partition (one per rank of the group); ETP shards instead of partitioning.
  const int partition_default = o->expert_tp == ExpertTp::s_etp ? ctx.etp : 1;
  o->partition = static_cast<int>(v.integer_or("partition", partition_default, Range::between(1, 64)));
  if (o->expert_tp == ExpertTp::s_etp && o->partition != ctx.etp)
    v.at("partition").error(fmt::format("must equal parallelism.etp = {} under expert_tp: s_etp (one sub-expert "
                                        "per rank of the group)", ctx.etp),
                            v.at("partition").shown());
  if (o->expert_tp == ExpertTp::etp && o->partition != 1)
    v.at("partition").error(fmt::format("must be 1 under expert_tp: etp (each expert is sharded over the etp = {} "
                                        "ranks of its group instead; expert_tp: s_etp partitions)", ctx.etp),
                            v.at("partition").shown());
  if (v.has("partition") && o->partition >= 1 && o->expert_tp == ExpertTp::none) {
    if ((o->partition & (o->partition - 1)) != 0)
      v.at("partition").error("must be a power of two (1, 2, 4, ..., 64)", v.at("partition").shown());
    else if (ffn % o->partition != 0)
      v.at("partition").error(fmt::format("must divide the expert FFN width (model.expert_ffn = {})", ffn),
                              v.at("partition").shown());
  }
  const bool halves = o->policy == DropPolicy::two_t || o->policy == DropPolicy::load_aware;
  if (halves && o->partition == 1 && ffn % 2 != 0)
    v.error_at("policy", fmt::format("keeps half of an expert's neurons: model.expert_ffn must be even (got {})", ffn));
  if (ctx.arch.vision_experts > 0)
    v.error_at("schedule", "does not model modality-isolated models (vision_experts > 0)");
  // A model built of stages: every stage's expert width must split the same way (stage 0's was checked above).
  for (const Stage& st : ctx.arch.stages) {
    if (st.expert_ffn == ffn) continue;
    if (o->expert_tp == ExpertTp::none && o->partition >= 1 && st.expert_ffn % o->partition != 0)
      v.at("partition").error(fmt::format("must divide the expert FFN width of every stage (stage {}: expert_ffn = {})",
                                          st.name, st.expert_ffn), v.at("partition").shown());
    else if (halves && o->partition == 1 && st.expert_ffn % 2 != 0)
      v.error_at("policy", fmt::format("keeps half of an expert's neurons: every stage's expert_ffn must be even "
                                       "(stage {}: {})", st.name, st.expert_ffn));
  }
  shown["policy"] = p;
  if (o->thresholds.empty()) shown["threshold"] = fmt::format("{}", o->threshold);
  else shown["thresholds"] = fmt::format("[{}]", fmt::join(o->thresholds, ", "));
  shown["delta"] = fmt::format("{}", o->delta);
  shown["drop_before_dispatch"] = o->drop_before_dispatch ? "true" : "false";
  shown["partition"] = fmt::format("{}", o->partition);
  if (o->expert_tp != ExpertTp::none) shown["expert_tp"] = tp;
  return o;
}

}  // namespace moesim::models
