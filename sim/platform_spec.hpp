// The lowered form of a cluster: what the engine needs to build a SimGrid platform, and nothing more.
// topologies/ produces it from the Boost.Graph cluster; sim/engine consumes it. Neither side sees the
// other's library (BGL stays in topologies/, SimGrid stays in sim/engine).
#pragma once

#include <cstdint>
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
struct LinkUse {
  uint32_t link;
  bool forward;
};

struct PlatformSpec {
  std::vector<std::string> gpu_names;  // one SimGrid host per GPU; index = global GPU id
  std::vector<int> gpu_node;           // node (server) index of each GPU
  std::vector<PlatformLink> links;
  // routes[src * gpu_count + dst]: the links of the single route from src to dst (empty when src == dst).
  // When route_slot is not empty, routes were built only among some GPUs (Cluster::lower(used)):
  // route_slot[gpu] is the GPU's row/column among them (-1: none) and routes has routed^2 entries.
  std::vector<std::vector<LinkUse>> routes;
  std::vector<int> route_slot;
  std::size_t routed = 0;

  std::size_t gpu_count() const { return gpu_names.size(); }
  const std::vector<LinkUse>& route(std::size_t src, std::size_t dst) const {
    if (route_slot.empty()) return routes[src * gpu_names.size() + dst];
    static const std::vector<LinkUse> none;
    const int a = route_slot[src], b = route_slot[dst];
    if (a < 0 || b < 0) return none;
    return routes[static_cast<std::size_t>(a) * routed + static_cast<std::size_t>(b)];
  }
};

}  // namespace moesim
