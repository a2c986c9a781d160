// The SimGrid engine: executes an OpGraph on a lowered platform and records when every op started and ended.
// This is the only place in moesim that includes SimGrid.
//
// Only one engine may run per process (DESIGN rule 5): SimGrid's clock and configuration cannot be reset.
// The CLI runs each variant in a child process.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sim/op_graph.hpp"
#include "sim/platform_spec.hpp"

namespace moesim {

// How all-to-alls are simulated (DESIGN rule 3).
//  exact: one SimGrid flow per (src, dst) GPU pair on the CM02 flow model; a flow starts when both ends have
//         reached the collective; each rank's op ends when its last flow ends (exact per-rank finish times).
//  fast:  one parallel task per all-to-all (ptask_L07 model) carrying the whole byte matrix; cost does not grow
//         with the square of the GPU pairs; it starts when the last rank is ready and ends for all at once.
enum class Fidelity { exact, fast };
const char* fidelity_name(Fidelity f);

struct EngineOptions {
  Fidelity fidelity = Fidelity::exact;
  // SimGrid's surf/precision: completions closer than this (seconds) may be merged. 1e-9 keeps hand-worked
  // cases exact; 1e-6 is 5-12x faster on large all-to-alls at < 0.1 % error (DESIGN rule 3).
  double precision_s = 1e-9;
  // Overlap interference (>= 1): while an all-to-all op on a rank's comm stream is in flight, compute on that
  // rank runs this many times slower (a communication kernel holds SMs). Applied by switching the GPU host
  // between two speeds, so a kernel that straddles the start or end of a communication is slowed only for
  // the overlapping part. 1.0 = no interference.
  double overlap_interference = 1.0;
  // Fixed time every collective call pays before its data moves (NCCL-like launch and setup), seconds >= 0.
  // Each rank's collective op starts when its dependencies are done, as before, but the rank is ready to send
  // and receive (exact: its flows may start; fast: it counts towards the ptask's start) only this long after.
  // A chunked all-to-all is one collective per chunk, so every chunk pays it; a collective marked
  // Collective::pays_launch = false (the all-gather half of a ring all-reduce, one NCCL call) does not.
  // Identical in both fidelities.
  // The op counts as in flight for overlap_interference from its start.
  double collective_launch_s = 0.0;
  // Run compute ops as SimGrid Execs on the GPU hosts even where the engine would time them itself (see
  // Trace::timed_kernels). For tests that check both give the same times.
  bool kernels_as_execs = false;
};

struct Trace {
  std::vector<double> start_s;  // per op id
  std::vector<double> end_s;    // per op id
  double makespan_s = 0.0;
  std::size_t simgrid_activities = 0;  // activities handed to SimGrid
  // Compute ops timed by the engine (a SimGrid timer at start + duration / speed) instead of run as Execs:
  // all of them when every compute op is on its rank's compute stream (one kernel at a time per GPU).
  std::size_t timed_kernels = 0;
  std::size_t simgrid_links = 0;  // links created after merging channels that carry identical route sets
  std::size_t simgrid_links_pruned = 0;  // merged channels left out because they can never limit a transfer
  std::size_t ptask_pairs = 0;           // fast: GPU pairs in all collectives' reduced byte matrices
  std::size_t ptask_links = 0;           // fast: links loaded, summed over all collectives' parallel tasks
};

// The SimGrid settings moesim uses for a fidelity level (echoed into every report; DESIGN rule 2).
std::vector<std::pair<std::string, std::string>> simgrid_settings(const EngineOptions& opt);

// "major.minor.patch" of the SimGrid library linked in.
std::string simgrid_version();

// Runs the graph. rank_gpu[r] = GPU index in `platform` of EP rank r (distinct). Throws std::runtime_error
// if some op never finishes (a deadlock in the graph) or inputs are inconsistent. Call at most once per process.
Trace run_engine(const PlatformSpec& platform, const std::vector<int>& rank_gpu, const OpGraph& graph,
                 const EngineOptions& opt);

// Streamed steps (a multi-step run whose later steps are still being built while the first ones simulate):
// the feed appends the next workload step(s) to `graph` (OpGraph::append) and returns whether more may come;
// it may append nothing and return true ("not yet": it is asked again). The engine calls it from its own
// thread when the first op of the newest step in the graph is about to start, so step s + 1 is in the graph
// before any op of step s has started. Results are those of the whole graph run at once (same start and end
// per op, bit for bit) as long as every op appended has a dependency that has not finished yet, which the
// engine checks: an appended op whose dependencies have all ended (a feed that appends too late) is a
// std::logic_error, never a silently different timeline, and so is a new collective between ranks the
// platform built from the first step has no route for (or one that breaks the timed-kernel rule, see
// Trace::timed_kernels). Exact fidelity only (the fast fidelity's ptask reduction plans over all
// collectives at once): std::invalid_argument otherwise. The feed returning false ends the feeding; one that
// still promises steps when the simulation has run out of events is a std::logic_error.
using StepFeed = std::function<bool(OpGraph& graph)>;
Trace run_engine(const PlatformSpec& platform, const std::vector<int>& rank_gpu, OpGraph& graph,
                 const EngineOptions& opt, const StepFeed& feed);

}  // namespace moesim
