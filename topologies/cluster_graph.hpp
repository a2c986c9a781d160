// Internal to topologies/: the Boost.Graph type behind Cluster. Include only from topologies/*.cpp.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <unordered_map>
#include <unordered_set>

#include "topologies/cluster.hpp"

namespace moesim::topo {

// Undirected multigraph; vecS lists keep out-edges in insertion order, which makes BFS tie-breaking
// (and so routing) deterministic.
using BglGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, VertexInfo, LinkInfo>;

struct Cluster::Graph {
  BglGraph g;
  std::vector<BglGraph::edge_descriptor> edges;          // link id -> edge
  std::unordered_map<std::string, std::size_t> by_name;  // vertex name -> vertex
  std::unordered_set<std::string> link_names;             // for unique link names
};

}  // namespace moesim::topo
