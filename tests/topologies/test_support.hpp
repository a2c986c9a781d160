// Helpers shared by the topology tests.
#pragma once

#include <string>

#include "sim/diagnostics.hpp"
#include "topologies/topology_spec.hpp"

namespace moesim::topo::test {

inline const std::string kDataDir = MOESIM_DATA_DIR;

// Decodes a scenario-like document (`cluster:` at the top) and throws InputError on diagnostics.
inline Cluster load(const std::string& yaml) { return load_cluster_text(yaml, "t.yaml", kDataDir); }

// The diagnostics a document produces ("" when it loads cleanly).
inline std::string errors_of(const std::string& yaml, const std::string& name = "t.yaml") {
  try {
    load_cluster_text(yaml, name, kDataDir);
  } catch (const InputError& e) {
    return e.diagnostics().str();
  }
  return "";
}

inline constexpr double GBps = 1e9;

}  // namespace moesim::topo::test
