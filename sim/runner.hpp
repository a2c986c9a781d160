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

// Simulates one variant in this process. Call at most once per process (SimGrid).
VariantResult simulate_variant(const Scenario& sc, const models::VariantSpec& spec, Fidelity fidelity,
                               bool keep_events);

RunResult run_scenario(const Scenario& sc, const RunOptions& opt);

}  // namespace moesim
