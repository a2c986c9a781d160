#include "sim/budget.hpp"

#include <algorithm>
#include <unistd.h>

#include "models/variants/variant.hpp"
#include "sim/scenario.hpp"

namespace moesim {

ResourceEstimate estimate_resources(const Scenario& sc) {
  ResourceEstimate est;
  double moe_layers = 0;
  for (int l : sc.simulated_layers())
    if (static_cast<std::size_t>(l) < sc.arch.moe_layer.size() && sc.arch.moe_layer[static_cast<std::size_t>(l)])
      ++moe_layers;
  const double R = sc.ep, E = sc.arch.routed_experts, k = sc.arch.top_k;
  const bool is_trace = sc.routing.distribution == models::RoutingDistribution::trace;
  const double tokens = is_trace && sc.routing.trace ? static_cast<double>(sc.routing.trace->size()) / std::max(1.0, R)
                                                     : static_cast<double>(sc.tokens_per_rank);
  double per_layer = 8.0 * R * E + 8.0 * R * R + 4.0 * R * sc.routing.histogram_bins;
  // A schedule that reads per-token scores (dualsparse) has its plans routed with keep_scores.
  bool records = sc.routing.keep_scores || is_trace;
  for (const auto& v : sc.variants)
    if (const auto* info = models::find_schedule(v.schedule); info && info->uses_token_scores) records = true;
  if (records) per_layer += 9.0 * tokens * R * k;
  // Multi-step runs keep every step's routing plan (the EPLB window reads past steps) and one op graph of
  // all steps: about 16 ops per layer and rank, each with its SimGrid activity, ~512 B together.
  const double steps = std::max(1, sc.steps);
  const double layers = static_cast<double>(sc.simulated_layers().size());
  est.bytes = per_layer * moe_layers * steps + (steps > 1 ? steps * layers * R * 16.0 * 512.0 : 0.0);
  // The softmax gate (routing.gate.scores) draws one Gumbel per expert and token, not one per pick.
  const double per_token = sc.routing.gate.scores == models::GateScores::softmax ? E : k;
  // The counts sampler (routing.sampler) draws about one binomial per (rank, expert) instead.
  bool any_tokens = false;
  for (const auto& v : sc.variants)
    any_tokens = any_tokens || models::resolve_sampler(variant_routing(sc.routing, v)) == models::Sampler::tokens;
  est.routing_draws = is_trace ? 0.0 : (any_tokens ? tokens * R * per_token : R * E) * moe_layers * steps;
  return est;
}

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

}  // namespace moesim
