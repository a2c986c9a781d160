#include "topologies/cluster.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "topologies/cluster_graph.hpp"

namespace moesim::topo {

namespace {
const std::vector<std::string> kVertexKinds{"gpu", "nic", "switch", "nvswitch", "pcie_switch", "cpu"};
const std::vector<std::string> kLinkKinds{"nvlink", "pcie", "inter_socket", "nic",
                                          "ethernet", "infiniband", "fabric"};
}  // namespace

std::string_view to_string(VertexKind k) { return kVertexKinds[static_cast<std::size_t>(k)]; }

std::optional<VertexKind> vertex_kind_from(std::string_view name) {
  for (std::size_t i = 0; i < kVertexKinds.size(); ++i)
    if (kVertexKinds[i] == name) return static_cast<VertexKind>(i);
  return std::nullopt;
}

const std::vector<std::string>& vertex_kind_names() { return kVertexKinds; }
const std::vector<std::string>& link_kind_names() { return kLinkKinds; }

Cluster::Cluster() : g_(std::make_unique<Graph>()) {}
Cluster::~Cluster() = default;
Cluster::Cluster(const Cluster& o)
    : name(o.name), family(o.family), description(o.description), default_gpu_profile(o.default_gpu_profile),
      identical_nodes_nonblocking(o.identical_nodes_nonblocking), gpus_per_node(o.gpus_per_node), g_(std::make_unique<Graph>()), gpus_(o.gpus_) {
  // Rebuild rather than copy so that the edge descriptors in g_->edges point into our own graph.
  for (std::size_t v = 0; v < o.vertex_count(); ++v) boost::add_vertex(o.vertex(v), g_->g);
  g_->by_name = o.g_->by_name;
  g_->link_names = o.g_->link_names;
  for (std::size_t l = 0; l < o.link_count(); ++l) {
    const LinkInfo& li = o.link(l);
    g_->edges.push_back(boost::add_edge(li.a, li.b, li, g_->g).first);
  }
}
Cluster& Cluster::operator=(const Cluster& o) {
  if (this != &o) *this = Cluster(o);
  return *this;
}
Cluster::Cluster(Cluster&&) noexcept = default;
Cluster& Cluster::operator=(Cluster&&) noexcept = default;

Cluster::Vertex Cluster::add_vertex(VertexKind kind, std::string vname, int node) {
  if (g_->by_name.count(vname)) throw std::logic_error("duplicate vertex name '" + vname + "'");
  const Vertex v = boost::add_vertex(VertexInfo{kind, vname, node, -1}, g_->g);
  g_->by_name.emplace(std::move(vname), v);
  if (kind == VertexKind::gpu) {
    // Insert after every GPU of the same or a lower node: node-major, stable within a node.
    auto pos = std::upper_bound(gpus_.begin(), gpus_.end(), node,
                                [&](int n, Vertex u) { return n < g_->g[u].node; });
    pos = gpus_.insert(pos, v);
    for (auto it = pos; it != gpus_.end(); ++it) g_->g[*it].gpu = static_cast<int>(it - gpus_.begin());
  }
  return v;
}

std::size_t Cluster::add_link(Vertex a, Vertex b, std::string kind, double bandwidth_Bps, double latency_s,
                              bool full_duplex) {
  if (a >= vertex_count() || b >= vertex_count() || a == b) throw std::logic_error("bad link end points");
  std::string base = g_->g[a].name + "-" + g_->g[b].name;
  std::string lname = base;
  // Parallel links (explicit topologies) get "#2", "#3", ... so that every link name is unique.
  for (int k = 2; g_->link_names.count(lname); ++k) lname = base + "#" + std::to_string(k);
  g_->link_names.insert(lname);
  LinkInfo li{lname, std::move(kind), bandwidth_Bps, latency_s, full_duplex, a, b, g_->edges.size()};
  g_->edges.push_back(boost::add_edge(a, b, std::move(li), g_->g).first);
  return g_->edges.size() - 1;
}

std::size_t Cluster::node_count() const {
  int mx = -1;
  for (std::size_t v = 0; v < vertex_count(); ++v) mx = std::max(mx, g_->g[v].node);
  return static_cast<std::size_t>(mx + 1);
}
std::size_t Cluster::vertex_count() const { return boost::num_vertices(g_->g); }
std::size_t Cluster::link_count() const { return g_->edges.size(); }
const VertexInfo& Cluster::vertex(Vertex v) const { return g_->g[v]; }
const LinkInfo& Cluster::link(std::size_t id) const { return g_->g[g_->edges.at(id)]; }

std::optional<Cluster::Vertex> Cluster::find_vertex(std::string_view vname) const {
  auto it = g_->by_name.find(std::string(vname));
  if (it == g_->by_name.end()) return std::nullopt;
  return it->second;
}

namespace {

// BFS state reused across sources. parent_link[v] = link id used to reach v, or npos.
struct Bfs {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  std::vector<int> dist;
  std::vector<std::size_t> parent_link;
  std::vector<std::size_t> queue;

  // Shortest hop paths from src; GPUs other than src are reached but never expanded (no GPU transit).
  void run(const Cluster::Graph& cg, std::size_t src) {
    const auto& g = cg.g;
    const std::size_t n = boost::num_vertices(g);
    dist.assign(n, -1);
    parent_link.assign(n, npos);
    queue.clear();
    dist[src] = 0;
    queue.push_back(src);
    for (std::size_t qi = 0; qi < queue.size(); ++qi) {
      const std::size_t u = queue[qi];
      if (u != src && g[u].kind == VertexKind::gpu) continue;
      for (auto [it, end] = boost::out_edges(u, g); it != end; ++it) {
        const std::size_t w = boost::target(*it, g);
        if (dist[w] >= 0) continue;
        dist[w] = dist[u] + 1;
        parent_link[w] = g[*it].id;
        queue.push_back(w);
      }
    }
  }
};

}  // namespace

PlatformSpec Cluster::lower() const { return lower_impl(nullptr); }

PlatformSpec Cluster::lower(const std::vector<int>& used) const { return lower_impl(&used); }

PlatformSpec Cluster::lower_impl(const std::vector<int>* used) const {
  PlatformSpec ps;
  const std::size_t n = gpus_.size();
  ps.gpu_names.reserve(n);
  ps.gpu_node.reserve(n);
  for (Vertex v : gpus_) {
    ps.gpu_names.push_back(g_->g[v].name);
    ps.gpu_node.push_back(g_->g[v].node);
  }
  ps.links.reserve(link_count());
  for (std::size_t l = 0; l < link_count(); ++l) {
    const LinkInfo& li = link(l);
    ps.links.push_back({li.name, li.kind, li.bandwidth_Bps, li.latency_s, li.full_duplex});
  }
  // The GPUs routed: all, or the used ones in the order given (route_slot maps GPU id -> position).
  std::vector<std::size_t> routed;
  if (used) {
    ps.route_slot.assign(n, -1);
    for (int g : *used) {
      if (g < 0 || static_cast<std::size_t>(g) >= n || ps.route_slot[static_cast<std::size_t>(g)] >= 0) continue;
      ps.route_slot[static_cast<std::size_t>(g)] = static_cast<int>(routed.size());
      routed.push_back(static_cast<std::size_t>(g));
    }
  } else {
    for (std::size_t g = 0; g < n; ++g) routed.push_back(g);
  }
  const std::size_t m = routed.size();
  ps.begin_routes(m);
  Bfs bfs;
  std::vector<LinkUse> rev;
  for (std::size_t si = 0; si < m; ++si) {
    const std::size_t s = routed[si];
    bfs.run(*g_, gpus_[s]);
    // Grow the hop array from what the rows so far need per row (BFS distances are the hop counts), so it is
    // allocated about once: doubling growth of ~80 M hops at 4,096 GPUs cost more than the BFS itself.
    std::size_t row_hops = 0;
    for (std::size_t di = 0; di < m; ++di)
      if (routed[di] != s && bfs.dist[gpus_[routed[di]]] > 0) row_hops += static_cast<std::size_t>(bfs.dist[gpus_[routed[di]]]);
    const std::size_t need = ps.route_links.size() + row_hops;
    if (need > ps.route_links.capacity())
      ps.route_links.reserve(std::max(need, need / (si + 1) * m + need / (si + 1) * m / 50));
    for (std::size_t di = 0; di < m; ++di) {
      const std::size_t d = routed[di];
      std::size_t v = gpus_[d];
      // Unreachable (the decoder reports it) or the diagonal: the route stays empty.
      if (d != s && bfs.dist[v] >= 0) {
        rev.clear();
        while (v != gpus_[s]) {
          const LinkInfo& li = link(bfs.parent_link[v]);
          const std::size_t prev = li.a == v ? li.b : li.a;
          rev.push_back({static_cast<uint32_t>(bfs.parent_link[v]), prev == li.a});
          v = prev;
        }
        ps.route_links.insert(ps.route_links.end(), rev.rbegin(), rev.rend());
      }
      ps.end_route();
    }
  }
  return ps;
}

std::optional<std::pair<std::size_t, std::size_t>> Cluster::first_unreachable_pair() const {
  // Linear fast path: a GPU never forwards, so two GPUs have a route when both touch one connected component
  // of the non-GPU vertices. When one component touches every GPU (every built-in family), all pairs do.
  const BglGraph& g = g_->g;
  const std::size_t nv = boost::num_vertices(g), n = gpus_.size();
  std::vector<std::size_t> parent(nv);
  for (std::size_t v = 0; v < nv; ++v) parent[v] = v;
  auto find = [&](std::size_t v) {
    while (parent[v] != v) v = parent[v] = parent[parent[v]];
    return v;
  };
  for (const auto& e : g_->edges) {
    const std::size_t a = boost::source(e, g), b = boost::target(e, g);
    if (g[a].kind != VertexKind::gpu && g[b].kind != VertexKind::gpu) parent[find(a)] = find(b);
  }
  std::vector<std::size_t> touched(nv, 0), last(nv, static_cast<std::size_t>(-1));
  for (std::size_t s = 0; s < n; ++s)
    for (auto [it, end] = boost::out_edges(gpus_[s], g); it != end; ++it) {
      const std::size_t w = boost::target(*it, g);
      if (g[w].kind == VertexKind::gpu) continue;
      const std::size_t r = find(w);
      if (last[r] != s) last[r] = s, ++touched[r];
    }
  if (n <= 1 || std::find(touched.begin(), touched.end(), n) != touched.end()) return std::nullopt;
  // Otherwise (an explicit topology with several islands), the first pair in (source, destination) order.
  Bfs bfs;
  for (std::size_t s = 0; s < gpus_.size(); ++s) {
    bfs.run(*g_, gpus_[s]);
    for (std::size_t d = 0; d < gpus_.size(); ++d)
      if (d != s && bfs.dist[gpus_[d]] < 0) return std::make_pair(s, d);
  }
  return std::nullopt;
}

}  // namespace moesim::topo
