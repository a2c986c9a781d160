// The cluster as a graph: vertices are GPUs, NICs, switches, PCIe switches and CPU sockets; edges are links.
//
// The graph itself is a Boost.Graph adjacency_list kept behind Cluster::Graph (defined in
// topologies/cluster_graph.hpp), so code outside topologies/ never includes Boost.Graph. Everything a caller
// needs (vertices, links, GPU ids, routes) is reachable through this header.
//
// Invariants:
//  - GPU ids are 0..N-1, node-major: GPUs sorted by node index, ties in the order they were added.
//  - Link ids are 0..L-1 in the order links were added; a link joins vertices a and b (as passed to
//    add_link), and "forward" in a route means a -> b.
//  - Bandwidth is per direction in bytes/s; latency in seconds. Vertices have no capacity (a switch is
//    non-blocking); only links limit traffic.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/platform_spec.hpp"

namespace moesim::topo {

enum class VertexKind { gpu, nic, switch_, nvswitch, pcie_switch, cpu };

// "gpu", "nic", "switch", "nvswitch", "pcie_switch", "cpu".
std::string_view to_string(VertexKind k);
std::optional<VertexKind> vertex_kind_from(std::string_view name);
const std::vector<std::string>& vertex_kind_names();
// Link kinds the built-in families use (explicit topologies may use any of these).
const std::vector<std::string>& link_kind_names();

struct VertexInfo {
  VertexKind kind = VertexKind::gpu;
  std::string name;  // unique within the cluster
  int node = -1;     // server index; -1 for vertices outside any server (fabric switches)
  int gpu = -1;      // GPU id for GPUs, -1 otherwise
};

struct LinkInfo {
  std::string name;          // unique: "<a>-<b>", with "#k" appended for parallel links
  std::string kind;          // one of link_kind_names()
  double bandwidth_Bps = 0;  // per direction, bytes/s, > 0
  double latency_s = 0;      // >= 0
  bool full_duplex = true;   // false: both directions share bandwidth_Bps
  std::size_t a = 0, b = 0;  // vertex indices; forward = a -> b
  std::size_t id = 0;        // link id (index in the cluster's link list)
};

class Cluster {
 public:
  struct Graph;  // Boost.Graph adjacency_list with VertexInfo/LinkInfo bundles (topologies/cluster_graph.hpp)
  using Vertex = std::size_t;

  Cluster();
  ~Cluster();
  Cluster(const Cluster& other);
  Cluster& operator=(const Cluster& other);
  Cluster(Cluster&&) noexcept;
  Cluster& operator=(Cluster&&) noexcept;

  // Builders. add_vertex keeps GPU ids node-major. Names must be unique (the decoder checks user names
  // before calling; a duplicate here is a programming error and throws std::logic_error).
  Vertex add_vertex(VertexKind kind, std::string name, int node = -1);
  std::size_t add_link(Vertex a, Vertex b, std::string kind, double bandwidth_Bps, double latency_s,
                       bool full_duplex = true);

  std::size_t gpu_count() const { return gpus_.size(); }
  std::size_t node_count() const;  // 1 + the largest node index (0 when no vertex has one)
  std::size_t vertex_count() const;
  std::size_t link_count() const;
  const VertexInfo& vertex(Vertex v) const;
  const LinkInfo& link(std::size_t id) const;
  Vertex gpu_vertex(std::size_t gpu_id) const { return gpus_.at(gpu_id); }
  std::optional<Vertex> find_vertex(std::string_view name) const;

  // One route per ordered GPU pair: the shortest path by hop count, found by BFS from each GPU. Only the
  // end points may be GPUs (a GPU never forwards traffic). Ties go to the path BFS discovers first, which
  // follows vertex and link insertion order, so the result is deterministic.
  PlatformSpec lower() const;
  // The same, with routes only among `used` GPU ids (the GPUs that carry ranks): a 65,536-GPU cluster with an
  // EP group of 8 lowers 56 routes, not 4 billion (see PlatformSpec::route_slot).
  PlatformSpec lower(const std::vector<int>& used) const;
  // The first ordered GPU pair (by source id, then destination id) with no route, or nullopt.
  std::optional<std::pair<std::size_t, std::size_t>> first_unreachable_pair() const;

  std::string name;                 // preset or user-given name, for reports
  std::string family;               // the family that built it
  std::string description;          // free text from the input, may be empty
  std::string default_gpu_profile;  // GPU profile id (models/ resolves it); may be empty
  // Set by family multi_node: its servers are identical (GPU ids node-major, gpus_per_node each) and its fabric
  // beyond the NICs can never limit a transfer below the NICs' own bandwidth (single_switch, or fat_tree /
  // rail_optimized at oversubscription 1: every switch uplink carries at least the sum of the NIC bandwidths
  // beneath it, and latency sits on the GPU-attached links only). Whole nodes then never share a link that
  // can bind, which is what lets the runner simulate representative DP replicas (Scenario::dp_simulated).
  bool identical_nodes_nonblocking = false;
  int gpus_per_node = 0;  // multi_node: GPUs of each server; 0 for other families

 private:
  PlatformSpec lower_impl(const std::vector<int>* used) const;
  std::unique_ptr<Graph> g_;
  std::vector<Vertex> gpus_;  // GPU id -> vertex
};

}  // namespace moesim::topo
