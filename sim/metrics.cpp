#include "sim/metrics.hpp"

#include <algorithm>
#include <map>

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

void summarize(const OpGraph& graph, const Trace& trace, int layers, bool keep_events, VariantResult& out) {
  const int R = graph.ranks();
  std::vector<std::vector<std::pair<double, double>>> comp(R), comm(R);
  std::vector<double> comp_sum(R, 0.0), comm_sum(R, 0.0);
  std::map<std::string, double> by_class;
  std::map<std::string, int64_t> by_prov;
  // Rows keyed by (layer, rank).
  std::map<std::pair<int, int>, LayerRankRow> rows;
  for (const Op& op : graph.ops()) {
    const double s = trace.start_s[op.id], e = trace.end_s[op.id], d = e - s;
    by_class[op_class_name(op.cls)] += d;
    if (op.kind == OpKind::compute) {
      comp[op.rank].emplace_back(s, e);
      comp_sum[op.rank] += d;
      ++by_prov[provenance_name(op.provenance)];
    } else {
      comm[op.rank].emplace_back(s, e);
      comm_sum[op.rank] += d;
    }
    if (op.layer >= 0) {
      auto [it, fresh] = rows.try_emplace({op.layer, op.rank});
      LayerRankRow& row = it->second;
      if (fresh) {
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
      out.events.push_back(std::move(ev));
    }
  }
  double exposed = 0, compute = 0, communication = 0;
  for (int r = 0; r < R; ++r) {
    exposed += exposed_length(std::move(comm[r]), std::move(comp[r]));
    compute += comp_sum[r];
    communication += comm_sum[r];
  }
  out.step_time_s = trace.makespan_s;
  out.per_layer_mean_s = layers > 0 ? trace.makespan_s / layers : 0.0;
  out.compute_s = compute / R;
  out.comm_s = communication / R;
  out.exposed_comm_s = exposed / R;
  out.overlap_ratio = out.comm_s > 0 ? 1.0 - out.exposed_comm_s / out.comm_s : 0.0;
  for (auto& [k, v] : by_class) v /= R;
  out.time_by_class_s = std::move(by_class);
  out.ops_by_provenance = std::move(by_prov);
  out.ops = graph.ops().size();
  out.simgrid_activities = trace.simgrid_activities;
  out.rows.clear();
  for (auto& [k, row] : rows) out.rows.push_back(row);
}

}  // namespace moesim
