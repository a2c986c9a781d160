// Decoding a scenario's `cluster:` value into a Cluster.
//
// The value is either a preset name ("h200-hgx-8" loads <data_dir>/topologies/presets/h200-hgx-8.yaml) or an
// inline mapping with `family:` one of nvswitch_node, pcie_node, multi_node, explicit. Every problem becomes a
// diagnostic in the view's Diagnostics (file:line:col: key.path: rule (got value)); the caller throws
// InputError when any was recorded. The keys of each family are documented at the top of its builder file
// (topologies/builders/*.cpp) and in scenarios/README.md.
#pragma once

#include <string>
#include <vector>

#include "sim/yaml_view.hpp"
#include "topologies/cluster.hpp"

namespace moesim::topo {

// Decodes `v` (the cluster value). On errors, returns a partial or empty Cluster that must not be used.
Cluster decode_cluster(const YamlView& v, const std::string& data_dir);

// Loads a file whose root is either a cluster mapping (it has `family:`, like a preset) or a scenario with a
// `cluster:` key (only that key is read). Throws InputError with every diagnostic.
Cluster load_cluster_file(const std::string& path, const std::string& data_dir);
// Same for text; `name` stands in for the file name in messages.
Cluster load_cluster_text(const std::string& text, const std::string& name, const std::string& data_dir);

// Preset names found in <data_dir>/topologies/presets, sorted.
std::vector<std::string> available_presets(const std::string& data_dir);

}  // namespace moesim::topo
