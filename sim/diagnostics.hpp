// Errors in user input (scenario, topology, profile, routing-trace files).
// Every message has the form   file:line:col: key.path: rule (got value)
// and all errors of a file are collected and reported together; the CLI exits with code 2.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moesim {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string key_path;  // "cluster.links[2].bandwidth"
  std::string rule;      // what was expected
  std::string got;       // the offending value as written, or "" when nothing was there

  std::string str() const;
};

// Collects diagnostics; cheap to pass around by pointer.
class Diagnostics {
 public:
  void add(Diagnostic d);
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // One line per diagnostic, in file order (sorted by file, line, column so output is deterministic).
  std::string str() const;

 private:
  std::vector<Diagnostic> items_;
};

// Thrown once loading a file finished with errors; carries every diagnostic.
class InputError : public std::runtime_error {
 public:
  explicit InputError(Diagnostics d);
  const Diagnostics& diagnostics() const { return diags_; }

 private:
  Diagnostics diags_;
};

// `text` with control characters (bytes < 0x20 and 0x7f) written as \n, \t, \r or \xNN; other bytes (UTF-8)
// unchanged. Used for every echoed file name, key and value.
std::string escape_control(std::string_view text);

// Closest candidate by edit distance (for "did you mean"), or "" if nothing is close enough.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// The rule for a name not among `known`: "<what>; <list_label>: a, b, c" plus "; did you mean 'b'?" when one
// is close, e.g. unknown_name_rule("unknown model preset", "presets", name, presets).
std::string unknown_name_rule(std::string_view what, std::string_view list_label, std::string_view name,
                              const std::vector<std::string>& known);

}  // namespace moesim
