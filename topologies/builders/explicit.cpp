// Family `explicit`: any graph, written vertex by vertex and link by link.
//
//     nodes: [{name: g0, kind: gpu}, {name: g1, kind: gpu}, {name: sw, kind: switch}]
//     links: [{a: g0, b: sw, ...}, {a: g1, b: sw, ...}]
//
//          g0 ---- sw ---- g1
//
// Routing is the same as for the built-in families: one shortest path (by hops) per GPU pair, GPUs never
// forward traffic, ties go to the link listed first. Moesim cannot check DESIGN rule 2 for you here: if flows
// that share a link have different route latencies, CM02 gives the lower-latency one a larger share. Put
// latency only on GPU-attached links to avoid that.
//
// Keys (besides family/name/description/gpu):
//   nodes        list of vertices, required, at least one of kind gpu:
//     name       text, required, unique
//     kind       gpu | nic | switch | nvswitch | pcie_switch | cpu, required
//     node       integer >= 0: the server the vertex belongs to (GPU ids are numbered node-major, then in list
//                order); default 0 for GPUs, none for other kinds
//   links        list of links, required:
//     a, b       vertex names, required, different; "forward" in routes means a -> b
//     bandwidth  bandwidth per direction, required, > 0
//     latency    duration, default 0s, >= 0
//     kind       nvlink | pcie | inter_socket | nic | ethernet | infiniband | fabric, required
//     full_duplex  true | false, default true (false: both directions share `bandwidth`)
#include <fmt/format.h>
#include <map>
#include <set>

#include "sim/limits.hpp"
#include "topologies/builders/builders.hpp"

namespace moesim::topo {

void decode_build_explicit(const YamlView& v, Cluster& c) {
  v.check_keys(with_keys(kCommonKeys, {"nodes", "links"}));
  std::map<std::string, int> first_line;  // vertex name -> line it was defined on
  std::vector<std::string> names;
  std::set<std::string> broken;
  int gpus = 0;
  if (v.require("nodes")) {
    const YamlView nodes = v.at("nodes");
    for (const YamlView& item : nodes.items()) {
      if (!item.expect_map()) continue;
      item.check_keys({"name", "kind", "node"});
      const std::size_t before = v.diagnostic_count();
      const std::string name = item.str("name");
      const std::string kind = item.choice("kind", vertex_kind_names());
      const bool is_gpu = kind == "gpu";
      const int node = static_cast<int>(item.integer_or("node", is_gpu ? 0 : -1, Range::between(0, limits::kMaxNodes - 1)));
      if (v.diagnostic_count() != before) {
        broken.insert(name);  // already reported; links to it should not add "unknown vertex" noise
        continue;
      }
      if (auto it = first_line.find(name); it != first_line.end()) {
        item.error_at("name", fmt::format("duplicate vertex name; first defined on line {}", it->second));
        continue;
      }
      first_line.emplace(name, item.line());
      names.push_back(name);
      c.add_vertex(*vertex_kind_from(kind), name, node);
      gpus += is_gpu;
    }
    if (gpus == 0 && nodes.is_sequence()) nodes.error("must contain at least one vertex of kind gpu");
  }
  if (v.require("links")) {
    for (const YamlView& item : v.at("links").items()) {
      if (!item.expect_map()) continue;
      item.check_keys({"a", "b", "bandwidth", "latency", "kind", "full_duplex"});
      const std::size_t before = v.diagnostic_count();
      std::optional<Cluster::Vertex> ends[2];
      const char* keys[2] = {"a", "b"};
      for (int i = 0; i < 2; ++i) {
        const std::string name = item.str(keys[i]);
        if (!item.has(keys[i])) continue;
        ends[i] = c.find_vertex(name);
        if (!ends[i] && broken.count(name)) {
          item.error_at(keys[i], "refers to a vertex that has errors");
        } else if (!ends[i]) {
          std::string rule = "unknown vertex";
          if (auto hint = closest_match(name, names); !hint.empty()) rule += "; did you mean '" + hint + "'?";
          item.error_at(keys[i], rule);
        }
      }
      if (ends[0] && ends[1] && *ends[0] == *ends[1]) item.error_at("b", "must differ from a");
      const double bw = item.quantity("bandwidth", Dim::bandwidth);
      const double lat = item.quantity_or("latency", Dim::seconds, 0.0, Range::non_negative());
      const std::string kind = item.choice("kind", link_kind_names());
      const bool fd = item.boolean_or("full_duplex", true);
      if (v.diagnostic_count() == before) c.add_link(*ends[0], *ends[1], kind, bw, lat, fd);
    }
  }
}

}  // namespace moesim::topo
