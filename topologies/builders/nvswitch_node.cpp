// Family `nvswitch_node`: one server whose GPUs all hang off one non-blocking NVSwitch.
//
//        n0.gpu0   n0.gpu1   ...   n0.gpu{G-1}
//           |         |               |          nvlink: nvlink_bandwidth per direction, nvlink_latency
//           +---------+---- n0.nvswitch ----+
//
// The NVSwitch vertex has no capacity (vertices never do), so the only limit is each GPU's own link:
// a uniform all-to-all of S bytes per GPU sends S(G-1)/G over each uplink, and nccl-tests' busbw
// (algbw (G-1)/G) equals nvlink_bandwidth. Latency sits on the GPU links only (DESIGN rule 2): every route is
// two hops, 2 * nvlink_latency.
//
// Keys (besides family/name/description/gpu at top level):
//   gpus              integer >= 1, required
//   nvlink_bandwidth  bandwidth per direction per GPU ("370GB/s"), required, > 0
//   nvlink_latency    duration ("0.5us"), default 0s, >= 0
#include <fmt/format.h>

#include "sim/limits.hpp"
#include "topologies/builders/builders.hpp"

namespace moesim::topo {

NvswitchNodeParams decode_nvswitch_node(const YamlView& v, const std::vector<std::string>& other_keys) {
  v.check_keys(with_keys(other_keys, {"gpus", "nvlink_bandwidth", "nvlink_latency"}));
  NvswitchNodeParams p;
  p.gpus = static_cast<int>(v.integer("gpus", Range::between(1, limits::kMaxGpusPerNode)));
  p.nvlink_bandwidth_Bps = v.quantity("nvlink_bandwidth", Dim::bandwidth);
  p.nvlink_latency_s = v.quantity_or("nvlink_latency", Dim::seconds, 0.0, Range::non_negative());
  return p;
}

std::vector<Cluster::Vertex> build_nvswitch_node(Cluster& c, const NvswitchNodeParams& p, int node) {
  std::vector<Cluster::Vertex> gpus;
  for (int i = 0; i < p.gpus; ++i) gpus.push_back(c.add_vertex(VertexKind::gpu, fmt::format("n{}.gpu{}", node, i), node));
  const auto sw = c.add_vertex(VertexKind::nvswitch, fmt::format("n{}.nvswitch", node), node);
  for (auto g : gpus) c.add_link(g, sw, "nvlink", p.nvlink_bandwidth_Bps, p.nvlink_latency_s);
  return gpus;
}

}  // namespace moesim::topo
