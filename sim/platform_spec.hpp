// The lowered form of a cluster: what the engine needs to build a SimGrid platform, and nothing more.
// topologies/ produces it from the Boost.Graph cluster; sim/engine consumes it. Neither side sees the
// other's library (BGL stays in topologies/, SimGrid stays in sim/engine).
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace moesim {

struct PlatformLink {
  std::string name;      // unique, e.g. "n0.gpu3-nvswitch"
  std::string kind;      // "nvlink", "pcie", "nic", "ethernet", "infiniband", "inter_socket", ...
  double bandwidth_Bps;  // per direction, bytes/s (> 0)
  double latency_s;      // >= 0. Built-in families put latency only on GPU-attached links (DESIGN rule 2)
  bool full_duplex;      // true: each direction has bandwidth_Bps of its own (SimGrid SPLITDUPLEX)
};

// One hop of a route: a link and the direction it is traversed in. For a full-duplex link between graph
// vertices a and b (a < b as listed when the link was created), `forward` means a -> b.
// Packed in 4 bytes: a 4,096-GPU cluster lowers about 80 M of them (16.8 M routes of ~5 hops).
struct LinkUse {
  uint32_t link : 31;
  uint32_t forward : 1;
};
static_assert(sizeof(LinkUse) == 4);

struct PlatformSpec {
  std::vector<std::string> gpu_names;  // one SimGrid host per GPU; index = global GPU id
  std::vector<int> gpu_node;           // node (server) index of each GPU
  std::vector<PlatformLink> links;
  // The routes among the routed GPUs (all of them, or those route_slot names) in CSR form: the route of
  // routed pair (a, b) is route_links[route_off[a * routed + b] .. route_off[a * routed + b + 1]) (empty
  // when a == b). One flat array, not one vector per pair: 4,096 GPUs have 16.8 M routes, ~1.5 GB as
  // vectors, ~0.4 GB here. When route_slot is not empty, routes were built only among some GPUs
  // (Cluster::lower(used)): route_slot[gpu] is the GPU's row/column among them (-1: none).
  std::vector<uint32_t> route_off;  // routed * routed + 1 entries
  std::vector<LinkUse> route_links;
  std::vector<int> route_slot;
  std::size_t routed = 0;

  std::size_t gpu_count() const { return gpu_names.size(); }
  std::span<const LinkUse> route(std::size_t src, std::size_t dst) const {
    std::size_t a = src, b = dst;
    if (!route_slot.empty()) {
      const int x = route_slot[src], y = route_slot[dst];
      if (x < 0 || y < 0) return {};
      a = static_cast<std::size_t>(x);
      b = static_cast<std::size_t>(y);
    }
    const std::size_t p = a * routed + b;
    return {route_links.data() + route_off[p], route_links.data() + route_off[p + 1]};
  }
  // Hand-built platforms (tests, small builders): lists[s * n + d] is the route from GPU s to GPU d for all n
  // GPUs (n * n entries, the diagonal empty); packs them into the CSR form above.
  void set_routes(const std::vector<std::vector<LinkUse>>& lists) {
    std::size_t n = 0;
    while (n * n < lists.size()) ++n;
    if (n * n != lists.size()) throw std::invalid_argument("set_routes: not n * n routes");
    begin_routes(n);
    for (const auto& r : lists) {
      route_links.insert(route_links.end(), r.begin(), r.end());
      end_route();
    }
  }
  // Builders append routes pair by pair in row-major order: begin_routes, then per pair push its hops to
  // route_links and call end_route.
  void begin_routes(std::size_t routed_gpus) {
    routed = routed_gpus;
    route_off.assign(1, 0);
    route_off.reserve(routed * routed + 1);
    route_links.clear();
  }
  void end_route() {
    if (route_links.size() > UINT32_MAX) throw std::length_error("platform: more than 4 G route hops");
    route_off.push_back(static_cast<uint32_t>(route_links.size()));
  }
};

}  // namespace moesim
