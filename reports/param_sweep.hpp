// Outputs of a generic sweep (`moesim sweep`, sim/sweep.hpp) besides its CSV: JSON and an HTML page of line
// charts. Pure functions of the SweepTable (the CSV's cells), so a resumed sweep gives the same bytes as an
// uninterrupted one.
#pragma once

#include <string>

#include "sim/sweep_table.hpp"

namespace moesim::reports {

// Schema "moesim-sweep/1": {"schema", "scenario": {file, name}, "points", "keys", "columns", "rows"}; a row is an
// object keyed by column: "point" and the figures as numbers, the swept keys' values and the text columns as
// strings (values as written, units included), an empty cell as null. 2-space indent, trailing newline.
std::string sweep_json(const SweepTable& t);

// Self-contained HTML (inline SVG, no scripts): per metric with a value (step time, speed-up over the baseline,
// MoE-layer time, compute, comm, exposed comm, overlap, load imbalance, dropped pairs) a line chart against the
// first swept key, one line per variant and combination of the other keys' values; the x axis is numeric when
// every value of the key is a number or a quantity of one dimension (shown in SI units: B, s, B/s, FLOP/s),
// else the values as written, evenly spaced in sweep order. Then the table of every row.
std::string sweep_html(const SweepTable& t);

}  // namespace moesim::reports
