#include "topologies/dot.hpp"

#include <fmt/format.h>
#include <map>

#include "sim/units.hpp"

namespace moesim::topo {

namespace {
const char* shape(VertexKind k) {
  switch (k) {
    case VertexKind::gpu: return "box";
    case VertexKind::nic: return "diamond";
    case VertexKind::cpu: return "hexagon";
    default: return "ellipse";
  }
}
}  // namespace

void write_dot(const Cluster& c, std::ostream& out) {
  out << fmt::format("graph \"{}\" {{\n  node [fontsize=10];\n  edge [fontsize=8];\n",
                     c.name.empty() ? c.family : c.name);
  std::map<int, std::vector<std::size_t>> by_node;  // server -> vertices; -1 = fabric
  for (std::size_t v = 0; v < c.vertex_count(); ++v) by_node[c.vertex(v).node].push_back(v);
  for (const auto& [node, vs] : by_node) {
    const std::string indent = node >= 0 ? "    " : "  ";
    if (node >= 0) out << fmt::format("  subgraph cluster_n{} {{\n    label=\"node {}\";\n", node, node);
    for (std::size_t v : vs) {
      const VertexInfo& vi = c.vertex(v);
      out << fmt::format("{}\"{}\" [shape={}{}];\n", indent, vi.name, shape(vi.kind),
                         vi.kind == VertexKind::gpu ? fmt::format(", label=\"{}\\nGPU {}\"", vi.name, vi.gpu) : "");
    }
    if (node >= 0) out << "  }\n";
  }
  for (std::size_t l = 0; l < c.link_count(); ++l) {
    const LinkInfo& li = c.link(l);
    out << fmt::format("  \"{}\" -- \"{}\" [label=\"{} {}{}\"];\n", c.vertex(li.a).name, c.vertex(li.b).name,
                       li.kind, format_bandwidth(li.bandwidth_Bps), li.full_duplex ? "" : " half-duplex");
  }
  out << "}\n";
}

}  // namespace moesim::topo
