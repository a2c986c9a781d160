// EP schedule variants. A variant turns one step of the workload into an OpGraph; the engine runs it.
// A new schedule = one new file here implementing build_*(), plus one line in registry.cpp. No engine change.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/step_costs.hpp"
#include "sim/op_graph.hpp"
#include "sim/result.hpp"
#include "sim/yaml_view.hpp"

namespace moesim::models {

enum class Mode { inference_prefill, decode, training };
const char* mode_name(Mode m);

// Options a schedule decodes itself (ScheduleInfo::decode), so VariantSpec does not grow a field per
// schedule. Each schedule derives its own struct and reads it back with options_as<T>().
struct ScheduleOptions {
  virtual ~ScheduleOptions() = default;
};

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
  std::shared_ptr<const ScheduleOptions> options;  // decoded by the schedule itself (null: none)
  SweepPoint sweep;  // set when this variant is one point of a sweep expanded from one entry (ScheduleInfo::expand)

  template <class T>
  const T& options_as() const {
    const T* o = dynamic_cast<const T*>(options.get());
    if (!o) throw std::logic_error("variant " + name + ": schedule options missing or of another schedule");
    return *o;
  }
};

// The routing plans of consecutive workload steps: steps [first, first + plans.size()); first < 0 when a
// schedule asked for warm-up history (EPLB's window before step 0).
struct StepSeries {
  int first = 0;
  std::vector<RoutingPlan> plans;
  const RoutingPlan& at(int step) const { return plans.at(static_cast<std::size_t>(step - first)); }
  bool has(int step) const { return step >= first && step < first + static_cast<int>(plans.size()); }
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
  int step;                   // workload step this graph is for (0 in one-step runs)
  const StepSeries* series;   // every step's routing (plans of other steps, for schedules with history); may be null
  // Expert tensor-parallel degree (parallelism.etp): ranks form groups of etp consecutive ranks, and every
  // expert is held by all ranks of one group (the placement lists it on each). 1 = plain EP.
  int etp = 1;
  // Whether the graph is the whole step (the runner sets it): LayerEmitter then adds each block's norms and
  // residual adds, and build_layered / the scmoe builder the embedding, final norm, LM head and loss around
  // the blocks (models/step_ops.hpp). Off: the blocks' attention / MLP / MoE ops only (schedule unit tests
  // that check a schedule's own timeline).
  bool full_step = false;
  // A model built of stages (Architecture::stages): every stage's shape, cost model and tokens per rank.
  // Null: arch, costs and tokens_per_rank serve every layer (a flat model). Schedules read a layer's shape,
  // costs and tokens through arch_of / costs_of / tokens_of, which fall back to those.
  const StageCosts* stages = nullptr;

  int stage_of(int layer) const { return stages ? arch.stage_of(layer) : 0; }
  const Architecture& arch_of(int layer) const { return stages ? stages->arch(stage_of(layer)) : arch; }
  const StepCosts& costs_of(int layer) const { return stages ? stages->costs(stage_of(layer)) : costs; }
  int64_t tokens_of(int layer) const { return stages ? stages->tokens(stage_of(layer)) : tokens_per_rank; }
};

// What a schedule's option decoder may look at.
struct DecodeContext {
  const Architecture& arch;
  const Profile& profile;
  Mode mode;
  int ranks;
  int etp = 1;  // parallelism.etp (see StepInput::etp)
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
  // Optional: the variants one scenario entry stands for, when its options list several values of one key
  // (dualsparse `thresholds: [...]` -> one variant per threshold). Unlike `candidates`, every returned spec is
  // a variant of its own (named, reported, usable as the baseline), each tagged with its SweepPoint. Called
  // where the scenario collects its variants; empty = the spec itself.
  std::function<std::vector<VariantSpec>(const VariantSpec&)> expand = {};
  // Whether the schedule reads the routing plan's gate-score histograms (the runner skips them otherwise).
  bool uses_gate_scores = false;
  // Whether the schedule reads each token's experts and gate scores (LayerRouting::tokens): the runner routes
  // its variants with keep_scores on (the draws, and so the counts, are the same either way).
  bool uses_token_scores = false;
  // Optional: turns the summed figures the schedule noted in the graph (OpGraph::note_sum, over steps) into
  // the ratios it reports (e.g. DualSparse's drop rate), in the variant's `extra`.
  std::function<void(std::map<std::string, double>& extra)> derive_metrics = {};
  // Optional: decodes the schedule's own keys (those in `keys`) from the variant entry v, filling `shown`
  // with the resolved values for reports. Problems become diagnostics in v's sink.
  std::function<std::shared_ptr<const ScheduleOptions>(const YamlView& v, const DecodeContext& ctx,
                                                       std::map<std::string, std::string>& shown)>
      decode = {};
  // Optional: workload steps before step 0 whose routing the schedule reads (EPLB's window).
  std::function<int(const VariantSpec&)> history_steps = {};
  // Whether runs that include this schedule report the MoE-layer figures (MoE-layer time, per-step statistics,
  // per-rank precision; ReaLB/EPLB comparisons) for every variant.
  bool moe_metrics = false;
  // Whether `auto` fidelity must pick exact for this schedule whatever the flow count: its result rests on
  // per-rank finish times inside an all-to-all, which the fast level (one task per all-to-all) merges. ReaLB:
  // fast put the step of scenarios/realb-qwen3-vl-rtx5090-8k.yaml 10 % above exact (125.2 vs 113.8 ms) while
  // topk and eplb stayed within 0.4 %.
  bool needs_exact = false;
  // Whether the schedule models expert tensor parallelism (parallelism.etp > 1); a scenario with etp > 1
  // accepts only such schedules (the others would read the group placement as replicated experts).
  bool supports_etp = false;
  // Whether the schedule costs padded capacity buffers (routing.capacity_mode: pad) through LayerEmitter; one
  // that re-derives pairs itself (EPLB's replicas, DualSparse's drops) refuses pad instead of ignoring it.
  bool supports_capacity_pad = true;
};

// All registered schedules, in a fixed order.
const std::vector<ScheduleInfo>& schedules();
const ScheduleInfo* find_schedule(const std::string& name);
std::vector<std::string> schedule_names();

// Decodes one entry of the scenario's `variants:` list. Problems become diagnostics. `profile` and `mode`
// are for schedules whose options depend on them (null profile: such checks are skipped).
// `etp`: parallelism.etp (a schedule without supports_etp is an error at `schedule` when etp > 1).
VariantSpec decode_variant(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir,
                           const Profile* profile = nullptr, Mode mode = Mode::inference_prefill, int etp = 1);

}  // namespace moesim::models
