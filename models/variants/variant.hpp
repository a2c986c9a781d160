// EP schedule variants. A variant turns one step of the workload into an OpGraph; the engine runs it.
// A new schedule = one new file here implementing build_*(), plus one line in registry.cpp. No engine change.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/routing.hpp"
#include "models/variants/step_costs.hpp"
#include "sim/op_graph.hpp"
#include "sim/yaml_view.hpp"

namespace moesim::models {

enum class Mode { inference_prefill, decode, training };
const char* mode_name(Mode m);

// A variant as written in the scenario, with its schedule options decoded and checked.
struct VariantSpec {
  std::string name;
  std::string schedule;               // registered schedule name
  int top_k = 0;                      // topk/pipelined: experts per token (0 = the model's top_k)
  int chunks = 1;                     // pipelined/scmoe_pipelined: token chunks r
  int position = 2;                   // scmoe: shortcut position 1 | 2 | 3
  int expert_slot = 0;                // scmoe: slot 1..4 of the expert GEMM on the compute stream, 0 = auto
  std::optional<RoutingSpec> routing; // overrides the workload routing for this variant
  std::map<std::string, std::string> shown;  // options as resolved, for reports
};

// Everything a schedule needs to build one step.
struct StepInput {
  const Architecture& arch;
  const Placement& placement;
  const RoutingPlan& routing;
  const StepCosts& costs;
  Mode mode;
  int ranks;
  int64_t tokens_per_rank;
  std::vector<int> layers;  // model layers to simulate, ascending
};

using VariantBuilder = std::function<OpGraph(const VariantSpec&, const StepInput&)>;

struct ScheduleInfo {
  std::string name;
  std::string summary;
  std::vector<std::string> keys;  // schedule-specific keys accepted in a variant entry
  VariantBuilder build;
  // Optional: the concrete specs to try for one scenario entry (e.g. scmoe expert_slot: auto -> slots 1..4).
  // The runner simulates each and keeps the fastest, recording the choice in `shown`. Empty = the spec itself.
  std::function<std::vector<VariantSpec>(const VariantSpec&)> candidates;
  // Whether the schedule reads the routing plan's gate-score histograms (the runner skips them otherwise).
  bool uses_gate_scores = false;
};

// All registered schedules, in a fixed order.
const std::vector<ScheduleInfo>& schedules();
const ScheduleInfo* find_schedule(const std::string& name);
std::vector<std::string> schedule_names();

// Decodes one entry of the scenario's `variants:` list. Problems become diagnostics.
VariantSpec decode_variant(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir);

}  // namespace moesim::models
