#include "sim/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace moesim {

namespace {
// Merges intervals into a sorted list of disjoint ones.
std::vector<std::pair<double, double>> merge(std::vector<std::pair<double, double>> v) {
  std::sort(v.begin(), v.end());
  std::vector<std::pair<double, double>> out;
  for (const auto& iv : v) {
    if (iv.second <= iv.first) continue;
    if (!out.empty() && iv.first <= out.back().second)
      out.back().second = std::max(out.back().second, iv.second);
    else
      out.push_back(iv);
  }
  return out;
}
}  // namespace

double exposed_length(std::vector<std::pair<double, double>> cover, std::vector<std::pair<double, double>> minus) {
  const auto a = merge(std::move(cover));
  const auto b = merge(std::move(minus));
  double total = 0;
  std::size_t j = 0;
  for (const auto& [s, e] : a) {
    double len = e - s;
    // Subtract the overlap with every b interval intersecting [s, e).
    while (j < b.size() && b[j].second <= s) ++j;
    for (std::size_t k = j; k < b.size() && b[k].first < e; ++k)
      len -= std::min(e, b[k].second) - std::max(s, b[k].first);
    total += len;
  }
  return total;
}

Distribution distribution(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  double sum = 0;
  for (double x : v) sum += x;
  // Nearest rank: the p-th percentile is the ceil(p/100 * n)-th smallest value.
  auto pct = [&](double p) { return v[std::min(n - 1, static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(n))) - 1)]; };
  d.mean = sum / static_cast<double>(n);
  d.p50 = pct(50);
  d.p99 = pct(99);
  d.max = v.back();
  d.count = static_cast<int64_t>(n);
  return d;
}

void summarize_moe(const OpGraph& graph, const Trace& trace, const std::string& model_dtype, VariantResult& out) {
  struct LayerSpan {
    double start = 1e300, end = -1e300;
    bool has_gate = false, has_combine = false;
    std::map<int, double> expert_s;  // rank -> forward expert time
  };
  std::map<std::pair<int, int>, LayerSpan> spans;  // (step, layer)
  std::map<std::tuple<int, int, int>, std::string> prec;  // (step, layer, rank) -> precision of its experts
  std::map<std::tuple<int, int, int>, std::pair<double, double>> dispatch_iv;  // first forward dispatch
  double cast_total = 0, cast_hidden = 0;
  std::vector<const Op*> casts;
  for (const Op& op : graph.ops()) {
    if (op.layer < 0 || op.phase != Phase::forward) continue;
    const double s = trace.start_s[op.id], e = trace.end_s[op.id];
    LayerSpan& sp = spans[{op.step, op.layer}];
    if (op.cls == OpClass::permute) sp.start = std::min(sp.start, s), sp.has_gate = true;
    if (op.cls == OpClass::combine) sp.end = std::max(sp.end, e), sp.has_combine = true;
    if (op.cls == OpClass::expert) {
      sp.expert_s[op.rank] += e - s;
      auto& p = prec[{op.step, op.layer, op.rank}];
      if (p.empty() || op.precision != OpPrecision::model)
        p = op.precision == OpPrecision::model ? model_dtype : op_precision_name(op.precision);
    }
    if (op.cls == OpClass::dispatch) dispatch_iv.try_emplace({op.step, op.layer, op.rank}, s, e);
    if (op.cls == OpClass::cast) casts.push_back(&op);
  }
  for (const Op* c : casts) {
    const double s = trace.start_s[c->id], e = trace.end_s[c->id];
    cast_total += e - s;
    auto it = dispatch_iv.find({c->step, c->layer, c->rank});
    if (it != dispatch_iv.end()) cast_hidden += std::max(0.0, std::min(e, it->second.second) - std::max(s, it->second.first));
  }
  std::vector<double> layer_times;
  int changes = 0, pairs = 0, last_slowest = -1;
  for (const auto& [key, sp] : spans) {
    if (!sp.has_gate || !sp.has_combine) continue;  // a dense layer
    layer_times.push_back(sp.end - sp.start);
    int slowest = -1;
    double longest = -1;
    for (const auto& [r, t] : sp.expert_s)
      if (t > longest) longest = t, slowest = r;
    if (last_slowest >= 0) {
      ++pairs;
      changes += slowest != last_slowest;
    }
    last_slowest = slowest;
  }
  const int R = graph.ranks();
  out.extra["moe_layer_time_s"] = distribution(layer_times).mean;
  out.step_stats["moe_layer_time_s"] = distribution(layer_times);
  if (out.step_times_s.empty()) out.step_stats["step_time_s"] = distribution({out.step_time_s});
  out.extra["slowest_rank_changes"] = changes;
  out.extra["slowest_rank_change_frac"] = pairs > 0 ? static_cast<double>(changes) / pairs : 0.0;
  if (!casts.empty()) {
    out.extra["cast_s"] = cast_total / R / out.steps;
    out.extra["cast_hidden_frac"] = cast_total > 0 ? cast_hidden / cast_total : 0.0;
  }
  // Precision per row and the share of steps each (layer, rank) ran below the model dtype.
  std::map<int, std::vector<double>> share;
  for (auto& row : out.rows) {
    auto it = prec.find({row.step, row.layer, row.rank});
    if (it == prec.end()) continue;
    row.precision = it->second;
    auto& v = share[row.layer];
    v.resize(static_cast<std::size_t>(R), 0.0);
    if (row.precision != model_dtype) v[static_cast<std::size_t>(row.rank)] += 1.0;  // counted, divided below
  }
  out.map_layers.clear();
  out.lowp_share.clear();
  for (auto& [l, v] : share) {
    out.map_layers.push_back(l);
    for (double& x : v) x /= out.steps;
    out.lowp_share.push_back(std::move(v));
  }
}

void summarize(const OpGraph& graph, const Trace& trace, int layers, bool keep_events, VariantResult& out) {
  const int R = graph.ranks();
  std::vector<std::vector<std::pair<double, double>>> comp(R), comm(R), step_level(R), block_level(R);
  std::vector<double> comp_sum(R, 0.0), comm_sum(R, 0.0);
  std::map<std::string, double> by_class;
  std::map<std::string, int64_t> by_prov;
  // Rows keyed by (step, layer, rank).
  std::map<std::tuple<int, int, int>, LayerRankRow> rows;
  int steps = 1;
  int32_t received_of = -1;      // keep_events: the sparse collective whose per-member bytes received are in
  std::vector<double> received;  // `received`
  for (const Op& op : graph.ops()) {
    const double s = trace.start_s[op.id], e = trace.end_s[op.id], d = e - s;
    steps = std::max(steps, op.step + 1);
    by_class[op_class_name(op.cls)] += d;
    (is_step_level(op.cls, op.layer) ? step_level : block_level)[op.rank].emplace_back(s, e);
    if (op.kind == OpKind::compute) {
      comp[op.rank].emplace_back(s, e);
      comp_sum[op.rank] += d;
      ++by_prov[provenance_name(op.provenance)];
    } else {
      comm[op.rank].emplace_back(s, e);
      comm_sum[op.rank] += d;
    }
    if (op.layer >= 0) {
      auto [it, fresh] = rows.try_emplace({op.step, op.layer, op.rank});
      LayerRankRow& row = it->second;
      if (fresh) {
        row.step = op.step;
        row.layer = op.layer;
        row.rank = op.rank;
        row.start_s = s;
        row.end_s = e;
      }
      row.start_s = std::min(row.start_s, s);
      row.end_s = std::max(row.end_s, e);
      (op.kind == OpKind::compute ? row.compute_s : row.comm_s) += d;
    }
    if (keep_events) {
      TraceEvent ev;
      ev.rank = op.rank;
      ev.stream = static_cast<int>(op.stream);
      ev.name = op_class_name(op.cls);
      ev.cls = op_class_name(op.cls);
      ev.layer = op.layer;
      ev.chunk = op.chunk;
      ev.phase = op.phase == Phase::forward ? "fwd" : "bwd";
      ev.start_s = s;
      ev.end_s = e;
      ev.step = op.step;
      ev.deps.assign(op.deps.begin(), op.deps.end());
      if (op.collective >= 0) {
        ev.collective = op.collective;
        const Collective& c = graph.collectives()[static_cast<std::size_t>(op.collective)];
        const int m = c.member_index(op.rank), M = c.size();
        // A sparse collective (a ring) has no byte matrix: its member's transfers, in (src, dst) order. The
        // bytes each member receives are summed once per collective (its ops have consecutive ids), not by a
        // scan per member: a ring over M ranks would cost M^2.
        if (c.sparse() && m >= 0) {
          if (received_of != op.collective) {
            received_of = op.collective;
            received.assign(static_cast<std::size_t>(M), 0.0);
            for (const Transfer& t : c.transfers) received[static_cast<std::size_t>(t.dst)] += t.bytes;
          }
          ev.bytes_received = received[static_cast<std::size_t>(m)];
          auto t = std::lower_bound(c.transfers.begin(), c.transfers.end(), m,
                                    [](const Transfer& x, int src) { return x.src < src; });
          for (; t != c.transfers.end() && t->src == m; ++t) {
            ev.bytes_sent += t->bytes;
            ev.sends_to.push_back(c.members[static_cast<std::size_t>(t->dst)]);
          }
        }
        for (int j = 0; !c.sparse() && m >= 0 && j < M; ++j) {
          if (j == m) continue;  // the diagonal is ignored (DESIGN: a rank's own share never crosses a link)
          const double out_b = c.bytes[static_cast<std::size_t>(m * M + j)];
          ev.bytes_sent += out_b;
          ev.bytes_received += c.bytes[static_cast<std::size_t>(j * M + m)];
          if (out_b > 0) ev.sends_to.push_back(c.members[static_cast<std::size_t>(j)]);
        }
      }
      out.events.push_back(std::move(ev));
    }
  }
  double exposed = 0, compute = 0, communication = 0, step_exposed = 0;
  for (int r = 0; r < R; ++r) {
    step_exposed += exposed_length(std::move(step_level[r]), std::move(block_level[r]));
    exposed += exposed_length(std::move(comm[r]), std::move(comp[r]));
    compute += comp_sum[r];
    communication += comm_sum[r];
  }
  out.steps = steps;
  out.step_time_s = trace.makespan_s / steps;
  out.per_layer_mean_s = layers > 0 ? out.step_time_s / layers : 0.0;
  out.compute_s = compute / R / steps;
  out.comm_s = communication / R / steps;
  // Exposed time is a part of the communication time; summed two ways (interval union vs lengths) it can come
  // out an ulp above it, which would print a negative overlap ratio.
  out.exposed_comm_s = std::min(exposed, communication) / R / steps;
  out.overlap_ratio = out.comm_s > 0 ? 1.0 - out.exposed_comm_s / out.comm_s : 0.0;
  // Block scope: the step less the time its step-level ops (embedding, final norm, LM head, loss, optimizer, DP
  // all-reduce) run while no block op of the same rank does, mean over ranks.
  out.extra["block_time_s"] = out.step_time_s - step_exposed / R / steps;
  for (auto& [k, v] : by_class) v /= static_cast<double>(R) * steps;
  if (steps > 1) {
    // Step s ends with its last op; ranks start a step when they finish the previous one.
    std::vector<double> end(static_cast<std::size_t>(steps), 0.0);
    for (const Op& op : graph.ops())
      end[static_cast<std::size_t>(op.step)] = std::max(end[static_cast<std::size_t>(op.step)], trace.end_s[op.id]);
    out.step_times_s.clear();
    double prev = 0;
    for (double x : end) {
      out.step_times_s.push_back(x - prev);
      prev = std::max(prev, x);
    }
    out.step_stats["step_time_s"] = distribution(out.step_times_s);
    out.extra["total_time_s"] = trace.makespan_s;
  }
  out.time_by_class_s = std::move(by_class);
  out.ops_by_provenance = std::move(by_prov);
  for (const auto& [k, v] : graph.notes()) out.extra[k] = v.first;
  out.ops = graph.ops().size();
  out.simgrid_activities = trace.simgrid_activities;
  out.rows.clear();
  for (auto& [k, row] : rows) out.rows.push_back(row);
}

}  // namespace moesim
