// Static analysis of a cluster: sizes, bandwidth by link kind, bisection bandwidth, diameter and the
// bottleneck of a uniform all-to-all. Used by `moesim topo FILE` (describe) and by tests.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "sim/platform_spec.hpp"
#include "topologies/cluster.hpp"

namespace moesim::topo {

struct KindTotal {
  std::string kind;
  std::size_t links = 0;
  double total_bandwidth_Bps = 0;  // sum over links of the per-direction bandwidth
};
// Sorted by kind name.
std::vector<KindTotal> links_by_kind(const Cluster& c);

// Bisection bandwidth in bytes/s: the minimum cut between GPUs [0, N/2) and [N/2, N) (ids in order), found as
// a max flow (Boykov-Kolmogorov, Boost.Graph) in which every link may carry its per-direction bandwidth in
// each direction, so a full-duplex link crossing the cut counts once, in the direction of the flow. A
// half-duplex link counts the same (one direction is all a cut can use). 0 when there are fewer than 2 GPUs.
double bisection_bandwidth(const Cluster& c);

struct Diameter {
  std::size_t hops = 0;  // max over ordered GPU pairs of the route's link count
  std::size_t hops_src = 0, hops_dst = 0;  // the first pair (by src, dst) reaching it
  double latency_s = 0;  // max over ordered GPU pairs of the summed link latency
  std::size_t latency_src = 0, latency_dst = 0;
  double min_latency_s = 0;  // min over pairs (equal to latency_s when all routes have equal latency)
};
Diameter diameter(const PlatformSpec& p);

// A uniform all-to-all: every GPU sends S/N bytes to each of the N GPUs (so S bytes per GPU, S(N-1)/N of
// them over the network), all at once, over lower()'s routes. The most loaded link direction (its load over
// its bandwidth; a half-duplex link adds both directions) bounds the time from below.
struct AllToAllBottleneck {
  std::size_t link = 0;
  bool forward = true;            // the loaded direction (meaningless for half-duplex links)
  std::string link_name;
  std::size_t pair_flows = 0;     // ordered GPU pairs whose route uses this link direction
  double bandwidth_Bps = 0;
  std::size_t gpus = 0;
  // Lower bound on the all-to-all time for S bytes per GPU: pair_flows * (S / N) / bandwidth (s).
  double time_lower_bound_s(double bytes_per_gpu) const;
  // The nccl-tests bus bandwidth this bound implies: (S / t) * (N - 1) / N (bytes/s).
  double busbw_upper_bound_Bps() const;
};
AllToAllBottleneck all_to_all_bottleneck(const PlatformSpec& p);

// Human-readable report (several lines, ends with a newline). `bytes_per_gpu` sets the all-to-all example.
std::string describe(const Cluster& c, double bytes_per_gpu = 256.0 * 1024 * 1024);

}  // namespace moesim::topo
