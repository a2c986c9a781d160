// The result of a generic sweep (sim/sweep.hpp): one row per (point, variant), kept as the CSV's cells so that
// every output (CSV, JSON, HTML) is a function of the same text, whether the rows came from this run or from
// the CSV of an interrupted one (--resume): a resumed sweep gives the same bytes as an uninterrupted one.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace moesim {

struct SweepTable {
  static constexpr const char* kSchema = "moesim-sweep/1";
  std::string scenario_file;
  std::string scenario_name;
  std::size_t points = 0;             // points of the sweep (rows may cover fewer when some failed)
  std::vector<std::string> keys;      // the swept keys (columns 1.. after "point")
  std::vector<std::string> columns;   // the CSV header: point, the keys, then kSweepFixedColumns
  std::vector<std::vector<std::string>> rows;  // cells, columns.size() each; point order, then variant order
};

// The columns after the swept keys. Units in the names: seconds (_s), token-expert pairs, ratios.
inline const std::vector<std::string> kSweepFixedColumns = {
    "variant",          "schedule",        "fidelity",       "step_time_s",    "per_layer_mean_s",
    "compute_s",        "comm_s",          "exposed_comm_s", "overlap_ratio",  "load_imbalance",
    "load_imbalance_max", "dropped_pairs", "speedup_vs_baseline", "moe_layer_time_s"};

}  // namespace moesim
