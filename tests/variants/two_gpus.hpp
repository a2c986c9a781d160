// The platform of the schedule tests' 2-rank toys.
#pragma once

#include <string>

#include "sim/platform_spec.hpp"

namespace moesim::testing {

// 2 GPUs, one full-duplex link of bw (B/s) each to a switch, latency 0: a flow of b bytes alone on its links
// takes b / bw; two flows in opposite directions do not share a channel.
inline PlatformSpec two_gpus(double bw) {
  PlatformSpec p;
  for (int i = 0; i < 2; ++i) {
    p.gpu_names.push_back("gpu" + std::to_string(i));
    p.gpu_node.push_back(0);
    p.links.push_back({"gpu" + std::to_string(i) + "-sw", "nvlink", bw, 0.0, true});
  }
  std::vector<std::vector<LinkUse>> routes(4);
  routes[1] = {{0, true}, {1, false}};
  routes[2] = {{1, true}, {0, false}};
  p.set_routes(routes);
  return p;
}

}  // namespace moesim::testing
