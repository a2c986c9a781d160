// Resources a scenario needs, estimated before any work starts (DESIGN: refuse what cannot finish, early).
//
// Memory: the routing plan of one variant process holds, per simulated MoE layer, the expert counts
// (ranks x experts int64), the rank-to-rank matrix (ranks^2 int64) and, with keep_scores or a trace, one
// record per token-expert pair (expert int32 + score float + kept byte = 9 bytes). Work: the router draws
// tokens_per_rank x ranks x top_k experts per simulated MoE layer.
//
// `moesim validate` (and run) refuses a scenario whose estimate exceeds the machine's physical memory, naming
// the key and the estimate; `moesim run` refuses one whose routing work exceeds kMaxDrawsWithoutForce unless
// --force is given. --force never overrides the memory check.
#pragma once

#include <cstdint>
#include <string>

namespace moesim {

struct Scenario;

struct ResourceEstimate {
  double bytes = 0;         // peak memory of one variant process, dominated by the routing plan
  double routing_draws = 0;  // expert draws of one variant
};

// About 10 minutes of routing on one core (the sampler draws ~2e8 experts/s).
inline constexpr double kMaxDrawsWithoutForce = 1e11;

ResourceEstimate estimate_resources(const Scenario& sc);

// Physical memory of this machine in bytes (0 when unknown).
double physical_memory_bytes();

}  // namespace moesim
