// Internal to topologies/: one decoder/builder per family, each in its own file under builders/.
// Decoders record diagnostics through the YamlView; builders run only when decoding recorded none, so they
// may assume valid parameters.
#pragma once

#include <string>
#include <vector>

#include "sim/yaml_view.hpp"
#include "topologies/cluster.hpp"

namespace moesim::topo {

// Keys every top-level cluster mapping may have besides its family's own.
inline const std::vector<std::string> kCommonKeys{"family", "name", "description", "gpu"};

std::vector<std::string> with_keys(std::vector<std::string> a, const std::vector<std::string>& b);

struct NvswitchNodeParams {
  int gpus = 1;
  double nvlink_bandwidth_Bps = 1;  // per direction, per GPU
  double nvlink_latency_s = 0;      // on each GPU-NVSwitch link
};
NvswitchNodeParams decode_nvswitch_node(const YamlView& v, const std::vector<std::string>& other_keys);
// Adds one node's vertices and links; returns its GPU vertices in local order.
std::vector<Cluster::Vertex> build_nvswitch_node(Cluster& c, const NvswitchNodeParams& p, int node);

struct PcieNodeParams {
  int gpus = 1;
  int gpus_per_switch = 1;
  int sockets = 2;
  double pcie_bandwidth_Bps = 1;    // GPU - PCIe switch, per direction
  double pcie_latency_s = 0;        // on each GPU - PCIe switch link
  double uplink_bandwidth_Bps = 1;  // PCIe switch - CPU socket, per direction
  double inter_socket_bandwidth_Bps = 1;
};
PcieNodeParams decode_pcie_node(const YamlView& v, const std::vector<std::string>& other_keys);
std::vector<Cluster::Vertex> build_pcie_node(Cluster& c, const PcieNodeParams& p, int node);

// multi_node and explicit decode and build in one pass (they add to c only what decoded cleanly).
void decode_build_multi_node(const YamlView& v, Cluster& c);
void decode_build_explicit(const YamlView& v, Cluster& c);

}  // namespace moesim::topo
