// The capacity planner (`moesim plan FILE`, a scenario's `plan:` section; issue 15 point 2): given the
// scenario's model and workload, a target (tokens/s, step time, or per-token latency in decode) and a menu
// (GPU profiles with a price per GPU-hour and the clusters each is offered in, EP degrees; the scenario's
// variants are the schedules), find the cheapest configuration that meets the target.
//
// Each candidate (GPU x cluster x EP degree x variant) is the scenario's YAML tree with its values written in
// (sim/sweep.hpp apply_sweep_setting), decoded by the ordinary decoder. Per candidate, in this order:
//   1. memory per rank (estimate_rank_memory) against the profile's memory: over -> infeasible, with the
//      breakdown as the reason;
//   2. a lower bound of the step time (step_time_lower_bound) and from it a lower bound of the cost; candidates
//      are simulated in order of that bound, and one whose bound already misses the target, or whose cost bound
//      exceeds the runner-up found so far, is pruned without simulating;
//   3. the simulation (worker processes, --jobs), whose step time gives the cost.
// Format: scenarios/README.md "plan"; design: ARCHITECTURE.md "Capacity planner".
#pragma once

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "sim/scenario.hpp"
#include "sim/yaml_view.hpp"

namespace moesim {

enum class PlanTarget { tokens_per_s, step_time, token_latency };

struct PlanGpu {
  std::string profile;              // profile id (models/profiles) or path
  double price_per_gpu_hour = 0;    // USD per GPU-hour
  std::string source;               // where the price comes from
  std::vector<YAML::Node> clusters; // values of the scenario's `cluster:` key where this GPU is offered
  std::vector<std::string> cluster_labels;  // a preset name, or the inline mapping's name
};

struct PlanSpec {
  PlanTarget target = PlanTarget::tokens_per_s;
  double target_value = 0;     // tokens/s, or seconds
  int64_t global_tokens = 0;   // tokens per step over all ranks (0: keep the scenario's tokens_per_rank)
  std::vector<PlanGpu> gpus;
  std::vector<int> ep;         // EP degrees (empty: the scenario's parallelism.ep)
};

// Decodes a `plan:` section; problems become diagnostics in the view's sink (file:line:col).
PlanSpec decode_plan(const YamlView& section, const std::string& mode);

// Memory one rank needs (bytes), the largest over the ranks of one EP group (expert replicas included).
struct RankMemory {
  double params = 0;       // parameters the rank holds (elements)
  double weights = 0;      // params x dtype bytes
  double grads = 0;        // training: bf16 gradients, 2 B per parameter
  double optimizer = 0;    // training: Adam fp32 master weight, momentum, variance, 12 B per parameter
  double activations = 0;  // training: kept for backward; inference: one layer's working set
  double kv_cache = 0;     // inference: the KV cache of the rank's sequences
  double total() const { return weights + grads + optimizer + activations + kv_cache; }
};
RankMemory estimate_rank_memory(const Scenario& sc);

// A lower bound (seconds) of the step time the simulator reports for this scenario, any schedule: the busiest
// rank's compute stream runs at least the GEMMs no schedule skips (shared experts, dense-layer MLPs, LM head),
// each no faster than its FLOPs at the profile's highest peak.
double step_time_lower_bound(const Scenario& sc);

// A lower bound (seconds) of the time the all-to-alls of variant `v` keep the busiest rank's links busy over
// the step: every token of a rank picks top_k DISTINCT experts and the rank holds n of them, so at least
// max(0, top_k - n) of its top_k token-expert pairs leave the rank, each hidden x dtype bytes (the simulator
// counts all-to-all bytes per pair: LayerEmitter::all_to_all); the dispatch sends them out, the combine
// brings them back, training twice (backward); over every simulated MoE layer and workload step. Divided by
// the capacity of the link directions the rank's flows leave (enter) by, the first (last) hop of each route
// to (from) the other ranks of its EP group: no flow leaves faster than all of them together. 0 (no term)
// for a schedule or setting that can move fewer pairs: schedules other than topk, pipelined and
// shared_expert, expert tensor parallelism, capacity dropping or padding, traced routing, multimodal
// workloads, models built of stages, two ranks on one GPU. ARCHITECTURE.md "Capacity planner".
double alltoall_lower_bound(const Scenario& sc, const models::VariantSpec& v);

// Both terms of a candidate's step-time bound: the step takes at least the larger (communication on the comm
// stream may overlap compute, so they do not add).
struct StepBound {
  double compute_s = 0, comm_s = 0;
  double step_s() const { return std::max(compute_s, comm_s); }
  const char* binds() const { return comm_s > compute_s ? "all-to-all" : "compute"; }
};
StepBound step_bound(const Scenario& sc, const models::VariantSpec& v);

struct PlanCandidate {
  std::size_t index = 0;
  std::string gpu, cluster, variant, schedule;
  int ep = 0, ranks = 0;
  int gpus = 0;  // GPUs of the cluster: what is rented (ranks may use fewer of them)
  double price_per_gpu_hour = 0;
  int64_t tokens_per_rank = 0;
  std::string status;   // invalid | infeasible | pruned | simulated | failed
  std::string reason;   // why not feasible / pruned / failed ("" for a simulated one)
  RankMemory memory;
  double memory_capacity = 0;  // bytes
  double bound_step_s = 0;     // lower bound of the step time: max(bound_compute_s, bound_comm_s)
  double bound_compute_s = 0, bound_comm_s = 0;  // its terms (step_bound)
  std::string bound_binds;     // which term is the bound: compute | all-to-all
  double bound_cost_per_h = 0; // lower bound of the cost, USD/h
  // Simulated:
  double step_time_s = 0, compute_s = 0, comm_s = 0, exposed_comm_s = 0;
  double tokens_per_s = 0;     // of one instance
  int replicas = 0;            // instances needed for a tokens/s target (1 otherwise)
  bool meets_target = false;
  double cost_per_h = 0;       // USD/h of the deployment (replicas x cluster GPUs x price)
  double usd_per_mtok = 0;     // USD per million tokens at that rate
  std::string binds;           // compute | exposed communication | memory, with shares
};

struct PlanOptions {
  int jobs = 2;
  bool quiet = false;
  // Under MPI (mpirun -np N, sim/mpi_split.hpp): every rank builds the same candidates and visits the open ones
  // in the same cost-bound order; the one at position p of that order is rank p % shard_size's. A rank simulates
  // and prunes only its own (pruning against its own runner-up, whose cost is >= the whole job's runner-up's,
  // so it prunes nothing the one-process run could rank first or second); the others stay unvisited (status
  // "") until merge_plan_items fills them in at rank 0.
  int shard_rank = 0, shard_size = 1;
  std::string progress_prefix;  // before each "simulating candidate" line (e.g. "rank 1/4: ")
};

struct PlanOutcome {
  std::string scenario_name;
  PlanSpec spec;
  std::vector<PlanCandidate> candidates;  // in candidate order
  std::optional<std::size_t> winner, runner_up;  // indices into candidates
  std::vector<std::size_t> order;  // the open candidates (after memory and target checks) in cost-bound order
  std::size_t simulated = 0, pruned = 0;
};

// Runs the plan of `file` (its `plan:` section). Throws InputError for an invalid scenario or plan section,
// std::invalid_argument for a usage problem (no plan: section).
PlanOutcome run_plan(const std::string& file, const PlanOptions& opt);

// This rank's visited candidates (status, reason, simulated times) keyed by candidate index, for
// MpiSession::gather_items; merge_plan_items applies every rank's at rank 0, prices the simulated ones and
// ranks them (winner, runner-up, counts) as the one-process run does.
std::map<std::size_t, std::string> plan_shard_items(const PlanOutcome& o, const PlanOptions& opt);
void merge_plan_items(PlanOutcome& o, const std::map<std::size_t, std::string>& items);

std::string plan_csv_text(const PlanOutcome& o);
std::string plan_console_text(const PlanOutcome& o);

// Cost of a simulated candidate against the target (fills replicas, meets_target, cost_per_h, usd_per_mtok).
void price_candidate(const PlanSpec& spec, PlanCandidate& c);

}  // namespace moesim
