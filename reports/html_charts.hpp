// Charts of the HTML report (issue 15 point 4), inline SVG only: the stacked op-class bars, the tokens-received
// heat map and the one-layer timeline. Internal to reports/ (html_report.cpp assembles the page). Every chart
// marks its data elements with a class attribute (listed per function) so tests can count them.
#pragma once

#include <string>

#include "sim/result.hpp"

namespace moesim::reports::html {

// Text for HTML element content and attribute values (& < > " escaped).
std::string escape(const std::string& s);

// One horizontal bar per variant (<g class="opclass-bar">) stacked by op class from time_by_class_s (mean over
// ranks per step), one <rect class="opclass-seg"> per class with time > 0, classes in a fixed order with a fixed
// colour each; bars scaled to the longest sum. Overlapping ops all count, so a bar may be longer than the
// step. "" when no variant has class times.
std::string op_class_chart(const RunResult& r);

// Token-expert pairs each rank receives per MoE layer (forward), mean over steps, from the rows: MoE layers
// (those where some rank receives pairs) down, ranks across, one <rect class="tokens-cell"> per (layer, rank),
// coloured by its ratio to the layer's mean (white 1x, red 2x or more, blue 0x), with a tooltip of the count and
// the ratio.
// "" when the variant has no such rows.
std::string tokens_heat_map(const VariantResult& v);

// The layer the timeline shows by default: the lowest layer with a forward dispatch op in step 0 over all
// variants (the first MoE layer), or -1 when no variant has events.
int default_timeline_layer(const RunResult& r);

// Gantt chart of layer `layer`'s forward ops in step 0: a row per (rank, stream) that has such ops (at most
// kTimelineRanks ranks, the lowest), one <rect class="gantt-op"> per op coloured by op class, x = time from the
// layer's first op start. "" when the variant has no events of that layer.
inline constexpr int kTimelineRanks = 32;
std::string layer_timeline(const VariantResult& v, int layer);

}  // namespace moesim::reports::html
