// Family `multi_node`: `nodes` identical servers (each an nvswitch_node or pcie_node) joined by NICs and a
// fabric. Intra-node traffic stays on the server's NVSwitch/PCIe; inter-node traffic goes
// GPU -> NIC (a per-GPU PCIe link, kind "nic") -> fabric -> NIC -> GPU. A GPU never forwards traffic.
//
//   server n:  n.gpu0 .. n.gpu{G-1}  (+ NVSwitch or PCIe tree, see those families)
//                |          |
//              n.nic0 ... n.nic{K-1}       K = nics_per_node; GPU i uses NIC i / (G / K)
//                |          |
//   fabric: single_switch     every NIC -> fabric_switch
//
//           fat_tree          NICs (numbered node-major) in blocks of nics_per_leaf -> leaf0, leaf1, ...
//                             leaf_j == one uplink ==> spine     (only when there are 2+ leaves)
//
//           rail_optimized    NIC k of every node -> rail{k}
//                             rail_k == one uplink ==> spine     (only when K >= 2)
//
// Why one aggregate spine vertex: real spines have many switches and spread flows over them (ECMP, adaptive
// routing). Moesim routes each GPU pair over a single path (DESIGN rule 6), so modelling spine switches one by
// one would pin flows to arbitrary uplinks and invent collisions the hardware avoids. Instead each leaf (or
// rail) switch gets one uplink whose bandwidth is the sum of its NICs' bandwidth divided by oversubscription,
// to one non-blocking spine vertex: the spine limits exactly as much as its oversubscription says, no more.
//
// Latency sits only on the GPU-attached links (GPU-NIC here, NVLink/PCIe inside the server): NIC-switch and
// switch-spine links have none, so every inter-node route has 2 * nic_latency and flows that share fabric
// links have equal route latency (DESIGN rule 2).
//
// Keys (besides family/name/description/gpu):
//   nodes               integer >= 1, required
//   node                mapping, required: `family: nvswitch_node | pcie_node` plus that family's keys
//   nics_per_node       integer >= 1, default = GPUs per node; must divide GPUs per node
//   nic_bandwidth       bandwidth per direction of each NIC's fabric link, required
//   nic_link_bandwidth  bandwidth per direction of each GPU-NIC (PCIe) link, default = nic_bandwidth
//   nic_latency         duration on each GPU-NIC link, default 0s, >= 0
//   fabric              a type name, or a mapping:
//     type              single_switch | fat_tree | rail_optimized, required
//     link_kind         infiniband | ethernet (kind of NIC-switch links), default infiniband
//     nics_per_leaf     fat_tree only: integer >= 1, required
//     oversubscription  fat_tree and rail_optimized only: number >= 1, default 1
#include <algorithm>
#include <fmt/format.h>

#include "sim/limits.hpp"
#include "topologies/builders/builders.hpp"

namespace moesim::topo {

namespace {

struct FabricParams {
  std::string type = "single_switch";
  std::string link_kind = "infiniband";
  int nics_per_leaf = 1;
  double oversubscription = 1.0;
};

const std::vector<std::string> kFabricTypes{"single_switch", "fat_tree", "rail_optimized"};

FabricParams decode_fabric(const YamlView& v) {
  FabricParams f;
  if (!v.defined()) return f;  // the caller reported the missing key
  if (v.is_scalar()) {
    f.type = v.as_choice(kFabricTypes);
    if (f.type == "fat_tree")
      v.error("fat_tree needs nics_per_leaf: write fabric as a mapping {type: fat_tree, nics_per_leaf: N}",
              v.shown());
    return f;
  }
  if (!v.expect_map()) return f;
  f.type = v.choice("type", kFabricTypes);
  std::vector<std::string> keys{"type", "link_kind"};
  if (f.type == "fat_tree") keys.insert(keys.end(), {"nics_per_leaf", "oversubscription"});
  if (f.type == "rail_optimized") keys.push_back("oversubscription");
  v.check_keys(keys);
  f.link_kind = v.choice_or("link_kind", {"infiniband", "ethernet"}, "infiniband");
  if (f.type == "fat_tree") f.nics_per_leaf = static_cast<int>(v.integer("nics_per_leaf", Range::between(1, limits::kMaxNicsPerLeaf)));
  if (f.type != "single_switch") f.oversubscription = v.number_or("oversubscription", 1.0, Range::at_least(1.0));
  return f;
}

}  // namespace

void decode_build_multi_node(const YamlView& v, Cluster& c) {
  const std::size_t before = v.diagnostic_count();
  v.check_keys(with_keys(kCommonKeys, {"nodes", "node", "nics_per_node", "nic_bandwidth", "nic_link_bandwidth",
                                       "nic_latency", "fabric"}));
  const int nodes = static_cast<int>(v.integer("nodes", Range::between(1, limits::kMaxNodes)));

  // The server: one of the single-node families, decoded once and built `nodes` times.
  std::string node_family;
  NvswitchNodeParams nv;
  PcieNodeParams pc;
  int gpus_per_node = 1;
  if (v.require("node")) {
    const YamlView nodev = v.at("node");
    if (nodev.expect_map()) {
      const std::size_t at_family = v.diagnostic_count();
      node_family = nodev.choice("family", {"nvswitch_node", "pcie_node"});
      if (v.diagnostic_count() != at_family) {
        // The server's other keys cannot be checked without knowing its family.
      } else if (node_family == "nvswitch_node") {
        nv = decode_nvswitch_node(nodev, {"family"});
        gpus_per_node = nv.gpus;
      } else {
        pc = decode_pcie_node(nodev, {"family"});
        gpus_per_node = pc.gpus;
      }
    }
  }
  const int nics_per_node = static_cast<int>(v.integer_or("nics_per_node", gpus_per_node, Range::between(1, limits::kMaxGpusPerNode)));
  if (int64_t{nodes} * gpus_per_node > limits::kMaxGpus)
    v.error_at("nodes", fmt::format("gives {} x {} = {} GPUs; a cluster has at most {}", nodes, gpus_per_node,
                                    int64_t{nodes} * gpus_per_node, limits::kMaxGpus));
  if (gpus_per_node % nics_per_node != 0)
    v.error_at("nics_per_node", fmt::format("must divide the GPUs per node ({})", gpus_per_node));
  const double nic_bw = v.quantity("nic_bandwidth", Dim::bandwidth);
  const double nic_link_bw = v.quantity_or("nic_link_bandwidth", Dim::bandwidth, nic_bw);
  const double nic_lat = v.quantity_or("nic_latency", Dim::seconds, 0.0, Range::non_negative());
  FabricParams fab;
  if (v.require("fabric")) fab = decode_fabric(v.at("fabric"));
  if (v.diagnostic_count() != before) return;
  c.gpus_per_node = gpus_per_node;
  c.identical_nodes_nonblocking = fab.type == "single_switch" || fab.oversubscription == 1.0;

  // Servers, then their NICs; nics[n * K + k] is NIC k of node n (node-major, as fat_tree leaves count them).
  const int gpus_per_nic = gpus_per_node / nics_per_node;
  std::vector<Cluster::Vertex> nics;
  for (int n = 0; n < nodes; ++n) {
    const auto gpus = node_family == "nvswitch_node" ? build_nvswitch_node(c, nv, n) : build_pcie_node(c, pc, n);
    for (int k = 0; k < nics_per_node; ++k) nics.push_back(c.add_vertex(VertexKind::nic, fmt::format("n{}.nic{}", n, k), n));
    for (int i = 0; i < gpus_per_node; ++i)
      c.add_link(gpus[i], nics[n * nics_per_node + i / gpus_per_nic], "nic", nic_link_bw, nic_lat);
  }

  // Aggregate uplink of a switch that serves `n_nics` NICs (see the picture: one link to a non-blocking spine).
  auto uplink_bw = [&](int n_nics) { return n_nics * nic_bw / fab.oversubscription; };
  if (fab.type == "single_switch") {
    const auto sw = c.add_vertex(VertexKind::switch_, "fabric_switch");
    for (auto nic : nics) c.add_link(nic, sw, fab.link_kind, nic_bw, 0.0);
  } else if (fab.type == "fat_tree") {
    const int total = static_cast<int>(nics.size());
    const int leaves = (total + fab.nics_per_leaf - 1) / fab.nics_per_leaf;
    std::vector<Cluster::Vertex> leaf;
    for (int j = 0; j < leaves; ++j) leaf.push_back(c.add_vertex(VertexKind::switch_, fmt::format("leaf{}", j)));
    for (int i = 0; i < total; ++i) c.add_link(nics[i], leaf[i / fab.nics_per_leaf], fab.link_kind, nic_bw, 0.0);
    if (leaves > 1) {
      const auto spine = c.add_vertex(VertexKind::switch_, "spine");
      for (int j = 0; j < leaves; ++j)
        c.add_link(leaf[j], spine, "fabric", uplink_bw(std::min(fab.nics_per_leaf, total - j * fab.nics_per_leaf)), 0.0);
    }
  } else {  // rail_optimized
    std::vector<Cluster::Vertex> rails;
    for (int k = 0; k < nics_per_node; ++k) rails.push_back(c.add_vertex(VertexKind::switch_, fmt::format("rail{}", k)));
    for (int n = 0; n < nodes; ++n)
      for (int k = 0; k < nics_per_node; ++k) c.add_link(nics[n * nics_per_node + k], rails[k], fab.link_kind, nic_bw, 0.0);
    if (nics_per_node > 1) {
      const auto spine = c.add_vertex(VertexKind::switch_, "spine");
      for (auto r : rails) c.add_link(r, spine, "fabric", uplink_bw(nodes), 0.0);
    }
  }
}

}  // namespace moesim::topo
