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

#include <cstddef>
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
  double bound_step_s = 0;     // lower bound of the step time
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
};

struct PlanOutcome {
  std::string scenario_name;
  PlanSpec spec;
  std::vector<PlanCandidate> candidates;  // in candidate order
  std::optional<std::size_t> winner, runner_up;  // indices into candidates
  std::size_t simulated = 0, pruned = 0;
};

// Runs the plan of `file` (its `plan:` section). Throws InputError for an invalid scenario or plan section,
// std::invalid_argument for a usage problem (no plan: section).
PlanOutcome run_plan(const std::string& file, const PlanOptions& opt);

std::string plan_csv_text(const PlanOutcome& o);
std::string plan_console_text(const PlanOutcome& o);

// Cost of a simulated candidate against the target (fills replicas, meets_target, cost_per_h, usd_per_mtok).
void price_candidate(const PlanSpec& spec, PlanCandidate& c);

}  // namespace moesim
