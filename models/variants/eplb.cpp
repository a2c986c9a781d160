// Schedule `eplb`: expert-parallel load balancing by redundant experts (vLLM / DeepSeek EPLB style).
//
// Each rank keeps its own experts (the scenario's placement) and the EP group gets `redundant_experts` extra
// expert slots, spread over the ranks as evenly as possible (rank r gets floor(X / R) slots, the first X mod R
// ranks one more). Per MoE layer, the slots are filled from the expert loads (token-expert pairs) summed over
// the `window` steps before the last re-placement, DeepSeek EPLB's greedy rule: repeatedly take the expert with
// the highest load per replica and put a new replica of it on the least-loaded rank (estimated load = the sum
// of load / replicas of the experts it holds) that has a free slot and does not hold that expert yet.
// Re-placement happens at every step s with s mod `interval` = 0, from the loads of steps [s - window, s);
// steps before 0 (the warm-up) are drawn from the same workload, so step 0 already has a placement.
//
// Tokens for a replicated expert are split `even`ly among its replicas (share j of n: floor(c / n) + (j < c
// mod n), rotated by the source rank), or to the `least_loaded` replicas: per layer, the replicated experts in
// decreasing load water-fill their replica ranks (the lowest current load first) and each source's pairs are
// split in those proportions (largest remainder). The step then runs as `topk`.
//
// Costs reported: the extra expert weights per rank (extra slots x one expert's weights at the model dtype x
// the model's MoE layers), and at each re-placement after step 0 a weight move: one all-to-all on the compute
// stream before the step's first layer carrying each new replica's weights from the expert's home rank
// (OpClass::weight_move, time from the network model).
#include <algorithm>
#include <fmt/format.h>
#include <numeric>

#include "models/variants/schedule_util.hpp"
#include "sim/limits.hpp"

namespace moesim::models {

struct EplbOptions : ScheduleOptions {
  int redundant = 0;  // extra expert slots over the EP group
  int window = 10;    // steps of history the loads are summed over
  int interval = 10;  // steps between re-placements
  bool least_loaded = false;
};

namespace {

// The slots of one layer: experts_of_rank for the home placement plus the greedy replicas.
std::vector<std::vector<int>> eplb_slots(const Placement& home, const std::vector<double>& load, int redundant) {
  const int R = home.ranks(), E = home.experts();
  std::vector<std::vector<int>> slots(static_cast<std::size_t>(R));
  std::vector<int> replicas(static_cast<std::size_t>(E), 0);
  for (int r = 0; r < R; ++r) {
    slots[static_cast<std::size_t>(r)] = home.experts_of_rank(r);
    for (int e : home.experts_of_rank(r)) ++replicas[static_cast<std::size_t>(e)];
  }
  std::vector<int> free(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) free[static_cast<std::size_t>(r)] = redundant / R + (r < redundant % R ? 1 : 0);
  auto rank_load = [&](int r) {
    double s = 0;
    for (int e : slots[static_cast<std::size_t>(r)])
      s += load[static_cast<std::size_t>(e)] / replicas[static_cast<std::size_t>(e)];
    return s;
  };
  for (int placed = 0; placed < redundant; ++placed) {
    // Hottest expert per replica that still has a rank to go to (ties: lowest id).
    int best_e = -1, best_r = -1;
    std::vector<int> order(static_cast<std::size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return load[static_cast<std::size_t>(a)] / replicas[static_cast<std::size_t>(a)] >
             load[static_cast<std::size_t>(b)] / replicas[static_cast<std::size_t>(b)];
    });
    for (int e : order) {
      double lowest = 0;
      for (int r = 0; r < R; ++r) {
        const auto& s = slots[static_cast<std::size_t>(r)];
        if (free[static_cast<std::size_t>(r)] == 0 || std::find(s.begin(), s.end(), e) != s.end()) continue;
        const double l = rank_load(r);
        if (best_r < 0 || l < lowest) best_r = r, lowest = l;
      }
      if (best_r >= 0) {
        best_e = e;
        break;
      }
    }
    if (best_e < 0) break;  // every rank with a free slot already holds every expert
    slots[static_cast<std::size_t>(best_r)].push_back(best_e);
    ++replicas[static_cast<std::size_t>(best_e)];
    --free[static_cast<std::size_t>(best_r)];
  }
  return slots;
}

// Per-layer expert loads (pairs) summed over steps [from, to) of the series.
std::vector<double> window_load(const StepSeries& series, int layer, int from, int to, int E, int R) {
  std::vector<double> load(static_cast<std::size_t>(E), 0.0);
  for (int s = from; s < to; ++s) {
    if (!series.has(s)) continue;
    const LayerRouting& L = series.at(s).layer(layer);
    for (int src = 0; src < R; ++src)
      for (int e = 0; e < E; ++e) load[static_cast<std::size_t>(e)] += static_cast<double>(L.counts[static_cast<std::size_t>(src) * E + e]);
  }
  return load;
}

// Water-filling: split `total` over ranks `rs` (current loads `cur`) so the lowest loads rise first.
std::vector<double> water_fill(const std::vector<int>& rs, const std::vector<double>& cur, double total) {
  std::vector<double> level(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) level[i] = cur[static_cast<std::size_t>(rs[i])];
  std::vector<double> sorted = level;
  std::sort(sorted.begin(), sorted.end());
  // Find the water level w with sum max(0, w - level_i) = total.
  double w = sorted.front(), left = total;
  std::size_t k = 1;
  while (k < sorted.size() && left >= (sorted[k] - w) * static_cast<double>(k)) {
    left -= (sorted[k] - w) * static_cast<double>(k);
    w = sorted[k];
    ++k;
  }
  w += left / static_cast<double>(k);
  std::vector<double> out(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) out[i] = std::max(0.0, w - level[i]);
  return out;
}

}  // namespace

namespace {

// The last re-placement step at or before step s.
int replacement_step(const EplbOptions& o, int s) { return s - ((s % o.interval) + o.interval) % o.interval; }

// One step under EPLB: the per-layer placements (home experts + replicas) and the step's routing re-split over
// them (RoutingPlan::assign), as the expert GEMMs and all-to-alls of the step use it.
struct EplbStep {
  std::map<int, Placement> placed;
  RoutingPlan plan;
};

EplbStep eplb_step(const EplbOptions& o, const StepInput& in) {
  const int R = in.ranks, E = in.arch.routed_experts;
  if (!in.series) throw std::logic_error("eplb needs the routing of earlier steps");
  const int s0 = replacement_step(o, in.step);
  std::map<int, Placement> placed;
  for (int l : in.layers) {
    if (!in.arch.is_moe_layer(l)) continue;
    placed.emplace(l, Placement::from_slots(E, eplb_slots(in.placement, window_load(*in.series, l, s0 - o.window, s0, E, R), o.redundant)));
  }
  // Least-loaded split: per layer, per replicated expert, the share of each replica rank.
  std::map<std::pair<int, int>, std::vector<double>> shares;
  if (o.least_loaded)
    for (const auto& [l, pl] : placed) {
      const LayerRouting& L = in.routing.layer(l);
      std::vector<double> total(static_cast<std::size_t>(E), 0.0), cur(static_cast<std::size_t>(R), 0.0);
      for (int src = 0; src < R; ++src)
        for (int e = 0; e < E; ++e) total[static_cast<std::size_t>(e)] += static_cast<double>(L.counts[static_cast<std::size_t>(src) * E + e]);
      std::vector<int> rep;
      for (int e = 0; e < E; ++e) {
        if (pl.ranks_of_expert(e).size() == 1) cur[static_cast<std::size_t>(pl.rank_of_expert(e))] += total[static_cast<std::size_t>(e)];
        else rep.push_back(e);
      }
      std::stable_sort(rep.begin(), rep.end(), [&](int a, int b) { return total[static_cast<std::size_t>(a)] > total[static_cast<std::size_t>(b)]; });
      for (int e : rep) {
        const auto& rs = pl.ranks_of_expert(e);
        std::vector<double> a = water_fill(rs, cur, total[static_cast<std::size_t>(e)]);
        for (std::size_t i = 0; i < rs.size(); ++i) cur[static_cast<std::size_t>(rs[i])] += a[i];
        shares[{l, e}] = std::move(a);
      }
    }
  RoutingPlan plan = in.routing;
  plan.assign([&](int l) -> const Placement& { return placed.at(l); },
              [&](int l, int src, int e, int64_t c, int64_t* per) {
                const auto& rs = placed.at(l).ranks_of_expert(e);
                const int64_t n = static_cast<int64_t>(rs.size());
                if (n == 1) {
                  per[rs.front()] += c;
                  return;
                }
                auto it = shares.find({l, e});
                double sum = 0;
                if (it != shares.end())
                  for (double x : it->second) sum += x;
                if (it == shares.end() || sum <= 0) {  // even split, rotated by the source
                  for (int64_t j = 0; j < n; ++j)
                    per[rs[static_cast<std::size_t>((src % n + j) % n)]] += c / n + (j < c % n ? 1 : 0);
                  return;
                }
                // Proportional, largest remainder (ties: the lower replica index).
                std::vector<std::pair<double, int64_t>> rem;
                int64_t given = 0;
                for (int64_t j = 0; j < n; ++j) {
                  const double exact = static_cast<double>(c) * it->second[static_cast<std::size_t>(j)] / sum;
                  const auto whole = static_cast<int64_t>(exact);
                  per[rs[static_cast<std::size_t>(j)]] += whole;
                  given += whole;
                  rem.emplace_back(-(exact - static_cast<double>(whole)), j);
                }
                std::sort(rem.begin(), rem.end());
                for (int64_t i = 0; i < c - given; ++i) per[rs[static_cast<std::size_t>(rem[static_cast<std::size_t>(i % n)].second)]] += 1;
              });
  return {std::move(placed), std::move(plan)};
}

}  // namespace

OpGraph build_eplb(const VariantSpec& spec, const StepInput& in) {
  const auto& o = spec.options_as<EplbOptions>();
  const int R = in.ranks, E = in.arch.routed_experts, s = in.step;
  if (o.redundant == 0) return build_sequential(in, false);
  EplbStep st = eplb_step(o, in);
  const std::map<int, Placement>& placed = st.placed;
  const RoutingPlan& plan = st.plan;
  const int s0 = replacement_step(o, s);
  std::map<int, Placement> before;  // the previous placement, at a re-placement step after step 0
  if (s == s0 && s > 0)
    for (const auto& [l, pl] : placed)
      before.emplace(l, Placement::from_slots(E, eplb_slots(in.placement, window_load(*in.series, l, s0 - o.interval - o.window, s0 - o.interval, E, R), o.redundant)));
  const StepInput in2{in.arch, in.placement, plan, in.costs, in.mode, in.ranks, in.tokens_per_rank, in.layers, in.step,
                      in.series, in.etp, in.full_step, in.stages};
  OpGraph body = build_sequential(in2, false);
  // Extra memory: the most extra slots any rank has, for every MoE layer of the model.
  const int extra_slots = o.redundant / R + (o.redundant % R ? 1 : 0);
  // Largest expert of a layer (bytes); a model built of stages sums it over its MoE layers, each at its stage's
  // widths (a flat model: the same figure times the MoE layer count).
  auto largest = [&](const CostModel& m) {
    double b = 0;
    for (int e = 0; e < E; ++e) b = std::max(b, m.expert_weight_bytes(e, in.arch.dtype));
    return b;
  };
  double extra_bytes = 0;
  if (in.stages) {
    for (int l : in.arch.moe_layer_indices()) extra_bytes += extra_slots * largest(in.costs_of(l).model());
  } else {
    extra_bytes = extra_slots * largest(in.costs.model()) * in.arch.moe_layer_count();
  }
  OpGraph g(R);
  for (const auto& [l, pl] : placed)
    g.set_received(l, {plan.tokens_per_rank_received(l),
                       plan.multimodal() ? plan.vision_per_rank_received(l) : std::vector<int64_t>{}});
  g.note_max("eplb_extra_weight_bytes_per_rank", extra_bytes);
  if (!before.empty()) {
    // New replicas travel from the expert's home rank.
    std::vector<double> bytes(static_cast<std::size_t>(R) * R, 0.0);
    double moved = 0;
    for (const auto& [l, pl] : placed)
      for (int r = 0; r < R; ++r)
        for (int e : pl.experts_of_rank(r)) {
          const auto& old = before.at(l).experts_of_rank(r);
          if (std::find(old.begin(), old.end(), e) != old.end()) continue;
          const int home = in.placement.rank_of_expert(e);
          const double b = in.costs_of(l).model().expert_weight_bytes(e, in.arch.dtype);
          bytes[static_cast<std::size_t>(home) * R + r] += b;
          moved += b;
        }
    g.note_sum("eplb_moved_weight_bytes", moved);
    g.note_sum("eplb_replacements", 1);
    if (moved > 0) g.add_all_to_all(Stream::compute, OpClass::weight_move, Phase::forward, -1, std::move(bytes), {});
  }
  g.append(body, in.step);
  return g;
}

int eplb_history(const VariantSpec& spec) { return spec.options_as<EplbOptions>().window; }

std::shared_ptr<const ScheduleOptions> decode_eplb(const YamlView& v, const DecodeContext& c,
                                                   std::map<std::string, std::string>& shown) {
  auto o = std::make_shared<EplbOptions>();
  o->redundant = static_cast<int>(v.integer_or("redundant_experts", 0, Range::between(0, limits::kMaxExperts)));
  o->window = static_cast<int>(v.integer_or("window", 10, Range::between(1, 10000)));
  o->interval = static_cast<int>(v.integer_or("interval", 10, Range::between(1, 10000)));
  o->least_loaded = v.choice_or("split", {"even", "least_loaded"}, "even") == "least_loaded";
  // Every rank may hold every expert at most once.
  const int64_t room = static_cast<int64_t>(c.ranks) * c.arch.routed_experts - c.arch.routed_experts;
  if (o->redundant > room)
    v.error_at("redundant_experts", fmt::format("at most ranks x experts - experts = {} (every rank holding every "
                                                "expert once)", room));
  shown["redundant_experts"] = fmt::format("{}", o->redundant);
  shown["window"] = fmt::format("{}", o->window);
  shown["interval"] = fmt::format("{}", o->interval);
  shown["split"] = o->least_loaded ? "least_loaded" : "even";
  return o;
}

}  // namespace moesim::models
