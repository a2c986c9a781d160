// Generic parameter sweeps (`moesim sweep`, a scenario's `sweep:` section): a grid, and a zipped list, over any
// scenario key given by its path ("parallelism.ep", "workload.routing.s", "variants[ds].chunks",
// "cluster.links[0].bandwidth"). Each point is the scenario's YAML tree with the point's values written in,
// decoded by the ordinary scenario decoder, so every rule, unit check and unknown-key check applies to it
// unchanged. Every point is validated before any runs; points run in worker processes (each runs its variants
// in children of its own: one SimGrid simulation per process, DESIGN rule 5); each finished point's rows are
// appended to the CSV in one write, so an interrupted sweep leaves a valid CSV of its finished points that
// `--resume` completes. Format and CLI: scenarios/README.md "sweep", README.md "moesim sweep".
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "sim/diagnostics.hpp"
#include "sim/engine.hpp"
#include "sim/sweep_table.hpp"
#include "sim/yaml_view.hpp"

namespace moesim {

// Points of one sweep at most (a guard against a grid typed with one zero too many; each point is a run).
inline constexpr std::size_t kMaxSweepPoints = 10000;

// One axis of the sweep: a grid key, or the zip list's keys walked together (every list the same length).
struct SweepDim {
  std::vector<std::string> keys;
  std::vector<std::vector<YAML::Node>> values;  // [key][i]
  std::vector<Diagnostic> at;  // where each key is given (file:line:col, or the command line), for its errors
  std::size_t size() const { return values.empty() ? 0 : values.front().size(); }
};

// The grid keys in the order written (the first varies slowest), then the zip list as one more axis.
struct SweepPlan {
  std::vector<SweepDim> dims;
  std::vector<std::string> keys() const;  // every swept key, in CSV column order
  std::size_t point_count() const;        // product of the axis lengths (0 without axes)
};

// One point: its index (row-major over the axes) and the value of every swept key, in keys() order.
struct SweepSetting {
  std::string key;
  YAML::Node value;
  std::string shown;  // the value as written: a scalar's text, or a list / mapping in YAML flow style
};
struct SweepGridPoint {
  std::size_t index = 0;
  std::vector<SweepSetting> settings;
  std::string label() const;  // "parallelism.ep=4 workload.tokens_per_rank=2048"
};
std::vector<SweepGridPoint> sweep_points(const SweepPlan& plan);

// A value as written (scalars unquoted, collections in flow style).
std::string sweep_value_text(const YAML::Node& value);

// Decodes a scenario's `sweep:` section; problems become diagnostics in the view's sink.
SweepPlan decode_sweep(const YamlView& section);

// The axes of `--set KEY=V1,V2,...` (one grid axis each) and `--zip KEY=V1,V2,...` (walked together); each
// value is read as a YAML scalar (so "400GB/s", "8", "true" mean what they mean in the file). Throws
// std::invalid_argument naming the argument when one is malformed.
SweepPlan sweep_from_args(const std::vector<std::string>& set, const std::vector<std::string>& zip);

// Whether `path` is a well-formed key path: names separated by dots, each optionally followed by [N] (a list
// index) or [NAME] (the list entry whose `name` is NAME); nullopt or the rule broken.
std::optional<std::string> sweep_path_problem(const std::string& path);

// Writes `value` at `path` in the tree `root` (edited in place): an existing scalar keeps its node (and its
// place in the file; check_sweep_points reports a problem with it at the sweep's value); a missing final key, or missing mappings on the way, are created
// (the decoder then checks that the key exists in the format). Returns the rule broken, or nullopt: a list
// index out of range, no entry of that name, a path through a scalar ("cluster is h200-hgx-8, not a mapping").
std::optional<std::string> apply_sweep_setting(YAML::Node root, const std::string& path, const YAML::Node& value);

// The scenario tree of a point: a copy of `root` without its `sweep:` section and with the point's values
// written in, parsed afresh from the file's `text` (so every node keeps its line and column); nullopt when a
// setting cannot be applied, with `problems` holding each such setting (index into the point's settings) and
// the rule it broke.
using SweepSettingProblems = std::vector<std::pair<std::size_t, std::string>>;
std::optional<YAML::Node> sweep_point_tree(const std::string& text, const SweepGridPoint& point,
                                           SweepSettingProblems* problems);

// Decodes every point of `plan` (of the scenario `file`, whose bytes are `text`) and records each point's
// problems in `diags`, named after the point ("sweep point 3 of 6 (parallelism.ep=16): ..."); a setting
// that cannot be applied is reported where its key is given (SweepDim::at), once per key and rule.
struct SweepPointInfo {
  std::size_t variants = 0;  // variants of the point's scenario (0 for a broken point)
  double routing_draws = 0;  // sim/budget.hpp, for the --force check
};
std::vector<SweepPointInfo> check_sweep_points(const std::string& file, const std::string& text,
                                               const SweepPlan& plan, Diagnostics& diags);

struct SweepOptions {
  int jobs = 2;                      // points simulated at once (worker processes)
  bool resume = false;               // keep the finished points of an existing CSV, run the rest
  bool force = false;                // run points whose estimated work is very long
  std::optional<Fidelity> fidelity;  // overrides every point's fidelity
  std::string csv;                   // the CSV written as points finish (required)
  bool progress_bar = false;         // a bar redrawn in place (a terminal); plain lines otherwise
  bool quiet = false;                // no progress output at all
  // Tests only: after this many points finished in this run, behave exactly as on Ctrl-C (SIGINT). Set from
  // MOESIM_SWEEP_STOP_AFTER by the CLI; 0 = never.
  std::size_t stop_after = 0;
  // Shard `shard` of `shards` (1-based, 1 <= shard <= shards): this run simulates only the points p with
  // p % shards == shard - 1 and its CSV holds only their rows; `moesim merge` (merge_sweep_csvs) joins the
  // shards' CSVs into the CSV of the whole sweep, byte for byte. 1 of 1 = the whole sweep.
  std::size_t shard = 1;
  std::size_t shards = 1;
  // Put before every progress line ("rank 1: " under MPI, where the ranks share one terminal).
  std::string progress_prefix;
};

// Parses `--shard I/N` ("2/4"): {I, N} with 1 <= I <= N <= kMaxSweepPoints; throws std::invalid_argument.
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);

struct SweepOutcome {
  SweepTable table;          // the finished points' rows, in point order
  bool interrupted = false;  // Ctrl-C (or stop_after): the CSV holds the finished points; --resume finishes
  std::string failures;      // points whose simulation failed, one line each ("" when none)
  std::size_t resumed = 0;   // points taken from the existing CSV
  std::size_t shard_points = 0;  // points of this run's shard (all points without --shard)
};

// Runs the sweep of `file` (its `sweep:` section, or the axes of --set / --zip when given, which replace it).
// Throws InputError when the scenario or a point is invalid (before anything runs), std::invalid_argument for
// a usage problem (no sweep, a CSV to resume written by another sweep), std::runtime_error on I/O failures.
SweepOutcome run_sweep(const std::string& file, const std::vector<std::string>& set,
                       const std::vector<std::string>& zip, const SweepOptions& opt);

// The CSV of a table: header, then one line per row; RFC 4180 quoting where needed, '\n' line ends.
std::string sweep_csv_text(const SweepTable& t);

// `moesim merge`: the CSV of a whole sweep from the CSVs of its shards (`--shard I/N` runs), in any order: the
// headers must be equal, no point may appear in two inputs, the points must be 0..P-1 without a gap (P =
// `points` when given, else the largest point + 1), and a torn last line (an interrupted write) is an error.
// The rows are written in point order, each point's rows in the order its shard wrote them (variant order),
// which is the CSV one process writes for the same sweep, byte for byte. Throws std::invalid_argument naming
// the file and the rule.
std::string merge_sweep_csvs(const std::vector<std::string>& files, std::optional<std::size_t> points);

// Each point's rows of `t` as CSV lines (sweep_csv_text's lines without the header), by point: what an MPI rank
// sends to rank 0 (sim/mpi_split.hpp).
std::map<std::size_t, std::string> sweep_rows_by_point(const SweepTable& t);
// Replaces the rows of `t` with the rows of `by_point` (CSV lines per point, as sweep_rows_by_point makes them),
// in point order. Throws std::runtime_error on a torn line or a row of the wrong width.
void set_sweep_rows(SweepTable& t, const std::map<std::size_t, std::string>& by_point);

// Writes `text` to `path` at once (a temporary file renamed over it).
void replace_sweep_file(const std::string& path, const std::string& text);

}  // namespace moesim
