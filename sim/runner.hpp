// Runs the variants of a scenario: each in a child process of its own (one SimGrid simulation per process,
// DESIGN rule 5), up to `jobs` at a time, and gathers their results into one RunResult.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sim/result.hpp"
#include "sim/scenario.hpp"

namespace moesim {

struct RunOptions {
  int jobs = 2;                            // child processes at once
  bool keep_events = false;                // fill VariantResult::events (for trace outputs)
  std::vector<std::string> only;           // run only these variants (names); empty = all
  std::optional<Fidelity> fidelity;        // overrides the scenario's fidelity
};

// Fills the context block (version, git sha, scenario hash, seed, SimGrid settings, fidelity, profiles).
RunContext make_context(const Scenario& sc, Fidelity fidelity);

// The routing plans of steps [-history, steps) for `spec` (its own routing override or the workload's);
// steps < 0: sc.steps.
models::StepSeries make_series(const Scenario& sc, const models::VariantSpec& spec, int history, int steps = -1);

// Whether a run of these variants reports the MoE-layer figures (more than one step, a multimodal workload,
// or a schedule that asks for them): then every variant of the run does, so they compare.
bool wants_moe_metrics(const Scenario& sc, const std::vector<const models::VariantSpec*>& variants);

// Simulates one variant in this process. Call at most once per process (SimGrid). `series` (optional) holds
// routing plans already made for the workload routing (shared by variants without a routing override).
VariantResult simulate_variant(const Scenario& sc, const models::VariantSpec& spec, Fidelity fidelity,
                               bool keep_events, bool moe_metrics = false,
                               const models::StepSeries* series = nullptr);

RunResult run_scenario(const Scenario& sc, const RunOptions& opt);

}  // namespace moesim
