// `moesim collective`: one bare collective swept over sizes and reported in nccl-tests' vocabulary (size,
// count, time, algbw, busbw), so that the network model can be checked against published nccl-tests tables
// (issue 13 point 8). The figures are defined as nccl-tests defines them (NVIDIA/nccl-tests,
// doc/PERFORMANCE.md, and the *GetCollByteCount / *GetBw functions of src/*.cu):
//   - S is the per-rank buffer size nccl-tests prints in its `size` column: all_reduce: the array reduced;
//     all_gather: the output (each rank contributes S/n); reduce_scatter: the input (each rank ends with
//     S/n); all_to_all: the send buffer (S/n to every rank, itself included, so S(n-1)/n leaves the rank).
//   - algbw = S / t; busbw = algbw x factor: all_reduce 2(n-1)/n, all_gather, reduce_scatter and all_to_all
//     (n-1)/n. GB/s = 1e9 B/s.
//   - nccl-tests works in elements of its datatype (float by default, 4 B) and rounds the element count down
//     to a multiple of n for the three split collectives; moesim does the same, so sizes print alike.
// How each collective is simulated is said in `collective_algorithm_note` and in every output's header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/engine.hpp"
#include "sim/op_graph.hpp"
#include "topologies/cluster.hpp"

namespace moesim {

enum class CollectiveKind { all_to_all, all_gather, reduce_scatter, all_reduce };

const char* collective_kind_name(CollectiveKind k);
std::vector<std::string> collective_kind_names();
std::optional<CollectiveKind> parse_collective_kind(std::string_view name);

// nccl-tests' bus-bandwidth factor for n ranks (doc/PERFORMANCE.md, "Summary").
double bus_bandwidth_factor(CollectiveKind k, int n);

// How moesim simulates the collective (one line, for headers and docs).
std::string collective_algorithm_note(CollectiveKind k);

inline constexpr double kBenchWordBytes = 4.0;  // nccl-tests' default datatype, float (bytes per element)
inline constexpr int kBenchMaxSizes = 64;       // sizes per sweep (1 B to 1 TiB in factor-2 steps is 41)
// auto fidelity: exact up to this many flows, fast above. Lower than the runner's kExactFlowBudget because a
// bench sweeps many sizes and the one-switch collectives of big NVLink domains cost more per flow (72 ranks:
// 56,000 flows took 3.5 s of CPU); on these uniform collectives both levels give the same times (tests).
inline constexpr double kBenchExactFlowBudget = 20000;
inline constexpr double kBenchMaxBytes = 1099511627776.0;  // 1 TiB: far beyond any GPU buffer, far below
                                                           // the byte counts SimGrid mishandles

// A size as nccl-tests reports it: `bytes` (S, the `size` column) and `count` (the `count` column: elements
// per rank passed to the NCCL call: S/n for all_gather, reduce_scatter and all_to_all, S for all_reduce).
struct BenchSize {
  double requested_bytes = 0;
  double bytes = 0;
  int64_t count = 0;
};
BenchSize nccl_size(CollectiveKind k, double requested_bytes, int ranks);

// The requested sizes of a sweep: "MIN:MAX" (MIN, MIN x f, ... while <= MAX, like nccl-tests -b/-e/-f) or one
// size "S"; each with a unit ("1MiB", "256KB", "4GB", "512B"). Throws std::invalid_argument with a message
// naming the problem (no unit, MIN > MAX, zero, above 1 TiB, f <= 1, more than kBenchMaxSizes sizes).
std::vector<double> parse_size_sweep(const std::string& text, double step_factor);

// The op graph of a sweep: for each size, its collective(s) over all `ranks` ranks on the comm stream (an
// all_reduce is a reduce_scatter then an all_gather), each collective waiting for every rank to finish the
// previous one (a zero-length barrier op), so each size's time is that of the collective run alone. One
// simulation then serves every size (DESIGN rule 5: one per process). `bytes[i]` is size i's S.
struct BenchGraph {
  OpGraph graph{1};
  // Per size: the barrier op it starts after (kNoOp for the first size: it starts at 0) and the ops of its
  // last collective (the size ends when the last of them ends).
  std::vector<OpId> start_after;
  std::vector<std::vector<OpId>> last_ops;
};
BenchGraph build_bench_graph(CollectiveKind k, int ranks, const std::vector<double>& bytes);

// The exact fidelity's flows for a sweep: one per ordered rank pair per collective.
double bench_exact_flows(CollectiveKind k, int ranks, std::size_t sizes);

struct CollectiveBenchOptions {
  CollectiveKind kind = CollectiveKind::all_to_all;
  std::vector<int> gpus;               // GPU id of each rank (distinct, < the cluster's GPU count)
  std::vector<double> sizes;           // requested sizes (parse_size_sweep)
  std::optional<Fidelity> fidelity;    // nullopt = auto: exact within kBenchExactFlowBudget flows, fast above
  // Per-call launch/setup time (s, >= 0) every rank waits before its data moves (EngineOptions::
  // collective_launch_s); an all_reduce pays it once (its all_gather half continues the call). The CLI takes
  // it from the cluster's GPU profile (`collective_launch`), or --launch.
  double launch_s = 0.0;
  std::string launch_from;  // where launch_s comes from, for the header ("reference: ...", "--launch")
};

struct CollectiveBenchRow {
  double requested_bytes = 0;
  double size_bytes = 0;  // S (nccl-tests' size column)
  int64_t count = 0;      // elements (nccl-tests' count column)
  double time_s = 0;
  double algbw_Bps = 0;   // S / time
  double busbw_Bps = 0;   // algbw x bus_bandwidth_factor
};

struct CollectiveBenchResult {
  CollectiveKind kind = CollectiveKind::all_to_all;
  std::string cluster;       // preset name or file
  std::string description;   // the cluster's description
  std::vector<int> gpus;
  int nodes = 0;             // distinct nodes the ranks are on
  Fidelity fidelity = Fidelity::exact;
  std::string fidelity_requested;  // auto | exact | fast
  double exact_flows = 0;
  double launch_s = 0;
  std::string launch_from;
  std::vector<std::pair<std::string, std::string>> simgrid_settings;
  std::vector<CollectiveBenchRow> rows;
  double avg_busbw_Bps = 0;  // mean of the rows' busbw (nccl-tests' "Avg bus bandwidth")
};

// Checks the options against the cluster; returns the first problem as a message, or nullopt.
std::optional<std::string> collective_bench_problem(const topo::Cluster& cluster, const CollectiveBenchOptions& opt);

// Simulates the sweep (one SimGrid run: at most once per process) and fills the result. Throws
// std::invalid_argument when collective_bench_problem finds one.
CollectiveBenchResult run_collective_bench(const topo::Cluster& cluster, const std::string& cluster_label,
                                           const CollectiveBenchOptions& opt);

// Outputs: a table like nccl-tests' with a header naming cluster, ranks, fidelity and algorithm; JSON
// (schema moesim-collective/1, units in key names); CSV (units in the header).
std::string collective_bench_table(const CollectiveBenchResult& r);
std::string collective_bench_json(const CollectiveBenchResult& r);
std::string collective_bench_csv(const CollectiveBenchResult& r);

}  // namespace moesim
