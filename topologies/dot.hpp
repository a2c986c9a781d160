// Graphviz export of a cluster: `dot -Tsvg cluster.dot > cluster.svg`.
#pragma once

#include <ostream>

#include "topologies/cluster.hpp"

namespace moesim::topo {

// GPUs are boxes, switches (switch, nvswitch, pcie_switch) ellipses, NICs diamonds, CPUs hexagons; vertices
// of one server are grouped in a cluster subgraph; edge labels give the per-direction bandwidth.
void write_dot(const Cluster& c, std::ostream& out);

}  // namespace moesim::topo
