#include "topologies/analysis.hpp"

// GCC's middle end reports a false "may be used uninitialized" inside Boost.Graph's edge iterator when the
// max-flow template is inlined; it is not in our code, so silence it for this file only. Including Boost as a
// system header does not help: GCC 12 emits middle-end warnings at the inlining site, in this file. Clang has
// no such warning (and would reject the unknown group under -Werror).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/boykov_kolmogorov_max_flow.hpp>
#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <map>

#include "sim/units.hpp"

namespace moesim::topo {

std::vector<KindTotal> links_by_kind(const Cluster& c) {
  std::map<std::string, KindTotal> m;
  for (std::size_t l = 0; l < c.link_count(); ++l) {
    const LinkInfo& li = c.link(l);
    KindTotal& t = m[li.kind];
    t.kind = li.kind;
    ++t.links;
    t.total_bandwidth_Bps += li.bandwidth_Bps;
  }
  std::vector<KindTotal> out;
  for (auto& [k, t] : m) out.push_back(t);
  return out;
}

double bisection_bandwidth(const Cluster& c) {
  const std::size_t n = c.gpu_count();
  if (n < 2) return 0.0;
  using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
  using FlowGraph = boost::adjacency_list<
      boost::vecS, boost::vecS, boost::directedS,
      boost::property<boost::vertex_index_t, long,
                      boost::property<boost::vertex_color_t, boost::default_color_type,
                                      boost::property<boost::vertex_distance_t, long,
                                                      boost::property<boost::vertex_predecessor_t,
                                                                      Traits::edge_descriptor>>>>,
      boost::property<boost::edge_capacity_t, int64_t,
                      boost::property<boost::edge_residual_capacity_t, int64_t,
                                      boost::property<boost::edge_reverse_t, Traits::edge_descriptor>>>>;
  // Capacities in whole bytes/s as integers, so that the max flow is exact.
  const std::size_t nv = c.vertex_count();
  FlowGraph fg(nv + 2);
  const std::size_t src = nv, sink = nv + 1;
  auto cap = boost::get(boost::edge_capacity, fg);
  auto rev = boost::get(boost::edge_reverse, fg);
  auto add_arc_pair = [&](std::size_t u, std::size_t v, int64_t c_uv, int64_t c_vu) {
    auto e1 = boost::add_edge(u, v, fg).first;
    auto e2 = boost::add_edge(v, u, fg).first;
    cap[e1] = c_uv;
    cap[e2] = c_vu;
    rev[e1] = e2;
    rev[e2] = e1;
  };
  int64_t total = 1;
  for (std::size_t l = 0; l < c.link_count(); ++l) {
    const LinkInfo& li = c.link(l);
    const auto bw = static_cast<int64_t>(std::llround(li.bandwidth_Bps));
    total += bw;
    add_arc_pair(li.a, li.b, bw, bw);
  }
  // Terminals: more than every link together, so they are never in the min cut.
  for (std::size_t g = 0; g < n; ++g) {
    if (g < n / 2) add_arc_pair(src, c.gpu_vertex(g), total, 0);
    else add_arc_pair(c.gpu_vertex(g), sink, total, 0);
  }
  return static_cast<double>(boost::boykov_kolmogorov_max_flow(fg, src, sink));
}

Diameter diameter(const PlatformSpec& p) {
  Diameter d;
  const std::size_t n = p.gpu_count();
  bool first = true;
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t t = 0; t < n; ++t) {
      if (s == t) continue;
      const auto r = p.route(s, t);
      double lat = 0;
      for (const LinkUse& u : r) lat += p.links[u.link].latency_s;
      if (r.size() > d.hops) {
        d.hops = r.size();
        d.hops_src = s;
        d.hops_dst = t;
      }
      if (first || lat > d.latency_s) {
        d.latency_s = lat;
        d.latency_src = s;
        d.latency_dst = t;
      }
      if (first || lat < d.min_latency_s) d.min_latency_s = lat;
      first = false;
    }
  return d;
}

double AllToAllBottleneck::time_lower_bound_s(double bytes_per_gpu) const {
  if (gpus == 0 || bandwidth_Bps <= 0) return 0.0;
  return static_cast<double>(pair_flows) * (bytes_per_gpu / static_cast<double>(gpus)) / bandwidth_Bps;
}

double AllToAllBottleneck::busbw_upper_bound_Bps() const {
  // S cancels: busbw = S / t * (N-1)/N with t = flows * S/N / bw.
  if (pair_flows == 0) return 0.0;
  const double nn = static_cast<double>(gpus);
  return bandwidth_Bps * nn / static_cast<double>(pair_flows) * (nn - 1) / nn;
}

AllToAllBottleneck all_to_all_bottleneck(const PlatformSpec& p) {
  const std::size_t n = p.gpu_count();
  std::vector<std::size_t> load(2 * p.links.size(), 0);  // [2 * link + (forward ? 0 : 1)]
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t t = 0; t < n; ++t)
      for (const LinkUse& u : p.route(s, t)) ++load[2 * u.link + (u.forward ? 0 : 1)];
  AllToAllBottleneck b;
  b.gpus = n;
  double worst = -1;  // flows per byte/s; the first maximum (lowest link id, forward first) wins
  for (std::size_t l = 0; l < p.links.size(); ++l) {
    const PlatformLink& pl = p.links[l];
    for (int dir = 0; dir < 2; ++dir) {
      const std::size_t flows = pl.full_duplex ? load[2 * l + dir] : load[2 * l] + load[2 * l + 1];
      const double ratio = static_cast<double>(flows) / pl.bandwidth_Bps;
      if (ratio > worst * (1 + 1e-12)) {
        worst = ratio;
        b.link = l;
        b.forward = dir == 0;
        b.link_name = pl.name;
        b.pair_flows = flows;
        b.bandwidth_Bps = pl.bandwidth_Bps;
      }
    }
  }
  return b;
}

std::string describe(const Cluster& c, double bytes_per_gpu) {
  // The diameter and the all-to-all bottleneck need every GPU pair's route (n^2 of them: 4,096 GPUs took
  // 1 GB), so they are computed only up to kMaxPairAnalysisGpus GPUs.
  constexpr std::size_t kMaxPairAnalysisGpus = 1024;
  const bool pairs = c.gpu_count() <= kMaxPairAnalysisGpus;
  const PlatformSpec p = pairs ? c.lower() : PlatformSpec{};
  std::string s;
  s += fmt::format("cluster: {} (family {})\n", c.name.empty() ? "(unnamed)" : c.name, c.family);
  if (!c.description.empty()) s += fmt::format("  {}\n", c.description);
  s += fmt::format("GPU profile: {}\n", c.default_gpu_profile.empty() ? "(none)" : c.default_gpu_profile);
  std::map<std::string, int> kinds;
  for (std::size_t v = 0; v < c.vertex_count(); ++v) ++kinds[std::string(to_string(c.vertex(v).kind))];
  s += fmt::format("nodes: {}   GPUs: {}   vertices: {} (", c.node_count(), c.gpu_count(), c.vertex_count());
  bool first = true;
  for (auto& [k, cnt] : kinds) {
    s += fmt::format("{}{} {}", first ? "" : ", ", cnt, k);
    first = false;
  }
  s += fmt::format(")   links: {}\n", c.link_count());
  s += "links by kind (bandwidth per direction):\n";
  for (const KindTotal& t : links_by_kind(c))
    s += fmt::format("  {:<13} {:>5} links   total {}\n", t.kind, t.links, format_bandwidth(t.total_bandwidth_Bps));
  const std::size_t n = c.gpu_count();
  if (n >= 2) {
    s += fmt::format(
        "bisection bandwidth: {} (min cut between GPUs 0..{} and {}..{} by id; each full-duplex link counted in "
        "one direction)\n",
        format_bandwidth(bisection_bandwidth(c)), n / 2 - 1, n / 2, n - 1);
    if (!pairs) {
      s += fmt::format("diameter and all-to-all bottleneck: not computed ({} GPUs; they need every pair's route, "
                       "computed up to {} GPUs)\n", n, kMaxPairAnalysisGpus);
      return s;
    }
    const Diameter d = diameter(p);
    s += fmt::format("diameter: {} hops ({} -> {}); route latency max {} ({} -> {}), min {}\n", d.hops,
                     p.gpu_names[d.hops_src], p.gpu_names[d.hops_dst], format_seconds(d.latency_s),
                     p.gpu_names[d.latency_src], p.gpu_names[d.latency_dst], format_seconds(d.min_latency_s));
    const AllToAllBottleneck b = all_to_all_bottleneck(p);
    const LinkInfo& li = c.link(b.link);
    s += fmt::format(
        "uniform all-to-all bottleneck: {} ({}), {} of {} pair flows at {}\n"
        "  for {} per GPU: time >= {}, busbw <= {} (busbw = S/t * (N-1)/N)\n",
        b.link_name,
        li.full_duplex ? fmt::format("direction {} -> {}", c.vertex(b.forward ? li.a : li.b).name,
                                     c.vertex(b.forward ? li.b : li.a).name)
                       : std::string("half duplex"),
        b.pair_flows, n * (n - 1), format_bandwidth(b.bandwidth_Bps), format_bytes(bytes_per_gpu),
        format_seconds(b.time_lower_bound_s(bytes_per_gpu)), format_bandwidth(b.busbw_upper_bound_Bps()));
  }
  return s;
}

}  // namespace moesim::topo
