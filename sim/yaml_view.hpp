// Validated, location-aware access to YAML input.
//
// A YamlView wraps one yaml-cpp node plus the file it came from, its key path ("cluster.links[2]") and the
// Diagnostics sink. Getters check type, unit and range; on a problem they record a diagnostic
// (file:line:col: key.path: rule (got value)) and return a harmless fallback, so that loading continues and
// every error of a file is reported together. Callers throw InputError at the end if any diagnostic was
// recorded, so no fallback value ever reaches the simulation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "sim/diagnostics.hpp"
#include "sim/units.hpp"

namespace moesim {

// Inclusive/exclusive bounds for numeric values.
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;  // true: value must be > lo
  bool hi_open = false;  // true: value must be < hi

  static Range any() { return {}; }
  static Range positive() { return {0.0, std::numeric_limits<double>::infinity(), true, false}; }
  static Range non_negative() { return {0.0, std::numeric_limits<double>::infinity(), false, false}; }
  static Range at_least(double v) { return {v, std::numeric_limits<double>::infinity(), false, false}; }
  static Range between(double a, double b) { return {a, b, false, false}; }
  static Range unit_interval_open_lo() { return {0.0, 1.0, true, false}; }  // (0, 1]
  bool contains(double v) const;
  std::string describe() const;  // "must be > 0", "must be in [1, 8]"
};

// The range of values of a dimension that the engine handles exactly (sim/limits.hpp); every quantity key is
// checked against it besides its own rule (0 stays allowed where the key's rule allows it).
Range quantity_span(Dim dim);
std::string quantity_span_text(Dim dim);  // "[1e-12s, 1000s]"

class YamlView {
 public:
  YamlView() = default;
  // Parses a file; syntax errors become diagnostics (and the returned view is undefined).
  static YamlView load_file(const std::string& path, Diagnostics* diags);
  // Parses text; `name` stands in for the file name in messages.
  static YamlView load_string(const std::string& text, const std::string& name, Diagnostics* diags);
  // Wraps a tree already parsed (and possibly edited: a sweep point) from the file `name`.
  static YamlView from_node(YAML::Node node, const std::string& name, Diagnostics* diags);

  bool defined() const { return node_.IsDefined() && !node_.IsNull(); }
  bool is_map() const { return node_.IsMap(); }
  bool is_sequence() const { return node_.IsSequence(); }
  bool is_scalar() const { return node_.IsScalar(); }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  int line() const;    // 1-based line of this node (or of its parent when the node is missing)
  int column() const;  // 1-based
  Diagnostics* diagnostics() const { return diags_; }
  // Number of diagnostics recorded so far in this view's sink (0 without one).
  std::size_t diagnostic_count() const { return diags_ ? diags_->size() : 0; }
  const YAML::Node& raw() const { return node_; }
  // The node as written (scalar text, or "a mapping"/"a list"), for "(got ...)".
  std::string shown() const;

  // --- mappings -------------------------------------------------------------------------------------
  // Records an error and returns false unless this node is a mapping.
  bool expect_map() const;
  bool has(std::string_view key) const;
  YamlView at(std::string_view key) const;  // may be undefined (then messages point at this mapping)
  // Unknown keys are errors; the message suggests the closest allowed key.
  void check_keys(std::initializer_list<std::string_view> allowed) const;
  void check_keys(const std::vector<std::string>& allowed) const;
  // Keys in file order.
  std::vector<std::string> keys() const;
  // Records "missing required key" unless present; returns presence.
  bool require(std::string_view key) const;

  // Required values: missing → error. *_or variants: missing → the documented default.
  std::string str(std::string_view key) const;
  std::string str_or(std::string_view key, std::string def) const;
  std::string choice(std::string_view key, const std::vector<std::string>& allowed) const;
  std::string choice_or(std::string_view key, const std::vector<std::string>& allowed, std::string def) const;
  int64_t integer(std::string_view key, Range r = Range::any()) const;
  int64_t integer_or(std::string_view key, int64_t def, Range r = Range::any()) const;
  double number(std::string_view key, Range r = Range::any()) const;
  double number_or(std::string_view key, double def, Range r = Range::any()) const;
  double quantity(std::string_view key, Dim dim, Range r = Range::positive()) const;
  double quantity_or(std::string_view key, Dim dim, double def, Range r = Range::positive()) const;
  bool boolean(std::string_view key) const;
  bool boolean_or(std::string_view key, bool def) const;

  // --- sequences ------------------------------------------------------------------------------------
  // Elements of a sequence (error and empty if not a sequence).
  std::vector<YamlView> items() const;

  // --- this node as a scalar ------------------------------------------------------------------------
  std::string as_str() const;
  int64_t as_integer(Range r = Range::any()) const;
  double as_number(Range r = Range::any()) const;
  double as_quantity(Dim dim, Range r = Range::positive()) const;
  std::string as_choice(const std::vector<std::string>& allowed) const;

  // Records an error located at this node.
  void error(const std::string& rule, const std::string& got = "") const;
  // Records an error at a key of this mapping (its value when present, else the mapping).
  void error_at(std::string_view key, const std::string& rule) const;

 private:
  YamlView(YAML::Node node, std::shared_ptr<const std::string> file, std::string path, Diagnostics* diags,
           YAML::Mark mark);
  std::string child_path(std::string_view key) const;

  YAML::Node node_;
  std::shared_ptr<const std::string> file_ = std::make_shared<const std::string>("<input>");
  std::string path_;
  Diagnostics* diags_ = nullptr;
  YAML::Mark mark_;  // where this node is, or where its parent is when the node is missing
};

// Stems of the regular *.yaml files in `dir` (a presets or profiles folder), sorted; empty when `dir` cannot
// be read.
std::vector<std::string> yaml_file_stems(const std::string& dir);

}  // namespace moesim
