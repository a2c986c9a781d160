// Family `pcie_node`: one server without NVLink; GPUs talk over PCIe switches and the CPU sockets.
//
//                n0.cpu0 ====== inter_socket ====== n0.cpu1
//               /       \                          /       \          pcie (uplink_bandwidth)
//        n0.pcie0      n0.pcie1             n0.pcie2      n0.pcie3
//         /    \        /    \               /    \        /    \      pcie (pcie_bandwidth, pcie_latency)
//     gpu0    gpu1  gpu2    gpu3          gpu4    gpu5  gpu6    gpu7   (8 GPUs, gpus_per_switch 2, 2 sockets)
//
// Switches are split evenly over the sockets, in order: switch k is under socket k / (switches / sockets),
// GPU i is under switch i / gpus_per_switch. The graph is a tree, so every pair has one path:
// same switch 2 hops, same socket 4 hops, across sockets 5 hops.
// Latency sits only on the GPU-switch links (DESIGN rule 2: every route then has 2 * pcie_latency, so flows
// that share the uplinks or the inter-socket link have equal route latency and share bandwidth fairly in
// CM02). For that reason the inter-socket link has a bandwidth but no latency key.
//
// Keys (besides family/name/description/gpu at top level):
//   gpus                    integer >= 1, required
//   gpus_per_switch         integer >= 1, required; must divide gpus, and gpus / gpus_per_switch must be a
//                           multiple of sockets
//   sockets                 integer 1 or 2, default 2
//   pcie_bandwidth          bandwidth per direction of each GPU-switch link, required
//   pcie_latency            duration on each GPU-switch link, default 0s, >= 0
//   uplink_bandwidth        bandwidth per direction of each switch-CPU link, default = pcie_bandwidth
//   inter_socket_bandwidth  bandwidth per direction of the socket-socket link, required when sockets = 2
#include <fmt/format.h>

#include "sim/limits.hpp"
#include "topologies/builders/builders.hpp"

namespace moesim::topo {

PcieNodeParams decode_pcie_node(const YamlView& v, const std::vector<std::string>& other_keys) {
  v.check_keys(with_keys(other_keys, {"gpus", "gpus_per_switch", "sockets", "pcie_bandwidth", "pcie_latency",
                                      "uplink_bandwidth", "inter_socket_bandwidth"}));
  PcieNodeParams p;
  const std::size_t before = v.diagnostic_count();
  p.gpus = static_cast<int>(v.integer("gpus", Range::between(1, limits::kMaxGpusPerNode)));
  p.gpus_per_switch = static_cast<int>(v.integer("gpus_per_switch", Range::between(1, limits::kMaxGpusPerNode)));
  p.sockets = static_cast<int>(v.integer_or("sockets", 2, Range::between(1, 2)));
  p.pcie_bandwidth_Bps = v.quantity("pcie_bandwidth", Dim::bandwidth);
  p.pcie_latency_s = v.quantity_or("pcie_latency", Dim::seconds, 0.0, Range::non_negative());
  p.uplink_bandwidth_Bps = v.quantity_or("uplink_bandwidth", Dim::bandwidth, p.pcie_bandwidth_Bps);
  if (p.sockets == 2)
    p.inter_socket_bandwidth_Bps = v.quantity("inter_socket_bandwidth", Dim::bandwidth);
  else if (v.has("inter_socket_bandwidth"))
    v.error_at("inter_socket_bandwidth", "only allowed with sockets: 2");
  if (v.diagnostic_count() != before) return p;  // the counts below divide by values that failed their rule
  if (v.has("gpus") && v.has("gpus_per_switch") && p.gpus % p.gpus_per_switch != 0)
    v.error_at("gpus_per_switch", fmt::format("must divide gpus ({})", p.gpus));
  else if (v.has("gpus_per_switch") && (p.gpus / p.gpus_per_switch) % p.sockets != 0)
    v.error_at("gpus_per_switch",
               fmt::format("must give a number of PCIe switches (gpus / gpus_per_switch = {}) that is a multiple "
                           "of sockets ({})",
                           p.gpus / p.gpus_per_switch, p.sockets));
  return p;
}

std::vector<Cluster::Vertex> build_pcie_node(Cluster& c, const PcieNodeParams& p, int node) {
  std::vector<Cluster::Vertex> gpus, switches, cpus;
  for (int i = 0; i < p.gpus; ++i) gpus.push_back(c.add_vertex(VertexKind::gpu, fmt::format("n{}.gpu{}", node, i), node));
  const int n_switches = p.gpus / p.gpus_per_switch;
  for (int k = 0; k < n_switches; ++k)
    switches.push_back(c.add_vertex(VertexKind::pcie_switch, fmt::format("n{}.pcie{}", node, k), node));
  for (int s = 0; s < p.sockets; ++s) cpus.push_back(c.add_vertex(VertexKind::cpu, fmt::format("n{}.cpu{}", node, s), node));
  for (int i = 0; i < p.gpus; ++i)
    c.add_link(gpus[i], switches[i / p.gpus_per_switch], "pcie", p.pcie_bandwidth_Bps, p.pcie_latency_s);
  const int per_socket = n_switches / p.sockets;
  for (int k = 0; k < n_switches; ++k) c.add_link(switches[k], cpus[k / per_socket], "pcie", p.uplink_bandwidth_Bps, 0.0);
  if (p.sockets == 2) c.add_link(cpus[0], cpus[1], "inter_socket", p.inter_socket_bandwidth_Bps, 0.0);
  return gpus;
}

}  // namespace moesim::topo
